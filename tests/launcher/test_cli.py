"""The srtctl entry point: help, version, lazy imports, error exit codes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from launcher.cli import COMMANDS, main
from srt_agent import __version__

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("pydantic", "yaml", "jinja2", "rich", "httpx", "boto3", "botocore", "anyio", "aiohttp", "nats")


@pytest.fixture(autouse=True)
def _argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["srtctl"])


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name, (_module, help_text) in COMMANDS.items():
        assert name in out
    assert "dry-run" in out and "apply" in out


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage: srtctl" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"srtctl {__version__}"


@pytest.mark.parametrize("command, flags", [("dry-run", ["-f", "--setup-script", "--tags", "--local", "--output-dir"]),
                                            ("apply", ["-f", "--tags", "--setup-script", "--local", "--resume",
                                                       "--force"])])
def test_subcommand_help(capsys, command, flags):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert all(f in out for f in flags)


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["deploy"])
    assert info.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_missing_required_flag(capsys):
    with pytest.raises(SystemExit) as info:
        main(["dry-run"])
    assert info.value.code == 2 and "-f/--file" in capsys.readouterr().err


def test_srt_errors_print_without_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SRTSLURM_CONFIG", raising=False)
    monkeypatch.delenv("SRTCTL_ROOT", raising=False)
    bad = tmp_path / "job.yaml"
    bad.write_text("name: [\n")
    assert main(["dry-run", "-f", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}:2: invalid YAML") and "Traceback" not in err


def loaded_after(argv: list[str], cwd: Path, env: dict | None = None) -> list[str]:
    code = ("import contextlib, io, json, sys\n"
            f"sys.argv = ['srtctl', *{argv!r}]\n"
            "import launcher.cli as cli\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
            "    try:\n        cli.main()\n    except SystemExit:\n        pass\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=60,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_help_imports_nothing_heavy(tmp_path):
    mods = loaded_after(["--help"], tmp_path)
    assert not [m for m in mods if m.split(".")[0] in HEAVY]
    assert not [m for m in mods if m.startswith("launcher.") and m != "launcher.cli"]


def test_dry_run_imports_only_what_it_needs(tmp_path):
    cluster = tmp_path / "srtslurm.yaml"
    cluster.write_text("model_paths:\n  deepseek-r1: /m\ncontainers:\n  latest: /c.sqsh\n")
    mods = loaded_after(["dry-run", "-f", str(ROOT / "configs" / "my-job.yaml"), "--quiet",
                         "--output-dir", str(tmp_path / "out")], tmp_path, {"SRTSLURM_CONFIG": str(cluster)})
    assert (tmp_path / "out").is_dir()
    tops = {m.split(".")[0] for m in mods}
    assert {"pydantic", "yaml", "jinja2"} <= tops
    assert not tops & {"rich", "httpx", "boto3", "botocore", "anyio", "aiohttp", "nats"}
    assert not [m for m in mods if m.startswith("srt_agent.agent")]
    # the load generator's settings (LoadConfig: the benchmark keys' defaults, defined once) and
    # its process sizing are plain modules; the trace file's parser only for a trace-replay job, and
    # the client itself (asyncio, sockets, workers, prompts) is not loaded
    assert {m for m in mods if m.startswith("srt_agent.loadgen.")} <= {"srt_agent.loadgen.config",
                                                                        "srt_agent.loadgen.sizing"}
    # a job in this project's format is recognised without the incumbent's converter or mapping table
    assert not [m for m in mods if m.startswith("srt_agent.incumbent.") and m != "srt_agent.incumbent.detect"]
    assert "asyncio" not in mods
