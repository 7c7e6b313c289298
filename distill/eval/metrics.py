"""Scores from per-sample correctness: pass@1 (mean over k), cons@k, unbiased pass@k, bootstrap CIs,
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


def bootstrap_ci(values, *, n_resamples: int = 10_000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of per-problem scores (resampling problems)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_resamples, v.size))
    means = v[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def paired_bootstrap(a, b, *, n_resamples: int = 10_000, seed: int = 0, level: float = 0.95) -> dict:
    """Difference mean(a) - mean(b) over the same problems, with a paired percentile bootstrap CI.

    a[i] and b[i] are the two models' scores on problem i (e.g. pass@1 over the same k seeds); the
    problems are resampled together, so per-problem difficulty cancels out of the interval.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired bootstrap needs scores on the same problems, got {a.size} and {b.size}")
    d = a - b
    lo, hi = bootstrap_ci(d, n_resamples=n_resamples, seed=seed, level=level)
    return {
        "diff": float(d.mean()) if d.size else float("nan"),
        "ci_low": lo,
        "ci_high": hi,
        "n_problems": int(d.size),
        # share of resamples where the sign flips: a one-sided bootstrap p-value for "a > b"
        "p_not_better": _p_not_better(d, n_resamples, seed),
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
