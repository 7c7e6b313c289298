"""Rejection sampling per problem: which of its passing samples become SFT data.

Works on the small per-sample records of one problem (index, verdict, reason, length), so the
policies stay pure and shard-local: all samples of a problem live in the same shard.
"""

from __future__ import annotations

from dataclasses import dataclass

from distill.filter.config import SelectConfig


@dataclass
class Sample:
    index: int  # row index in the shard
    sample_idx: int
    completion: str
    tokens: int
    correct: bool
    reason: str | None = None  # set once the sample is rejected


# Not a failure: the trace passed every check and verified, and the policy kept another sample of its problem.
NOT_SELECTED = "not_selected"


def select(samples: list[Sample], cfg: SelectConfig) -> None:
    """Set `reason` on each sample this problem does not keep (samples already rejected stay so)."""
    pass_rate = sum(s.correct for s in samples) / len(samples)
    if cfg.pass_rate_min is not None and pass_rate < cfg.pass_rate_min:
        _reject_rest(samples, "too_hard")
        return
    if cfg.pass_rate_max is not None and pass_rate > cfg.pass_rate_max:
        _reject_rest(samples, "too_easy")
        return
    kept = sorted((s for s in samples if s.reason is None), key=lambda s: s.sample_idx)
    if cfg.dedup:
        seen: set[str] = set()
        for s in kept:
            if s.completion in seen:
                s.reason = "duplicate"
            seen.add(s.completion)
        kept = [s for s in kept if s.reason is None]
    if cfg.policy == "shortest":
        kept.sort(key=lambda s: (s.tokens, s.sample_idx))
    limit = 1 if cfg.policy in ("first", "shortest") else None
    if cfg.max_per_prompt is not None:
        limit = min(limit or cfg.max_per_prompt, cfg.max_per_prompt)
    for s in kept[limit:] if limit is not None else []:
        s.reason = NOT_SELECTED


def _reject_rest(samples: list[Sample], reason: str) -> None:
    for s in samples:
        if s.reason is None:
            s.reason = reason
