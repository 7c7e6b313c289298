"""The `generate` stage: teacher traces for every problem of the prompts stage, shard by shard.

Output shard i holds every sample of every problem of input shard i. Inside a shard, every problem's
requests stream through the engine (distill/generate/stream.py): the engine stays full across chunk
boundaries, and every `chunk_size` finished problems are checkpointed to `chunks/i/`, so a killed
worker loses at most one chunk and what was in flight; the merged part, its stats and its done marker
are written last. Shards are claimed (see distill/stage.py), so any number of `distill generate`
processes, on one node or many, can work on the same output directory at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from distill import engines
from distill.errors import DistillError, where
from distill.generate.backends import Backend, Request
from distill.generate.backends.base import Completion, derive_seed
from distill.generate.config import GenerateConfig
from distill.generate.progress import RowProgress
from distill.generate.prompting import NO_THINK_PREFIX, THINK_PREFIX, messages_for
from distill.generate.stream import ChunkedRun, Job, ShardStream
from distill.hub import require_model
from distill.io import read_parquet, read_parquets, write_parquet
from distill.records import PROBLEM, TRACE, conform, to_json
from distill.stage import StageDir, run_shards
from distill.think import split_think

log = logging.getLogger(__name__)

# Set by `run` when shards run in this process: the loop reports rows, tokens and spend to it.
_PROGRESS: RowProgress | None = None


def _accepted(row: dict) -> bool | None:
    """Whether a trace is verified correct (None: cannot tell, e.g. no reference or not math)."""
    from distill.verify.math import verify_math

    if row["domain"] not in ("math", "science") or not row.get("answer"):
        return None
    if row["reasoning"] is None:  # broken <think> tags: the filter would reject it anyway
        return False
    return verify_math(row["completion"], row["answer"]).correct


def _row(problem: dict, c: Completion, idx: int, cfg: GenerateConfig, backend: Backend, sampling: str, at: str) -> dict:
    x = c.extra
    if "reasoning" in x:  # the API sent the reasoning in its own field: no need to re-split the text
        reasoning, response = x["reasoning"], x["response"]
    else:
        reasoning, response = split_think(c.text)
    price = cfg.openai.price if cfg.backend == "openai" else None
    cost = None
    if price is not None and c.finish_reason != "error":
        cost = price.cost(c.prompt_tokens, c.completion_tokens, x.get("cached_tokens") or 0)
    return {
        **problem,
        "sample_idx": idx,
        "teacher": cfg.teacher or x.get("served_model") or cfg.model,
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
        "served_model": x.get("served_model"),
        "system_fingerprint": x.get("system_fingerprint"),
        "cached_tokens": x.get("cached_tokens"),
        "reasoning_tokens": x.get("reasoning_tokens"),
        "cost_usd": cost,
        "error": x.get("error"),
    }


class GenerateShard(ChunkedRun):
    """One shard's traces: n samples per problem, or rounds of `budget.round_size` until `budget.accept`
    correct ones; optionally one longer retry of each sample cut at max_tokens."""

    def __init__(self, cfg: GenerateConfig, backend: Backend, problems: list[dict], chunk_dir: Path, spend: Spend):
        max_attempts = cfg.openai.max_attempts if cfg.backend == "openai" else 1
        super().__init__(backend, problems, chunk_dir, TRACE, chunk_items=cfg.chunk_size, max_attempts=max_attempts)
        self.cfg = cfg
        self.prefix = THINK_PREFIX if cfg.force_think else ""
        self.rounds: Counter = Counter()
        self.regenerated: set[tuple[int, int]] = set()
        self.spend = spend
        self.started = time.time()
        self.sampling_json = to_json({**cfg.sampling.model_dump(), "n": cfg.samples_per_prompt, "force_think": cfg.force_think})

    def _round(self, item: int, first_idx: int) -> Job:
        cfg, rnd = self.cfg, self.rounds[item]
        step = cfg.samples_per_prompt if cfg.budget.accept is None else cfg.budget.round_size
        n = min(step, cfg.samples_per_prompt - first_idx)
        # Each round its own seed (round 0 the base one), so later rounds draw new samples.
        seed = cfg.sampling.seed if rnd == 0 else derive_seed(cfg.sampling.seed, "round", rnd)
        self.rounds[item] += 1
        return Job(item, first_idx, self._request(item), replace(cfg.sampling.to_sampling(n), seed=seed))

    def _request(self, item: int) -> Request:
        p = self.items[item]
        return Request(p["id"], messages_for(p["prompt"], p["domain"], self.cfg.prompt_template), self.prefix)

    def _nonreasoning(self, item: int) -> dict:
        """The mix's note on a non-reasoning problem (`metadata.nonreasoning`: imported | teacher); {} otherwise."""
        meta = self.items[item].get("metadata")
        return json.loads(meta) if meta and "nonreasoning" in meta else {}

    def ready_rows(self, item: int) -> list[dict] | None:
        """An imported reply (`metadata.reply`, empty think block included) is the one row of its problem, as it is."""
        note = self._nonreasoning(item)
        if note.get("nonreasoning") != "imported":
            return None
        p = self.items[item]
        row = self.rows(Job(item, 0, self._request(item), self.cfg.sampling.to_sampling(1)), [Completion(note["reply"], "stop")])[0]
        return [{**row, "teacher": p["source"], "backend": "imported", "backend_version": None, "prompt_tokens": None,
                 "completion_tokens": None, "attempts": None}]  # fmt: skip

    def first_jobs(self, item: int) -> list[Job]:
        self.rounds[item] = 0
        if self._nonreasoning(item).get("nonreasoning") == "teacher":
            # One teacher sample with thinking off: the response forced to start with an empty think block.
            request = replace(self._request(item), prefix=NO_THINK_PREFIX)
            return [Job(item, 0, request, self.cfg.sampling.to_sampling(1))]
        return [self._round(item, 0)]

    def rows(self, job: Job, completions: list[Completion]) -> list[dict]:
        at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        p = self.items[job.item]
        return [_row(p, c, job.first_idx + j, self.cfg, self.backend, self.sampling_json, at) for j, c in enumerate(completions)]

    def more(self, item: int, rows: list[dict]) -> list[Job]:
        cfg, want = self.cfg, self.cfg.budget.accept
        if self._nonreasoning(item):
            return []
        if want is not None and len(rows) < cfg.samples_per_prompt:
            correct = sum(bool(_accepted(r)) for r in rows)
            if correct < want:
                return [self._round(item, len(rows))]
        if cfg.regenerate_truncated is None:
            return []
        jobs = []
        for r in rows:
            key = (item, r["sample_idx"])
            if r["finish_reason"] == "length" and key not in self.regenerated:
                self.regenerated.add(key)
                sampling = replace(cfg.sampling.to_sampling(1), max_tokens=cfg.regenerate_truncated,
                                   seed=derive_seed(cfg.sampling.seed, "longer", r["sample_idx"]))
                jobs.append(Job(item, r["sample_idx"], self._request(item), sampling))
        return jobs

    def on_finished(self, item: int, rows: list[dict]) -> None:
        stats = Counter(rounds=self.rounds[item], regenerated=sum((item, r["sample_idx"]) in self.regenerated for r in rows))
        if self.cfg.budget.accept is not None:
            correct = sum(bool(_accepted(r)) for r in rows)
            stats.update(accepted=min(correct, self.cfg.budget.accept), problems_at_budget=int(correct >= self.cfg.budget.accept))
        self.item_stats[item] = stats
        cost = sum(r["cost_usd"] or 0.0 for r in rows)
        self.spend.usd += cost
        if _PROGRESS is not None:
            _PROGRESS.advance(len(rows), sum(r["completion_tokens"] or 0 for r in rows), cost)

    def stop_reason(self) -> str | None:
        cap = self.cfg.openai.max_spend_usd if self.cfg.backend == "openai" else None
        if cap is not None and self.spend.usd >= cap:
            return f"openai.max_spend_usd: spent ${self.spend.usd:,.2f} of the ${cap:,.2f} cap; finished rows are saved, rerun with a higher cap to go on"
        return None


