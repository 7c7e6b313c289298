"""`distill prompts`: import problems, normalise, drop duplicates and benchmark contamination, and
write PROBLEM shards of `rows_per_shard` rows.

The source is streamed once, in order; dedup needs everything seen before, so shards are cut as the
stream goes and a rerun replays the stream, skipping shards whose `done/` marker exists (the order
is deterministic, so a resumed run writes the same shards). `removed.jsonl` lists every dropped
problem with its reason (duplicate | near_duplicate | contaminated) and what it matched.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter, deque
from contextlib import ExitStack
from multiprocessing import get_context
from pathlib import Path
from typing import Iterator

from distill.io import tmp_path, write_parquet
from distill.prompts.config import PromptsConfig
from distill.prompts.decontam import Decontaminator, benchmark_problems
from distill.prompts.dedup import Deduplicator, exact_key, minhash
from distill.prompts.sources import iter_problems
from distill.records import PROBLEM, to_table
from distill.stage import StageDir, die_with_parent

log = logging.getLogger(__name__)

REMOVED = "removed.jsonl"


def _decontaminator(cfg: PromptsConfig) -> Decontaminator | None:
    d = cfg.decontaminate
    if not d.benchmarks and not d.files:
        return None
    problems = benchmark_problems(d.benchmarks, d.files)
    log.info("decontamination index: %d benchmark problems, %d-grams", len(problems), d.ngram)
    return Decontaminator(problems, d.ngram)


BATCH = 1024  # problems per unit of work sent to a fingerprinting worker

_worker: dict = {}  # per-process state of the fingerprinting workers (config, benchmark index)


def _init_worker(cfg: dict) -> None:
    config = PromptsConfig.model_validate(cfg)
    _worker.update(cfg=config, decon=_decontaminator(config))


def _init_pool_worker(cfg: dict, parent: int) -> None:
    die_with_parent(parent)
    _init_worker(cfg)


def _fingerprints(rows: list[dict]) -> list[tuple[bytes, object, str | None]]:
    """(exact key, MinHash or None, matched benchmark problem or None) of each row.

    This is the costly, order-free part (~0.2 ms exact + n-grams, ~0.6 ms more with MinHash per
    problem), so it runs in worker processes; the order-dependent lookups stay in the parent.
    """
    cfg, decon = _worker["cfg"], _worker["decon"]
    out = []
    for r in rows:
        mh = minhash(r["prompt"], cfg.dedup.num_perm) if cfg.dedup.near else None
        out.append((exact_key(r["prompt"]), mh, decon.match(r["prompt"]) if decon is not None else None))
    return out


def _batches(rows: Iterator[dict], size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for r in rows:
        batch.append(r)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def run(cfg: PromptsConfig, out: Path, *, workers: int = 1) -> dict:
    """Write the problems of `cfg.source` to the stage directory `out`; return the stage totals.

    With `workers` > 1 the fingerprints are computed in that many spawned processes while the
    parent reads the source and applies dedup and decontamination in source order.
    """
    stage = StageDir(Path(out))
    stage.prepare(cfg.model_dump(mode="json"))
    if stage.is_complete():
        log.info("%s: already complete", stage.path)
        return _totals(stage.stats())
    dedup = Deduplicator(cfg.dedup.exact, cfg.dedup.near, cfg.dedup.threshold, cfg.dedup.num_perm)
    buffer: list[dict] = []
    counts: Counter = Counter()
    by_benchmark: Counter = Counter()
    rows_in, shard = 0, 0

    def flush() -> None:
        nonlocal buffer, counts, by_benchmark, rows_in, shard
        if not stage.trusted(shard):  # a done shard whose part is damaged is written again
            write_parquet(to_table(buffer, PROBLEM), stage.part(shard))
            stats = {"rows_in": rows_in, "rows_out": len(buffer), "rejected": dict(counts), "contaminated_by": dict(by_benchmark)}
            stage.finish(shard, {"shard": shard, **stats})
        buffer, counts, by_benchmark, rows_in, shard = [], Counter(), Counter(), 0, shard + 1

    removed_tmp = tmp_path(stage.path / REMOVED)
    with ExitStack() as stack:
        # streamed to disk, not kept in memory: duplicates can be most of a web crawl
        removed = stack.enter_context(open(removed_tmp, "w", encoding="utf-8"))
        batches = _batches(iter_problems(cfg), BATCH)
        if workers > 1:
            pool = stack.enter_context(
                get_context("spawn").Pool(workers, initializer=_init_pool_worker, initargs=(cfg.model_dump(mode="json"), os.getpid()))
            )
            fingerprinted = _in_pool(pool, batches, ahead=2 * workers)
        else:
            _init_worker(cfg.model_dump(mode="json"))
            fingerprinted = ((b, _fingerprints(b)) for b in batches)
        for batch, prints in fingerprinted:
            for row, (key, mh, bench) in zip(batch, prints):
                rows_in += 1
                # contamination first: a benchmark copy is removed as such, and never kept as the
                # "earlier copy" that later duplicates would point to
                if bench is not None:
                    hit = ("contaminated", bench)
                    by_benchmark[bench.split("/")[0]] += 1
                else:
                    hit = dedup.check(row["id"], key, mh)
                if hit is not None:
                    reason, match = hit
                    counts[reason] += 1
                    line = {"id": row["id"], "reason": reason, "match": match, "prompt": row["prompt"][:300]}
                    removed.write(json.dumps(line, ensure_ascii=False) + "\n")
                    continue
                if len(buffer) >= cfg.rows_per_shard:  # cut only when a next row exists, so trailing drops count
                    rows_in -= 1  # this row opens the next shard
                    flush()
                    rows_in = 1
                buffer.append(row)
        if buffer or shard == 0:
            flush()
        removed.flush()
        os.fsync(removed.fileno())
    os.replace(removed_tmp, stage.path / REMOVED)
    stage.plan(shard)  # written last: its presence with every done/ marker means the stage is complete
    totals = _totals(stage.stats())
    log.info("prompts: %s", totals)
    return totals


def _in_pool(pool, batches: Iterator[list[dict]], ahead: int) -> Iterator[tuple[list[dict], list]]:
    """(batch, fingerprints) in order, with at most `ahead` batches in flight: memory stays bounded
    (`Pool.imap` would read the whole source ahead)."""
    window: deque = deque()
    for batch in batches:
        window.append((batch, pool.apply_async(_fingerprints, (batch,))))
        if len(window) >= ahead:
            b, res = window.popleft()
            yield b, res.get()
    while window:
        b, res = window.popleft()
        yield b, res.get()


def _totals(stats: list[dict]) -> dict:
    out = {"shards": len(stats), "rows_in": 0, "rows_out": 0, "rejected": Counter(), "contaminated_by": Counter()}
    for s in stats:
        out["rows_in"] += s["rows_in"]
        out["rows_out"] += s["rows_out"]
        out["rejected"].update(s["rejected"])
        out["contaminated_by"].update(s.get("contaminated_by", {}))
    return {**out, "rejected": dict(out["rejected"]), "contaminated_by": dict(out["contaminated_by"])}
