"""The eval stage: k samples per benchmark problem from one model, every raw sample kept, then scores.

Output directory (05_eval/<model>/):
    config.json                  protocol, model and the shard plan; a rerun with another refuses
    problems/<benchmark>.parquet the problems as evaluated (so rescoring needs nothing else)
    part-*.parquet               EVAL_SAMPLE rows, one shard = up to `problems_per_shard` problems
    chunks/<shard>/*.parquet     in-shard checkpoints, merged into the part when the shard is done
    scores.json                  written once every shard is done (and by `rescore`)
    backups/<UTC time>/          parts and scores.json as they were before a `rescore` replaced them
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distill import engines
from distill.errors import DistillError
from distill.eval import livecodebench
from distill.eval.benchmarks import EVALS_DIR, BenchmarkSpec, load_benchmark, load_spec
from distill.eval.breakdown import breakdown
from distill.eval.budget import budget_curve
from distill.eval.config import EvalConfig, ModelSpec, check_fits_all, token_limit
from distill.eval.identity import model_identity
from distill.eval.positions import sample_counter, token_positions
from distill.eval.scores import summarize
from distill.eval.scoring import score
from distill.generate.config import RUNTIME_ONLY, BackendConfig
from distill.generate.backends.base import Request, Sampling
from distill.generate.prompting import THINK_PREFIX, messages_for
from distill.generate.stream import ChunkedRun, Job, ShardStream
from distill.hub import require_model
from distill.io import read_parquet, write_json, write_parquet
from distill.records import EVAL_SAMPLE, PROBLEM, conform, content_id, to_table
from distill.stage import StageDir, run_shards
from distill.verify import GRADINGS

log = logging.getLogger(__name__)

# Fields of a ModelSpec that only label the report; the rest change what is sampled.
_LABEL_FIELDS = {"baseline", "baseline_of", "r1_reference"}


def resolved_specs(cfg: EvalConfig) -> list[BenchmarkSpec]:
    """Each benchmark's spec with the config's overrides (k, max_tokens, source, toy) applied."""
    specs = []
    for name in cfg.benchmarks:
        spec = load_spec(name)
        if spec.name in {s.name for s in specs}:
            raise DistillError(f"benchmark '{spec.name}' is listed twice (as {name!r})")
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


def protocol(cfg: EvalConfig, spec: BenchmarkSpec, problem_ids: list[str], model: ModelSpec | None = None) -> dict:
    """Everything that must match for two models' scores on this benchmark to be comparable: the R1
    protocol, except where the model's spec sets its own (token limit, prefix, template, system prompt)."""
    model = model or ModelSpec(name="r1", model="r1")  # sets nothing of its own: the R1 protocol
    force_think = cfg.force_think if model.force_think is None else model.force_think
    return {
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "max_tokens": token_limit(spec.max_tokens, model),
        "k": spec.k,
        "seed": cfg.seed,
        "problems_per_chunk": cfg.problems_per_chunk,  # the transformers backend seeds per batch
        "template": model.template or spec.template,
        "system_prompt": model.system_prompt,
        "prefix": THINK_PREFIX if force_think else "",
        "scorer": spec.scorer,
        "n_problems": len(problem_ids),
        "problems_hash": content_id(*sorted(problem_ids)),
    }


def request_messages(problem: dict, proto: dict) -> list[dict]:
    """The chat sent for one problem under a protocol: its system turn, if any, then the templated problem."""
    system = [{"role": "system", "content": proto["system_prompt"]}] if proto.get("system_prompt") else []
    return system + messages_for(problem["prompt"], problem["domain"], proto["template"])


