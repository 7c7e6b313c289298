"""Gather what the stages wrote in a run directory: the curation funnel, training losses, eval scores
and samples, which model is whose baseline, and the R1 paper rows for the same models.

Stages write stats; the report only reads. Missing pieces (a run stopped before sft, say) leave
their section empty instead of failing, and anything unreadable is named in `notes`.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import yaml

from distill.eval.compare import compare
from distill.eval.stage import SCORE_COLUMNS, load_samples
from distill.pipeline import CURATED, EVAL, SFT
from distill.stage import StageDir

log = logging.getLogger(__name__)

REFERENCE_FILE = Path(__file__).with_name("r1_reference.json")


def reference() -> dict:
    return json.loads(REFERENCE_FILE.read_text())


def funnel(run_dir: Path, notes: list[str]) -> dict | None:
    """Totals over the filter's finished shards (those with a done/ marker): rows in, rows kept,
    rejections per reason. A killed shard's stats are left out, as the stage itself leaves them out."""
    stage = StageDir(run_dir / CURATED)
    files = [stage.stats_file(i) for i in stage.done_shards()] if stage.path.exists() else []
    if not files:
        return None
    rows_in = rows_out = 0
    reasons: Counter = Counter()
    for f in files:
        try:
            s = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            notes.append(f"{f}: unreadable ({e.msg}); left out of the funnel")
            continue
        rows_in += int(s.get("rows_in", 0))
        rows_out += int(s.get("rows_out", 0))
        rejected = s.get("rejected", {})
        if isinstance(rejected, dict):
            reasons.update({str(k): int(v) for k, v in rejected.items()})
    return {"rows_in": rows_in, "rows_out": rows_out, "rejected": dict(reasons.most_common()), "shards": len(files)}


