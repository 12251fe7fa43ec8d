"""`srtctl`: the command-line entry point. Subcommands live in their own modules, imported lazily
so `srtctl --help` stays fast."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import importlib
import os
import sys
import types

# name -> (module, one-line help); each module has add_arguments(parser) and run(args) -> int
COMMANDS: dict[str, tuple[str, str]] = {
    "dry-run": ("launcher.dry_run", "validate a job file and write everything apply would submit to dry-runs/"),
    "apply": ("launcher.apply_cmd", "submit a job (one sbatch allocation), or run it here with --local"),
    "convert": ("launcher.convert_cmd", "convert an srt-slurm (v1) recipe into srtctl's job format"),
    "status": ("launcher.status_cmd", "show a run's phase, components and failure cause"),
    "logs": ("launcher.logs_cmd", "print or follow a component's log"),
    "watch": ("launcher.watch_cmd", "live view of a run until it ends"),
    "runs": ("launcher.runs_cmd", "list runs with tags, topology, state and headline results"),
    "report": ("launcher.report_cmd", "plots and a summary table for one or more runs"),
    "sync": ("launcher.sync_cmd", "upload run directories to S3-compatible storage"),
}


def build_parser() -> argparse.ArgumentParser:
    from srt_agent import __version__  # lazy, CLI start-up: `srtctl --help` imports only what it prints

    parser = argparse.ArgumentParser(prog="srtctl", description="Disaggregated SGLang on SLURM, benchmarked.")
    parser.add_argument("--version", action="version", version=f"srtctl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if name in _requested(sys.argv[1:]):  # only the command being run (or asked about) is imported
            _load(module).add_arguments(p)
    return parser


def _requested(argv: list[str]) -> set[str]:
    return {a for a in argv if a in COMMANDS}


def _load(module: str):
    return importlib.import_module(module)


_PLUGIN_LOADER = "pydantic.plugin._loader"


@contextlib.contextmanager
def _no_pydantic_plugin_scan():
    """srtctl uses no pydantic plugins; without this pydantic reads the entry points of every installed
    distribution when the command's module builds its first model (CLI start-up). Only while the
    command's module is imported: the variable reaches no child process.

    With the variable set pydantic's get_plugins() returns no plugins before it looks at any entry
    point, but the module that holds it imports importlib.metadata (email, zipfile, csv: ~8 ms of a
    dry-run) to be able to; for the same window that module is replaced by one whose get_plugins()
    returns the same nothing, and removed after, so a later import gets pydantic's own."""
    if "PYDANTIC_DISABLE_PLUGINS" in os.environ:
        yield
        return
    os.environ["PYDANTIC_DISABLE_PLUGINS"] = "__all__"
    stand_in = None
    if _PLUGIN_LOADER not in sys.modules:
        stand_in = types.ModuleType(_PLUGIN_LOADER, "srtctl start-up: pydantic plugins switched off")
        stand_in.get_plugins = lambda: ()  # type: ignore[attr-defined]
        sys.modules[_PLUGIN_LOADER] = stand_in
    try:
        yield
    finally:
        os.environ.pop("PYDANTIC_DISABLE_PLUGINS", None)
        if stand_in is not None and sys.modules.get(_PLUGIN_LOADER) is stand_in:
            del sys.modules[_PLUGIN_LOADER]


@contextlib.contextmanager
def _long_lived_objects(own_process: bool):
    """CLI start-up and exit, only when srtctl is the program (argv from the command line, as the console
    script runs it): what the command's imports make (modules, classes, pydantic's validators) lives until
    the process ends, so the cyclic garbage collector does not scan it again and again while it is being
    made and is told to leave it alone after (gc.freeze). At exit the heap is frozen again: the collector's
    last passes at interpreter shutdown were ~30 ms of a ~0.2 s dry-run, to free memory the operating system
    takes back anyway (objects alive at exit were never guaranteed a __del__ call). Called in-process with
    an argv (tests, other Python code) nothing changes."""
    if not own_process:
        yield
        return
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def main(argv: list[str] | None = None) -> int:
    from srt_agent.errors import SrtError  # lazy, CLI start-up: nothing of srt_agent before the parser

    own_process = argv is None
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    with _no_pydantic_plugin_scan(), _long_lived_objects(own_process):
        parser = build_parser()
    args = parser.parse_args(sys.argv[1:])
    if not getattr(args, "_module", None):
        parser.print_help()
        return 0
    try:
        return int(_load(args._module).run(args) or 0)
    except SrtError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
