"""Distilled vs baseline: the paired difference per benchmark with its 95% CI (metrics.paired_difference), and a protocol
check that warns when the two were not sampled under the same settings.

A pair scored on different problem sets (another benchmark version) or with a different k gets no
difference at all, only the reason: a paired difference needs the same problems, and cons@64 against
cons@4 measures two different things. A number flagged in red still ends up in a slide; a missing one
does not. Other differences (a baseline's own shorter limit, no `<think>` prefix) are the honest way to
run that baseline, so they are compared and named beside the numbers.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow.parquet as pq

from distill.eval.metrics import paired_difference
from distill.eval.scores import per_problem
from distill.eval.stage import SCORE_COLUMNS, load_samples
from distill.stage import StageDir

log = logging.getLogger(__name__)

def protocol_mismatches(a: dict, b: dict, names: tuple[str, str] = ("a", "b")) -> list[str]:
    """Human-readable differences between two scores.json files' protocols, per shared benchmark.

    Different temperature, k, token limit, prefix, template, scorer or problem set make two numbers
    incomparable; a benchmark present in only one of them is reported too.
    """
    out = []
    ba, bb = a.get("benchmarks", {}), b.get("benchmarks", {})
    for name in sorted(set(ba) ^ set(bb)):
        out.append(f"{name}: evaluated for {names[0] if name in ba else names[1]} only")
    for name in sorted(set(ba) & set(bb)):
        pa_, pb = ba[name].get("protocol", {}), bb[name].get("protocol", {})
        for key in sorted(set(pa_) | set(pb)):
            if pa_.get(key) != pb.get(key):
                out.append(f"{name}: {key} differs ({names[0]}={pa_.get(key)!r}, {names[1]}={pb.get(key)!r})")
    return out


# Protocol keys that make two benchmark scores different measurements, not different settings.
INCOMPARABLE = {"problems_hash": "benchmark version (problem set)", "n_problems": "number of problems", "k": "k"}


def incomparable(pa_: dict, pb: dict) -> str | None:
    """Why two protocols of one benchmark cannot be paired, or None if they can."""
    why = [f"{label} differs ({pa_.get(key)!r} vs {pb.get(key)!r})" for key, label in INCOMPARABLE.items() if pa_.get(key) != pb.get(key)]
    return "; ".join(why) or None


def compare(distilled_dir: Path, baseline_dir: Path, *, resamples: int = 10_000, seed: int = 0) -> dict:
    """Per shared benchmark: pass@1 and cons@k differences (distilled - baseline) on the problems both
    models answered, with paired CIs; plus the protocol mismatches found."""
    da, db = Path(distilled_dir), Path(baseline_dir)
    sa, sb = (json.loads((d / "scores.json").read_text()) for d in (da, db))
    mismatches = protocol_mismatches(sa, sb, (da.name, db.name))
    for m in mismatches:
        log.warning("protocol mismatch between %s and %s: %s", da.name, db.name, m)
    rows_a, rows_b = load_samples(da, SCORE_COLUMNS), load_samples(db, SCORE_COLUMNS)
    result = {}
    for name in sorted(set(sa["benchmarks"]) & set(sb["benchmarks"])):
        refused = incomparable(sa["benchmarks"][name].get("protocol", {}), sb["benchmarks"][name].get("protocol", {}))
        if refused:
            result[name] = {"refused": refused}
            continue
        pa_ = per_problem([r for r in rows_a if r["benchmark"] == name])
        pb = per_problem([r for r in rows_b if r["benchmark"] == name])
        shared = sorted(set(pa_) & set(pb))
        result[name] = {
            "pass@1": paired_difference([pa_[p]["pass@1"] for p in shared], [pb[p]["pass@1"] for p in shared], n_resamples=resamples, seed=seed),
            "cons@k": paired_difference([float(pa_[p]["cons"]) for p in shared], [float(pb[p]["cons"]) for p in shared], n_resamples=resamples, seed=seed),
            "only_distilled": len(set(pa_) - set(pb)),
            "only_baseline": len(set(pb) - set(pa_)),
        }
    return {"distilled": da.name, "baseline": db.name, "benchmarks": result, "protocol_mismatches": mismatches}


FOREIGN_COLUMNS = ["benchmark", "problem_id", "sample_idx", "answer", "extracted", "correct", "foreign_extracted", "foreign_correct"]


def foreign_agreement(out: Path) -> dict[str, dict]:
    """benchmark -> how our verdicts agree with the verdicts an imported tool saved beside them:
    {"labelled", "agree", "only_ours_correct", "only_theirs_correct", "disagreements": [rows]}; {} for
    samples this project drew (no foreign labels)."""
    parts = [p for p in StageDir(Path(out)).parts() if "foreign_correct" in pq.read_schema(p).names]
    rows = [r for p in parts for r in pq.read_table(p, columns=FOREIGN_COLUMNS).to_pylist() if r["foreign_correct"] is not None]
    result = {}
    for bench in sorted({r["benchmark"] for r in rows}):
        mine = [r for r in rows if r["benchmark"] == bench]
        differ = sorted((r for r in mine if r["correct"] != r["foreign_correct"]), key=lambda r: (r["problem_id"], r["sample_idx"]))
        result[bench] = {
            "labelled": len(mine),
            "agree": (len(mine) - len(differ)) / len(mine),
            "only_ours_correct": sum(r["correct"] for r in differ),
            "only_theirs_correct": sum(r["foreign_correct"] for r in differ),
            "disagreements": differ,
        }
    return result
