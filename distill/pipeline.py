"""`distill run`: chain the stages of one pipeline YAML in a run directory, resuming what is done.

Each stage's own `run()` is idempotent (done markers, config hashes), so the pipeline is just the
stages in order; a killed run is rerun with the same command.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path

import yaml
from pydantic import Field, model_validator

from distill.config import Config, apply_overrides, load_yaml, parse
from distill.errors import DistillError
from distill.eval.config import EvalConfig, ModelSpec, check_fits_all, check_positions, local_positions
from distill.filter.config import FilterConfig
from distill.generate.config import GenerateConfig
from distill.io import remove_leftover_tmp, write_text
from distill.machine import record_invocation
from distill.kd.config import KDConfig
from distill.layout import CURATED, EVAL, KD, PROMPTS, REPORT, SFT, STAGES, TRACES, trained_in_run
from distill.prompts.config import PromptsConfig
from distill.sft.config import StudentConfig
from distill.stage import StageDir, worker_pool

log = logging.getLogger(__name__)



class SFTSection(Config):
    students: list[StudentConfig]
    parallel: int = Field(1, ge=1, description="students trained at once, one process each (CPU: one per core)")


class KDSection(Config):
    runs: list[KDConfig] = Field(description="on-policy distillation runs, each into 04_kd/<name>")
    prompts: str = Field("curated", description="the prompt set: 'curated' or 'prompts' (this run's stages) or a stage directory")


class EvalSection(EvalConfig):
    models: list[ModelSpec] = Field(description="models to evaluate; `sft:<student>` names a student of this run")
    parallel: int = Field(1, ge=1, description="models evaluated at once, one process each, sharing the run's --workers "
                                              "(CPU backends; a GPU engine takes the whole device: keep 1)")

    @model_validator(mode="after")
    def _pairs_name_listed_models(self) -> "EvalSection":
        names = [m.name for m in self.models]
        if len(set(names)) < len(names):
            raise ValueError(f"model names must be unique, got {names}")
        for m in self.models:
            for other in (m.baseline, m.baseline_of):
                if other is not None and other not in names:
                    raise ValueError(f"model '{m.name}' is compared with '{other}', which is not in eval.models")
        return self

    @model_validator(mode="after")
    def _token_limits_fit_each_model(self) -> "EvalSection":
        for m in self.models:
            check_fits_all(self, m)
        return self


class PipelineConfig(Config):
    name: str
    run_dir: Path | None = Field(None, description="default: runs/<name>")
    prompts: PromptsConfig
    generate: GenerateConfig
    filter: FilterConfig
    sft: SFTSection
    kd: KDSection | None = Field(None, description="optional: on-policy distillation after sft (pipelines/toy_kd.yaml)")
    eval: EvalSection

    @model_validator(mode="after")
    def _kd_students_are_trained_here(self) -> "PipelineConfig":
        names = {s.name for s in self.sft.students}
        for r in self.kd.runs if self.kd else []:
            for role, ref in (("student", r.student), ("teacher", r.teacher)):
                if ref.startswith("sft:") and ref[4:] not in names:
                    raise ValueError(f"kd run '{r.name}': {role} {ref} is not in sft.students")
            if r.sft_control and not r.student.startswith("sft:"):
                raise ValueError(f"kd run '{r.name}': sft_control continues the student's SFT, so the student must be sft:<student>")
        return self

    @model_validator(mode="after")
    def _eval_contexts_fit_the_models(self) -> "PipelineConfig":
        """Each evaluated model's max_model_len within its positions, where they are known here: a student's
        from its context extension or its base model's config, any other model's from its own config."""
        students = {s.name: s for s in self.sft.students}
        for m in self.eval.models:
            student = students.get(m.model.removeprefix("sft:")) if m.model.startswith("sft:") else None
            if student is not None:
                extended = (student.training.get("model_init_kwargs") or {}).get("max_position_embeddings")
                check_positions(m, extended or local_positions(student.model))
            elif ":" not in m.model:
                check_positions(m, local_positions(m.model))
        return self

    @property
    def dir(self) -> Path:
        return self.run_dir or Path("runs") / self.name


def _inline(value, base: Path):
    """A stage section (or a student, or an eval model) given as a YAML path is read from that file, relative to
    `base`; `other.yaml#key` takes section `key` of another pipeline, so two pipelines can share their data stages,
    and `other.yaml#eval/models/<name>` one named entry of it (two pipelines evaluating one model share its record)."""
    if not isinstance(value, str):
        return value
    file, _, key = value.partition("#")
    data = load_yaml(base / file)
    if not key:
        return data
    section, *names = key.split("/")
    if section not in data:
        raise DistillError(f"{base / file}: no section '{section}' (named by '{value}')")
    found = _section(section, data[section], (base / file).parent)
    for name in names:
        if isinstance(found, list):
            found = next((item for item in found if isinstance(item, dict) and item.get("name") == name), None)
        elif isinstance(found, dict):
            found = found.get(name)
        if found is None:
            raise DistillError(f"{base / file}: no '{name}' in section '{section}' (named by '{value}')")
    return found


def _section(key: str, value, base: Path):
    value = _inline(value, base)
    for section, entries in (("sft", "students"), ("eval", "models")):
        if key == section and isinstance(value, dict) and isinstance(value.get(entries), list):
            value = {**value, entries: [_inline(s, base) for s in value[entries]]}
    return value


def read_pipeline(path: Path) -> dict:
    """A pipeline YAML as one mapping: stage sections and `sft.students` entries given as YAML paths
    are read from those files, so the result can be changed (overrides, a rehearsal) and parsed."""
    path = Path(path)
    data = load_yaml(path)
    for key in ("prompts", "generate", "filter", "sft", "kd", "eval"):
        if key in data:
            data[key] = _section(key, data[key], path.parent)
    return data


def load_pipeline(path: Path, overrides: list[str] | None = None) -> PipelineConfig:
    """Load a pipeline YAML; any stage section, or any entry of `sft.students`, may name a YAML file."""
    return parse(PipelineConfig, apply_overrides(read_pipeline(path), overrides or []), path)


def _worker_log(path: Path) -> dict:
    """What `_in_worker` needs to send a worker's output to `path`, with this process's console settings."""
    from distill import console

    return {**console.worker_settings(), "log_file": str(path)}


def _in_worker(log: dict, fn, *args, **kwargs):
    """`fn(*args, **kwargs)` in a pool worker whose library output goes to its own log file (`_worker_log`, see
    distill.console): students or models then run side by side, each log apart, and a crash in native code
    cannot take the run down."""
    from distill import console

    console.worker_setup(**log)
    return fn(*args, **kwargs)


def _resolve_model(spec: ModelSpec, run_dir: Path) -> ModelSpec:
    """`sft:<student>` / `kd:<run>` -> the trained model directory of that student or kd run (or its
    `<run>-sft-control`) in this run; `fetch:<name>` -> the converted pretrained model (distill.models)."""
    from distill.models import PREFIX, resolve

    if spec.model.startswith(PREFIX):
        return spec.model_copy(update={"model": resolve(spec.model)})
    trained = trained_in_run(spec.model)
    if trained is None:
        return spec
    stage, student = trained
    if not (run_dir / stage / student / "done").exists():
        raise DistillError(f"eval model '{spec.name}': '{student}' has not finished training in {run_dir / stage}")
    return spec.model_copy(update={"model": str(run_dir / stage / student / "model")})


def _distil_on_policy(cfg: PipelineConfig, run_dir: Path, threads: int) -> None:
    """Each kd run, then its matched-compute SFT control, one after the other on `threads` cores (equal footing)."""
    from distill.kd.stage import run as run_kd
    from distill.kd.stage import run_control

    inp = {"curated": run_dir / CURATED, "prompts": run_dir / PROMPTS}.get(cfg.kd.prompts, Path(cfg.kd.prompts))
    students = {s.name: s for s in cfg.sft.students}
    for r in cfg.kd.runs:
        log.info("stage kd: %s", r.name)
        run_kd(r, inp, run_dir / KD / r.name, sft_dir=run_dir / SFT, threads=threads)
        if r.sft_control:
            student = students[r.student.removeprefix("sft:")]
            run_control(r, student, run_dir / CURATED, run_dir / KD / r.name, run_dir / KD / f"{r.name}-sft-control", run_dir / SFT, threads)


def run_pipeline(cfg: PipelineConfig, *, workers: int = 1, only: list[str] | None = None) -> Path | None:
    """Run the stages in order (or just `only`); return the report's path when the report stage ran.

    Each stage shows one live display (see distill.console) and logs to `<run>/logs/`."""
    from distill import console, progress
    from distill.eval.stage import run as run_eval
    from distill.filter.card import write_dataset_card
    from distill.filter.stage import run as run_filter
    from distill.generate.stage import run as run_generate
    from distill.prompts.stage import run as run_prompts
    from distill.report.build import run as run_report
    from distill.sft.card import add_eval_results
    from distill.sft.stage import run as run_sft

    unknown = set(only or []) - set(STAGES)
    if unknown:
        raise DistillError(f"--only: unknown stage(s) {sorted(unknown)}; stages are {', '.join(STAGES)}")
    wanted = set(only or STAGES)
    run_dir = cfg.dir
    if run_dir.exists() and not run_dir.is_dir():
        raise DistillError(f"{run_dir}: is a file, expected a run directory (run_dir)")
    run_dir.mkdir(parents=True, exist_ok=True)
    for leftover in remove_leftover_tmp(run_dir):
        log.info("removed %s (left by a killed writer)", leftover)
    record_invocation(run_dir)  # the command line and the machine, for the report's lineage
    # The run's record of its config: written first in a new run (so `status` knows it), otherwise only
    # once every stage asked for has accepted the config, so a refused change never replaces it.
    if not (run_dir / "pipeline.yaml").exists():
        _record_pipeline(cfg)
    logs = run_dir / "logs"
    timer = StageTimes(run_dir)

    def stage(name: str, title: str, poll, per_unit_logs: bool = False):
        """Display, log file (unless each student or model has its own) and wall time of one stage."""
        return _stage_context(console, timer, name, title, poll, None if per_unit_logs else logs / f"{name}.log")

    data_stages = [
        ("prompts", PROMPTS, None, lambda: run_prompts(cfg.prompts, run_dir / PROMPTS, workers=workers)),
        ("generate", TRACES, "completion_tokens",
         lambda: run_generate(cfg.generate, run_dir / PROMPTS, run_dir / TRACES, workers=workers)),
        ("filter", CURATED, "completion_tokens_out",
         lambda: run_filter(cfg.filter, run_dir / TRACES, run_dir / CURATED, workers=workers)),
    ]
    for name, sub, tokens_key, fn in data_stages:
        if name in wanted:
            with stage(name, f"{name} (log: {logs / name}.log)", lambda sub=sub, k=tokens_key: [progress.shard_stage(run_dir / sub, k)]):
                fn()
    if "filter" in wanted and StageDir(run_dir / CURATED).is_complete():
        write_dataset_card(run_dir / CURATED, run_dir / PROMPTS)
    if "sft" in wanted:
        students = cfg.sft.students
        threads = max(1, (os.cpu_count() or 1) // cfg.sft.parallel)
        title = f"sft: {len(students)} students, {cfg.sft.parallel} at a time (logs: {logs}/sft-*.log)"
        poll = lambda: [progress.student(run_dir / SFT / s.name) for s in students]  # noqa: E731
        with stage("sft", title, poll, per_unit_logs=True):
            # Always in worker processes, even one at a time: the libraries' output goes to each
            # student's own log file (fd-level), and a crash in native code cannot take the run down.
            todo = [s for s in students if not (run_dir / SFT / s.name / "done").exists()]
            for s in students:
                if s not in todo:  # only its config check runs: no worker to start
                    run_sft(s, run_dir / CURATED, run_dir / SFT / s.name)
            if todo:
                with worker_pool(min(cfg.sft.parallel, len(todo)), threads) as pool:
                    futures = [
                        pool.submit(_in_worker, _worker_log(logs / f"sft-{s.name}.log"), run_sft, s, run_dir / CURATED,
                                    run_dir / SFT / s.name, threads=threads)
                        for s in todo
                    ]
                    for f in futures:
                        f.result()
    if "kd" in wanted and cfg.kd:
        runs = [r.model_dump(mode="json") for r in cfg.kd.runs]
        poll = lambda: progress.kd_runs(run_dir, runs)  # noqa: E731
        threads = max(1, os.cpu_count() or 1)
        with stage("kd", f"kd: {len(runs)} run(s), each then its SFT control, on {threads} cores (log: {logs}/kd.log)", poll, per_unit_logs=True):
            if all(line.finished for line in poll()):
                with console.log_file(logs / "kd.log"):
                    _distil_on_policy(cfg, run_dir, threads)  # only the config checks run: no worker to start
            else:
                with worker_pool(1, threads) as pool:
                    pool.submit(_in_worker, _worker_log(logs / "kd.log"), _distil_on_policy, cfg, run_dir, threads).result()
    if "eval" in wanted:
        models = cfg.eval.models
        poll = lambda: [progress.eval_model(run_dir / EVAL / m.name) for m in models]  # noqa: E731
        parallel = min(cfg.eval.parallel, len(models))
        title = f"eval: {len(models)} models" + (f", {parallel} at a time" if parallel > 1 else "") + f" (logs: {logs}/eval-*.log)"
        with stage("eval", title, poll, per_unit_logs=True):
            resolved = [_resolve_model(spec, run_dir) for spec in models]  # every model trained, before any eval starts
            if parallel > 1:
                with worker_pool(parallel) as pool:
                    # each model's shards in its one process: their worker processes (importing torch, loading the
                    # model) would each start anew
                    futures = [pool.submit(_in_worker, _worker_log(logs / f"eval-{m.name}.log"), run_eval, cfg.eval, m,
                                           run_dir / EVAL / m.name, workers=max(1, workers // parallel))
                               for m in resolved]
                    scores = [f.result() for f in futures]
            else:
                scores = []
                for m in resolved:
                    with console.log_file(logs / f"eval-{m.name}.log"):
                        scores.append(run_eval(cfg.eval, m, run_dir / EVAL / m.name, workers=workers))
            for spec, m, s in zip(models, resolved, scores):
                card = Path(m.model) / "README.md"
                if m is not spec and s and card.exists():  # a model trained in this run
                    add_eval_results(card, spec.name, s)
    _record_pipeline(cfg)
    if "report" in wanted:
        with console.log_file(logs / "report.log"):
            timer.start("report")
            page = run_report(run_dir, run_dir / REPORT)
            timer.stop("report")
        console.print_summary(run_dir / REPORT / "summary.json")
        return page
    return None


def _cpu_seconds() -> float:
    """CPU time of this process and every descendant (pool workers, engines, sandboxed programs): each live
    process's own time plus that of its children it has reaped, so a worker is counted whether it still runs
    or has exited."""
    import psutil

    total = 0.0
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.Error:  # exited between the listing and the read: its parent's reaped time has it
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


class StageTimes:
    """Wall and CPU time of each stage's attempts, kept in `<run>/logs/times.json` for the report's lineage:
    on a shared machine the wall time grows with the load, the CPU time much less."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "logs" / "times.json"
        self._t0: dict[str, tuple[float, float]] = {}

    def start(self, name: str) -> None:
        self._t0[name] = (time.time(), _cpu_seconds())

    def stop(self, name: str) -> None:
        times = json.loads(self.path.read_text()) if self.path.exists() else {}
        entry = times.setdefault(name, {"seconds": 0.0, "attempts": 0})
        wall0, cpu0 = self._t0.pop(name)
        entry["seconds"] = round(entry["seconds"] + time.time() - wall0, 1)
        entry["cpu_seconds"] = round(entry.get("cpu_seconds", 0.0) + _cpu_seconds() - cpu0, 1)
        entry["attempts"] += 1
        write_text(self.path, json.dumps(times, indent=2, sort_keys=True) + "\n")


@contextmanager
def _stage_context(console, timer: StageTimes, name: str, title: str, poll, log: Path | None):
    """A finished stage still runs (it checks its config and markers) but only says so in one line."""
    already = all(line.finished for line in poll())
    with console.log_file(log):
        if already:
            console.CONSOLE.print(f"[bold]{name}[/bold]: already done")
            with console.quiet():
                yield
            return
        timer.start(name)
        with console.stage_display(title, poll):
            yield
        timer.stop(name)


def _record_pipeline(cfg: PipelineConfig) -> None:
    """Write the run's pipeline.yaml when it differs from what is there."""
    path = cfg.dir / "pipeline.yaml"
    text = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    write_text(path, text)
