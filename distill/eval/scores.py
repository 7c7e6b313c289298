"""Benchmark scores from saved EVAL_SAMPLE rows: the numbers in scores.json and in the report.

Per problem first (mean over its k samples, majority vote, unbiased pass@k), then the mean over
problems, as in the R1 paper; the 95% CI resamples problems.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from distill.errors import DistillError
from distill.eval.metrics import ends_in_loop, k_values, majority_vote, pass_at_k, wilson_ci


def by_problem(rows: list[dict]) -> dict[str, list[dict]]:
    """problem_id -> its samples in sample_idx order."""
    out: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        out[r["problem_id"]].append(r)
    return {pid: sorted(s, key=lambda r: r["sample_idx"]) for pid, s in out.items()}


def per_problem(rows: list[dict]) -> dict[str, dict]:
    """problem_id -> {"pass@1": mean correct over k, "cons": majority vote correct, "n", "c"}."""
    out = {}
    for pid, samples in by_problem(rows).items():
        correct = [bool(s["correct"]) for s in samples]
        out[pid] = {
            "n": len(samples),
            "c": sum(correct),
            "pass@1": sum(correct) / len(samples),
            "cons": majority_vote([s["extracted"] for s in samples], correct),
        }
    return out


def termination(rows: list[dict]) -> dict:
    """How samples end: cut at the token limit, stuck in a loop, and tokens spent before answering."""
    n = len(rows)
    tokens = [r["completion_tokens"] for r in rows if r.get("completion_tokens") is not None]
    answered = [
        r["completion_tokens"]
        for r in rows
        if r.get("finish_reason") == "stop" and r.get("extracted") is not None and r.get("completion_tokens") is not None
    ]
    thoughts = [r["think_end_token"] for r in rows if r.get("think_end_token") is not None]
    # samples judged before verdict reasons were recorded have no `grading`: an empty extraction was "no answer"
    no_answer = [r.get("reason") == "no_answer" if r.get("grading") else r.get("extracted") is None for r in rows]
    reasons = Counter(r.get("reason") for r in rows if r.get("grading") and not r.get("correct"))
    return {
        "unfinished": sum(r.get("finish_reason") == "length" for r in rows) / n,
        "repetition": sum(ends_in_loop(r["completion"]) for r in rows) / n,
        "no_answer": sum(no_answer) / n,
        # why samples were scored wrong (wrong_answer, no_answer, unfinished, timeout, ...), as shares of all samples
        "reasons": {str(k): v / n for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])},
        # requests the backend gave up on (e.g. an API after its retries): scored wrong, so watch this
        "errors": sum(r.get("finish_reason") == "error" for r in rows) / n,
        "mean_tokens": float(np.mean(tokens)) if tokens else None,
        # tokens of the samples that stopped on their own with an answer: the cost of reaching one
        "mean_tokens_to_answer": float(np.mean(answered)) if answered else None,
        # samples that wrote `</think>`: strict grading scores no other, so a student that learned the
        # reasoning but not the format shows here first
        "closed_thought": len(thoughts) / n,
        # how long the model thinks: tokens up to its closing `</think>`, of the samples that closed it
        "median_think_tokens": float(np.median(thoughts)) if thoughts else None,
    }


def summarize(rows: list[dict], k: int) -> dict:
    """Scores of one benchmark from its samples (each problem must have exactly k)."""
    if not rows:
        raise DistillError("no samples to score")
    problems = per_problem(rows)
    short = {pid: p["n"] for pid, p in problems.items() if p["n"] != k}
    if short:
        pid, n = next(iter(short.items()))
        raise DistillError(f"{len(short)} problem(s) do not have k={k} samples (e.g. {pid}: {n}); rerun the stage to finish them")
    p1 = [p["pass@1"] for p in problems.values()]
    cons = [float(p["cons"]) for p in problems.values()]
    lo, hi = wilson_ci(float(np.mean(p1)), len(p1))
    return {
        "n_problems": len(problems),
        "k": k,
        "n_samples": len(rows),
        "pass@1": float(np.mean(p1)),
        "pass@1_ci95": [lo, hi],
        "cons@k": float(np.mean(cons)),  # majority vote over the k samples
        "pass@k": {str(j): float(np.mean([pass_at_k(p["n"], p["c"], j) for p in problems.values()])) for j in k_values(k)},
        "termination": termination(rows),
    }
