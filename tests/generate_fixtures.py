"""Shared helpers of the generate tests: a prompts stage directory of toy problems, a toy engine with a clock,
and a worker entry."""

from __future__ import annotations

import sys
import time
from collections import deque
from pathlib import Path

from distill.generate.backends.base import derive_seed
from distill.generate.backends.toy import ToyBackend
from distill.records import PROBLEM, to_table
from distill.stage import StageDir
from distill.io import write_parquet
from distill.toy.tasks import make_problems


def make_prompts_stage(path: Path, n_problems: int, rows_per_shard: int, seed: int = 0) -> Path:
    """A finished prompts stage (parts, stats, done markers, plan) of toy arithmetic problems."""
    stage = StageDir(path)
    problems = make_problems(n_problems, seed=seed)
    shards = [problems[i : i + rows_per_shard] for i in range(0, len(problems), rows_per_shard)]
    for i, rows in enumerate(shards):
        write_parquet(to_table(rows, PROBLEM), stage.part(i))
        stage.finish(i, {"rows_in": len(rows), "rows_out": len(rows)})
    stage.plan(len(shards))
    return path


def trace_rows(out: Path) -> list[tuple]:
    """(id, sample_idx, completion) of every trace of a generate stage directory, sorted: what two runs must agree on."""
    from distill.generate.stage import read_traces

    t = read_traces(out).sort_by([("id", "ascending"), ("sample_idx", "ascending")])
    return list(zip(t["id"].to_pylist(), t["sample_idx"].to_pylist(), t["completion"].to_pylist()))


class TimedToy(ToyBackend):
    """The toy teacher behind a fake engine clock, as vLLM schedules: at most `capacity` samples run at once,
    the rest wait in submission order; each poll is one tick, and a request takes 1-4 ticks (`long_ids`:
    `long_ticks`), so a shard has a long tail. `events` records ("submit" | "done", request id, tick)."""

    def __init__(self, cfg, capacity: int = 8, long_ids: frozenset = frozenset(), long_ticks: int = 40, tick_s: float = 0.0):
        super().__init__(cfg)
        self.capacity, self.long_ids, self.long_ticks, self.tick_s = capacity, long_ids, long_ticks, tick_s
        self.waiting: deque = deque()
        self.running: list[list] = []  # [ticks left, key, request, sampling]
        self.events: list[tuple[str, str, int]] = []
        self.clock = 0

    def submit(self, key, request, sampling) -> None:
        self.waiting.append((key, request, sampling))
        self.events.append(("submit", request.id, self.clock))

    def pending(self) -> int:
        return len(self.waiting) + len(self.running)

    def _ticks(self, request) -> int:
        return self.long_ticks if request.id in self.long_ids else 1 + derive_seed(0, request.id) % 4

    def poll(self):
        done = []
        while self.pending() and not done:
            while self.waiting and sum(r[3].n for r in self.running) + self.waiting[0][2].n <= self.capacity:
                key, request, sampling = self.waiting.popleft()
                self.running.append([self._ticks(request), key, request, sampling])
            time.sleep(self.tick_s)
            self.clock += 1
            for r in self.running:
                r[0] -= 1
            for left, key, request, sampling in [r for r in self.running if r[0] <= 0]:
                done.append((key, self._sample(request, sampling)))
                self.events.append(("done", request.id, self.clock))
            self.running = [r for r in self.running if r[0] > 0]
        return done


def worker_main(argv: list[str]) -> None:
    """`python tests/generate_fixtures.py CONFIG.yaml INPUT OUTPUT [LONG_ID...]`: one `distill generate` worker;
    with LONG_IDs, on a TimedToy engine (ticks of 2 ms) on which those requests are long."""
    from distill.config import load
    from distill.generate.config import GenerateConfig
    from distill.generate.stage import run

    cfg_path, inp, out, *long_ids = argv
    cfg = load(GenerateConfig, Path(cfg_path))
    backend = TimedToy(cfg.toy, long_ids=frozenset(long_ids), tick_s=0.002) if long_ids else None
    run(cfg, Path(inp), Path(out), backend=backend)


if __name__ == "__main__":
    worker_main(sys.argv[1:])
