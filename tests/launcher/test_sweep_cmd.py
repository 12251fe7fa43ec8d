"""Sweeps through `srtctl dry-run` and `srtctl apply` (mode jobs) with fake sbatch/scontrol/scancel:
the members' directories and sweep.json, nothing written on any error, one held sbatch per member
released only once every member is submitted, everything undone if one submit fails."""

import json

import yaml

from launcher.cli import main

try:
    from test_apply_cmd import calls, fake_bin, site, slurm  # noqa: F401  (site is a fixture)
except ImportError:  # pragma: no cover
    from tests.launcher.test_apply_cmd import calls, fake_bin, site, slurm  # noqa: F401

JOB = {"name": "sw", "model": {"path": "deepseek-r1", "container": "latest"},
       "resources": {"prefill_nodes": 1, "decode_nodes": 1, "prefill_workers": 1, "decode_workers": 1,
                     "gpus_per_node": 4},
       "benchmark": {"type": "sa-bench", "isl": 64, "osl": 8, "concurrencies": [1]}}
GRID = {"grid": {"backend.sglang_config.decode.mem-fraction-static": [0.8, 0.85], "resources.decode_workers": [1, 2]}}


def write_job(site, sweep=None, **extra):
    data = {**JOB, **extra}
    if sweep is not None:
        data["sweep"] = sweep
    path = site / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_dry_run_writes_one_directory_per_member_and_sweep_json(site, capsys):
    assert main(["dry-run", "-f", str(write_job(site, GRID))]) == 0
    out = capsys.readouterr().out
    (d,) = list((site / "dry-runs").iterdir())
    assert d.name.startswith("sw_") and "4 members" in out and "sw_mfs0.85_dw2" in out
    members = sorted(p.name for p in d.iterdir() if p.is_dir())
    assert members == ["sw_mfs0.85_dw1", "sw_mfs0.85_dw2", "sw_mfs0.8_dw1", "sw_mfs0.8_dw2"]
    for m in members:
        assert {"job.sbatch", "job.yaml", "resolved.json", "plan.json", "commands.txt"} <= {
            p.name for p in (d / m).iterdir()}
    info = json.loads((d / "sweep.json").read_text())
    assert info["mode"] == "jobs" and info["name"] == "sw" and len(info["members"]) == 4
    row = next(r for r in info["members"] if r["name"] == "sw_mfs0.85_dw2")
    assert row["values"] == {"backend.sglang_config.decode.mem-fraction-static": 0.85, "resources.decode_workers": 2}
    assert row["workers"] == {"prefill": 1, "decode": 2} and row["nodes"] == 2 and row["gpus"] == 8
    plan = json.loads((d / "sw_mfs0.85_dw2" / "plan.json").read_text())
    decode = [p for p in plan["processes"] if p["kind"] == "worker" and p["role"] == "decode"]
    assert len(decode) == 2 and "0.85" in " ".join(decode[0]["command"])


def test_set_and_unset_on_a_single_job(site, capsys):
    job = write_job(site)
    assert main(["dry-run", "-f", str(job), "--quiet", "--set", "resources.decode_workers=2",
                 "--set", "benchmark.concurrencies=[2, 4]", "--unset", "benchmark.osl",
                 "--set", "benchmark.osl=16"]) == 0
    (d,) = list((site / "dry-runs").iterdir())
    resolved = json.loads((d / "resolved.json").read_text())["job"]
    assert resolved["resources"]["decode_workers"] == 2 and resolved["benchmark"]["concurrencies"] == [2, 4]
    assert resolved["benchmark"]["osl"] == 16
    assert (d / "job.yaml").read_text().startswith("# srtctl: with --unset benchmark.osl --set resources.decode")


def test_set_can_turn_a_job_into_a_sweep_and_unset_sweep_runs_the_base(site, capsys):
    job = write_job(site, GRID)
    assert main(["dry-run", "-f", str(job), "--quiet", "--unset", "sweep"]) == 0
    (d,) = list((site / "dry-runs").iterdir())
    assert (d / "plan.json").is_file() and not (d / "sweep.json").exists()


