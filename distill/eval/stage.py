"""The eval stage: k samples per benchmark problem from one model, every raw sample kept, then scores.

Output directory (05_eval/<model>/):
    config.json                  protocol, model and the shard plan; a rerun with another refuses
    problems/<benchmark>.parquet the problems as evaluated (so rescoring needs nothing else)
    part-*.parquet               EVAL_SAMPLE rows, one shard = up to `problems_per_shard` problems
    chunks/<shard>/*.parquet     in-shard checkpoints, merged into the part when the shard is done
    scores.json                  written once every shard is done (and by `rescore`)
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import time
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distill import engines
from distill.errors import DistillError
from distill.eval.benchmarks import BenchmarkSpec, load_benchmark, load_spec
from distill.eval.config import EvalConfig, ModelSpec
from distill.eval.scores import summarize
from distill.eval.scoring import score
from distill.generate.config import BackendConfig
from distill.generate.backends.base import Request, Sampling
from distill.generate.prompting import THINK_PREFIX, messages_for
from distill.generate.stream import ChunkedRun, Job
from distill.io import read_parquet, write_json, write_parquet
from distill.records import EVAL_SAMPLE, PROBLEM, content_id, to_table
from distill.stage import StageDir, run_shards

log = logging.getLogger(__name__)

# Fields of a ModelSpec that only label the report; the rest change what is sampled.
_LABEL_FIELDS = {"baseline", "baseline_of", "r1_reference"}


def resolved_specs(cfg: EvalConfig) -> list[BenchmarkSpec]:
    """Each benchmark's spec with the config's overrides (k, max_tokens, source, toy) applied."""
    specs = []
    for name in cfg.benchmarks:
        spec = load_spec(name)
        o = cfg.overrides.get(spec.name)
        if o is not None and o.source is not None:
            spec = load_spec(name, source=o.source)
        update = {}
        if cfg.max_tokens is not None:
            update["max_tokens"] = cfg.max_tokens
        if o is not None:
            update.update({f: getattr(o, f) for f in ("k", "max_tokens", "toy") if getattr(o, f) is not None})
        specs.append(spec.model_copy(update=update))
    unknown = set(cfg.overrides) - {s.name for s in specs}
    if unknown:
        raise DistillError(f"overrides name benchmark(s) not in the eval: {sorted(unknown)}")
    return specs


def protocol(cfg: EvalConfig, spec: BenchmarkSpec, problem_ids: list[str]) -> dict:
    """Everything that must match for two models' scores on this benchmark to be comparable."""
    return {
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "max_tokens": spec.max_tokens,
        "k": spec.k,
        "seed": cfg.seed,
        "problems_per_chunk": cfg.problems_per_chunk,  # the transformers backend seeds per batch
        "template": spec.template,
        "system_prompt": None,
        "prefix": THINK_PREFIX if cfg.force_think else "",
        "scorer": spec.scorer,
        "n_problems": len(problem_ids),
        "problems_hash": content_id(*sorted(problem_ids)),
    }


def _plan(cfg: EvalConfig, specs: list[BenchmarkSpec], counts: dict[str, int]) -> list[list]:
    """Shards as [benchmark, first problem, end]: deterministic from the config and the problems."""
    shards = []
    for spec in specs:
        n = counts[spec.name]
        shards += [[spec.name, a, min(a + cfg.problems_per_shard, n)] for a in range(0, n, cfg.problems_per_shard)]
    return shards


def run(cfg: EvalConfig, model: ModelSpec, out: Path, *, workers: int = 1, rank: int = 0, world_size: int = 1) -> dict:
    """Sample, keep and score; return the scores (also written to out/scores.json).

    With rank/world_size, this worker runs its share of shards; scores are written by whichever
    worker finds every shard done (or later by `rescore`).
    """
    out = Path(out)
    stage = StageDir(out)
    specs = resolved_specs(cfg)
    problems = {}
    for spec in specs:
        limit = cfg.overrides[spec.name].limit if spec.name in cfg.overrides else None
        problems[spec.name] = load_benchmark(spec, limit=limit)
    shards = _plan(cfg, specs, {n: len(p) for n, p in problems.items()})
    config = {
        # EvalConfig's own fields only: a pipeline's eval section also lists every model, and adding
        # a model must not invalidate the others' finished samples
        "eval": cfg.model_dump(mode="json", include=set(EvalConfig.model_fields)),
        "model": model.model_dump(mode="json", exclude=_LABEL_FIELDS),
        "benchmarks": {
            s.name: {"spec": s.model_dump(mode="json"), "protocol": protocol(cfg, s, [p["id"] for p in problems[s.name]])}
            for s in specs
        },
        "shards": shards,
    }
    stage.prepare(config)
    for spec in specs:
        path = out / "problems" / f"{spec.name}.parquet"
        if not path.exists():
            write_parquet(to_table(problems[spec.name], PROBLEM), path)
    if model.backend == "vllm":
        workers = 1  # one engine takes the model's GPUs; a second worker would share them
    try:
        run_shards(stage, len(shards), partial(_run_shard, str(out), model.model_dump(mode="json")),
                   workers=workers, rank=rank, world_size=world_size, desc=f"eval {model.name}")
    finally:
        engines.release()  # the next model's engine must not start while this one holds the device
        _close_scoring_pool()
    if not stage.is_complete():
        log.info("%s: not every shard is done yet (other ranks?); scores are written when they are", out)
        return {}
    return write_scores(out, model)


