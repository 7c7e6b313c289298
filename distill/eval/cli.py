"""`distill eval`: sample a model on benchmarks under the R1 protocol, `--rescore` saved samples, or
`--import` samples saved by another evaluation tool."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from distill.cli_options import ConfigOpt, ExecutorOpt, OutputOpt, RankOpt, WorkersOpt, WorldSizeOpt, set_option
from distill.errors import DistillError
from distill.models import resolve as resolve_model

SetOpt = set_option("max_tokens=4096")


def _eval_dirs(output: Path, model: str | None) -> list[Path]:
    """The eval directories `--rescore` works on: OUTPUT itself, or the model directories under it
    (a run's 05_eval/), only `model`'s if given."""
    from distill.eval.stage import check_eval_dir

    if (output / "config.json").exists() or not output.is_dir():
        if model is not None:
            name = (check_eval_dir(output).get("model") or {}).get("name")
            if name != model:
                raise DistillError(f"{output}: holds the samples of model '{name}', not '{model}'")
        return [output]
    found = sorted(d for d in output.iterdir() if (d / "config.json").exists())
    if not found:
        check_eval_dir(output)  # says what is missing
    if model is not None:
        if not (output / model / "config.json").exists():
            raise DistillError(f"{output}: no eval directory of model '{model}' (has: {', '.join(d.name for d in found)})")
        return [output / model]
    return found


def eval_cmd(
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Output stage directory (resumes if it exists); not with --replay.")] = None,
    path: Annotated[Optional[Path], typer.Argument(help="With --import: the file saved by the other tool.")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model path or id to evaluate (with --rescore or --import: the model's name).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Model name in scores and the report (default: output dir name).")] = None,
    backend: Annotated[str, typer.Option("--backend", "-b", help="toy | transformers | vllm | openai.")] = "transformers",
    baseline: Annotated[Optional[str], typer.Option("--baseline", help="Name of the undistilled model this one is compared with.")] = None,
    r1_reference: Annotated[Optional[str], typer.Option("--r1-reference", help="R1 paper row shown beside this model, e.g. DeepSeek-R1-Distill-Qwen-7B.")] = None,
    benchmark: Annotated[Optional[list[str]], typer.Option("--benchmark", help="Benchmark spec name or YAML path (repeatable); default: the config's.")] = None,
    rescore: Annotated[bool, typer.Option("--rescore", help="Re-judge the saved samples in --output (a model's directory or a run's 05_eval/) and rewrite scores, keeping the old ones in backups/; no model runs.")] = False,
    import_format: Annotated[Optional[str], typer.Option("--import", help="Import samples saved by another tool: lighteval | qwen-math | skythought.")] = None,
    grading: Annotated[Optional[str], typer.Option("--grading", help="strict (default: unfinished samples never credited, answer after </think>) | lenient (last \\boxed anywhere, last-number fallback); with --rescore, switches the saved samples' policy; with --import, the policy of our verdicts.")] = None,
    tokenizer: Annotated[Optional[str], typer.Option("--tokenizer", help="With --import: the model's tokenizer (path or id); re-tokenises each completion so the accuracy-against-budget curve can be computed.")] = None,
    audit_dir: Annotated[Optional[Path], typer.Option("--audit", help="List the curated problems of this finished run that overlap --benchmark (a benchmark added after the run).")] = None,
    replay_dir: Annotated[Optional[Path], typer.Option("--replay", help="Regenerate one saved sample of this eval directory (with --model PATH, --problem, --sample) and say whether it reproduces.")] = None,
    problem: Annotated[Optional[str], typer.Option("--problem", help="With --replay: the problem id.")] = None,
    sample: Annotated[Optional[int], typer.Option("--sample", help="With --replay: the sample index.")] = None,
    thought_markers: Annotated[Optional[str], typer.Option("--thought-markers", help="With --import: the model's thought markers OPEN,CLOSE when not <think>,</think> (common ones are detected).")] = None,
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    workers: WorkersOpt = 1,
    rank: RankOpt = 0,
    world_size: WorldSizeOpt = 1,
    executor: ExecutorOpt = "local",
) -> None:
    """Evaluate one model: k samples per problem (T=0.6, top-p 0.95, `<think>` prefix), every sample kept.

    The model's own protocol goes in the config's `model:` block or `--set model.KEY=VALUE` (max_model_len,
    max_tokens, force_think, template, system_prompt, and the backend's options, e.g. model.vllm.dtype)."""
    from distill.config import apply_overrides, load, load_yaml, parse
    from distill.eval.config import EvalConfig, ModelSpec
    from distill.eval.stage import rescore as rescore_dir
    from distill.eval.stage import run

    results: list[dict] = []
    if (thought_markers is not None or tokenizer is not None) and import_format is None:
        raise DistillError("--thought-markers and --tokenizer are for --import (our own samples record their markers and token counts)")
    if audit_dir is not None:
        from distill.eval.audit import audit

        if not benchmark:
            raise DistillError("--audit RUN_DIR needs --benchmark NAME (repeatable)")
        found = audit(audit_dir, list(benchmark))
        for m in found["matches"]:
            typer.echo(json.dumps(m, ensure_ascii=False))
        typer.echo(json.dumps({"audited": str(audit_dir), "benchmarks": list(benchmark), "problems": found["problems"],
                               "ngram": found["ngram"], "overlapping": len(found["matches"])}))
        return
    if replay_dir is not None:
        from distill.eval.replay import replay

        if model is None or problem is None or sample is None:
            raise DistillError("--replay DIR needs --model PATH (the model as evaluated), --problem ID and --sample K")
        typer.echo(json.dumps(replay(replay_dir, model, problem, sample), ensure_ascii=False))
        return
    if output is None:
        raise DistillError("--output/-o DIR is required (the eval directory to write, rescore or import into)")
    if import_format is not None:
        from distill.eval.importers import import_samples

        if path is None or not benchmark or model is None:
            raise DistillError("--import FORMAT PATH needs --benchmark NAME (repeat it for a dump of several benchmarks) and --model NAME")
        markers = tuple(thought_markers.split(",")) if thought_markers else None
        if markers is not None and (len(markers) != 2 or not all(markers)):
            raise DistillError(f"--thought-markers: expected OPEN,CLOSE (e.g. '<|begin_of_thought|>,<|end_of_thought|>'), got {thought_markers!r}")
        cfg = load(EvalConfig, config, overrides or [])
        summary = import_samples(import_format, path, output, benchmarks=list(benchmark), model=model, bootstrap_resamples=cfg.bootstrap_resamples,
                                 grading=grading or cfg.grading, thought_markers=markers, tokenizer=tokenizer)
        typer.echo(json.dumps({"imported": str(path), **summary}))
        results.append(json.loads((output / "scores.json").read_text()))
    elif rescore:
        results += [rescore_dir(d, benchmark, grading) for d in _eval_dirs(output, model)]
    else:
        if model is None:
            raise DistillError("--model is required (or --rescore to re-judge saved samples)")
        data = load_yaml(config) if config is not None else {}
        if benchmark:
            data["benchmarks"] = list(benchmark)
        if "benchmarks" not in data and backend != "toy":
            # the config's default is the toy world's toy_arith: never a silent choice for a real model
            raise DistillError(f"--benchmark is required to evaluate {model} (e.g. --benchmark aime24; the specs are in evals/)")
        if grading is not None:
            data["grading"] = grading
        apply_overrides(data, overrides or [])
        own = data.pop("model", None) or {}
        if not isinstance(own, dict):
            raise DistillError(f"{config or 'config'}: field 'model': expected a mapping of the model's own protocol, got {own!r}")
        cfg = parse(EvalConfig, data, config or "config")
        spec = parse(ModelSpec, {**own, "name": name or Path(output).name, "backend": backend, "model": resolve_model(model),
                                 "baseline": baseline, "r1_reference": r1_reference}, config or "command line")
        results.append(run(cfg, spec, output, workers=workers, rank=rank, world_size=world_size, executor=executor))
    for scores in results:
        for bench, s in scores.get("benchmarks", {}).items():
            lo, hi = s["pass@1_ci95"]
            typer.echo(json.dumps({"model": (scores.get("model") or {}).get("name"), "benchmark": bench, "pass@1": round(s["pass@1"], 4),
                                   "ci95": [round(lo, 4), round(hi, 4)], "cons@k": round(s["cons@k"], 4), "k": s["k"], "n": s["n_problems"]}))
