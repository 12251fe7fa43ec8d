"""Submit-side cost: plan + render of a 1,024-node / 256-worker job, and srtctl start-up time.

    python benchmarks/plan_render.py [--runs 5] [--cli-runs 7] [--json out.json]

1. Plan and render: what `srtctl dry-run` does for a disaggregated job on 1,024 nodes (128 prefill
   workers x 2 nodes, 128 decode workers x 6 nodes, 4 GPUs per node): validate the job file, resolve
   aliases, make the plan, render the sbatch script, plan.json, commands.txt, nginx.conf and one
   launch script per process. Wall time per run (median of --runs) split into prepare (validate +
   plan + sbatch) and render (everything else), and the peak Python memory of one run (tracemalloc).
2. CLI start-up: wall time of `srtctl --help` and `srtctl dry-run -f configs/my-job.yaml` as
   subprocesses (median of --cli-runs), next to `python -c pass` on the same interpreter, with the
   ratio to that baseline, and the slowest imports of the dry-run path (`python -X importtime`).

Nothing is submitted and nothing listens on a port; everything is written under a temporary directory.
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
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BIG_JOB = """\
name: "rack-scale-1024"
model:
  path: "deepseek-r1"
  container: "latest"
resources:
  gpus_per_node: 4
  prefill_nodes: 256
  prefill_workers: 128
  decode_nodes: 768
  decode_workers: 128
backend:
  num_additional_frontends: 63
  prefill_environment:
    TORCH_DISTRIBUTED_DEFAULT_TIMEOUT: "1800"
  sglang_config:
    prefill:
      tensor-parallel-size: 8
      mem-fraction-static: 0.84
    decode:
      tensor-parallel-size: 24
      data-parallel-size: 24
      expert-parallel-size: 24
      enable-dp-attention: true
      cuda-graph-bs: [1, 2, 4, 8, 16, 32, 64, 128]
benchmark:
  type: "sa-bench"
  isl: 8192
  osl: 1024
  concurrencies: "1024x2048x4096"
