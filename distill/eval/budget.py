"""Accuracy against thinking budget, from one sampling at the full budget.

A sample drawn with `max_tokens = B` is, for the same seed and engine, the first B tokens of the sample
drawn with the full budget. Under strict grading a sample that finished within B tokens keeps its
verdict at budget B and any longer one is cut there, hence unfinished and wrong; so pass@1 at every
smaller budget follows from each sample's `completion_tokens`, its verdict and its finish reason.

The curve is exact where each sample has its own seed and its tokens do not depend on the batch: the
vLLM backend (per-request seeds) and the toy teacher. It is an estimate for the transformers backend
(one seed per padded batch, so a sample depends on its batch-mates), an API and imported samples
(re-tokenised or as the tool counted them). Lenient grading credits a cut sample's earlier `\\boxed{}`,
which this cannot know without re-grading its prefix: no curve then.
"""

from __future__ import annotations

import numpy as np

from distill.eval.metrics import wilson_ci
from distill.eval.scores import by_problem

EXACT_BACKENDS = {"vllm": "per-request seeds", "toy": "per-sample seeds, text independent of the batch"}
FIRST_BUDGET = 1024


def ladder(max_tokens: int) -> list[int]:
    """Powers of two from 1,024 (from an eighth of `max_tokens` below 8,192) up to `max_tokens`, and
    `max_tokens` itself: 1024, 2048, ..., 32768; for the toy world's 256: 32, 64, 128, 256."""
    out, b = [], FIRST_BUDGET
    while b > 1 and b * 8 > max_tokens:
        b //= 2
    while b < max_tokens:
        out.append(b)
        b *= 2
    return out + [max_tokens]


def _exactness(backend: str | None) -> dict:
    if backend in EXACT_BACKENDS:
        return {"exact": True, "why": EXACT_BACKENDS[backend]}
    why = {"transformers": "one seed per padded batch: a sample depends on its batch-mates",
           "openai": "an API: no guarantee the same seed gives the same prefix",
           "imported": "samples from another tool: its engine and token counts"}.get(backend or "", "unknown backend")
    return {"exact": False, "why": why}


def budget_curve(rows: list[dict], *, max_tokens, backend: str | None, budgets: list[int] | None = None) -> dict:
    """{"points": [{"budget", "pass@1", "pass@1_ci95", "unfinished"}], "exact", "why"} for one benchmark's
    samples, or {"skipped": why} when the samples cannot give it."""
    if any((r.get("grading") or "strict") != "strict" for r in rows):
        return {"skipped": "lenient grading: a cut sample's verdict needs its prefix re-graded"}
    if not rows or any(r.get("completion_tokens") is None for r in rows):
        return {"skipped": "samples without completion_tokens (an import without the model's tokenizer)"}
    top = max_tokens if isinstance(max_tokens, int) else max(r["completion_tokens"] for r in rows)
    budgets = sorted({b for b in (budgets or ladder(top)) if b <= top} | {top})
    problems = list(by_problem(rows).values())
    points = []
    for b in budgets:
        per_problem = [np.mean([bool(s["correct"]) and s["completion_tokens"] <= b for s in samples]) for samples in problems]
        cut = [s["finish_reason"] == "length" or s["completion_tokens"] > b for samples in problems for s in samples]
        lo, hi = wilson_ci(float(np.mean(per_problem)), len(per_problem))  # the same interval as pass@1's
        points.append({"budget": b, "pass@1": float(np.mean(per_problem)), "pass@1_ci95": [lo, hi], "unfinished": float(np.mean(cut))})
    return {"points": points, **_exactness(backend)}


def tokens_to_reach(curve: dict, target: float) -> int | None:
    """The smallest budget on `curve` whose pass@1 reaches `target`, None if none does."""
    return next((p["budget"] for p in curve.get("points", []) if p["pass@1"] >= target), None)


def first_budget_beating(curve: dict, baseline: dict) -> int | None:
    """The smallest budget on both curves at which `curve`'s pass@1 is above `baseline`'s, None if none is."""
    theirs = {p["budget"]: p["pass@1"] for p in baseline.get("points", [])}
    return next((p["budget"] for p in curve.get("points", []) if p["budget"] in theirs and p["pass@1"] > theirs[p["budget"]]), None)
