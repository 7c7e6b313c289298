"""Scores from per-sample correctness: pass@1 (mean over k), cons@k, unbiased pass@k, 95% CIs (Wilson; a paired difference's by MOVER),
and the termination metrics that sit beside accuracy (unfinished, repetition loops, tokens to answer).

Everything here is a pure function of saved samples, so `distill eval --rescore` needs no model.
"""

from __future__ import annotations

from collections import Counter

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k).

    Computed as a product (Chen et al. 2021, Codex paper) so large n does not overflow.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def k_values(k: int) -> list[int]:
    """Powers of two up to k, and k itself: 1, 2, 4, ..., k."""
    out, p = [], 1
    while p < k:
        out.append(p)
        p *= 2
    return out + [k]


def normalize_answer(extracted: str | None) -> str | None:
    """Key under which two extracted answers count as the same vote (whitespace-insensitive)."""
    if extracted is None:
        return None
    key = "".join(str(extracted).split())
    return key or None


def majority_vote(extracted: list[str | None], correct: list[bool]) -> bool:
    """cons@k for one problem: is the most frequent extracted answer correct?

    Samples without an answer do not vote; a tie goes to the answer that appeared first (stable and
    independent of the grader). All-unanswered counts as wrong.
    """
    keys = [normalize_answer(e) for e in extracted]
    votes = Counter(k for k in keys if k is not None)
    if not votes:
        return False
    top = max(votes.values())
    winner = next(k for k in keys if k is not None and votes[k] == top)
    return bool(next(c for k, c in zip(keys, correct) if k == winner))


Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval


def wilson_ci(p: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a rate `p` over `n` problems: never a point at 0% or 100% (0 of 50 ->
    [0, 7.1%]), unlike a percentile bootstrap (0 of 50 -> [0, 0]). pass@1 over k samples is a mean of
    per-problem scores in [0, 1], whose variance is at most p(1 - p), so Wilson over the problems is exact
    for k = 1 and conservative for k > 1."""
    if n <= 0:
        return (float("nan"), float("nan"))
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(max(p * (1 - p), 0.0) / n + z * z / (4 * n * n)) / denom
    # at 0 (or 1) the limit is exactly 0 (or 1); float rounding would leave 7e-18
    return (0.0 if p <= 0 else float(center - half)), (1.0 if p >= 1 else float(center + half))


def paired_difference(a, b, *, n_resamples: int = 10_000, seed: int = 0) -> dict:
    """Difference mean(a) - mean(b) over the same problems, with a 95% CI that accounts for the pairing.

    a[i] and b[i] are the two models' scores on problem i (e.g. pass@1 over the same k seeds). The CI
    combines the two rates' Wilson intervals with the correlation of the per-problem scores (MOVER,
    Newcombe 1998 method 10 for paired proportions): per-problem difficulty that both models share
    narrows it, as pairing should, and it stays honest at 0% and 100% (0 of 50 against 0 of 50 gives
    about +-7 points, not [0, 0]). `p_not_better` is the share of paired bootstrap resamples (problems
    drawn together) where the difference is <= 0.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"a paired difference needs scores on the same problems, got {a.size} and {b.size}")
    n = int(a.size)
    if n == 0:
        return {"diff": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n_problems": 0, "p_not_better": float("nan")}
    p1, p2 = float(a.mean()), float(b.mean())
    (l1, u1), (l2, u2) = wilson_ci(p1, n), wilson_ci(p2, n)
    r = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0
    d = p1 - p2
    low = d - np.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * r * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = d + np.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * r * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return {
        "diff": d,
        "ci_low": float(max(-1.0, low)),
        "ci_high": float(min(1.0, high)),
        "n_problems": n,
        # a one-sided bootstrap p-value for "a > b"
        "p_not_better": _p_not_better(a - b, n_resamples, seed),
    }


def _p_not_better(d: np.ndarray, n_resamples: int, seed: int) -> float:
    if d.size == 0:
        return float("nan")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n_resamples, d.size))].mean(axis=1)
    return float((means <= 0).mean())


# A completion is in a repetition loop when its tail repeats one block at least this often...
LOOP_MIN_REPEATS = 4
# ...over at least this many characters (so "}}}}" or "....." at the end is not a loop)...
LOOP_MIN_CHARS = 200
# ...for a block of at most this many characters (a repeated paragraph of ~100 tokens).
LOOP_MAX_PERIOD = 512


def ends_in_loop(text: str) -> bool:
    """True when the completion ends by repeating the same block over and over (a runaway loop)."""
    t = text.rstrip()
    for p in range(1, LOOP_MAX_PERIOD + 1):
        span = max(LOOP_MIN_REPEATS * p, LOOP_MIN_CHARS)
        if span > len(t):
            break
        if t[-span + p :] == t[-span:-p]:
            return True
    return False
