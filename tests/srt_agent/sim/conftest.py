"""Fixtures of the simulated-engine tests (defined in sim_helpers.py)."""

from sim_helpers import model_dir, start_sim  # noqa: F401  (pytest fixtures)