def _table_stats(table: pa.Table) -> Counter:
    rows = table.select(["finish_reason", "prompt_tokens", "completion_tokens", "cost_usd"]).to_pylist()
    return Counter(
        rows_out=len(rows),
        prompt_tokens=sum(r["prompt_tokens"] or 0 for r in rows),
        completion_tokens=sum(r["completion_tokens"] or 0 for r in rows),
        cost_usd=sum(r["cost_usd"] or 0.0 for r in rows),
        **{f"finish_{k}": n for k, n in Counter(r["finish_reason"] for r in rows).items()},
    )


def _spent(stage: StageDir) -> float:
    return sum(float(s.get("cost_usd", 0.0)) for s in stage.stats())


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


class Spend:
    """USD of the whole stage so far, as this process knows it: finished shards, and what its open shards spent."""

    def __init__(self, usd: float):
        self.usd = usd


@dataclass
class GenerateShards(ShardStream):
    """Output shard i from input shard i, resuming from its checkpoints (see ShardStream)."""

    cfg: GenerateConfig
    inp: Path
    out: Path
    spend: Spend | None = None  # shared by the shards this copy of the task opens

    def open(self, i: int) -> GenerateShard:
        stage = StageDir(self.out)
        problems = _read_problems(StageDir(self.inp).part(i))
        self.spend = self.spend or Spend(_spent(stage))
        return GenerateShard(self.cfg, engines.engine(self.cfg), problems, stage.chunks(i), self.spend)

    def close(self, i: int, run: GenerateShard, table: pa.Table) -> dict:
        write_parquet(table, StageDir(self.out).part(i))
        stats = Counter(rows_in=len(run.items), generate_seconds=round(time.time() - run.started, 3), chunks_resumed=run.resumed_chunks)
        stats.update(_table_stats(table))
        stats.update(run.saved_stats())
        stats["cost_usd"] = round(stats["cost_usd"], 6)
        # Which worker wrote the shard: for a Slurm array or a Ray cluster, the first question after a bad shard.
        return {**stats, "backend": run.backend.name, "host": socket.gethostname(), "pid": os.getpid()}


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
        "cost_usd": round(float(total["cost_usd"]), 4),
        "finish_reasons": {k[7:]: int(v) for k, v in total.items() if k.startswith("finish_")},
        "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens_this_run / seconds, 1) if seconds > 0 else 0.0,
    }
    if total["regenerated"]:  # samples cut at max_tokens that got their longer try (regenerate_truncated)
        summary["regenerated"] = int(total["regenerated"])
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
    leave_held: bool = False,
) -> dict:
    """Generate traces for every unfinished shard of this rank; return a summary of the whole stage.

    `backend` reuses an engine that is already running (tests and benchmarks); otherwise each process
    builds one from `cfg` on its first chunk. With vLLM `data_parallel_size` > 1, that many local
    worker processes each run an engine.
    """
    global _PROGRESS
    src, stage = StageDir(inp), StageDir(out)
    n_shards = src.require_complete("prompts")
    if cfg.backend in ("transformers", "vllm"):
        require_model(cfg.model, "teacher")  # before the output directory is made
    stage.prepare({**cfg.identity(), "input_config": src.config_hash() or str(Path(inp).resolve())})
    _clean_chunks(stage)
    if cfg.backend == "vllm" and executor == "local":
        # One engine per pool worker, each pinned to its own GPUs: more workers would share GPUs.
        workers = cfg.vllm.data_parallel_size

    todo = [i for i in range(n_shards)[rank::world_size] if not stage.trusted(i)]
    expected = sum(pq.read_metadata(src.part(i)).num_rows for i in todo) * cfg.samples_per_prompt
    in_process = executor == "local" and (workers <= 1 or len(todo) <= 1)
    start = time.time()
    lent = engines.lend(cfg, backend) if backend is not None else contextlib.nullcontext()
    with RowProgress(expected, enabled=in_process, spent=_spent(stage)) as progress, lent:
        _PROGRESS = progress if in_process else None
        try:
            results = run_shards(
                stage,
                n_shards,
                GenerateShards(cfg, Path(inp), Path(out)),
                workers=workers,
                rank=rank,
                world_size=world_size,
                desc=f"generate ({cfg.backend})",
                executor=executor,
                ray_options=ray_options(cfg),
                leave_held=leave_held,
            )
        finally:
            _PROGRESS = None
            # The stages after this one in `distill run` get the memory back (a lent engine stays the caller's).
            engines.release()
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
    if s["cost_usd"]:
        line += f"; spent ${s['cost_usd']:,.2f}"
    if "budget" in s:
        b = s["budget"]
        line += (
            f"; budget: {b['accepted']:,} accepted, {b['samples_per_accepted']} samples and "
            f"{b['tokens_per_accepted']:,} tokens per accepted trace"
        )
    return line


def ray_options(cfg: GenerateConfig) -> dict:
    """Resources of one shard task: the GPUs of one engine for vLLM, one CPU otherwise. An engine on vLLM's Ray
    executor (pipeline parallel across nodes) gets TP x PP one-GPU bundles its workers take; any other engine runs
    inside the task on its TP GPUs of one node."""
    if cfg.backend != "vllm":
        return {"num_cpus": 1}
    extra = cfg.vllm.model_extra or {}
    if extra.get("distributed_executor_backend") == "ray":
        return {"gpu_bundles": cfg.vllm.tensor_parallel_size * extra.get("pipeline_parallel_size", 1)}
    return {"num_gpus": cfg.vllm.tensor_parallel_size}


def read_traces(out: Path) -> pa.Table:
    """Every finished trace row of a generate stage directory, in shard order."""
    return read_parquets(StageDir(out).parts())