def check_prompts_fit(model: ModelSpec, protos: dict[str, dict], problems: dict[str, list[dict]]) -> None:
    """Each benchmark's longest prompts, rendered with the model's chat template, plus its token limit must
    fit `max_model_len`; otherwise the engine refuses those requests hours into the run."""
    if model.max_model_len is None or model.backend not in ("vllm", "transformers"):
        return
    from transformers import AutoTokenizer

    from distill.generate.prompting import render_chat

    try:
        tok = AutoTokenizer.from_pretrained(model.model)
    except Exception as e:  # hub unreachable, gated, no tokenizer files: the engine will say more when it starts
        log.warning("model '%s': tokenizer not loadable here (%s); prompt lengths not checked against max_model_len", model.name, type(e).__name__)
        return
    for bench, proto in protos.items():
        longest = sorted(problems[bench], key=lambda p: len(p["prompt"]))[-8:]  # by characters, then counted in tokens
        n = max(len(tok.encode(render_chat(tok, request_messages(p, proto), proto["prefix"]), add_special_tokens=False)) for p in longest)
        if n + proto["max_tokens"] > model.max_model_len:
            raise DistillError(
                f"model '{model.name}': {bench}'s longest prompt is {n} tokens, which with max_tokens {proto['max_tokens']} exceeds "
                f"max_model_len {model.max_model_len}; set the model's max_tokens to at most {model.max_model_len - n}"
            )


def model_record(model: ModelSpec) -> dict:
    """The model's part of the stage config (its hash decides resume): what it is, not where it lies, and
    none of how it is run (GPUs per engine, endpoint, concurrency) nor the report's labels."""
    exclude = {**{f: True for f in _LABEL_FIELDS | {"model"}}, **RUNTIME_ONLY}
    return {**model.model_dump(mode="json", exclude=exclude), "identity": model_identity(model.model)}


def spec_record(spec: BenchmarkSpec) -> dict:
    """The benchmark's part of the stage config: its spec, with a local data file named relative to evals/
    (or by its file name) instead of by where this checkout lies; its problems are hashed in the protocol."""
    source = spec.source
    if source != "toy" and not source.startswith("hf:"):
        path = Path(source).resolve()
        source = path.relative_to(EVALS_DIR).as_posix() if path.is_relative_to(EVALS_DIR) else path.name
    return {**spec.model_dump(mode="json"), "source": source}


def _plan(cfg: EvalConfig, specs: list[BenchmarkSpec], counts: dict[str, int]) -> list[list]:
    """Shards as [benchmark, first problem, end]: deterministic from the config and the problems."""
    shards = []
    for spec in specs:
        n = counts[spec.name]
        shards += [[spec.name, a, min(a + cfg.problems_per_shard, n)] for a in range(0, n, cfg.problems_per_shard)]
    return shards


def run(cfg: EvalConfig, model: ModelSpec, out: Path, *, workers: int = 1, rank: int = 0, world_size: int = 1, executor: str = "local") -> dict:
    """Sample, keep and score; return the scores (also written to out/scores.json).

    With rank/world_size, this worker runs its share of shards; scores are written by whichever
    worker finds every shard done (or later by `rescore`).
    """
    out = Path(out)
    stage = StageDir(out)
    if model.backend in ("transformers", "vllm"):
        require_model(model.model, f"model {model.name}")  # before the output directory is made
    try:
        check_fits_all(cfg, model)
    except ValueError as e:
        raise DistillError(str(e)) from None
    specs = resolved_specs(cfg)
    problems = {}
    for spec in specs:
        limit = cfg.overrides[spec.name].limit if spec.name in cfg.overrides else None
        problems[spec.name] = load_benchmark(spec, limit=limit)
    shards = _plan(cfg, specs, {n: len(p) for n, p in problems.items()})
    config = {
        # EvalConfig's own fields only: a pipeline's eval section also lists every model, and adding
        # a model must not invalidate the others' finished samples
        # a model must not invalidate the others' finished samples; benchmarks by name, not by spec path
        # (`budgets` only when set: a scoring setting, and directories made before it existed must resume)
        "eval": {**cfg.model_dump(mode="json", include=set(EvalConfig.model_fields) - {"budgets"}), "benchmarks": [s.name for s in specs],
                 **({"budgets": cfg.budgets} if cfg.budgets else {})},
        "model": model_record(model),
        "benchmarks": {
            s.name: {"spec": spec_record(s), "protocol": protocol(cfg, s, [p["id"] for p in problems[s.name]], model)}
            for s in specs
        },
        "shards": shards,
    }
    check_prompts_fit(model, {b: v["protocol"] for b, v in config["benchmarks"].items()}, problems)
    stage.prepare(config)
    for spec in specs:
        path = out / "problems" / f"{spec.name}.parquet"
        if not path.exists():
            write_parquet(to_table(problems[spec.name], PROBLEM), path)
    if model.backend == "vllm":
        workers = 1  # one engine takes the model's GPUs; a second worker would share them
    try:
        run_shards(stage, len(shards), EvalShards(str(out), model.model_dump(mode="json")),
                   workers=workers, rank=rank, world_size=world_size, desc=f"eval {model.name}", executor=executor,
                   ray_options={"num_gpus": model.vllm.tensor_parallel_size} if model.backend == "vllm" else {"num_cpus": 1})
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


