"""srt-slurm (v1) recipes through `srtctl dry-run` and `srtctl convert` (our own test recipe)."""

import json
import sys
from pathlib import Path

import pytest
import yaml

from launcher.cli import main

RECIPE = """\
name: my-recipe
dynamo:
  hash: abc1234
  request_plane: nats
frontend:
  type: dynamo
  num_additional_frontends: 2
  nginx_container: nginx
  args:
    router-mode: kv
model:
  path: hf:org/tiny
  container: lmsysorg/sglang:v0.5.8-cu130
  precision: fp8
resources:
  gpu_type: gb200
  prefill_nodes: 1
  prefill_workers: 1
  decode_nodes: 0
  decode_workers: 1
  gpus_per_prefill: 2
  gpus_per_node: 4
sbatch_directives:
  comment: "two words; #not a comment"
health_check:
  max_attempts: 100
  interval_seconds: 5
backend:
  type: sglang
  sglang_config:
    prefill:
      served-model-name: org/tiny
      tp-size: 2
      disaggregation-mode: prefill
      disaggregation-bootstrap-port: 30001
      mem_fraction_static: 0.8
      enable-dp-attention: true
    decode:
      tp-size: 2
      cuda-graph-bs: [1, 2, 4]
benchmark:
  type: sa-bench
  isl: 1024
  osl: 128
  concurrencies: "4x8"
  num_warmup_mult: 1
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    root = tmp_path / "srt"
    (root / "configs").mkdir(parents=True)
    cluster = tmp_path / "srtslurm.yaml"
    cluster.write_text(yaml.safe_dump({
        "default_account": "acct", "srtctl_root": str(root), "logs_dir": str(tmp_path / "logs"),
        "python": "/usr/bin/python3", "hf_cache_dir": str(tmp_path / "hf")}))
    monkeypatch.setenv("SRTSLURM_CONFIG", str(cluster))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["srtctl"])
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    return tmp_path


def test_dry_run_converts_a_recipe(site, capsys):
    assert main(["dry-run", "-f", "recipe.yaml", "--quiet"]) == 0
    out = capsys.readouterr()
    run = Path(out.out.strip())
    assert "srt-slurm (v1) recipe, converted" in out.err and "nginx_container (line 8)" in out.err
    assert out.err.count("note:") == 1
    converted = yaml.safe_load((run / "job.converted.yaml").read_text())
    assert converted["backend"]["dynamo_git_ref"] == "abc1234"
    assert (run / "job.yaml").read_text() == RECIPE
    plan = json.loads((run / "plan.json").read_text())
    procs = {p["name"]: p for p in plan["processes"]}
    pre, dec = procs["prefill-0"], procs["decode-0"]
    assert pre["node"] == dec["node"] and pre["gpus"] == [0, 1] and dec["gpus"] == [2, 3]
    assert plan["container_image"] == "lmsysorg/sglang:v0.5.8-cu130"
    assert f"{site}/hf:/hf-cache" in plan["container_mounts"]
    assert pre["env"]["HF_HOME"] == "/hf-cache" and pre["env"]["DYN_REQUEST_PLANE"] == "nats"
    cmd = pre["command"]
    assert cmd[cmd.index("--model-path") + 1] == "org/tiny"
    for flag in ("--mem-fraction-static", "--enable-dp-attention"):
        assert flag in cmd
    assert cmd.count("--disaggregation-bootstrap-port") == 1 and "30001" not in cmd
    assert dec["command"][-4:] == ["--cuda-graph-bs", "1", "2", "4"]
    assert [p["command"][-2:] for p in plan["processes"] if p["kind"] == "frontend"] == [["--router-mode", "kv"]]
    sbatch = (run / "job.sbatch").read_text()
    assert '#SBATCH --comment="two words; #not a comment"\n' in sbatch
    assert "--version git:abc1234" in (run / "launch" / "prefill-0.sh").read_text()
    resolved = json.loads((run / "resolved.json").read_text())
    assert resolved["job"]["health"]["worker_timeout_s"] == 500.0


def test_refused_recipe_writes_nothing(site, capsys):
    (site / "recipe.yaml").write_text(RECIPE + "srun_options:\n  nodelist: n1\n")
    assert main(["dry-run", "-f", "recipe.yaml"]) != 0
    err = capsys.readouterr().err
    assert "recipe.yaml" in err and "srun_options" in err and "Traceback" not in err
    assert not (site / "dry-runs").exists()


def test_convert_command(site, capsys):
    assert main(["convert", "recipe.yaml", "-o", "job.yaml"]) == 0
    job = yaml.safe_load((site / "job.yaml").read_text())
    assert job["resources"]["decode_nodes"] == 0 and job["slurm"]["sbatch_directives"]
    capsys.readouterr()
    # the converted file is an srtctl job file: it dry-runs as one, without another conversion
    assert main(["dry-run", "-f", "job.yaml", "--quiet"]) == 0
    assert "converted" not in capsys.readouterr().err
    assert main(["convert", "job.yaml"]) != 0
    assert "not an srt-slurm (v1) recipe" in capsys.readouterr().err


def test_hf_model_needs_a_cache_dir(site, capsys):
    cluster = site / "srtslurm.yaml"
    data = yaml.safe_load(cluster.read_text())
    del data["hf_cache_dir"]
    cluster.write_text(yaml.safe_dump(data))
    assert main(["dry-run", "-f", "recipe.yaml"]) != 0
    err = capsys.readouterr().err
    assert "hf_cache_dir" in err and "recipe.yaml:12:" in err


def test_dry_run_converts_an_accuracy_recipe(site, capsys):
    evals = site / "evals" / "gsm8k"
    evals.mkdir(parents=True)
    (evals / "test.jsonl").write_text("".join(
        json.dumps({"question": f"What is {i} + 1?", "answer": f"{i} plus 1. #### {i + 1}"}) + "\n" for i in range(8)))
    cluster = site / "srtslurm.yaml"
    recipe = RECIPE.split("benchmark:")[0] + "benchmark:\n  type: gsm8k\n  num_examples: 4\n  num_threads: 2\n  repeat: 1\n"
    (site / "recipe.yaml").write_text(recipe)
    # without eval_datasets_dir: refused, naming the key and the fix
    assert main(["dry-run", "-f", "recipe.yaml"]) != 0
    err = capsys.readouterr().err
    assert "eval_datasets_dir" in err and "recipe.yaml:" in err and "Traceback" not in err
    data = yaml.safe_load(cluster.read_text())
    cluster.write_text(yaml.safe_dump({**data, "eval_datasets_dir": str(site / "evals")}))
    assert main(["dry-run", "-f", "recipe.yaml", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["convert", "recipe.yaml", "-o", "job.yaml"]) == 0
    bench = yaml.safe_load((site / "job.yaml").read_text())["benchmark"]
    assert bench == {"type": "gsm8k", "num_examples": 4, "concurrency": 2, "repeat": 1,
                     "dataset_path": str(evals / "test.jsonl")}
    # the dataset is checked like any eval's: a malformed file is an error naming it
    (evals / "test.jsonl").write_text("not json\n")
    assert main(["dry-run", "-f", "recipe.yaml"]) != 0
    assert "test.jsonl" in capsys.readouterr().err


def test_dry_run_of_an_override_file_is_a_sweep_of_its_variants(site, capsys):
    base = "\n".join("  " + line if line else line for line in RECIPE.splitlines())
    (site / "over.yaml").write_text(
        "base:\n" + base + "\noverride_onefe:\n  frontend:\n    num_additional_frontends: 1\n"
        "zip_override_isl:\n  benchmark:\n    isl: [512, 2048]\n    concurrencies: [[4], [8, 16]]\n")
    assert main(["dry-run", "-f", "over.yaml"]) == 0
    out, err = capsys.readouterr()
    assert "3 members" in out and "override_onefe" in err
    (d,) = list((site / "dry-runs").iterdir())
    info = json.loads((d / "sweep.json").read_text())
    values = [m["values"] for m in info["members"]]
    assert values == [
        {"name": "onefe", "backend.num_additional_frontends": 1, "benchmark.isl": 1024, "benchmark.concurrencies": "4x8"},
        {"name": "isl_0", "backend.num_additional_frontends": 2, "benchmark.isl": 512, "benchmark.concurrencies": [4]},
        {"name": "isl_1", "backend.num_additional_frontends": 2, "benchmark.isl": 2048,
         "benchmark.concurrencies": [8, 16]}]
    # members are named after their variants (override_<name> -> <name>)
    assert sorted(p.name for p in d.iterdir() if p.is_dir()) == ["isl_0", "isl_1", "onefe"]
    # every member is the converted recipe: srt-slurm's keys became srtctl's
    member = next(p for p in d.iterdir() if p.is_dir())
    assert "sweep:" in (member / "job.converted.yaml").read_text()
    job = json.loads((member / "resolved.json").read_text())["job"]
    assert job["backend"]["dynamo_git_ref"] == "abc1234" and job["health"]["worker_timeout_s"] == 500.0
    # srtctl convert writes the same sweep, and that file dry-runs as an srtctl job file
    assert main(["convert", "over.yaml", "-o", "job.yaml"]) == 0
    assert len(yaml.safe_load((site / "job.yaml").read_text())["sweep"]["zip"]["benchmark.isl"]) == 3
    assert main(["dry-run", "-f", "job.yaml", "--quiet"]) == 0


def test_set_applies_to_the_converted_recipe(site, capsys):
    assert main(["dry-run", "-f", "recipe.yaml", "--quiet", "--set", "backend.num_additional_frontends=1"]) == 0
    assert "srt-slurm (v1) recipe" in capsys.readouterr().err
    (d,) = list((site / "dry-runs").iterdir())
    assert json.loads((d / "resolved.json").read_text())["job"]["backend"]["num_additional_frontends"] == 1
    assert (d / "job.converted.yaml").is_file()
