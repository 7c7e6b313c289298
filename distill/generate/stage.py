"""The `generate` stage: teacher traces for every problem of the prompts stage, shard by shard.

Output shard i holds every sample of every problem of input shard i. Inside a shard, problems go to
the backend `chunk_size` at a time and each finished chunk is checkpointed to `chunks/i/`, so a killed
worker loses at most one chunk; the merged part, its stats and its done marker are written last.
Shards are claimed (see distill/stage.py), so any number of `distill generate` processes, on one node
or many, can work on the same output directory at once.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from distill.errors import DistillError, where
from distill.generate.backends import Backend, Request, make_backend
from distill.generate.backends.base import Completion, derive_seed
from distill.generate.config import GenerateConfig
from distill.generate.progress import RowProgress
from distill.generate.prompting import NO_THINK_PREFIX, THINK_PREFIX, messages_for, split_think
from distill.io import read_json, read_parquet, read_parquets, write_json, write_parquet
from distill.records import PROBLEM, TRACE, conform, to_json, to_table
from distill.stage import StageDir, run_shards

log = logging.getLogger(__name__)

# One engine per process, built on first use and kept across shards: a vLLM start-up is 20-35 s here
# and minutes for R1 on 8 GPUs. Keyed by the backend part of the config.
_ENGINES: dict[str, Backend] = {}
# Set by `run` when shards run in this process: the chunk loop reports rows and tokens to it.
_PROGRESS: RowProgress | None = None


def _engine_key(cfg: GenerateConfig) -> str:
    return cfg.model_dump_json(include={"backend", "model", "vllm", "openai", "transformers", "toy"})


def _engine(cfg: GenerateConfig) -> Backend:
    key = _engine_key(cfg)
    if key not in _ENGINES:
        _pin_data_parallel_gpus(cfg)
        _ENGINES[key] = make_backend(cfg)
    return _ENGINES[key]


def _pin_data_parallel_gpus(cfg: GenerateConfig) -> None:
    """vLLM data parallelism = one engine per pool worker, each on its own `tensor_parallel_size` GPUs.

    Pool workers are numbered from 1 by multiprocessing; worker k takes GPU group (k-1) mod dp.
    """
    import multiprocessing

    dp, tp = cfg.vllm.data_parallel_size, cfg.vllm.tensor_parallel_size
    identity = multiprocessing.current_process()._identity
    if cfg.backend != "vllm" or dp <= 1 or not identity:
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = visible.split(",") if visible else [str(g) for g in range(dp * tp)]
    slot = (identity[0] - 1) % dp
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus[slot * tp : (slot + 1) * tp])
    log.info("data-parallel engine %d/%d on GPUs %s", slot + 1, dp, os.environ["CUDA_VISIBLE_DEVICES"])


def _accepted(row: dict) -> bool | None:
    """Whether a trace is verified correct (None: cannot tell, e.g. no reference or not math)."""
    from distill.verify.math import verify_math

    if row["domain"] not in ("math", "science") or not row.get("answer"):
        return None
    if row["reasoning"] is None:  # broken <think> tags: the filter would reject it anyway
        return False
    return verify_math(row["completion"], row["answer"]).correct


def _rows(problem: dict, samples: list[Completion], first_idx: int, cfg: GenerateConfig, backend: Backend, at: str) -> list[dict]:
    sampling = to_json({**cfg.sampling.model_dump(), "n": cfg.samples_per_prompt, "force_think": cfg.force_think})
    rows = []
    for j, c in enumerate(samples):
        reasoning, response = split_think(c.text)
        rows.append(
            {
                **problem,
                "sample_idx": first_idx + j,
                "teacher": cfg.teacher,
                "completion": c.text,
                "reasoning": reasoning,
                "response": response,
                "finish_reason": c.finish_reason,
                "prompt_tokens": c.prompt_tokens,
                "completion_tokens": c.completion_tokens,
                "sampling": sampling,
                "backend": backend.name,
                "backend_version": backend.version,
                "prompt_template": cfg.prompt_template,
                "generated_at": at,
            }
        )
    return rows


def _nonreasoning_rows(problems: list[dict], cfg: GenerateConfig, backend: Backend) -> tuple[list[dict], list[dict]]:
    """Rows of the non-reasoning problems of the mix, and the problems left for reasoning traces.

    An imported reply (`metadata.reply`, empty think block included) becomes the one row of its problem as
    it is, with no teacher call; a `nonreasoning: teacher` problem gets one teacher sample with thinking off
    (the response forced to start with an empty think block)."""
    meta = {p["id"]: json.loads(p["metadata"]) if p.get("metadata") and "nonreasoning" in p["metadata"] else {} for p in problems}
    rows: list[dict] = []
    at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    imported = [p for p in problems if meta[p["id"]].get("nonreasoning") == "imported"]
    for p in imported:
        row = _rows(p, [Completion(meta[p["id"]]["reply"], "stop")], 0, cfg, backend, at)[0]
        rows.append({**row, "teacher": p["source"], "backend": "imported", "backend_version": None, "prompt_tokens": None, "completion_tokens": None})
    off = [p for p in problems if meta[p["id"]].get("nonreasoning") == "teacher"]
    if off:
        requests = [Request(p["id"], messages_for(p["prompt"], p["domain"], cfg.prompt_template), NO_THINK_PREFIX) for p in off]
        for p, samples in zip(off, backend.generate(requests, cfg.sampling.to_sampling(1))):
            rows += _rows(p, samples, 0, cfg, backend, at)
    return rows, [p for p in problems if not meta[p["id"]].get("nonreasoning")]


def _sample_chunk(problems: list[dict], cfg: GenerateConfig, backend: Backend) -> tuple[list[dict], Counter]:
    """All rows of these problems; with a budget, in rounds until each has `budget.accept` correct traces."""
    prefix = THINK_PREFIX if cfg.force_think else ""
    rows, problems = _nonreasoning_rows(problems, cfg, backend)
    requests = {p["id"]: Request(p["id"], messages_for(p["prompt"], p["domain"], cfg.prompt_template), prefix) for p in problems}
    by_id = {p["id"]: p for p in problems}
    cap, want = cfg.samples_per_prompt, cfg.budget.accept
    step = cap if want is None else cfg.budget.round_size
    taken, correct = Counter(), Counter()
    active = list(by_id)
    rnd = 0
    while active:
        n = min(step, cap - taken[active[0]])  # every active problem has taken the same number of samples
        # Each round its own seed (round 0 the base one), so later rounds draw new samples.
        seed = cfg.sampling.seed if rnd == 0 else derive_seed(cfg.sampling.seed, "round", rnd)
        sampling = replace(cfg.sampling.to_sampling(n), seed=seed)
        outs = backend.generate([requests[i] for i in active], sampling)
        at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for pid, samples in zip(active, outs):
            new = _rows(by_id[pid], samples, taken[pid], cfg, backend, at)
            if want is not None:
                correct[pid] += sum(bool(_accepted(r)) for r in new)
            taken[pid] += len(new)
            rows += new
        active = [pid for pid in active if taken[pid] < cap and (want is None or correct[pid] < want)]
        rnd += 1
    stats = Counter(
        rows_in=len(problems) + len({r["id"] for r in rows if r["id"] not in by_id}),
        rows_out=len(rows),
        prompt_tokens=sum(r["prompt_tokens"] or 0 for r in rows),
        completion_tokens=sum(r["completion_tokens"] or 0 for r in rows),
        **{f"finish_{r}": n for r, n in Counter(r["finish_reason"] for r in rows).items()},
    )
    if want is not None:
        stats["accepted"] = sum(min(correct[p], want) for p in by_id)
        stats["problems_at_budget"] = sum(correct[p] >= want for p in by_id)
        stats["rounds"] = rnd
    return rows, stats


def _read_problems(path: Path) -> list[dict]:
    try:
        problems = conform(read_parquet(path), PROBLEM).to_pylist()
    except DistillError as e:
        raise DistillError(f"{path}: {e}") from None
    for row, p in enumerate(problems, start=1):
        for field in ("id", "prompt", "domain"):
            if not p[field]:
                raise DistillError(f"{where(path, row, field)}: required, but empty")
    return problems


def generate_shard(cfg: GenerateConfig, inp: Path, out: Path, i: int) -> dict:
    """Write output shard i from input shard i, resuming from its finished chunks; return its counters."""
    src, stage = StageDir(inp), StageDir(out)
    problems = _read_problems(src.part(i))
    chunk_dir = stage.chunks(i)
    backend = None
    stats: Counter = Counter()
    tables: list[pa.Table] = []
    for c, start in enumerate(range(0, len(problems), cfg.chunk_size)):
        part, meta = chunk_dir / f"{c:05d}.parquet", chunk_dir / f"{c:05d}.json"
        if part.exists():  # checkpointed by an earlier, killed run; its stats were written just before it
            chunk_stats = Counter(read_json(meta, "chunk stats file"))
            tables.append(read_parquet(part))
            stats.update(chunk_stats)
            stats["chunks_resumed"] += 1
            continue
        backend = backend or _engine(cfg)
        t0 = time.time()
        rows, chunk_stats = _sample_chunk(problems[start : start + cfg.chunk_size], cfg, backend)
        chunk_stats["generate_seconds"] = round(time.time() - t0, 3)
        table = to_table(rows, TRACE)
        write_json(meta, dict(chunk_stats))  # stats first: a chunk counts only once its Parquet exists
        write_parquet(table, part)
        tables.append(table)
        stats.update(chunk_stats)
        if _PROGRESS is not None:
            _PROGRESS.advance(chunk_stats["rows_out"], chunk_stats["completion_tokens"])
        else:
            log.info("shard %d chunk %d: %d rows, %d tokens", i, c, chunk_stats["rows_out"], chunk_stats["completion_tokens"])
    write_parquet(pa.concat_tables(tables) if tables else TRACE.empty_table(), stage.part(i))
    stats.setdefault("rows_in", len(problems))
    stats.setdefault("rows_out", 0)
    # Which worker wrote the shard: for a Slurm array or a Ray cluster, the first question after a bad shard.
    return {**stats, "backend": backend.name if backend else cfg.backend, "host": socket.gethostname(), "pid": os.getpid()}


def _clean_chunks(stage: StageDir) -> None:
    """Drop the checkpoints of shards whose part is final (done marker written)."""
    for i in stage.done_shards():
        shutil.rmtree(stage.chunks(i), ignore_errors=True)


def summarize(stage: StageDir, seconds: float, tokens_this_run: int) -> dict:
    """Totals over every finished shard, plus this run's throughput and the budget's cost per accepted trace."""
    total: Counter = Counter()
    for s in stage.stats():
        total.update({k: v for k, v in s.items() if isinstance(v, (int, float)) and k not in ("shard", "pid")})
    summary = {
        "shards_done": len(stage.done_shards()),
        "shards_total": stage.planned() or 0,
        "problems": int(total["rows_in"]),
        "rows": int(total["rows_out"]),
        "prompt_tokens": int(total["prompt_tokens"]),
        "completion_tokens": int(total["completion_tokens"]),
        "finish_reasons": {k[7:]: int(v) for k, v in total.items() if k.startswith("finish_")},
        "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens_this_run / seconds, 1) if seconds > 0 else 0.0,
    }
    if "accepted" in total:
        acc = int(total["accepted"])
        summary["budget"] = {
            "accepted": acc,
            "problems_at_budget": int(total["problems_at_budget"]),
            "samples_per_accepted": round(total["rows_out"] / acc, 3) if acc else None,
            "tokens_per_accepted": round(total["completion_tokens"] / acc, 1) if acc else None,
        }
    return summary


def run(
    cfg: GenerateConfig,
    inp: Path,
    out: Path,
    *,
    workers: int = 1,
    rank: int = 0,
    world_size: int = 1,
    executor: str = "local",
    backend: Backend | None = None,
) -> dict:
    """Generate traces for every unfinished shard of this rank; return a summary of the whole stage.

    `backend` reuses an engine that is already running (tests and benchmarks); otherwise each process
    builds one from `cfg` on its first chunk. With vLLM `data_parallel_size` > 1, that many local
    worker processes each run an engine.
    """
    global _PROGRESS
    if executor not in ("local", "ray"):
        raise DistillError(f"--executor must be 'local' or 'ray', got {executor!r}")
    src, stage = StageDir(inp), StageDir(out)
    n_shards = src.require_complete("prompts")
    stage.prepare({**cfg.identity(), "input_config": src.config_hash() or str(Path(inp).resolve())})
    _clean_chunks(stage)
    if backend is not None:
        _ENGINES[_engine_key(cfg)] = backend
    if cfg.backend == "vllm" and executor == "local":
        # One engine per pool worker, each pinned to its own GPUs: more workers would share GPUs.
        workers = cfg.vllm.data_parallel_size

    todo = [i for i in range(n_shards)[rank::world_size] if not stage.is_done(i)]
    expected = sum(pq.read_metadata(src.part(i)).num_rows for i in todo) * cfg.samples_per_prompt
    in_process = executor == "local" and (workers <= 1 or len(todo) <= 1)
    start = time.time()
    with RowProgress(expected, enabled=in_process) as progress:
        _PROGRESS = progress if in_process else None
        try:
            results = run_shards(
                stage,
                n_shards,
                partial(generate_shard, cfg, Path(inp), Path(out)),
                workers=workers,
                rank=rank,
                world_size=world_size,
                desc=f"generate ({cfg.backend})",
                executor=executor,
                ray_options=_ray_options(cfg),
            )
        finally:
            _PROGRESS = None
            # Drop this process's engine: an injected one belongs to the caller; one built here is closed,
            # so the stages after this one in `distill run` get the memory back.
            engine = _ENGINES.pop(_engine_key(cfg), None)
            if engine is not None and backend is None:
                engine.close()
    _clean_chunks(stage)
    summary = summarize(stage, time.time() - start, sum(int(s.get("completion_tokens", 0)) for s in results))
    summary["shards_this_run"] = len(results)
    log.info("generate: %s", describe(summary))
    return summary


def describe(summary: dict) -> str:
    """One human line for the end of a run."""
    s = summary
    finish = ", ".join(f"{k} {v:,}" for k, v in sorted(s["finish_reasons"].items()))
    line = (
        f"{s['shards_done']}/{s['shards_total']} shards done ({s['shards_this_run']} this run), {s['rows']:,} traces of "
        f"{s['problems']:,} problems, {s['completion_tokens']:,} completion tokens, {s['tokens_per_s']:,.0f} tok/s this run; "
        f"finish: {finish or '-'}"
    )
    if "budget" in s:
        b = s["budget"]
        line += (
            f"; budget: {b['accepted']:,} accepted, {b['samples_per_accepted']} samples and "
            f"{b['tokens_per_accepted']:,} tokens per accepted trace"
        )
    return line


def _ray_options(cfg: GenerateConfig) -> dict:
    """Resources of one shard task: the GPUs of one engine for vLLM, one CPU otherwise."""
    return {"num_gpus": cfg.vllm.tensor_parallel_size} if cfg.backend == "vllm" else {"num_cpus": 1}


def read_traces(out: Path) -> pa.Table:
    """Every finished trace row of a generate stage directory, in shard order."""
    return read_parquets(StageDir(out).parts())
