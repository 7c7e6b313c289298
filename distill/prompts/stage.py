"""`distill prompts`: import the problems of every source of the mix, normalise, drop rows the
source's filter rejects, benchmark contamination and duplicates (over the union of sources), take
each source's quota, and write PROBLEM shards of `rows_per_shard` rows.

Sources are streamed once each, in order; dedup needs everything kept before, so shards are cut as
the stream goes. At every cut the position in the source is checkpointed (`state/`: the rows judged,
the removed.jsonl bytes, the dedup index's key count; the index keys each kept problem by its shard),
so a rerun resumes at the shard it was on: it skips the rows already judged without fingerprinting them
and drops the index keys of the unfinished shard (the order is deterministic, so a resumed run writes
the same shards). `removed.jsonl` lists
every removed problem with its source, reason (duplicate | near_duplicate | contaminated) and match
(a contaminated one also with the shared word n-gram, `ngram`);
`sources.json` holds each source's fingerprint, and a changed source is refused on resume.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
from collections import Counter, deque
from contextlib import ExitStack
from functools import partial
from itertools import islice
from multiprocessing import get_context
from pathlib import Path
from typing import Iterator

from distill.errors import DistillError, where
from distill.io import _atomic, iter_rows, read_json, write_bytes, write_json, write_parquet
from distill.prompts.config import PromptsConfig
from distill.prompts.decontam import Decontaminator
from distill.prompts.dedup import Deduplicator, band_keys, exact_key
from distill.prompts.sources import SourceReader, fingerprint, identity, problem_text
from distill.records import PROBLEM, to_table
from distill.stage import EXECUTORS, StageDir, die_with_parent, ray_cluster

log = logging.getLogger(__name__)

REMOVED = "removed.jsonl"


def _decontaminator(cfg: PromptsConfig) -> Decontaminator | None:
    d = cfg.decontaminate
    if not d.benchmarks and not d.files:
        return None
    problems = benchmark_problems(d.benchmarks, d.files)
    log.info("decontamination index: %d benchmark problems, %d-grams", len(problems), d.ngram)
    return Decontaminator(problems, d.ngram)


def benchmark_problems(names: list[str], files: list[Path]) -> list[tuple[str, str]]:
    """(id, text) of the named benchmarks (the eval's specs) and of extra .jsonl/.parquet/.csv files: what
    decontamination matches against, gathered here so the matcher (prompts.decontam) reads no benchmark itself."""
    from distill.eval.benchmarks import load_benchmark

    out: list[tuple[str, str]] = []
    if names:
        for name in names:
            for i, rec in enumerate(load_benchmark(name)):
                out.append((f"{name}/{rec.get('id', i)}", problem_text(rec)))
    for path in files:
        for rowno, rec in iter_rows(Path(path)):
            try:
                text = problem_text(rec)
            except DistillError as e:
                raise DistillError(f"{where(path, rowno)}: {e}") from None
            out.append((f"{Path(path).stem}/{rec.get('id', rowno)}", text))
    return out


BATCH = 1024  # problems per unit of work sent to a fingerprinting worker

_worker: dict = {}  # per-process state of the fingerprinting workers (config, benchmark index)


def _init_worker(cfg: dict) -> None:
    config = PromptsConfig.model_validate(cfg)
    _worker.update(cfg=config, decon=_decontaminator(config))


def _init_pool_worker(cfg: dict, parent: int) -> None:
    die_with_parent(parent)
    _init_worker(cfg)


def _fingerprints_for(cfg: dict, rows: list[dict]) -> list:
    """`_fingerprints` in a Ray worker, which sets its state up on its first batch of this config."""
    if _worker.get("json") != cfg:
        _init_worker(cfg)
        _worker["json"] = cfg
    return _fingerprints(rows)


def _fingerprints(rows: list[dict]) -> list[tuple[int, list[int] | None, tuple[str, str] | None]]:
    """(exact key, LSH band keys or None, (matched benchmark problem, shared n-gram) or None) of each row.

    This is the costly, order-free part (~0.2 ms exact + n-grams, ~0.6 ms more with MinHash per
    problem), so it runs in worker processes; the order-dependent lookups stay in the parent.
    """
    cfg, decon = _worker["cfg"], _worker["decon"]
    out = []
    for r in rows:
        near = band_keys(r["prompt"], cfg.dedup.threshold, cfg.dedup.num_perm) if cfg.dedup.near else None
        out.append((exact_key(r["prompt"]), near, decon.evidence(r["prompt"]) if decon is not None else None))
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


SOURCES = "sources.json"  # each source's fingerprint, checked on resume


def _check_sources(stage: StageDir, cfg: PromptsConfig) -> None:
    """Record each source's fingerprint; refuse to resume over a source whose data changed once rows of it
    are written (a source that failed before writing anything may be fixed and rerun)."""
    path = stage.path / SOURCES
    old = read_json(path, "source fingerprints file") if path.exists() else {}
    written = {s.get("source") for s in stage.stats()}
    prints = {}
    for k, src in enumerate(cfg.sources):
        before = old.get(src.label)
        prints[src.label] = fingerprint(src)
        if before is not None and (src.label in written or _checkpoint(stage, k).exists()):
            changed = _changed(identity(before), identity(prints[src.label]))
            if changed:
                raise DistillError(
                    f"{path}: source '{src.label}' ({src.source}) changed since this stage started (changed: {', '.join(changed)}); "
                    "use a new output directory or delete this one"
                )
    if prints != old:
        write_json(path, prints)


def _changed(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed(a, b, f"{prefix}{k}.")
        elif a != b and not (k == "sha" and (a is None or b is None)):  # a Hub lookup that failed says nothing
            out.append(f"{prefix}{k}")
    return out


def _guarded(rows: Iterator[dict], label: str, src: str) -> Iterator[dict]:
    """The source's rows; any failure to read them becomes one line naming the source."""
    try:
        yield from rows
    except DistillError as e:
        raise DistillError(f"source '{label}': {e}") from None
    except Exception as e:  # a dataset that is missing, gated, corrupt or offline: the library's own error
        msg = (str(e).strip().splitlines() or [""])[0][:300]
        raise DistillError(f"source '{label}' ({src}): {type(e).__name__}: {msg}") from None


def run(cfg: PromptsConfig, out: Path, *, workers: int = 1, executor: str = "local") -> dict:
    """Write the problems of every source of the mix to the stage directory `out`; return the stage totals.

    Sources are read in order; each writes its own shards, and each shard cut is checkpointed, so a
    rerun after a failure in source k neither rereads the sources before k nor judges again the rows of
    k's finished shards. With `workers` > 1 the fingerprints are computed in that many spawned processes while
    the parent reads the source and applies dedup and decontamination in source order; with
    `executor="ray"` they are tasks of the Ray cluster (the order-dependent part stays here: it is the
    one writer of this stage, so it needs no claims).
    """
    if executor not in EXECUTORS:
        raise DistillError(f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    stage = StageDir(Path(out))
    stage.prepare(cfg.identity())
    _check_sources(stage, cfg)
    if stage.is_complete():
        log.info("%s: already complete", stage.path)
        return _totals(stage.stats())
    quotas = cfg.quotas()
    first, shard, dedup, within = _resume_point(stage, cfg)
    with ExitStack() as stack:
        if executor == "ray":
            ray = ray_cluster()
            remote, cfg_json = ray.remote(num_cpus=1)(_fingerprints_for), cfg.model_dump(mode="json")
            ahead = 2 * max(workers, int(ray.cluster_resources().get("CPU", 1)))
            fingerprint_all = lambda batches: _in_order(batches, lambda b: partial(ray.get, remote.remote(cfg_json, b)), ahead)  # noqa: E731
        elif workers > 1:
            pool = stack.enter_context(
                get_context("spawn").Pool(workers, initializer=_init_pool_worker, initargs=(cfg.model_dump(mode="json"), os.getpid()))
            )
            fingerprint_all = lambda batches: _in_order(batches, lambda b: pool.apply_async(_fingerprints, (b,)).get, 2 * workers)  # noqa: E731
        else:
            _init_worker(cfg.model_dump(mode="json"))
            fingerprint_all = lambda batches: ((b, _fingerprints(b)) for b in batches)  # noqa: E731
        stack.callback(dedup.close)
        for k in range(first, len(cfg.sources)):
            shard = _run_source(stage, cfg, k, quotas[k], shard, dedup, fingerprint_all, within if k == first else None)
            dedup.commit()
            write_bytes(_checkpoint(stage, k), pickle.dumps({"next_shard": shard, "index_keys": dedup.keys_before(shard)}, protocol=5))
    if shard == 0:  # every source empty, and allowed to be: one empty shard, so later stages see a finished stage
        write_parquet(to_table([], PROBLEM), stage.part(0))
        stage.finish(0, {"shard": 0, "rows_in": 0, "rows_out": 0, "rejected": {}, "contaminated_by": {}})
        shard = 1
    _merge_removed(stage, len(cfg.sources))
    stage.plan(shard)  # written last: its presence with every done/ marker means the stage is complete
    totals = _totals(stage.stats())
    log.info("prompts: %s", totals)
    return totals


def _checkpoint(stage: StageDir, k: int) -> Path:
    return stage.path / "state" / f"after-source-{k:03d}.pkl"


def _cut(stage: StageDir, k: int) -> Path:
    """The checkpoint of source k's last shard cut: where in the source a rerun picks up."""
    return stage.path / "state" / f"in-source-{k:03d}.pkl"


def _removed(stage: StageDir, k: int) -> Path:
    """Source k's removed rows, once the source is read to its end."""
    return stage.path / "removed" / f"{k:03d}.jsonl"


def _removed_partial(stage: StageDir, k: int) -> Path:
    """Source k's removed rows while it is read (moved to `_removed` when it ends): named by the source
    alone, as a rerun picks it up at its last cut."""
    return _removed(stage, k).with_suffix(".jsonl.partial")


def _resume_point(stage: StageDir, cfg: PromptsConfig) -> tuple[int, int, Deduplicator, dict | None]:
    """(first source to read, its first shard, the dedup index of everything kept before that shard, and
    where in the source to pick up: None for its start).

    The checkpoints are a few bytes: the index itself is `state/dedup.sqlite`, whose keys carry the shard
    their problem went to, so what a killed shard had added is dropped here."""
    d = cfg.dedup
    dedup = Deduplicator(stage.path / "state" / "dedup.sqlite", d.exact, d.near)

    def valid(path: Path) -> dict | None:
        try:
            state = pickle.loads(path.read_bytes())
        except Exception:  # missing or torn: fall back to an earlier one
            return None
        # an index that lost keys (deleted, or a checkpoint of an older version) cannot judge what follows
        ok = state.get("index_keys") == dedup.keys_before(state["next_shard"]) and all(stage.trusted(i) for i in range(state["next_shard"]))
        return state if ok else None

    first, shard = 0, 0
    for k in reversed(range(len(cfg.sources))):
        state = valid(_checkpoint(stage, k)) if _removed(stage, k).exists() else None
        if state is not None:
            log.info("prompts: sources 1-%d already written, resuming at source %d", k + 1, k + 2)
            first, shard = k + 1, state["next_shard"]
            break
    within = valid(_cut(stage, first)) if first < len(cfg.sources) else None
    removed = _removed_partial(stage, first)
    if within is not None and within["next_shard"] > shard and removed.exists() and removed.stat().st_size >= within["removed_bytes"]:
        log.info("prompts: source %d resumes at shard %d, after %d rows already judged", first + 1, within["next_shard"], within["position"])
        shard = within["next_shard"]
    else:
        within = None
    dedup.forget_from(shard)
    return first, shard, dedup, within


def _run_source(
    stage: StageDir, cfg: PromptsConfig, k: int, quota: int | None, shard: int, dedup: Deduplicator, fingerprint_all, within: dict | None
) -> int:
    """Read source k into shards `shard`, `shard + 1`, ...; return the next free shard index. `within`: the
    checkpoint of a cut to pick up at (its rows already judged are skipped, not fingerprinted)."""
    src = cfg.sources[k]
    label = src.label
    reader = SourceReader(src)
    buffer: list[dict] = []
    counts: Counter = Counter()
    by_benchmark: Counter = Counter()
    rows_in, kept, filtered_before, position = 0, 0, 0, 0
    if within is not None:
        kept, filtered_before, position = within["kept"], within["filtered"], within["position"]

    def flush() -> None:
        nonlocal buffer, counts, by_benchmark, rows_in, shard, filtered_before
        if reader.filtered > filtered_before:
            counts["filtered"] += reader.filtered - filtered_before
            rows_in += reader.filtered - filtered_before
            filtered_before = reader.filtered
        if not stage.trusted(shard):  # a done shard whose part is damaged is written again
            write_parquet(to_table(buffer, PROBLEM), stage.part(shard))
            stats = {
                "rows_in": rows_in,
                "rows_out": len(buffer),
                "rejected": dict(counts),
                "contaminated_by": dict(by_benchmark),
                "source": label,
                "domains": dict(Counter(r["domain"] for r in buffer)),
            }
            stage.finish(shard, {"shard": shard, **stats})
        buffer, counts, by_benchmark, rows_in, shard = [], Counter(), Counter(), 0, shard + 1

    def checkpoint_cut(at: int) -> None:
        """At a cut, once the shard before it is written: the row `at` (counted from the source's start) opens
        the next shard, so a rerun starts by judging it."""
        removed.flush()
        dedup.commit()
        state = {"next_shard": shard, "index_keys": dedup.keys_before(shard), "position": at, "kept": kept,
                 "filtered": filtered_before, "removed_bytes": os.fstat(removed.fileno()).st_size}
        write_bytes(_cut(stage, k), pickle.dumps(state, protocol=5))

    removed_path = _removed(stage, k)
    removed_tmp = _removed_partial(stage, k)
    removed_tmp.parent.mkdir(parents=True, exist_ok=True)
    if within is not None:  # what the killed run wrote after its last cut is judged again
        os.truncate(removed_tmp, within["removed_bytes"])
    rows = _guarded(iter(reader), label, src.source)
    for _ in islice(rows, position):  # judged before the cut: read past, not fingerprinted
        pass
    with open(removed_tmp, "a" if within else "w", encoding="utf-8") as removed:  # streamed to disk: duplicates can be most of a crawl
        for batch, prints in fingerprint_all(_batches(rows, BATCH)):
            dedup.commit()
            for row, (key, near, bench) in zip(batch, prints):
                if quota is not None and kept >= quota:
                    break
                position += 1
                rows_in += 1
                # the shard is full: this row, if kept, opens the next one (cut only when a next row exists,
                # so trailing drops count)
                opens_next = len(buffer) >= cfg.rows_per_shard
                # contamination first: a benchmark copy is removed as such, and never kept as the
                # "earlier copy" that later duplicates would point to
                evidence = {}
                if bench is not None:
                    bench, evidence["ngram"] = bench
                    hit = ("contaminated", bench)
                    by_benchmark[bench.split("/")[0]] += 1
                else:
                    dedup.shard = shard + opens_next  # where it goes if kept
                    hit = dedup.check(row["id"], key, near)
                if hit is not None:
                    reason, match = hit
                    counts[reason] += 1
                    line = {"id": row["id"], "source": label, "reason": reason, "match": match, **evidence, "prompt": row["prompt"][:300]}
                    removed.write(json.dumps(line, ensure_ascii=False) + "\n")
                    continue
                if opens_next:
                    rows_in -= 1  # this row opens the next shard
                    flush()
                    checkpoint_cut(position - 1)
                    rows_in = 1
                buffer.append(row)
                kept += 1
            else:
                continue
            break  # quota reached: the rest of the source is never read
        if buffer or rows_in or reader.filtered > filtered_before:
            flush()
        removed.flush()
        os.fsync(removed.fileno())
    if kept == 0 and not src.allow_empty:
        removed_tmp.unlink(missing_ok=True)
        why = "it has no rows" if reader.read == 0 else f"none of its {reader.read} rows is left after the row filter, dedup and decontamination"
        raise DistillError(f"source '{label}' ({src.source}): no problems: {why} (set allow_empty: true to accept this)")
    if quota is not None and kept < quota:
        log.warning("source '%s': quota %d, but only %d problems are left after filter, dedup and decontamination", label, quota, kept)
    os.replace(removed_tmp, removed_path)
    log.info("source '%s': %d read, %d kept", label, reader.read, kept)
    return shard


def _merge_removed(stage: StageDir, n_sources: int) -> None:
    """removed.jsonl: the removed rows of every source, in source order."""
    def write(tmp):
        with open(tmp, "wb") as out:
            for k in range(n_sources):
                part = _removed(stage, k)
                if part.exists():
                    with open(part, "rb") as f:
                        shutil.copyfileobj(f, out)

    _atomic(stage.path / REMOVED, write)


def _in_order(batches: Iterator[list[dict]], submit, ahead: int) -> Iterator[tuple[list[dict], list]]:
    """(batch, fingerprints) in order, with at most `ahead` batches in flight: memory stays bounded
    (`Pool.imap` would read the whole source ahead). `submit(batch)` starts a batch and returns the
    call that waits for its result."""
    window: deque = deque()
    for batch in batches:
        window.append((batch, submit(batch)))
        if len(window) >= ahead:
            b, result = window.popleft()
            yield b, result()
    while window:
        b, result = window.popleft()
        yield b, result()


def _totals(stats: list[dict]) -> dict:
    """Stage totals, and per source when the mix has several."""
    out = {"shards": len(stats), "rows_in": 0, "rows_out": 0, "rejected": Counter(), "contaminated_by": Counter()}
    by_source: dict[str, dict] = {}
    for s in stats:
        out["rows_in"] += s["rows_in"]
        out["rows_out"] += s["rows_out"]
        out["rejected"].update(s["rejected"])
        out["contaminated_by"].update(s.get("contaminated_by", {}))
        if "source" in s:
            b = by_source.setdefault(s["source"], {"rows_in": 0, "rows_out": 0, "rejected": Counter(), "domains": Counter()})
            b["rows_in"] += s["rows_in"]
            b["rows_out"] += s["rows_out"]
            b["rejected"].update(s["rejected"])
            b["domains"].update(s.get("domains", {}))
    totals = {**out, "rejected": dict(out["rejected"]), "contaminated_by": dict(out["contaminated_by"])}
    if len(by_source) > 1:
        totals["by_source"] = {k: {**v, "rejected": dict(v["rejected"]), "domains": dict(v["domains"])} for k, v in by_source.items()}
    return totals