def test_errors_write_and_submit_nothing(site, monkeypatch, capsys):
    sb, _, _ = slurm(site, monkeypatch)
    cases = [
        ({"grid": {"resources.decode_worker": [1, 2]}}, [], "did you mean 'resources.decode_workers'"),
        ({"zip": {"benchmark.isl": [1, 2], "benchmark.osl": [1]}}, [], "equal lengths"),
        ({"grid": {"benchmark.isl": []}}, [], "empty list"),
        ({"grid": {"name": ["a"]}}, [], "cannot vary the job name"),
        ({"grid": {"resources.decode_workers": [1, 3]}}, [], "1 of 2 sweep members are invalid"),
        (None, ["--set", "resources.decode_wrkers=2"], "--set: resources.decode_wrkers"),
    ]
    for sweep, extra, message in cases:
        job = write_job(site, sweep)
        for cmd in ("dry-run", "apply"):
            assert main([cmd, "-f", str(job), *extra]) == 2, (sweep, cmd)
            err = capsys.readouterr().err
            assert message in err, err
            if sweep and "resources.decode_worker" in sweep.get("grid", {}):
                assert f"{job}:" in err  # file and line of the bad path
    assert calls(sb) == []
    assert not (site / "dry-runs").exists() and not (site / "logs").exists()


def counting_sbatch(site, monkeypatch):
    """A fake sbatch answering 5001, 5002, ..."""
    sb = fake_bin(site, monkeypatch, "sbatch")
    script = site / "bin" / "sbatch"
    n = site / "sbatch.n"
    n.write_text("5000")
    script.write_text(script.read_text().replace(
        "#!/bin/sh\n", f"#!/bin/sh\necho $(( $(cat {n}) + 1 )) > {n}.new; mv {n}.new {n}; cat {n}\n"))
    return sb


