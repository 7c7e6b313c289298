"""The one generation loop of `generate` and `eval`: keep the engine full, checkpoint what finished.

A shard is a list of items (problems). Each item asks for one or more jobs (a prompt and its n
samples); the loop keeps the backend's window full across chunk boundaries, so the engine never
idles behind a chunk's longest sample. When an item's last job returns, its rows are finished; every
`chunk_items` finished items are written as one checkpoint (`chunks/<shard>/NNNNN.parquet`, with the
item indexes beside it), so a kill loses the in-flight items and at most one chunk's finished rows.

Across shards too: `drive` runs the shards of one process through one engine, and opens (claims) the
next shard as soon as the open ones have no more samples left than the engine runs at once
(`Backend.capacity`), so the long tail of shard i overlaps the start of shard i+1. A chunk's
post-processing (eval's scoring) is a future the loop collects when it is ready, never waits on.

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
from typing import Callable, Iterable, Iterator

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


class Ready:
    """A chunk's rows with nothing left to compute (what `ChunkedRun.finalize` returns by default)."""

    def __init__(self, rows: list[dict]):
        self.rows = rows

    def done(self) -> bool:
        return True

    def result(self) -> list[dict]:
        return self.rows


class ChunkedRun:
    """One shard's generation. A stage subclasses it: `first_jobs` and `rows` say what to ask and what
    to keep; `more` adds rounds (a sampling budget); `finalize` post-processes a chunk's rows without
    blocking (eval scores them in a worker pool); `stop_reason` ends the run early (a spend cap).
    `drive` runs it: `begin`, then `next_job`/`take` until nothing is open, then `table`."""

    item_field = "id"  # the row field holding the item's id

    def __init__(self, backend: Backend, items: list[dict], chunk_dir: Path, schema: pa.Schema, *, chunk_items: int, max_attempts: int = 1):
        self.backend, self.items, self.chunk_dir, self.schema = backend, items, Path(chunk_dir), schema
        self.chunk_items, self.max_attempts = chunk_items, max_attempts
        self.index = {it["id"]: i for i, it in enumerate(items)}
        self.resumed_chunks = 0
        self.item_stats: dict[int, Counter] = {}  # a stage's own counters per finished item, saved with its chunk
        self.stop: str | None = None  # why no more jobs are submitted (a fatal error, the spend cap)

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

    def finalize(self, rows: list[dict]):
        """A chunk's rows as written, or a future of them (`done()`, `result()`): the loop writes the chunk once done."""
        return Ready(rows)

    def on_finished(self, item: int, rows: list[dict]) -> None:
        """Called once per finished item (progress, spend)."""

    def stop_reason(self) -> str | None:
        return None

    # -- checkpoints --------------------------------------------------------------------------------
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
        table = to_table(rows, self.schema)
        stats = sum((self.item_stats.pop(i, Counter()) for i in items), Counter())
        write_json(part.with_suffix(".json"), {"items": sorted(items), "stats": dict(stats)})  # read only once the Parquet exists
        write_parquet(table, part)

    def checkpoint(self) -> None:
        """Hand the finished items to `finalize`; their chunk is written once its rows are ready."""
        if self.finished_items:
            self.chunks.append((self.finished_items, self.finalize(self.finished_rows)))
            self.finished_rows, self.finished_items = [], []

    def write_ready(self, wait: bool = False) -> None:
        """Write the chunks whose rows are ready, in order (all of them, waiting, with `wait`)."""
        while self.chunks and (wait or self.chunks[0][1].done()):
            items, rows = self.chunks.pop(0)
            self._write(rows.result(), items)

    # -- the state of one shard in the loop ---------------------------------------------------------
    def begin(self) -> None:
        """Read the checkpoints of earlier runs and queue every unfinished item's jobs."""
        done, saved = self._saved()
        self.resumed_chunks = len(list(self.chunk_dir.glob("*.parquet")))
        queue: list[Job] = []
        self.reopened: dict[int, dict[int, dict]] = {}
        for (iid, idx), r in saved.items():  # error rows of earlier runs with attempts left
            if r["finish_reason"] == "error" and (r.get("attempts") or 1) < self.max_attempts:
                item = self.index[iid]
                self.reopened.setdefault(item, {})
                queue.append(self._retry(self.first_jobs(item)[0], idx, (r.get("attempts") or 1) + 1))
        self.finished_rows: list[dict] = []
        self.finished_items: list[int] = []
        self.chunks: list[tuple[list[int], Ready]] = []
        for item in range(len(self.items)):
            if item in done:
                continue
            ready = self.ready_rows(item)
            if ready is not None:
                self.finished_rows += ready
                self.finished_items.append(item)
                self.on_finished(item, ready)
            else:
                queue += self.first_jobs(item)
        self.outstanding: dict[int, int] = Counter(job.item for job in queue)
        self.item_rows: dict[int, dict[int, dict]] = dict(self.reopened)
        self.open_samples = sum(job.sampling.n for job in queue)  # queued or in flight
        self.in_flight = 0
        self.queue = queue[::-1]  # pop() from the end keeps the submission order

    def _add(self, job: Job) -> None:
        self.queue.append(job)
        self.outstanding[job.item] += 1
        self.open_samples += job.sampling.n

    def next_job(self) -> Job | None:
        """The next job to submit, if any (none once stopped)."""
        if not self.queue or self.stop is not None:
            return None
        self.in_flight += 1
        return self.queue.pop()

    def generating(self) -> bool:
        """Jobs in flight, or queued and not stopped."""
        return self.in_flight > 0 or (bool(self.queue) and self.stop is None)

    def take(self, job: Job, comps: list[Completion]) -> None:
        """One job's completions: keep its rows, ask again or more, checkpoint finished items."""
        self.in_flight -= 1
        self.open_samples -= job.sampling.n
        self.outstanding[job.item] -= 1
        rows = self.item_rows.setdefault(job.item, {})
        for r in self.rows(job, comps):
            r["attempts"] = job.attempt
            c = comps[r["sample_idx"] - job.first_idx]
            if c.extra.get("fatal"):
                self.stop = self.stop or c.extra["error"]
                r["attempts"] = job.attempt - 1  # not an answer: a rerun asks again
            elif r["finish_reason"] == "error" and job.attempt < self.max_attempts and self.stop is None:
                log.warning("%s sample %d: %s; attempt %d", r[self.item_field], r["sample_idx"], c.extra.get("error"), job.attempt + 1)
                self._add(self._retry(job, r["sample_idx"], job.attempt + 1))
            rows[r["sample_idx"]] = r
        if self.outstanding[job.item] == 0:
            follow = [] if self.stop or job.item in self.reopened else self.more(job.item, list(rows.values()))
            for f in follow:
                self._add(f)
            if not follow:
                new_rows = [rows[k] for k in sorted(rows)]
                self.finished_rows += new_rows
                self.finished_items.append(job.item)
                del self.item_rows[job.item]
                self.on_finished(job.item, new_rows)
        if len(self.finished_items) >= self.chunk_items:
            self.checkpoint()

    def table(self) -> pa.Table:
        """The shard's rows in item order, from its checkpoints."""
        _, saved = self._saved()
        order = sorted(saved, key=lambda k: (self.index[k[0]], k[1]))
        return to_table([saved[k] for k in order], self.schema)

    def run(self) -> pa.Table:
        """Generate every unfinished item of this shard alone; return the shard's rows in item order."""
        out: list[pa.Table] = []
        drive([(self, out.append)])
        return out[0]


