"""R1-like response lengths for the throughput benchmarks: per-request max_tokens from a log-normal.

R1's traces run from ~1k to 32k tokens with a median near 4k; scaled down for a CPU, the default draws
have median 131 and p99 ~870 tokens. A random tiny model rarely stops on its own, so the per-request
limit is the length: both the raw path and `distill` get the same limit for the same request id.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace


def lognormal_lengths(ids: list[str], *, median: int = 131, p99: int = 871, lo: int = 8, hi: int = 1536, seed: int = 0) -> dict[str, int]:
    sigma = math.log(p99 / median) / 2.326  # the 99th percentile of a standard normal
    rng = random.Random(seed)
    return {i: max(lo, min(hi, round(rng.lognormvariate(math.log(median), sigma)))) for i in ids}


def impose(backend, lengths: dict[str, int]) -> None:
    """Make `backend.submit` use each request's drawn max_tokens (the bench's stand-in for a model that stops)."""
    submit = backend.submit
    backend.submit = lambda key, req, sampling: submit(key, req, replace(sampling, max_tokens=lengths[req.id]))


def describe(lengths: dict[str, int]) -> str:
    xs = sorted(lengths.values())
    q = lambda f: xs[min(len(xs) - 1, int(f * len(xs)))]  # noqa: E731
    return f"max_tokens per request: median {q(0.5)}, p90 {q(0.9)}, p99 {q(0.99)}, max {xs[-1]}"
