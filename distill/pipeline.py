"""`distill run`: chain the stages of one pipeline YAML in a run directory, resuming what is done.

Each stage's own `run()` is idempotent (done markers, config hashes), so the pipeline is just the
stages in order; a killed run is rerun with the same command.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import yaml
from pydantic import Field, model_validator
from rich.console import Console
from rich.table import Table

from distill.config import Config, apply_overrides, load_yaml, parse
from distill.errors import DistillError
from distill.eval.config import EvalConfig, ModelSpec, check_fits_all
from distill.filter.config import FilterConfig
from distill.generate.config import GenerateConfig
from distill.io import remove_leftover_tmp, write_text
from distill.prompts.config import PromptsConfig
from distill.sft.config import StudentConfig
from distill.stage import StageDir, worker_pool

log = logging.getLogger(__name__)

STAGES = ("prompts", "generate", "filter", "sft", "eval", "report")
PROMPTS, TRACES, CURATED, SFT, EVAL, REPORT = "01_prompts", "02_traces", "03_curated", "04_sft", "05_eval", "report"


class SFTSection(Config):
    students: list[StudentConfig]
    parallel: int = Field(1, ge=1, description="students trained at once, one process each (CPU: one per core)")


class EvalSection(EvalConfig):
    models: list[ModelSpec] = Field(description="models to evaluate; `sft:<student>` names a student of this run")

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
    eval: EvalSection

    @property
    def dir(self) -> Path:
        return self.run_dir or Path("runs") / self.name


def _inline(value, base: Path):
    """A stage section (or a student) given as a YAML path is read from that file, relative to `base`."""
    return load_yaml(base / value) if isinstance(value, str) else value


def read_pipeline(path: Path) -> dict:
    """A pipeline YAML as one mapping: stage sections and `sft.students` entries given as YAML paths
    are read from those files, so the result can be changed (overrides, a rehearsal) and parsed."""
    path = Path(path)
    data = load_yaml(path)
    for key in ("prompts", "generate", "filter", "sft", "eval"):
        if key in data:
            data[key] = _inline(data[key], path.parent)
    if isinstance(data.get("sft"), dict) and isinstance(data["sft"].get("students"), list):
        data["sft"]["students"] = [_inline(s, path.parent) for s in data["sft"]["students"]]
    return data


def load_pipeline(path: Path, overrides: list[str] | None = None) -> PipelineConfig:
    """Load a pipeline YAML; any stage section, or any entry of `sft.students`, may name a YAML file."""
    return parse(PipelineConfig, apply_overrides(read_pipeline(path), overrides or []), path)


def _train(student: StudentConfig, inp: Path, out: Path, threads: int) -> dict:
    """One student in its own process, pinned to `threads` cores so several can train side by side."""
    from distill.sft.stage import run as run_sft

    return run_sft(student, inp, out, threads=threads)


def _resolve_model(spec: ModelSpec, run_dir: Path) -> ModelSpec:
    """`sft:<student>` -> the trained model directory of that student in this run."""
    if spec.model.startswith("sft:"):
        student = spec.model.removeprefix("sft:")
        path = run_dir / SFT / student / "model"
        if not (run_dir / SFT / student / "done").exists():
            raise DistillError(f"eval model '{spec.name}': student '{student}' has not finished training in {run_dir / SFT}")
        return spec.model_copy(update={"model": str(path)})
    return spec


def run_pipeline(cfg: PipelineConfig, *, workers: int = 1, only: list[str] | None = None) -> Path | None:
    """Run the stages in order (or just `only`); return the report's path when the report stage ran."""
    from distill.eval.stage import run as run_eval
    from distill.filter.stage import run as run_filter
    from distill.generate.stage import run as run_generate
    from distill.prompts.stage import run as run_prompts
    from distill.report.build import run as run_report

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
    # The run's record of its config: written first in a new run (so `status` knows it), otherwise only
    # once every stage asked for has accepted the config, so a refused change never replaces it.
    if not (run_dir / "pipeline.yaml").exists():
        _record_pipeline(cfg)

    if "prompts" in wanted:
        log.info("stage prompts -> %s", run_dir / PROMPTS)
        run_prompts(cfg.prompts, run_dir / PROMPTS, workers=workers)
    if "generate" in wanted:
        log.info("stage generate -> %s", run_dir / TRACES)
        run_generate(cfg.generate, run_dir / PROMPTS, run_dir / TRACES, workers=workers)
    if "filter" in wanted:
        log.info("stage filter -> %s", run_dir / CURATED)
        run_filter(cfg.filter, run_dir / TRACES, run_dir / CURATED, workers=workers)
    if "sft" in wanted:
        students = cfg.sft.students
        log.info("stage sft: %d student(s), %d at a time", len(students), cfg.sft.parallel)
        if cfg.sft.parallel == 1:
            for s in students:
                _train(s, run_dir / CURATED, run_dir / SFT / s.name, max(1, os.cpu_count() or 1))
        else:
            threads = max(1, (os.cpu_count() or 1) // cfg.sft.parallel)
            with worker_pool(cfg.sft.parallel, threads) as pool:
                futures = [pool.submit(_train, s, run_dir / CURATED, run_dir / SFT / s.name, threads) for s in students]
                for f in futures:
                    f.result()
    if "eval" in wanted:
        for spec in cfg.eval.models:
            log.info("stage eval: %s", spec.name)
            run_eval(cfg.eval, _resolve_model(spec, run_dir), run_dir / EVAL / spec.name, workers=workers)
    _record_pipeline(cfg)
    if "report" in wanted:
        return run_report(run_dir, run_dir / REPORT)
    return None


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


def _stage_status(stage: StageDir) -> tuple[str, str, list[str], list[str]]:
    """(progress, rows out, problems, held claims) of one sharded stage; damaged files are problems, not crashes."""
    problems: list[str] = []
    try:
        planned = stage.planned()
    except DistillError as e:
        planned, problems = None, [str(e)]
    done, rows = stage.done_shards(), 0
    for i in done:
        damage = stage.damage(i)
        if damage is not None:
            problems.append(f"shard {i} damaged: {damage}")
        else:
            rows += int(stage.shard_stats(i).get("rows_out", 0))
    held = [f"shard {i} held by {who}" for i, who in stage.held_claims().items()]
    return f"{len(done)}/{'?' if planned is None else planned} shards", str(rows), problems, held


def print_status(run_dir: Path) -> None:
    """A table of each stage: shards done of planned, rows written, claims held (by whom, for how long)
    and damaged shards. Damage also makes the command fail, after the table, naming the first one."""
    if not (run_dir / "pipeline.yaml").is_file():
        raise DistillError(f"{run_dir}: not a run directory (no pipeline.yaml)")
    table = Table(title=str(run_dir))
    for col in ("stage", "progress", "rows out", "notes"):
        table.add_column(col)
    problems: list[str] = []

    def sharded(name: str, stage: StageDir) -> None:
        if not stage.path.is_dir():
            table.add_row(name, "not started", "", "")
            return
        progress, rows, damaged, held = _stage_status(stage)
        if (stage.path / "scores.json").exists():
            progress += ", scored"
        problems.extend(damaged)
        table.add_row(name, progress, rows, "; ".join(damaged + held))

    for name in (PROMPTS, TRACES, CURATED):
        sharded(name, StageDir(run_dir / name))
    for d in sorted((run_dir / SFT).glob("*")) if (run_dir / SFT).is_dir() else []:
        table.add_row(f"{SFT}/{d.name}", "done" if (d / "done").exists() else "in progress", "", "")
    for d in sorted((run_dir / EVAL).glob("*")) if (run_dir / EVAL).is_dir() else []:
        sharded(f"{EVAL}/{d.name}", StageDir(d))
    report = run_dir / REPORT / "index.html"
    table.add_row(REPORT, "done" if report.exists() else "not yet", "", "")
    Console().print(table)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s) above)" if len(problems) > 1 else ""
        raise DistillError(problems[0] + more)