def drive(runs: Iterable[tuple[ChunkedRun, Callable[[pa.Table], None]]]) -> None:
    """Run shards through their (shared) engine, each handing its table to its callback once complete.

    `runs` is read lazily: the next shard is opened (claimed, by the caller's iterator) only when the
    open ones have no more samples left than the engine runs at once, so the engine never drains at a
    shard boundary and a process holds no more shards than it can keep busy. Backends without a
    capacity (the toy teacher) run one shard after the other.
    """
    source = iter(runs)
    active: list[tuple[ChunkedRun, Callable[[pa.Table], None]]] = []
    backend: Backend | None = None
    more, stop = True, None

    def pull() -> None:
        nonlocal more, backend
        while more and stop is None:
            if active and not (backend.capacity and sum(r.open_samples for r, _ in active) <= backend.capacity):
                return
            nxt = next(source, None)
            if nxt is None:
                more = False
                return
            backend = backend or nxt[0].backend
            if nxt[0].backend is not backend:
                raise DistillError("internal: shards of one process must share its engine (distill/engines.py)")
            nxt[0].begin()
            active.append(nxt)

    def top_up() -> None:
        for run, _ in active:
            while (backend.window is None or backend.pending() < backend.window) and (job := run.next_job()) is not None:
                backend.submit((run, job), job.request, job.sampling)

    try:
        pull()
        while active:
            top_up()
            if backend.pending():
                for (run, job), comps in backend.poll():
                    run.take(job, comps)
            elif stop is not None:
                break
            else:  # the engine is idle: only a chunk's scoring is left to wait for
                for run, _ in active:
                    run.checkpoint()
                    run.write_ready(wait=True)
            for run, _ in active:
                stop = stop or run.stop or run.stop_reason()
            for run, then in list(active):
                run.stop = run.stop or stop
                run.write_ready()
                if not run.generating() and stop is None:
                    run.checkpoint()
                    if not run.chunks:
                        active.remove((run, then))
                        then(run.table())
            pull()
    finally:
        for run, _ in active:  # finished work is never thrown away, whatever stopped the loop
            run.checkpoint()
            run.write_ready(wait=True)
        if hasattr(source, "close"):
            source.close()  # the caller's iterator releases the claims it still holds
    if stop is not None:
        raise DistillError(stop)


class ShardStream:
    """A generation stage's shard task for `distill.stage.run_shards`: `open(i)` begins shard i (its
    ChunkedRun, or its counters when nothing is left to generate); `close(i, run, table)` writes its part
    and returns its counters. Picklable subclasses (dataclasses) run in pool workers and Ray tasks too."""

    def open(self, i: int) -> ChunkedRun | dict:
        raise NotImplementedError

    def close(self, i: int, run: ChunkedRun, table: pa.Table) -> dict:
        raise NotImplementedError

    def __call__(self, i: int) -> dict:
        """Shard i alone (a pool worker, a Ray task)."""
        run = self.open(i)
        return run if isinstance(run, dict) else self.close(i, run, run.run())

    def overlap(self, claimed: Iterator) -> None:
        """Every shard `claimed` yields (each claimed when asked for), through this process's one engine."""

        def runs() -> Iterator[tuple[ChunkedRun, Callable[[pa.Table], None]]]:
            try:
                for c in claimed:
                    run = self.open(c.i)
                    if isinstance(run, dict):
                        c.finish(run)
                    else:
                        yield run, lambda table, c=c, run=run: c.finish(self.close(c.i, run, table))
            finally:
                claimed.close()

        drive(runs())