def grading_args(config: dict, bench: str, grading: str | None = None) -> dict:
    """The `score` keywords of one benchmark from a stage config: policy, forced `<think>`, tolerance."""
    b = config["benchmarks"][bench]
    # an imported run's prefix may be "unknown": only a prefix that opens <think> forces it
    return {"grading": grading or config["eval"].get("grading", "strict"), "force_think": "<think>" in str(b["protocol"]["prefix"]),
            "rel_tol": b["spec"].get("rel_tol")}


def sample_rows(problems: list[dict], completions: list[list], *, benchmark: str, model: str, scorer: str, grading: dict,
                counter: tuple[str, str]) -> list[dict]:
    """EVAL_SAMPLE rows for each problem's completions, scored (`grading`: see `grading_args`), with their
    token positions counted by `counter` ((backend, model path): see `positions.sample_counter`)."""
    count = sample_counter(*counter)
    rows = []
    for p, comps in zip(problems, completions):
        verdicts = score(scorer, [c.text for c in comps], p["answer"], p["tests"], finish_reasons=[c.finish_reason for c in comps], **grading)
        for j, (c, v) in enumerate(zip(comps, verdicts)):
            rows.append({
                "benchmark": benchmark, "problem_id": p["id"], "model": model, "sample_idx": j,
                "answer": p["answer"], "completion": c.text, "extracted": v.extracted, "correct": v.correct,
                "finish_reason": c.finish_reason, "completion_tokens": c.completion_tokens,
                **token_positions(c.text, c.completion_tokens, c.finish_reason, count),
                "reason": v.reason, "grading": grading["grading"],
            })
    return rows


class EvalShard(ChunkedRun):
    """One shard's samples: k per problem, streamed through the engine, scored in a worker pool as
    each chunk of finished problems is checkpointed."""

    item_field = "problem_id"

    def __init__(self, backend, problems: list[dict], chunk_dir: Path, *, cfg: dict, spec: dict, proto: dict, model: dict, pool, grading: dict):
        super().__init__(backend, problems, chunk_dir, EVAL_SAMPLE, chunk_items=cfg["problems_per_chunk"])
        self.cfg, self.spec, self.proto, self.pool, self.grading = cfg, spec, proto, pool, grading
        self.model, self.counter = model["name"], (model["backend"], model["model"])

    def first_jobs(self, item: int) -> list[Job]:
        p = self.items[item]
        request = Request(id=p["id"], messages=request_messages(p, self.proto), prefix=self.proto["prefix"])
        return [Job(item, 0, request, _sampling(self.cfg, self.proto))]

    def rows(self, job: Job, completions: list) -> list[dict]:
        pid = self.items[job.item]["id"]
        return [{"problem_id": pid, "sample_idx": job.first_idx + j, "finish_reason": c.finish_reason, "raw": c} for j, c in enumerate(completions)]

    def finalize(self, rows: list[dict]) -> Scoring:
        """Score each problem's samples in the pool (math-verify and code tests are CPU work the engine's loop must not wait on)."""
        groups: dict[str, list[dict]] = {}
        for r in rows:
            groups.setdefault(r["problem_id"], []).append(r)
        futures = [
            self.pool.submit(sample_rows, [self.items[self.index[pid]]], [[r["raw"] for r in group]],
                             benchmark=self.spec["name"], model=self.model, scorer=self.spec["scorer"], grading=self.grading,
                             counter=self.counter)
            for pid, group in groups.items()
        ]  # fmt: skip
        return Scoring(list(groups.values()), futures)


