"""The toy world's procedural teacher as a backend: instant, deterministic, CPU-free."""

from __future__ import annotations

import random

import distill
from distill.generate.backends.base import Completion, InProcessQueue, Request, Sampling, derive_seed
from distill.generate.prompting import NO_THINK_PREFIX
from distill.toy.teacher import ToyTeacherConfig, count_tokens, write_trace


class ToyBackend(InProcessQueue):
    name = "toy"
    window = None
    capacity = None  # instant: nothing to keep busy, so shards run one after the other

    def __init__(self, cfg: ToyTeacherConfig):
        super().__init__()
        self.cfg = cfg
        self.version = getattr(distill, "__version__", "0")

    def poll(self):
        done, self._queue = self._queue, []
        return [(key, self._sample(req, sampling)) for key, req, sampling in done]

    def _sample(self, req: Request, sampling: Sampling) -> list[Completion]:
        prompt = req.messages[-1]["content"]
        samples = []
        for j in range(sampling.n):
            # One RNG per (seed, request, sample): reruns and any chunking give the same traces.
            rng = random.Random(derive_seed(sampling.seed, req.id, j))
            # An empty think block forced as the prefix asks for an answer with thinking off.
            text, finish = write_trace(prompt, rng, self.cfg, sampling.max_tokens, thinking=req.prefix != NO_THINK_PREFIX)
            # The teacher always opens with "<think>\n"; without a forced prefix the row still keeps it,
            # as R1 does most of the time on its own.
            samples.append(Completion(text, finish, count_tokens(prompt), count_tokens(text)))
        return samples

    def close(self) -> None:
        pass
