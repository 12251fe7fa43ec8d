"""The in-allocation agent: runs the plan phase by phase (see docs/architecture.md)."""