"""


def write_site(tmp: Path) -> Path:
    cluster = tmp / "srtslurm.yaml"
    cluster.write_text(
        f"default_account: bench\ndefault_partition: batch\nsrtctl_root: {json.dumps(str(ROOT))}\n"
        f"logs_dir: {json.dumps(str(tmp / 'logs'))}\n"
        "model_paths:\n  deepseek-r1: /models/DeepSeek-R1\ncontainers:\n  latest: /containers/latest.sqsh\n")
    return cluster


def plan_and_render(job: Path, cluster: Path) -> tuple[float, float, dict[str, str]]:
    from launcher.dry_run import render_files
    from launcher.prepare import prepare

    t0 = time.perf_counter()
    prep = prepare(job, cluster_file=cluster)
    t1 = time.perf_counter()
    files = render_files(prep)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, files


def bench_plan_render(tmp: Path, runs: int) -> dict:
    job = tmp / "big.yaml"
    job.write_text(BIG_JOB)
    cluster = write_site(tmp)
    plan_and_render(job, cluster)  # warm: imports, template compilation
    prep_times, render_times = [], []
    for _ in range(runs):
        a, b, files = plan_and_render(job, cluster)
        prep_times.append(a)
        render_times.append(b)
    tracemalloc.start()
    plan_and_render(job, cluster)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    plan = json.loads(files["plan.json"])
    total = [a + b for a, b in zip(prep_times, render_times)]
    return {
        "nodes": len(plan["nodes"]), "workers": len(plan["workers"]), "processes": len(plan["processes"]),
        "files": len(files), "bytes": sum(len(t.encode()) for t in files.values()),
        "prepare_s": statistics.median(prep_times), "render_s": statistics.median(render_times),
        "total_s": statistics.median(total), "total_min_s": min(total), "total_max_s": max(total),
        "peak_mib": peak / 2**20, "runs": runs,
    }


def wall(argv: list[str], runs: int, env: dict[str, str], cwd: Path) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        done = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        out.append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise SystemExit(f"{argv} failed: {done.stderr.decode()[-500:]}")
    return out


def srtctl_argv() -> list[str]:
    script = shutil.which("srtctl")
    return [script] if script else [sys.executable, "-m", "launcher.cli"]


def bench_cli(tmp: Path, runs: int) -> dict:
    cluster = write_site(tmp)
    env = {**os.environ, "SRTSLURM_CONFIG": str(cluster)}
    srtctl = srtctl_argv()
    dry = [*srtctl, "dry-run", "-f", str(ROOT / "configs" / "my-job.yaml"), "--quiet", "--output-dir",
           str(tmp / "dry-runs")]
    cases = {"python -c pass": [sys.executable, "-c", "pass"], "srtctl --help": [*srtctl, "--help"],
             "srtctl dry-run": dry}
    for argv in cases.values():  # warm the page cache and .pyc files
        wall(argv, 1, env, tmp)
    results = {}
    # interleave the cases so a busy machine slows them all alike
    samples: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(runs):
        for name, argv in cases.items():
            samples[name] += wall(argv, 1, env, tmp)
    base = statistics.median(samples["python -c pass"])
    for name, values in samples.items():
        med = statistics.median(values)
        results[name] = {"median_s": med, "min_s": min(values), "ratio": med / base}
    results["srtctl"] = " ".join(srtctl)
    results["imports"] = slowest_imports(dry, env, tmp)
    return results


def slowest_imports(argv: list[str], env: dict[str, str], cwd: Path, top: int = 6) -> list[tuple[str, float]]:
    """Outermost imports by cumulative time on the dry-run path (python -X importtime)."""
    if argv[0] != sys.executable:
        argv = [sys.executable, "-m", "launcher.cli", *argv[1:]]
    done = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], env=env, cwd=cwd, capture_output=True,
                          text=True)
    found: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        if cumulative.strip().isdigit() and not name[1:].startswith(" "):  # not nested in another import
            found[name.strip()] = int(cumulative) / 1e6
    return sorted(found.items(), key=lambda kv: -kv[1])[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="plan+render runs (median reported)")
    parser.add_argument("--cli-runs", type=int, default=7, help="runs of each CLI command (median reported)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="srt-bench-") as d:
        tmp = Path(d)
        (tmp / "a").mkdir()
        (tmp / "b").mkdir()
        pr = bench_plan_render(tmp / "a", args.runs)
        cli = bench_cli(tmp / "b", args.cli_runs)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end (other work slows every figure)")
    print(f"plan + render: {pr['nodes']} nodes, {pr['workers']} workers, {pr['processes']} processes, "
          f"{pr['files']} files ({pr['bytes'] / 1e6:.1f} MB)")
    print(f"  prepare (validate + plan + sbatch)  median {pr['prepare_s'] * 1000:7.1f} ms")
    print(f"  render (launch scripts, plan.json, commands.txt, nginx.conf)  median {pr['render_s'] * 1000:7.1f} ms")
    print(f"  total  median {pr['total_s'] * 1000:7.1f} ms  (min {pr['total_min_s'] * 1000:.1f}, "
          f"max {pr['total_max_s'] * 1000:.1f}, {pr['runs']} runs)   peak Python memory {pr['peak_mib']:.1f} MiB")
    print(f"CLI start-up ({cli['srtctl']}), median of {args.cli_runs}:")
    for name in ("python -c pass", "srtctl --help", "srtctl dry-run"):
        r = cli[name]
        print(f"  {name:16s} {r['median_s'] * 1000:7.1f} ms   x{r['ratio']:.2f} of python -c pass")
    print("  slowest outermost imports of dry-run: " +
          ", ".join(f"{n} {s * 1000:.0f} ms" for n, s in cli["imports"]))
    if args.json:
        args.json.write_text(json.dumps({"plan_render": pr, "cli": cli}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