class Scoring:
    """A chunk's rows being scored: ready once every problem's future is done (see ChunkedRun.finalize)."""

    def __init__(self, groups: list[list[dict]], futures: list):
        self.groups, self.futures = groups, futures

    def done(self) -> bool:
        return all(f.done() for f in self.futures)

    def result(self) -> list[dict]:
        scored = []
        for group, future in zip(self.groups, self.futures):
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


def engine_record(backend, model: dict) -> dict:
    """What sampled a shard, for `distill eval --replay`: the engine, its version, and the backend's runtime
    options (kept out of the config hash so a resume may change them): a replay runs the engine as the shard
    ran it, e.g. eager on vLLM-CPU rather than traced by dynamo (which, with Triton, compiles with inductor)."""
    runtime = sorted(RUNTIME_ONLY.get(model["backend"], ()))
    options = model.get(model["backend"]) or {}
    return {"backend": backend.name, "version": backend.version, "runtime": {k: options[k] for k in runtime if k in options}}


@dataclass
class EvalShards(ShardStream):
    """Shard i: its problems streamed through the engine (finished chunks checkpointed), merged into the part."""

    out: str
    model: dict

    def open(self, i: int) -> EvalShard | dict:
        stage = StageDir(Path(self.out))
        config = stage.config()
        bench, start, end = config["shards"][i]
        if stage.part(i).exists():  # a part without its done marker is complete: it was written atomically
            return self._counters(i)
        problems = read_parquet(stage.path / "problems" / f"{bench}.parquet").slice(start, end - start).to_pylist()
        backend = engines.engine(BackendConfig(**{f: self.model[f] for f in BackendConfig.model_fields}))
        b = config["benchmarks"][bench]
        run = EvalShard(backend, problems, stage.chunks(i), cfg=config["eval"], spec=b["spec"], proto=b["protocol"], model=self.model,
                        pool=_scoring_pool(self.model["backend"]), grading=grading_args(config, bench))  # fmt: skip
        run.started = time.time()
        run.engine = engine_record(backend, self.model)
        return run

    def close(self, i: int, run: EvalShard, table: pa.Table) -> dict:
        took = time.time() - run.started
        tokens = int(pc.sum(table.column("completion_tokens")).as_py() or 0)
        log.info("%s shard %d: %d problems, %d samples in %.1f s (%.0f tokens/s)", run.spec["name"], i, len(run.items), table.num_rows, took,
                 tokens / max(took, 1e-9))  # fmt: skip
        write_parquet(table, StageDir(Path(self.out)).part(i))
        return self._counters(i, run.engine)

    def _counters(self, i: int, engine: dict | None = None) -> dict:
        """The shard's stats; `engine` is None for a part written before a resume."""
        stage = StageDir(Path(self.out))
        config = stage.config()
        bench, start, end = config["shards"][i]
        k = config["benchmarks"][bench]["protocol"]["k"]
        shutil.rmtree(stage.chunks(i), ignore_errors=True)
        table = read_parquet(stage.part(i))
        if table.num_rows != (end - start) * k:
            raise DistillError(f"{stage.part(i)}: {table.num_rows} samples, expected k={k} for each of {end - start} problems")
        return {
            "benchmark": bench,
            "rows_in": end - start,
            "rows_out": table.num_rows,
            "correct": int(pc.sum(table.column("correct")).as_py() or 0),
            "unfinished": sum(r == "length" for r in table.column("finish_reason").to_pylist()),
            "completion_tokens": int(pc.sum(table.column("completion_tokens")).as_py() or 0),
            "engine": engine,
        }


# Enough to score and compare without the completions' text (which is most of the bytes: 64 AIME
# samples of up to 32k tokens each).
SCORE_COLUMNS = ["benchmark", "problem_id", "sample_idx", "extracted", "correct", "finish_reason", "completion_tokens", "reason", "grading"]