def _sampling(cfg: dict, proto: dict) -> Sampling:
    # Backends derive each sample's seed from (seed, problem id, sample index), never from the model:
    # distilled and baseline models draw with the same seeds on the same problems.
    return Sampling(temperature=cfg["temperature"], top_p=cfg["top_p"], max_tokens=proto["max_tokens"], n=proto["k"], seed=cfg["seed"])


def sample_rows(problems: list[dict], completions: list[list], *, benchmark: str, model: str, scorer: str) -> list[dict]:
    """EVAL_SAMPLE rows for each problem's completions, scored."""
    rows = []
    for p, comps in zip(problems, completions):
        verdicts = score(scorer, [c.text for c in comps], p["answer"], p["tests"])
        for j, (c, (extracted, correct)) in enumerate(zip(comps, verdicts)):
            rows.append({
                "benchmark": benchmark, "problem_id": p["id"], "model": model, "sample_idx": j,
                "answer": p["answer"], "completion": c.text, "extracted": extracted, "correct": correct,
                "finish_reason": c.finish_reason, "completion_tokens": c.completion_tokens,
            })
    return rows


class EvalShard(ChunkedRun):
    """One shard's samples: k per problem, streamed through the engine, scored in a worker pool as
    each chunk of finished problems is checkpointed."""

    item_field = "problem_id"

    def __init__(self, backend, problems: list[dict], chunk_dir: Path, *, cfg: dict, spec: dict, proto: dict, model: str, pool):
        super().__init__(backend, problems, chunk_dir, EVAL_SAMPLE, chunk_items=cfg["problems_per_chunk"])
        self.cfg, self.spec, self.proto, self.model, self.pool = cfg, spec, proto, model, pool

    def first_jobs(self, item: int) -> list[Job]:
        p = self.items[item]
        request = Request(id=p["id"], messages=messages_for(p["prompt"], p["domain"], self.spec["template"]), prefix=self.proto["prefix"])
        return [Job(item, 0, request, _sampling(self.cfg, self.proto))]

    def rows(self, job: Job, completions: list) -> list[dict]:
        pid = self.items[job.item]["id"]
        return [{"problem_id": pid, "sample_idx": job.first_idx + j, "finish_reason": c.finish_reason, "raw": c} for j, c in enumerate(completions)]

    def finalize(self, rows: list[dict]) -> list[dict]:
        """Score each problem's samples in the pool (math-verify is CPU work the engine's process should not wait on)."""
        groups: dict[str, list[dict]] = {}
        for r in rows:
            groups.setdefault(r["problem_id"], []).append(r)
        futures = [
            self.pool.submit(sample_rows, [self.items[self.index[pid]]], [[r["raw"] for r in group]],
                             benchmark=self.spec["name"], model=self.model, scorer=self.spec["scorer"])
            for pid, group in groups.items()
        ]  # fmt: skip
        scored = []
        for (pid, group), future in zip(groups.items(), futures):
            for raw, row in zip(group, future.result()):
                scored.append({**row, "sample_idx": raw["sample_idx"]})  # a retried sample keeps its index
        return scored


class _Inline:
    """`submit` that runs at once: scoring for backends that generate in this process anyway (toy, transformers)."""

    def submit(self, fn, *args, **kwargs):
        from concurrent.futures import Future

        f = Future()
        f.set_result(fn(*args, **kwargs))
        return f


_POOL = None


def _scoring_pool(backend: str):
    """Where samples are scored. While a vLLM engine or an endpoint generates, in worker processes started
    fresh (spawn: never forked from a process running an engine), kept for the run; otherwise inline."""
    global _POOL
    if backend not in ("vllm", "openai"):
        return _Inline()
    if _POOL is None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        _POOL = ProcessPoolExecutor(max_workers=max(1, min(4, (os.cpu_count() or 2) - 1)), mp_context=multiprocessing.get_context("spawn"))
    return _POOL


def _close_scoring_pool() -> None:
    global _POOL
    if _POOL is not None:
        _POOL.shutdown()
        _POOL = None


