"""Every exception srt-slurm raises on purpose, documented in one place.

    SrtError                      base class; str(e) is the message shown to the user
    ├── ConfigError               a job file or cluster file is invalid (file, line, key, fix)
    │   └── DatasetError          an eval dataset is missing or malformed (file, line, what is wrong)
    ├── PlanError                 a valid config cannot be laid out on the given nodes
    ├── SubmitError               sbatch refused the job (carries the cluster-file fix)
    ├── LaunchError               a process or srun step could not be started
    ├── ComponentFailed           a critical process exited (component, node, exit code, log tail)
    ├── HealthTimeout             a component did not become ready before its deadline
    ├── BenchmarkError            a benchmark point is invalid (failures, zero tokens)
    │   └── EvalGateError         the accuracy eval scored below min_score
    ├── ProfilingError            profiling did not produce its traces
    ├── ResumeError               a run directory cannot be resumed (fingerprint mismatch, ...)
    ├── SetupError                `make setup` could not fetch or verify a binary
    ├── SyncError                 cloud sync failed (credentials, endpoint, bucket)
    └── RunNotFound               `srtctl status/logs/...` cannot find the named run or log

The CLI prints `str(error)` for any SrtError and exits 2 (config) or 1 (others); anything
else is a bug and shows a traceback.
"""

from __future__ import annotations


class SrtError(Exception):
    """Base class of every deliberate srt-slurm error."""

    exit_code = 1


class ConfigError(SrtError):
    """Invalid job or cluster file.

    Carries where the problem is so the message can name file, line, key path, value and a fix.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
        value: object = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.key = key
        self.value = value
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}"
        head = f"{where}: "
        if self.key:
            head += f"{self.key}: "
        text = head + self.message
        if self.hint:
            text += f"\n  fix: {self.hint}"
        return text


class ConfigErrors(ConfigError):
    """Several ConfigErrors found in one file, reported together."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(first.message, file=first.file, line=first.line, key=first.key,
                         value=first.value, hint=first.hint)

    def render(self) -> str:  # type: ignore[override]
        if not getattr(self, "errors", None):
            return super().render()
        return "\n".join(e.render() for e in self.errors)


class PlanError(SrtError):
    exit_code = 2


class SubmitError(SrtError):
    pass


class LaunchError(SrtError):
    pass


class ComponentFailed(SrtError):
    def __init__(self, component: str, node: str | None, exit_code: int | None, log_tail: list[str]):
        self.component = component
        self.node = node
        self.returncode = exit_code
        self.log_tail = log_tail
        super().__init__(f"{component} on {node or '?'} exited with code {exit_code}")


class HealthTimeout(SrtError):
    pass


class BenchmarkError(SrtError):
    pass


class ProfilingError(SrtError):
    pass


class ResumeError(SrtError):
    pass


class SetupError(SrtError):
    pass


class SyncError(SrtError):
    pass


class RunNotFound(SrtError):
    """A run id, prefix or path names no run directory (or names several)."""


class DatasetError(ConfigError):
    """An eval dataset (gsm8k, MMLU, GPQA) is missing or not in its published format."""


class EvalGateError(BenchmarkError):
    """The accuracy eval scored below `min_score`: the job fails before any performance point."""