def load_samples(out: Path, columns: list[str] | None = None) -> list[dict]:
    """The finished shards' EVAL_SAMPLE rows (only `columns` if given); columns added to EVAL_SAMPLE
    after a part was written (`reason`, `grading`) read as null."""
    parts = StageDir(Path(out)).parts()
    schema = pa.schema([EVAL_SAMPLE.field(c) for c in columns]) if columns else EVAL_SAMPLE
    tables = []
    for p in parts:
        present = [c for c in schema.names if c in pq.read_schema(p).names]
        tables.append(conform(pq.read_table(p, columns=present), schema))
    return pa.concat_tables(tables).to_pylist() if tables else []


def write_scores(out: Path, model: ModelSpec | dict | None = None, samples: list[dict] | None = None) -> dict:
    """Score every benchmark from the saved samples and write out/scores.json."""
    out = Path(out)
    stage = StageDir(out)
    config = stage.config()
    samples = load_samples(out) if samples is None else samples
    benchmarks = {}
    for name, b in config["benchmarks"].items():
        rows = [r for r in samples if r["benchmark"] == name]
        # the policy that judged these samples (a rescore may have switched it) is part of the protocol
        graded = sorted({r.get("grading") or "unrecorded" for r in rows})
        protocol = {**b["protocol"], "grading": graded[0] if len(graded) == 1 else graded}
        if b["spec"].get("date_window"):
            protocol["date_window"] = b["spec"]["date_window"]
        if b["spec"].get("layout") == "livecodebench":
            protocol["prompt"] = livecodebench.PROMPT_NAME
        benchmarks[name] = {**summarize(rows, b["protocol"]["k"]), "protocol": protocol,
                            "budget": budget_curve(rows, max_tokens=b["protocol"]["max_tokens"], backend=config["model"].get("backend"),
                                                   budgets=config["eval"].get("budgets")),
                            "subsets": breakdown(rows, _problems(out, name))}
    if isinstance(model, ModelSpec):
        model = model.model_dump(mode="json")
    saved = _saved_scores(out)
    scores = {"model": model or (saved or {}).get("model") or config["model"], "benchmarks": benchmarks}
    scores = json.loads(json.dumps(scores))  # as it reads back, to compare with the saved one
    if saved is not None and {k: v for k, v in saved.items() if k != "scored_at"} == scores:
        return saved  # a finished directory run again: nothing to write (it may be on read-only storage)
    scores["scored_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    write_json(out / "scores.json", scores)
    return scores


def _problems(out: Path, benchmark: str) -> list[dict]:
    """The problems as evaluated (with their metadata, for the per-subset scores); none if not saved."""
    f = out / "problems" / f"{benchmark}.parquet"
    return read_parquet(f).to_pylist() if f.exists() else []


def _saved_scores(out: Path) -> dict | None:
    f = out / "scores.json"
    return json.loads(f.read_text()) if f.exists() else None


def check_eval_dir(out: Path) -> dict:
    """The config of a finished eval directory, or a one-line error saying what is missing (a directory
    made by hand, a run still going, a file given instead of the directory)."""
    out = Path(out)
    stage = StageDir(out)
    layout = "an eval directory holds config.json, part-*.parquet and a done/<shard> marker per part; bring samples from other tools with `distill eval --import`"
    if not out.is_dir():
        raise DistillError(f"{out}: not a directory ({layout})")
    if not (out / "config.json").exists():
        raise DistillError(f"{out}: no config.json ({layout})")
    try:
        config = stage.config()
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise DistillError(f"{out / 'config.json'}: not a stage config ({type(e).__name__}: {e})") from None
    needed = [("shards",), ("eval", "bootstrap_resamples"), ("eval", "seed"), ("benchmarks",)]
    needed += [("benchmarks", b, *k) for b in config.get("benchmarks") or {} for k in (("spec", "scorer"), ("protocol", "k"))]
    for keys in needed:
        node = config
        for k in keys:
            if not isinstance(node, dict) or k not in node:
                raise DistillError(f"{out / 'config.json'}: no field '{'.'.join(keys)}' (not written by `distill eval`?)")
            node = node[k]
    shards, benchmarks = config["shards"], config["benchmarks"]
    missing = [i for i in range(stage.planned() or len(shards)) if not stage.is_done(i)]
    if missing:
        made = [i for i in missing if stage.part(i).exists()]
        what = f"{stage.part(made[0]).name} has no done/{made[0]:05d} marker" if made else f"shard {missing[0]} was never finished"
        raise DistillError(f"{out}: {len(missing)} of {len(shards)} shards not done ({what}); finish the eval first ({layout})")
    for b in benchmarks:
        if not (out / "problems" / f"{b}.parquet").exists():
            raise DistillError(f"{out}: no problems/{b}.parquet (the problems as evaluated, needed to rescore)")
    return config


_JUDGED = ("extracted", "correct", "reason", "grading", "answer")  # what a rescore may change in a sample


def _backup(out: Path, files: list[Path]) -> Path:
    """Keep the files about to be rewritten under out/backups/<UTC time>/ (hard links: no copy, and the
    atomic rewrite gives the live name a new inode, so the backup keeps the old bytes)."""
    dest = out / "backups" / dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    dest.mkdir(parents=True)
    _backup_into(dest, files)
    return dest


def _backup_into(dest: Path, files: list[Path]) -> None:
    for f in files:
        if f.exists():
            try:
                os.link(f, dest / f.name)
            except OSError:  # a filesystem without hard links
                shutil.copy2(f, dest / f.name)


def rescore(out: Path, benchmarks: list[str] | None = None, grading: str | None = None) -> dict:
    """Re-judge the saved samples (of `benchmarks`, default all) with the current scorers, rewrite their
    parts and scores.json, and keep the previous ones in out/backups/ (only when something changed);
    no model runs.

    `grading` (strict | lenient) switches the policy; None keeps the eval config's.
    """
    if grading is not None and grading not in GRADINGS:
        raise DistillError(f"--grading: expected one of {', '.join(GRADINGS)}, got {grading!r}")
    out = Path(out)
    stage = StageDir(out)
    config = check_eval_dir(out)
    wanted = list(config["benchmarks"]) if not benchmarks else benchmarks
    unknown = sorted(set(wanted) - set(config["benchmarks"]))
    if unknown:
        raise DistillError(f"{out}: no samples of {', '.join(unknown)} (it has {', '.join(config['benchmarks'])})")
    problems = {
        name: {p["id"]: p for p in read_parquet(out / "problems" / f"{name}.parquet").to_pylist()}
        for name in wanted
    }
    todo = [stage.verify(i) for i, (bench, _, _) in enumerate(config["shards"]) if bench in wanted]
    kept: Path | None = None  # the backup folder, made at the first change: a rescore that changes nothing leaves none
    scores_before = (out / "scores.json").read_bytes() if (out / "scores.json").exists() else None
    for i in todo:
        part = stage.part(i)
        rows = read_parquet(part).to_pylist()
        before = [tuple(r.get(c) for c in _JUDGED) for r in rows]
        groups: dict[tuple[str, str], list[dict]] = {}
        for r in rows:
            groups.setdefault((r["benchmark"], r["problem_id"]), []).append(r)
        for (bench, pid), group in groups.items():
            p = problems[bench][pid]
            args = grading_args(config, bench, grading)
            verdicts = score(config["benchmarks"][bench]["spec"]["scorer"], [r["completion"] for r in group], p["answer"], p["tests"],
                             finish_reasons=[r["finish_reason"] for r in group], **args)
            for r, v in zip(group, verdicts):
                r.update(extracted=v.extracted, correct=v.correct, reason=v.reason, grading=args["grading"], answer=p["answer"])
        if before != [tuple(r.get(c) for c in _JUDGED) for r in rows]:
            kept = kept or _backup(out, [out / "scores.json"])
            _backup_into(kept, [part])
            write_parquet(to_table(rows, EVAL_SAMPLE), part)
    scores = write_scores(out)
    if not kept and scores_before is not None and (out / "scores.json").read_bytes() != scores_before:
        kept = _backup(out, [])
        (kept / "scores.json").write_bytes(scores_before)
    log.info("%s: %s", out, f"previous parts and scores kept in {kept}" if kept else "rescored: nothing changed, no backup written")
    return scores