def _run_shard(out: str, model: dict, i: int) -> dict:
    """Shard i: stream its problems through the engine (finished chunks checkpointed), merge into the part, return counters."""
    stage = StageDir(Path(out))
    config = stage.config()
    bench, start, end = config["shards"][i]
    spec = config["benchmarks"][bench]["spec"]
    proto = config["benchmarks"][bench]["protocol"]
    cfg = config["eval"]
    problems = read_parquet(stage.path / "problems" / f"{bench}.parquet").slice(start, end - start).to_pylist()
    chunk_dir = stage.chunks(i)
    if not stage.part(i).exists():  # a part without its done marker is complete: it was written atomically
        backend = engines.engine(BackendConfig(**{f: model[f] for f in BackendConfig.model_fields}))
        t0 = time.time()
        pool = _scoring_pool(model["backend"])
        table = EvalShard(backend, problems, chunk_dir, cfg=cfg, spec=spec, proto=proto, model=model["name"], pool=pool).run()
        took = time.time() - t0
        tokens = int(pc.sum(table.column("completion_tokens")).as_py() or 0)
        log.info("%s shard %d: %d problems, %d samples in %.1f s (%.0f tokens/s)", bench, i, len(problems), table.num_rows, took, tokens / max(took, 1e-9))
        write_parquet(table, stage.part(i))
    shutil.rmtree(chunk_dir, ignore_errors=True)
    table = read_parquet(stage.part(i))
    if table.num_rows != len(problems) * proto["k"]:
        raise DistillError(f"{stage.part(i)}: {table.num_rows} samples, expected k={proto['k']} for each of {len(problems)} problems")
    return {
        "benchmark": bench,
        "rows_in": len(problems),
        "rows_out": table.num_rows,
        "correct": int(pc.sum(table.column("correct")).as_py() or 0),
        "unfinished": sum(r == "length" for r in table.column("finish_reason").to_pylist()),
        "completion_tokens": int(pc.sum(table.column("completion_tokens")).as_py() or 0),
    }


# Enough to score and compare without the completions' text (which is most of the bytes: 64 AIME
# samples of up to 32k tokens each).
SCORE_COLUMNS = ["benchmark", "problem_id", "sample_idx", "extracted", "correct", "finish_reason", "completion_tokens"]


def load_samples(out: Path, columns: list[str] | None = None) -> list[dict]:
    """The finished shards' EVAL_SAMPLE rows (only `columns` if given)."""
    parts = StageDir(Path(out)).parts()
    return pa.concat_tables([pq.read_table(p, columns=columns) for p in parts]).to_pylist() if parts else []


def write_scores(out: Path, model: ModelSpec | dict | None = None, samples: list[dict] | None = None) -> dict:
    """Score every benchmark from the saved samples and write out/scores.json."""
    out = Path(out)
    stage = StageDir(out)
    config = stage.config()
    samples = load_samples(out) if samples is None else samples
    resamples = config["eval"]["bootstrap_resamples"]
    benchmarks = {}
    for name, b in config["benchmarks"].items():
        rows = [r for r in samples if r["benchmark"] == name]
        benchmarks[name] = {**summarize(rows, b["protocol"]["k"], resamples=resamples, seed=config["eval"]["seed"]), "protocol": b["protocol"]}
    if isinstance(model, ModelSpec):
        model = model.model_dump(mode="json")
    scores = {
        "model": model or _saved_model(out) or config["model"],
        "scored_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "benchmarks": benchmarks,
    }
    write_json(out / "scores.json", scores)
    return scores


def _saved_model(out: Path) -> dict | None:
    f = out / "scores.json"
    return json.loads(f.read_text())["model"] if f.exists() else None


def rescore(out: Path) -> dict:
    """Re-judge every saved sample with the current scorers and rewrite parts and scores.json; no model runs."""
    out = Path(out)
    stage = StageDir(out)
    if not (out / "config.json").exists():
        raise DistillError(f"{out}: not an eval output directory (no config.json)")
    if not stage.is_complete():
        raise DistillError(f"{out}: the eval has unfinished shards; run it to completion before rescoring")
    config = stage.config()
    problems = {
        name: {p["id"]: p for p in read_parquet(out / "problems" / f"{name}.parquet").to_pylist()}
        for name in config["benchmarks"]
    }
    all_rows = []
    for part in stage.parts():
        rows = read_parquet(part).to_pylist()
        groups: dict[tuple[str, str], list[dict]] = {}
        for r in rows:
            groups.setdefault((r["benchmark"], r["problem_id"]), []).append(r)
        for (bench, pid), group in groups.items():
            p = problems[bench][pid]
            verdicts = score(config["benchmarks"][bench]["spec"]["scorer"], [r["completion"] for r in group], p["answer"], p["tests"])
            for r, (extracted, correct) in zip(group, verdicts):
                r.update(extracted=extracted, correct=correct, answer=p["answer"])
        write_parquet(to_table(rows, EVAL_SAMPLE), part)
        all_rows += rows
    return write_scores(out, samples=all_rows)
