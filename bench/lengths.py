"""R1-like response lengths for the throughput benchmarks: per-request max_tokens from a log-normal.

R1's traces run from ~1k to 32k tokens with a median near 4k; scaled down for a CPU, the default draws
have median 131 and p99 ~870 tokens. Each request's drawn limit is its length: EOS is ignored on both the
raw path and `distill`'s, so every request generates exactly its limit and both paths the same tokens
(a random tiny model would otherwise stop early and cut the long tail the benchmarks are meant to test).
"""

from __future__ import annotations

import math
import random
import statistics
import time
from dataclasses import replace


def lognormal_lengths(ids: list[str], *, median: int = 131, p99: int = 871, lo: int = 8, hi: int = 1536, seed: int = 0) -> dict[str, int]:
    sigma = math.log(p99 / median) / 2.326  # the 99th percentile of a standard normal
    rng = random.Random(seed)
    return {i: max(lo, min(hi, round(rng.lognormvariate(math.log(median), sigma)))) for i in ids}


def impose(backend, lengths: dict[str, int]) -> None:
    """Make every request `distill` sends to `backend` (a VLLMBackend) generate exactly its drawn length:
    that max_tokens, with EOS ignored."""
    submit, enqueue = backend.submit, backend.llm.enqueue
    backend.submit = lambda key, req, sampling: submit(key, req, replace(sampling, max_tokens=lengths[req.id]))

    def forced(prompts, params, **kwargs):
        for p in params:
            p.ignore_eos = True
        return enqueue(prompts, params, **kwargs)

    backend.llm.enqueue = forced


def alternate(paths: dict, repeats: int) -> dict[str, list[tuple[int, float]]]:
    """(tokens, seconds) of each path's runs, the paths run in turn `repeats` times (a shared, noisy machine
    slows neighbouring runs alike)."""
    runs: dict[str, list[tuple[int, float]]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, fn in paths.items():
            t0 = time.perf_counter()
            tokens = fn()
            runs[name].append((tokens, time.perf_counter() - t0))
    return runs


def report(runs: dict[str, list[tuple[int, float]]], ours: str, intended: int, target: float = 0.95) -> None:
    """The table: each path's tokens/s per run, and each run's ratio to the raw run beside it."""
    raw = [t / s for t, s in runs["raw vllm"]]
    print(f"{'path':<22} {'tokens':>9} {'tok/s per run':<40} {'vs raw: median [min, max]':>26}")
    for name, rs in runs.items():
        rates = [t / s for t, s in rs]
        ratios = sorted(r / b for r, b in zip(rates, raw))
        spread = f"{statistics.median(ratios):.3f} [{ratios[0]:.3f}, {ratios[-1]:.3f}]"
        print(f"{name:<22} {rs[0][0]:>9} {' '.join(f'{r:.0f}' for r in rates):<40} {spread:>26}")
    ratios = sorted((t / s) / b for (t, s), b in zip(runs[ours], raw))
    tokens = {t for rs in runs.values() for t, _ in rs}
    same = "every run generated exactly the intended tokens" if tokens == {intended} else f"TOKEN COUNTS DIFFER: {sorted(tokens)} vs {intended}"
    print(f"{ours}/raw throughput: median {statistics.median(ratios):.3f}, range {ratios[0]:.3f}-{ratios[-1]:.3f} over {len(ratios)} "
          f"alternating runs (target >= {target}; {same})")


def describe(lengths: dict[str, int]) -> str:
    xs = sorted(lengths.values())
    q = lambda f: xs[min(len(xs) - 1, int(f * len(xs)))]  # noqa: E731
    return f"max_tokens per request: median {q(0.5)}, p90 {q(0.9)}, p99 {q(0.99)}, max {xs[-1]}"