def test_apply_mode_jobs_submits_each_member_held_then_releases_all(site, monkeypatch, capsys):
    _, rel, can = slurm(site, monkeypatch)
    sb = counting_sbatch(site, monkeypatch)
    assert main(["apply", "-f", str(write_job(site, GRID))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(calls(sb)) == 4 and all(c[:2] == ["--parsable", "--hold"] for c in calls(sb))
    assert len(calls(rel)) == 4 and calls(can) == []
    # the seed's two lines per member, then the sweep id
    assert [ln.split()[0] for ln in lines[:8]] == ["Submitted", "Logs:"] * 4
    assert lines[8].startswith("Sweep sw_") and "sweep.json" in lines[8]
    sweep_id = lines[8].split()[1].rstrip(":")
    info = json.loads((site / "logs" / "sweeps" / sweep_id / "sweep.json").read_text())
    assert info["sweep_id"] == sweep_id and info["executor"] == "slurm"
    assert [r["job_id"] for r in info["members"]] == ["5001", "5002", "5003", "5004"]
    assert [c[1:] for c in calls(rel)] == [["5001"], ["5002"], ["5003"], ["5004"]]
    for row in info["members"]:
        meta = json.loads((site / "logs" / row["run_dir"].split("/logs/")[1] / "metadata.json").read_text())
        assert meta["sweep"] == sweep_id and meta["sweep_values"] == row["values"] and meta["name"] == row["name"]


def test_a_refused_member_cancels_the_submitted_ones_and_leaves_nothing(site, monkeypatch, capsys):
    slurm(site, monkeypatch)
    # sbatch succeeds once, then refuses
    sb = fake_bin(site, monkeypatch, "sbatch", stdout="4242\n")
    script = site / "bin" / "sbatch"
    script.write_text(script.read_text().replace(
        "#!/bin/sh\n", f"#!/bin/sh\nif [ -e {site}/once ]; then echo refused >&2; exit 1; fi; touch {site}/once\n"))
    can = site / "scancel.calls"
    assert main(["apply", "-f", str(write_job(site, GRID))]) == 1
    assert "refused" in capsys.readouterr().err
    assert len(calls(sb)) == 1 and calls(can) == [["4242"]]
    assert sorted(p.name for p in (site / "logs").iterdir()) in ([], ["sweeps"])
    assert not list((site / "logs").glob("sweeps/*"))


ALLOC = {"mode": "allocation", "grid": {"resources.decode_nodes": [1, 2], "backend.sim.decode_step_ms": [2, 4]}}


def test_dry_run_mode_allocation_sizes_one_sbatch_for_the_largest_member(site, capsys):
    assert main(["dry-run", "-f", str(write_job(site, ALLOC)), "--quiet"]) == 0
    (d,) = list((site / "dry-runs").iterdir())
    info = json.loads((d / "sweep.json").read_text())
    assert info["mode"] == "allocation" and info["allocation_nodes"] == 3
    assert "#SBATCH --nodes=3" in (d / "job.sbatch").read_text()
    assert "#SBATCH --job-name=sw" in (d / "job.sbatch").read_text()
    assert len([p for p in d.iterdir() if p.is_dir()]) == 4


def test_mode_allocation_member_bigger_than_the_allocation_is_a_dry_run_error(site, capsys):
    job = write_job(site, {**ALLOC, "nodes": 2})
    assert main(["dry-run", "-f", str(job)]) == 2
    err = capsys.readouterr().err
    assert "members cannot share one allocation" in err and "needs 3 nodes, the allocation has 2" in err
    assert not (site / "dry-runs").exists()


def test_apply_mode_allocation_submits_one_held_job_with_a_directory_per_member(site, monkeypatch, capsys):
    sb, rel, _ = slurm(site, monkeypatch)
    assert main(["apply", "-f", str(write_job(site, ALLOC))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Submitted batch job 4242" and lines[1].startswith("Logs: logs/4242_sweep_")
    assert len(calls(sb)) == 1 and calls(rel) == [["release", "4242"]]
    (d,) = [p for p in (site / "logs").iterdir() if p.name.startswith("4242_sweep_")]
    info = json.loads((d / "sweep.json").read_text())
    assert info["job_id"] == "4242" and {m["run_dir"] for m in info["members"]} == {
        str(d / m["name"]) for m in info["members"]}
    for m in info["members"]:
        meta = json.loads((d / m["name"] / "metadata.json").read_text())
        assert meta["sweep"] == info["sweep_id"] and (d / m["name"] / "resolved.json").is_file()
        assert not (d / m["name"] / "job.sbatch").exists()
    assert json.loads((site / "logs" / "sweeps" / info["sweep_id"] / "sweep.json").read_text()) == info
    # apply --resume SWEEP_DIR resubmits the same directory, sized like the first submit
    assert main(["apply", "--resume", str(d)]) == 0
    script = (d / "job.resume.sbatch").read_text()
    assert "#SBATCH --nodes=3" in script and f"RUN_DIR={d}" in script


def test_secrets_set_on_the_command_line_are_not_written_and_cannot_be_swept(site, capsys):
    secret = "hf_DoNotLeakThis0123456789"
    job = write_job(site, GRID)
    assert main(["dry-run", "-f", str(job), "--quiet",
                 "--set", f"backend.decode_environment.HF_TOKEN={secret}"]) == 0
    (d,) = list((site / "dry-runs").iterdir())
    for p in d.rglob("*"):
        if p.is_file():
            assert secret not in p.read_text(), p
    assert "HF_TOKEN=***" in (d / "sweep.json").read_text()
    bad = write_job(site, {"grid": {"backend.decode_environment.HF_TOKEN": ["a", "b"]}})
    assert main(["dry-run", "-f", str(bad)]) == 2
    assert "a secret cannot be swept" in capsys.readouterr().err
