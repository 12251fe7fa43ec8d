"""The issue-20 goal, measured: a recipe synthesised from each census entry (the structural facts
of the incumbent's published SGLang recipes, tests/fixtures/incumbent_census.json) goes through
`srtctl dry-run`. At least 95% must dry-run; every other one must be a clean refusal naming the
recipe file, a line and the key (never a traceback); every sglang_config flag of a recipe that
dry-runs must be on its workers' command lines."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from launcher.cli import main
from srt_agent.incumbent.mapping import MAPPING

from .census import MODEL_ALIAS, SETUP_SCRIPT, container_aliases, expected_flags, load, synthesise

GOAL = 0.95
ROLE_MODE = {"prefill": "prefill", "decode": "decode", "agg": "aggregated"}
# srtctl spells the tensor-parallel size --tp-size; flags it sets itself from the plan (the mapping's
# "approximated" sglang_config rows, e.g. a per-job bootstrap port, given to prefill workers only)
# are its own values, not the recipe's
SPELLING = {"tensor-parallel-size": "tp-size", "tp": "tp-size"}
SET_BY_SRTCTL = {e.source.split(".")[-1] for e in MAPPING
                 if e.source.startswith("backend.sglang_config.*.") and e.how == "approximated"}


@pytest.fixture(scope="module")
def census():
    return load()


@pytest.fixture
def site(tmp_path, monkeypatch, census):
    root = tmp_path / "srt"
    (root / "configs").mkdir(parents=True)
    (root / "configs" / SETUP_SCRIPT).write_text("#!/bin/sh\ntrue\n")
    (tmp_path / "evals" / "gsm8k").mkdir(parents=True)
    (tmp_path / "evals" / "gsm8k" / "test.jsonl").write_text("".join(
        json.dumps({"question": f"What is {i} + 1?", "answer": f"{i} plus 1. #### {i + 1}"}) + "\n" for i in range(8)))
    (tmp_path / "evals" / "gpqa").mkdir()
    cluster = tmp_path / "srtslurm.yaml"
    cluster.write_text(yaml.safe_dump({
        "default_account": "acct", "srtctl_root": str(root), "logs_dir": str(tmp_path / "logs"),
        "python": "/usr/bin/python3", "hf_cache_dir": str(tmp_path / "hf"),
        "eval_datasets_dir": str(tmp_path / "evals"),
        "model_paths": {MODEL_ALIAS: str(tmp_path / "model")}, "containers": container_aliases(census)}))
    monkeypatch.setenv("SRTSLURM_CONFIG", str(cluster))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["srtctl"])
    return tmp_path


def _members(entry: dict, recipe_path: Path) -> list[dict]:
    """Each job the recipe stands for, as an srt-slurm recipe (an override file: one per variant,
    merged by the incumbent's rules)."""
    if "variants" not in entry:
        return [entry]
    from srt_agent.incumbent.overrides import deep_merge, variants
    from srt_agent.yaml_source import load_yaml

    doc = load_yaml(str(recipe_path))
    return [deep_merge(doc.data["base"], over) for _, _, over in variants(doc)]


def _flags_of(recipe: dict) -> dict[str, set[str]]:
    if "keys" in recipe or "flags" in recipe:  # a census entry
        return expected_flags(recipe)
    modes = (recipe.get("backend") or {}).get("sglang_config") or {}
    return {m: {n.lstrip("-").replace("_", "-") for n, v in (f or {}).items() if v is not False and v is not None}
            for m, f in modes.items()}


def _check_flags(want: dict[str, set[str]], plan: dict) -> list[str]:
    missing = []
    for mode, flags in want.items():
        cmds = [p["command"] for p in plan["processes"] if p["kind"] == "worker" and ROLE_MODE[p["role"]] == mode]
        for flag in sorted(SPELLING.get(f, f) for f in flags - SET_BY_SRTCTL):
            if not cmds or not all(f"--{flag}" in c for c in cmds):
                missing.append(f"{mode}: --{flag}")
    return missing


def _flag_problems(entry: dict, recipe_path: Path, run: Path) -> list[str]:
    members = _members(entry, recipe_path)
    if (run / "plan.json").is_file():
        plans = [json.loads((run / "plan.json").read_text())]
    else:
        order = [m["name"] for m in json.loads((run / "sweep.json").read_text())["members"]]
        plans = [json.loads((run / name / "plan.json").read_text()) for name in order]
    assert len(plans) == len(members), (len(plans), len(members))
    return sorted({m for member, plan in zip(members, plans) for m in _check_flags(_flags_of(member), plan)})


def measure(entry: dict, site: Path, capsys) -> tuple[str, str]:
    """('ok' | 'refused', detail)."""
    path = site / "recipe.yaml"
    path.write_text(yaml.safe_dump(synthesise(entry), sort_keys=False))
    for d in (site / "dry-runs",):
        if d.exists():
            import shutil

            shutil.rmtree(d)
    capsys.readouterr()
    try:
        rc = main(["dry-run", "-f", str(path), "--quiet"])
    except SystemExit as exc:  # argparse-level exits count as refusals with their message
        rc = exc.code or 1
    out, err = capsys.readouterr()
    assert "Traceback" not in err, f"{entry['path']}: traceback\n{err}"
    if rc == 0:
        runs = list((site / "dry-runs").iterdir())
        assert len(runs) == 1, runs
        missing = _flag_problems(entry, path, runs[0])
        assert not missing, f"{entry['path']}: flags not on the worker command lines: {missing}"
        return "ok", ""
    assert re.search(r"recipe\.yaml:\d+", err), f"{entry['path']}: refusal without a recipe line\n{err}"
    return "refused", err.strip()


def test_census_recipes_dry_run(census, site, capsys):
    results = {e["path"]: measure(e, site, capsys) for e in census["recipes"]}
    ok = sum(1 for r, _ in results.values() if r == "ok")
    refused = {p: d for p, (r, d) in results.items() if r == "refused"}
    share = ok / len(results)
    report = "\n".join(f"{p}:\n{d}" for p, d in refused.items())
    assert share >= GOAL, f"{ok}/{len(results)} dry-run ({share:.1%}); refused:\n{report}"
    # the figure docs/migrating.md quotes is this one
    doc = (Path(__file__).resolve().parents[3] / "docs" / "migrating.md").read_text()
    assert f"{ok} of {len(results)}" in doc, f"docs/migrating.md should say '{ok} of {len(results)}'"
