"""Reading a run's eval results for `srtctl status`, `runs` and `report`."""

from __future__ import annotations

import json
from pathlib import Path


def load_eval_results(run_dir: str | Path) -> list[dict]:
    """Every results/eval_<task>.json of a run (unreadable files are skipped), ordered by task."""
    out = []
    for p in sorted((Path(run_dir) / "results").glob("eval_*.json")):
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("score"), (int, float)):
            out.append({**data, "file": f"results/{p.name}"})
    return out


def score_text(r: dict) -> str:
    """'gsm8k 0.850 (170/200)' plus ', min 0.900 passed|FAILED' with a gate."""
    text = f"{r.get('task')} {r['score']:.3f} ({r.get('num_correct')}/{r.get('num_examples')})"
    if r.get("runs"):
        text += (f", mean of {len(r['runs'])} runs (" + " ".join(f"{x['score']:.3f}" for x in r["runs"])
                 + f"), stdev {r.get('score_stdev', 0.0):.3f}")
    if r.get("min_score") is not None:
        text += f", min {r['min_score']:.3f} " + ("passed" if r.get("passed") else "FAILED")
    return text


def scores_short(results: list[dict]) -> str:
    return ", ".join(f"{r.get('task')} {r['score']:.3f}" for r in results) or "-"


def markdown(results: list[dict]) -> list[str]:
    if not results:
        return []
    out = ["Accuracy:", "", "| task | score | correct | examples | invalid | failed | min_score | file |",
           "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        gate = "-" if r.get("min_score") is None else f"{r['min_score']:.3f} ({'passed' if r.get('passed') else 'FAILED'})"
        out.append(f"| {r.get('task')} | {r['score']:.4f} | {r.get('num_correct')} | {r.get('num_examples')} | "
                   f"{r.get('num_invalid')} | {r.get('num_failed')} | {gate} | `{r['file']}` |")
        for i, s in enumerate(r.get("runs") or []):
            out.append(f"| {r.get('task')} run {i + 1} | {s['score']:.4f} | {s['num_correct']} | {s['num_examples']} "
                       f"| | | | |")
        for subject, s in (r.get("per_subject") or {}).items():
            out.append(f"| {r.get('task')}/{subject} | {s['score']:.4f} | {s['num_correct']} | {s['num_examples']} "
                       f"| | | | |")
    return out + [""]
