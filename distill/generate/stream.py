"""The one generation loop of `generate` and `eval`: keep the engine full, checkpoint what finished.

A shard is a list of items (problems). Each item asks for one or more jobs (a prompt and its n
samples); the loop keeps the backend's window full across chunk boundaries, so the engine never
idles behind a chunk's longest sample. When an item's last job returns, its rows are finished; every
`chunk_items` finished items are written as one checkpoint (`chunks/<shard>/NNNNN.parquet`, with the
item indexes beside it), so a kill loses the in-flight items and at most one chunk's finished rows.

Errors: a sample that came back with finish_reason "error" is asked again, up to `max_attempts` in
all, now or on the next run. A fatal error (a 401/402/403, retries exhausted) or a stop condition
(the spend cap) stops new submissions; what is in flight is awaited and saved, then the run stops
with a one-line error and a rerun resumes.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa

from distill.errors import DistillError
from distill.generate.backends.base import Backend, Completion, Request, Sampling, derive_seed
from distill.io import read_parquet, write_json, write_parquet
from distill.records import to_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    item: int  # index of the item in the shard
    first_idx: int  # sample index of the job's first completion
    request: Request
    sampling: Sampling
    attempt: int = 1


def generate_all(backend: Backend, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
    """Each request's `sampling.n` completions, in order, through the backend's window. A fatal error
    (see `Completion.extra`) stops new submissions and is raised once what is in flight has returned."""
    out: dict[int, list[Completion]] = {}
    todo = iter(enumerate(requests))
    window = backend.window or len(requests)
    fatal = None
    for i, r in todo:
        backend.submit(i, r, sampling)
        if backend.pending() >= window:
            break
    while backend.pending():
        for i, comps in backend.poll():
            out[i] = comps
            fatal = fatal or next((c.extra["error"] for c in comps if c.extra.get("fatal")), None)
            nxt = None if fatal else next(todo, None)
            if nxt is not None:
                backend.submit(nxt[0], nxt[1], sampling)
    if fatal:
        raise DistillError(fatal)
    return [out[i] for i in range(len(requests))]


class ChunkedRun:
    """One shard's generation. A stage subclasses it: `first_jobs` and `rows` say what to ask and what
    to keep; `more` adds rounds (a sampling budget); `finalize` post-processes a chunk's rows (eval
    scores them in a worker pool); `stop_reason` ends the run early (a spend cap)."""

    item_field = "id"  # the row field holding the item's id

    def __init__(self, backend: Backend, items: list[dict], chunk_dir: Path, schema: pa.Schema, *, chunk_items: int, max_attempts: int = 1):
        self.backend, self.items, self.chunk_dir, self.schema = backend, items, Path(chunk_dir), schema
        self.chunk_items, self.max_attempts = chunk_items, max_attempts
        self.index = {it["id"]: i for i, it in enumerate(items)}
        self.resumed_chunks = 0
        self.item_stats: dict[int, Counter] = {}  # a stage's own counters per finished item, saved with its chunk

    # -- what a stage says --------------------------------------------------------------------------
    def first_jobs(self, item: int) -> list[Job]:
        raise NotImplementedError

    def rows(self, job: Job, completions: list[Completion]) -> list[dict]:
        raise NotImplementedError

    def ready_rows(self, item: int) -> list[dict] | None:
        """The item's rows when it needs no request at all (e.g. an imported reply); None otherwise."""
        return None

    def more(self, item: int, rows: list[dict]) -> list[Job]:
        """Jobs to add once the item's jobs so far have returned (none: the item is finished)."""
        return []

    def finalize(self, rows: list[dict]) -> list[dict]:
        return rows

    def on_finished(self, item: int, rows: list[dict]) -> None:
        """Called once per finished item (progress, spend)."""

    def stop_reason(self) -> str | None:
        return None

    # -- the loop -----------------------------------------------------------------------------------
    def _retry(self, job: Job, sample_idx: int, attempt: int) -> Job:
        """Sample `sample_idx` again, with a seed of its own so the retry is not the same draw."""
        sampling = replace(job.sampling, n=1, seed=derive_seed(job.sampling.seed, "attempt", sample_idx, attempt))
        return replace(job, first_idx=sample_idx, sampling=sampling, attempt=attempt)

    def _saved(self) -> tuple[set[int], dict[tuple, dict]]:
        """Items finished by earlier runs, and their rows (a later chunk's row replaces an earlier one)."""
        done, rows = set(), {}
        for part in sorted(self.chunk_dir.glob("*.parquet")):
            meta = json.loads(part.with_suffix(".json").read_text())
            done.update(meta["items"])
            for r in read_parquet(part).to_pylist():
                rows[(r[self.item_field], r["sample_idx"])] = r
        return done, rows

    def saved_stats(self) -> Counter:
        """The stage's own counters over every checkpointed chunk."""
        total: Counter = Counter()
        for part in self.chunk_dir.glob("*.parquet"):
            total.update(json.loads(part.with_suffix(".json").read_text()).get("stats", {}))
        return total

    def _write(self, rows: list[dict], items: list[int]) -> None:
        c = len(list(self.chunk_dir.glob("*.parquet")))
        part = self.chunk_dir / f"{c:05d}.parquet"
        table = to_table(self.finalize(rows), self.schema)
        stats = sum((self.item_stats.pop(i, Counter()) for i in items), Counter())
        write_json(part.with_suffix(".json"), {"items": sorted(items), "stats": dict(stats)})  # read only once the Parquet exists
        write_parquet(table, part)

    def run(self) -> pa.Table:
        """Generate every unfinished item; return the shard's rows in item order."""
        done, saved = self._saved()
        self.resumed_chunks = len(list(self.chunk_dir.glob("*.parquet")))
        queue: list[Job] = []
        reopened: dict[int, dict[int, dict]] = {}
        for (iid, idx), r in saved.items():  # error rows of earlier runs with attempts left
            if r["finish_reason"] == "error" and (r.get("attempts") or 1) < self.max_attempts:
                item = self.index[iid]
                reopened.setdefault(item, {})
                queue.append(self._retry(self.first_jobs(item)[0], idx, (r.get("attempts") or 1) + 1))
        finished_rows: list[dict] = []
        finished_items: list[int] = []
        for item in range(len(self.items)):
            if item in done:
                continue
            ready = self.ready_rows(item)
            if ready is not None:
                finished_rows += ready
                finished_items.append(item)
                self.on_finished(item, ready)
            else:
                queue += self.first_jobs(item)
        outstanding: dict[int, int] = {}
        for job in queue:
            outstanding[job.item] = outstanding.get(job.item, 0) + 1
        item_rows: dict[int, dict[int, dict]] = dict(reopened)
        window = self.backend.window or max(len(queue), 1)
        stop: str | None = None
        queue.reverse()  # pop() from the end keeps the submission order

        def top_up() -> None:
            while queue and stop is None and self.backend.pending() < window:
                job = queue.pop()
                self.backend.submit(job, job.request, job.sampling)

        try:
            top_up()
            while self.backend.pending():
                for job, comps in self.backend.poll():
                    outstanding[job.item] -= 1
                    rows = item_rows.setdefault(job.item, {})
                    for r in self.rows(job, comps):
                        r["attempts"] = job.attempt
                        c = comps[r["sample_idx"] - job.first_idx]
                        if c.extra.get("fatal"):
                            stop = stop or c.extra["error"]
                            r["attempts"] = job.attempt - 1  # not an answer: a rerun asks again
                        elif r["finish_reason"] == "error" and job.attempt < self.max_attempts and stop is None:
                            log.warning("%s sample %d: %s; attempt %d", r[self.item_field], r["sample_idx"], c.extra.get("error"), job.attempt + 1)
                            queue.append(self._retry(job, r["sample_idx"], job.attempt + 1))
                            outstanding[job.item] += 1
                        rows[r["sample_idx"]] = r
                    if outstanding[job.item] == 0:
                        follow = [] if stop or job.item in reopened else self.more(job.item, list(rows.values()))
                        for f in follow:
                            queue.append(f)
                            outstanding[job.item] += 1
                        if not follow:
                            new_rows = [rows[k] for k in sorted(rows)]
                            finished_rows += new_rows
                            finished_items.append(job.item)
                            del item_rows[job.item]
                            self.on_finished(job.item, new_rows)
                    if len(finished_items) >= self.chunk_items:
                        self._write(finished_rows, finished_items)
                        finished_rows, finished_items = [], []
                stop = stop or self.stop_reason()
                top_up()
        finally:
            if finished_items:  # finished work is never thrown away, whatever stopped the loop
                self._write(finished_rows, finished_items)
        if stop is not None:
            raise DistillError(stop)
        _, saved = self._saved()
        order = sorted(saved, key=lambda k: (self.index[k[0]], k[1]))
        return to_table([saved[k] for k in order], self.schema)
