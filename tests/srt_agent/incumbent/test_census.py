"""The issue-20 goal, measured: a recipe synthesised from each census entry (the structural facts
of the incumbent's published SGLang recipes, tests/fixtures/incumbent_census.json) goes through
`srtctl dry-run`. Every recipe that is not dry-run must be a clean refusal naming the recipe file,
a line and the key (never a traceback); every sglang_config flag of a recipe that dry-runs must be
on its workers' command lines; docs/migrating.md quotes the measured figure; the 95% goal itself is
tracked by a strict xfail (it turns into a failure the day it is reached, so the docs get updated)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from launcher.cli import main
from srt_agent.incumbent.mapping import MAPPING, MIGRATING_DOC

from .census import MODEL_ALIAS, SETUP_SCRIPT, container_aliases, expected_flags, load, render_environment, synthesise

pytestmark = pytest.mark.slow

GOAL = 0.95
ROLE_MODE = {"prefill": "prefill", "decode": "decode", "agg": "aggregated"}
# srtctl spells the tensor-parallel size --tp-size; flags it sets itself from the plan (the mapping's
# "approximated" sglang_config rows, e.g. a per-job bootstrap port, given to prefill workers only)
# are its own values, not the recipe's
SPELLING = {"tensor-parallel-size": "tp-size", "tp": "tp-size"}
SET_BY_SRTCTL = {e.source.split(".")[-1] for e in MAPPING
                 if e.source.startswith("backend.sglang_config.*.") and e.how == "approximated"}


def _members(entry: dict, recipe_path: Path) -> list[dict]:
    """Each job the recipe stands for (an override file: one per variant, merged by srt-slurm's rules)."""
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


def _missing(want: dict[str, set[str]], plan: dict) -> list[str]:
    out = []
    for mode, flags in want.items():
        cmds = [p["command"] for p in plan["processes"] if p["kind"] == "worker" and ROLE_MODE[p["role"]] == mode]
        for flag in sorted(SPELLING.get(f, f) for f in flags - SET_BY_SRTCTL):
            if not cmds or not all(f"--{flag}" in c for c in cmds):
                out.append(f"{mode}: --{flag}")
    return out


def _flag_problems(entry: dict, recipe_path: Path, run: Path) -> list[str]:
    members = _members(entry, recipe_path)
    if (run / "plan.json").is_file():
        plans = [json.loads((run / "plan.json").read_text())]
    else:
        order = [m["name"] for m in json.loads((run / "sweep.json").read_text())["members"]]
        plans = [json.loads((run / name / "plan.json").read_text()) for name in order]
    assert len(plans) == len(members), (entry["path"], len(plans), len(members))
    return sorted({m for member, plan in zip(members, plans) for m in _missing(_flags_of(member), plan)})


def _measure(entry: dict, site: Path) -> dict:
    path = site / "recipe.yaml"
    path.write_text(yaml.safe_dump(synthesise(entry), sort_keys=False))
    shutil.rmtree(site / "dry-runs", ignore_errors=True)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(["dry-run", "-f", str(path), "--quiet"])
        except SystemExit as exc:
            rc = exc.code or 1
    result = {"path": entry["path"], "ok": rc == 0, "err": err.getvalue(), "missing": []}
    if rc == 0:
        (run,) = list((site / "dry-runs").iterdir())
        result["missing"] = _flag_problems(entry, path, run)
    return result


@pytest.fixture(scope="module")
def census():
    return load()


@pytest.fixture(scope="module")
def measured(census, tmp_path_factory):
    """Every census recipe through `srtctl dry-run`, once for all the tests below."""
    site = tmp_path_factory.mktemp("census")
    root = site / "srt"
    (root / "configs").mkdir(parents=True)
    (root / "configs" / SETUP_SCRIPT).write_text("#!/bin/sh\ntrue\n")
    cluster = site / "srtslurm.yaml"
    cluster.write_text(yaml.safe_dump({
        "default_account": "acct", "srtctl_root": str(root), "logs_dir": str(site / "logs"),
        "python": "/usr/bin/python3", "hf_cache_dir": str(site / "hf"), "eval_datasets_dir": str(site / "evals"),
        "model_paths": {MODEL_ALIAS: str(site / "model")}, "containers": container_aliases(census)}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SRTSLURM_CONFIG", str(cluster))
        for name, value in render_environment(census).items():
            mp.setenv(name, value)
        mp.chdir(site)
        mp.setattr(sys, "argv", ["srtctl"])
        return [_measure(e, site) for e in census["recipes"] if not e.get("excluded")]


def test_census_is_facts_only(census):
    """No recipe text: values are placeholders except the ones that decide conversion."""
    assert len(census["recipes"]) >= 50
    for e in census["recipes"]:
        assert re.fullmatch(r"recipes/.+\.ya?ml", e["path"]) and re.fullmatch(r"[0-9a-f]{40}", e["commit"])
        for part in ([e] if "variants" not in e else [e["base"], *e["variants"]]):
            for mode, flags in part.get("flags", {}).items():
                for name, value in flags.items():
                    if isinstance(value, str) and not value.startswith("<"):
                        assert name == "disaggregation-mode", (e["path"], name, value)


def test_every_refusal_is_clean_and_names_the_feature_and_line(measured):
    for r in measured:
        assert "Traceback" not in r["err"], f"{r['path']}: traceback\n{r['err']}"
        if not r["ok"]:
            assert re.search(r"recipe\.yaml(:\d+)?: ", r["err"]), f"{r['path']}: refusal without the recipe\n{r['err']}"
            assert re.search(r"recipe\.yaml:\d+", r["err"]), f"{r['path']}: refusal without a line\n{r['err']}"


def test_every_engine_flag_reaches_the_worker_command_lines(measured):
    problems = {r["path"]: r["missing"] for r in measured if r["missing"]}
    assert not problems, problems


def test_the_docs_quote_the_measured_figure(measured):
    ok = sum(r["ok"] for r in measured)
    text = MIGRATING_DOC.read_text()
    assert f"**{ok} of {len(measured)}**" in text, \
        f"docs/migrating.md should say '**{ok} of {len(measured)}**' ({ok / len(measured):.0%})"
    for r in measured:
        if not r["ok"]:
            assert f"`{r['path']}`" in text, f"docs/migrating.md should list the refused {r['path']} and why"


@pytest.mark.xfail(strict=True, reason="the 95% goal is not reached yet: see docs/migrating.md, 'Measured over the "
                                       "incumbent's published recipes', for what is refused and why")
def test_goal_at_least_95_percent_dry_run(measured):
    ok = sum(r["ok"] for r in measured)
    assert ok / len(measured) >= GOAL