def losses(run_dir: Path, notes: list[str]) -> dict[str, list[dict]]:
    """student -> [{step, loss, ...}] from 04_sft/<student>/metrics.jsonl."""
    out = {}
    for f in sorted((run_dir / SFT).glob("*/metrics.jsonl")) if (run_dir / SFT).exists() else []:
        points = []
        for n, line in enumerate(f.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                notes.append(f"{f}:{n}: unreadable line skipped")
                continue
            if isinstance(row, dict) and row.get("loss") is not None and row.get("step") is not None:
                points.append(row)
        if points:
            out[f.parent.name] = points
    return out


def pipeline_models(run_dir: Path) -> dict[str, dict]:
    """Model specs from the run's pipeline.yaml (eval.models), by name; {} when there is none."""
    f = run_dir / "pipeline.yaml"
    if not f.exists():
        return {}
    data = yaml.safe_load(f.read_text()) or {}
    models = (data.get("eval") or {}).get("models") or []
    return {m["name"]: m for m in models if isinstance(m, dict) and "name" in m}


def evals(run_dir: Path, notes: list[str]) -> dict[str, dict]:
    """model name -> {"dir", "scores", "spec"} for each 05_eval/<model>/scores.json."""
    out = {}
    specs = pipeline_models(run_dir)
    for f in sorted((run_dir / EVAL).glob("*/scores.json")) if (run_dir / EVAL).exists() else []:
        try:
            scores = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            notes.append(f"{f}: unreadable ({e.msg}); model left out")
            continue
        name = f.parent.name
        spec = {**(scores.get("model") or {}), **specs.get(name, {})}
        out[name] = {"dir": f.parent, "scores": scores, "spec": spec}
    for name in specs:
        if name not in out:
            notes.append(f"model '{name}' is in pipeline.yaml but has no scores in {run_dir / EVAL}")
    return out


def pairs(models: dict[str, dict]) -> list[tuple[str, str]]:
    """(distilled, baseline) pairs from the specs' `baseline` / `baseline_of` fields."""
    found = []
    for name, m in models.items():
        spec = m["spec"]
        if spec.get("baseline") in models:
            found.append((name, spec["baseline"]))
        if spec.get("baseline_of") in models:
            found.append((spec["baseline_of"], name))
    return sorted(set(found))


def reference_rows(models: dict[str, dict], paired: list[tuple[str, str]]) -> dict[str, dict]:
    """model name -> its R1 Table 5 row: the one named by its `r1_reference`; else the row whose
    released model it is (path contains "DeepSeek-R1-Distill-Qwen-7B"); else, for a distilled model,
    the row whose base model its baseline is (baseline path ends in "Qwen2.5-Math-7B")."""
    rows = reference()["rows"]
    by_name = {r["model"]: r for r in rows}
    baseline_of = dict(paired)
    out = {}
    for name, m in models.items():
        spec = m["spec"]
        path = str(spec.get("model", "")).lower().rstrip("/")
        base_path = str(models[baseline_of[name]]["spec"].get("model", "")).lower().rstrip("/") if name in baseline_of else None
        match = by_name.get(spec.get("r1_reference") or "")
        match = match or next((r for r in rows if r["distilled"] and r["model"].lower() in path), None)
        if match is None and base_path:
            match = next((r for r in rows if r["distilled"] and base_path.endswith(r["base"].lower())), None)
        if match is not None:
            out[name] = match
    return out


def paper_protocol_gaps(name: str, scores: dict, ref: dict) -> list[str]:
    """Where a model's eval departs from the paper's protocol, so its numbers are not comparable to
    the paper row shown beside it (e.g. a quick run with 512 tokens or a subset of problems)."""
    gaps = []
    for col in ref["columns"]:
        bench = col.split("/")[0]
        proto = scores.get("benchmarks", {}).get(bench, {}).get("protocol")
        if proto is None:
            continue
        for key, want in ref["protocol"].items():
            if proto.get(key) != want:
                gaps.append(f"{name} / {bench}: {key}={proto.get(key)!r}, the paper used {want!r}")
        if proto.get("n_problems") != ref["n_problems"].get(bench, proto.get("n_problems")):
            gaps.append(f"{name} / {bench}: {proto.get('n_problems')} problems, the paper used {ref['n_problems'][bench]}")
    return sorted(set(gaps))


def headline_pairs(models: dict[str, dict], comparisons: list[dict]) -> list[dict]:
    """Per distilled model and benchmark: both models' pass@1 with CIs and the paired difference with its CI."""
    out = []
    for c in comparisons:
        for bench, r in sorted(c["benchmarks"].items()):
            d = models[c["distilled"]]["scores"]["benchmarks"][bench]
            b = models[c["baseline"]]["scores"]["benchmarks"][bench]
            p = r["pass@1"]
            out.append({
                "distilled": c["distilled"], "baseline": c["baseline"], "benchmark": bench,
                "n_problems": p["n_problems"], "k": d["k"],
                "distilled_pass1": d["pass@1"], "distilled_ci": list(d["pass@1_ci95"]),
                "baseline_pass1": b["pass@1"], "baseline_ci": list(b["pass@1_ci95"]),
                "diff": p["diff"], "diff_ci": [p["ci_low"], p["ci_high"]], "p_not_better": p["p_not_better"],
            })
    return out


def collect(run_dir: Path) -> dict:
    from distill.report.lineage import lineage
    from distill.report.traces import sample

    run_dir = Path(run_dir)
    notes: list[str] = []
    models = evals(run_dir, notes)
    comparisons = []
    paired = pairs(models)
    for distilled, baseline in paired:
        c = compare(models[distilled]["dir"], models[baseline]["dir"])
        comparisons.append(c)
        notes += [f"{distilled} vs {baseline}: {m}" for m in c["protocol_mismatches"]]
    samples = {name: load_samples(m["dir"], SCORE_COLUMNS) for name, m in models.items()}
    ref = reference()
    matched = reference_rows(models, paired)
    for name in matched:
        notes += paper_protocol_gaps(name, models[name]["scores"], ref)
    for name, m in models.items():
        for bench, s in m["scores"]["benchmarks"].items():
            if s["termination"].get("errors"):
                notes.append(f"{name} / {bench}: {100 * s['termination']['errors']:.1f}% of samples are backend errors, scored wrong")
    return {
        "run_dir": run_dir,
        "name": run_dir.resolve().name,
        "funnel": funnel(run_dir, notes),
        "losses": losses(run_dir, notes),
        "models": models,
        "samples": samples,
        "comparisons": comparisons,
        "reference": ref,
        "reference_rows": matched,
        "pairs": paired,
        "headline": headline_pairs(models, comparisons),
        "traces": sample(run_dir, list(models)),
        "lineage": lineage(run_dir),
        "notes": notes,
    }
