"""`srtctl dry-run` of the seed's example job, timed as a whole process next to `python -c pass`.

    python benchmarks/dry_run_speed.py [--runs 15] [--against DIR] [--no-bytecode-cache] [--json out.json]

Commands, run in turn (A B C ... A B C ...) so a busy machine slows them alike; each as a
subprocess of the same interpreter, its wall time and CPU time (user + sys, from wait4):

  python -c pass      the interpreter's own start-up: the baseline of every ratio
  srtctl --help       the CLI with no subcommand imported
  srtctl dry-run      `srtctl dry-run -f configs/my-job.yaml --quiet` (the seed's example job)
  libraries           `import pydantic, yaml, jinja2` and one pydantic model: what dry-run cannot
                      do without, so the floor under any speed-up
  --against DIR       the same dry-run from another checkout (e.g. `git archive main | tar -x -C DIR`),
                      run as `python -c "sys.path.insert(0, DIR); launcher.cli.main()"`; this
                      checkout's dry-run is then also run that way, and the pair's ratio printed

Ratios are taken pair by pair (each run of a command against the `python -c pass` run next to it)
and their median reported, so they hold when the machine's speed drifts; quote ratios, not times.
Everything is written under a temporary directory: the compiled-template cache (XDG_CACHE_HOME) and
Python's bytecode (PYTHONPYCACHEPREFIX), both filled by the warm-up run as by a user's first run; an
installed wheel has its bytecode from pip. --no-bytecode-cache runs every command with
PYTHONDONTWRITEBYTECODE=1 instead, so a checkout's modules are compiled from source on every run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOB = ROOT / "configs" / "my-job.yaml"
LIBRARIES = "import pydantic, yaml, jinja2\nclass M(pydantic.BaseModel):\n    x: int\n"
BOOTSTRAP = "import sys; sys.path.insert(0, sys.argv.pop(1)); from launcher.cli import main; sys.exit(main())"


def write_site(tmp: Path) -> Path:
    (tmp / "srt" / "configs").mkdir(parents=True)
    cluster = tmp / "srtslurm.yaml"
    cluster.write_text(
        f"default_account: bench\ndefault_partition: batch\nsrtctl_root: {json.dumps(str(tmp / 'srt'))}\n"
        f"logs_dir: {json.dumps(str(tmp / 'logs'))}\npython: /usr/bin/python3\n"
        "model_paths:\n  deepseek-r1: /models/DeepSeek-R1\ncontainers:\n  latest: /c/latest.sqsh\n")
    return cluster


def run_once(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall s, cpu s) of one run; a failing command stops the benchmark."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {stderr.decode()[-800:]}")
    return wall, usage.ru_utime + usage.ru_stime


def commands(tmp: Path, against: Path | None) -> dict[str, list[str]]:
    beside = Path(sys.executable).parent / "srtctl"  # the console script of this interpreter's environment
    script = str(beside) if beside.is_file() else shutil.which("srtctl")
    srtctl = [script] if script else [sys.executable, "-m", "launcher.cli"]
    dry = ["dry-run", "-f", str(JOB), "--quiet", "--output-dir", str(tmp / "dry-runs")]
    cases = {"python -c pass": [sys.executable, "-c", "pass"], "srtctl --help": [*srtctl, "--help"],
             "srtctl dry-run": [*srtctl, *dry], "libraries": [sys.executable, "-c", LIBRARIES]}
    if against is not None:
        cases["dry-run, this checkout"] = [sys.executable, "-c", BOOTSTRAP, str(ROOT), *dry]
        cases[f"dry-run, {against}"] = [sys.executable, "-c", BOOTSTRAP, str(against), *dry]
    return cases


def bench(runs: int, against: Path | None, bytecode_cache: bool = True) -> dict:
    with tempfile.TemporaryDirectory(prefix="srt-dry-run-speed-") as name:
        tmp = Path(name)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
        env.update({"SRTSLURM_CONFIG": str(write_site(tmp)), "XDG_CACHE_HOME": str(tmp / "cache")})
        env.update({"PYTHONPYCACHEPREFIX": str(tmp / "pycache")} if bytecode_cache else {"PYTHONDONTWRITEBYTECODE": "1"})
        cases = commands(tmp, against)
        for argv in cases.values():  # warm-up: page cache, .pyc files, the compiled-template cache
            run_once(argv, env, tmp)
        samples: dict[str, list[tuple[float, float]]] = {k: [] for k in cases}
        for _ in range(runs):
            for case, argv in cases.items():
                samples[case].append(run_once(argv, env, tmp))
    base = samples["python -c pass"]
    out: dict = {"runs": runs, "srtctl": " ".join(cases["srtctl --help"][:-1]), "bytecode_cache": bytecode_cache,
                 "commands": {}}
    for case, values in samples.items():
        out["commands"][case] = {
            "wall_median_s": statistics.median(v[0] for v in values),
            "cpu_median_s": statistics.median(v[1] for v in values),
            "wall_ratio": statistics.median(v[0] / b[0] for v, b in zip(values, base)),
            "cpu_ratio": statistics.median(v[1] / b[1] for v, b in zip(values, base) if b[1] > 0),
        }
    if against is not None:
        new, old = samples["dry-run, this checkout"], samples[f"dry-run, {against}"]
        out["this_checkout_vs_against"] = {
            "wall_ratio": statistics.median(n[0] / o[0] for n, o in zip(new, old)),
            "cpu_ratio": statistics.median(n[1] / o[1] for n, o in zip(new, old)),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="counted runs of each command (after one warm-up)")
    parser.add_argument("--against", type=Path, help="another checkout whose dry-run runs alongside")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="run with PYTHONDONTWRITEBYTECODE=1 (modules compiled from source every run)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    res = bench(args.runs, args.against.resolve() if args.against else None, not args.no_bytecode_cache)
    load = os.getloadavg()
    print(f"{args.runs} runs of each, in turn; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; "
          f"bytecode {'cached' if res['bytecode_cache'] else 'not cached (PYTHONDONTWRITEBYTECODE=1)'}; "
          f"srtctl = {res['srtctl']}")
    print(f"{'command':<28} {'wall median':>12} {'cpu median':>11} {'wall / pass':>12} {'cpu / pass':>11}")
    for case, r in res["commands"].items():
        print(f"{case:<28} {r['wall_median_s'] * 1000:>9.0f} ms {r['cpu_median_s'] * 1000:>8.0f} ms "
              f"{r['wall_ratio']:>12.2f} {r['cpu_ratio']:>11.2f}")
    if args.against:
        r = res["this_checkout_vs_against"]
        print(f"dry-run, this checkout / {args.against}: wall {r['wall_ratio']:.2f}, cpu {r['cpu_ratio']:.2f} "
              "(median of pair-by-pair ratios)")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
