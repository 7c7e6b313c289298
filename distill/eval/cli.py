"""`distill eval`: sample a model on benchmarks under the R1 protocol, or `--rescore` saved samples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from distill.cli_options import ConfigOpt, OutputOpt, RankOpt, SetOpt, WorkersOpt, WorldSizeOpt
from distill.errors import DistillError


def eval_cmd(
    output: OutputOpt,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model path or id to evaluate.")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Model name in scores and the report (default: output dir name).")] = None,
    backend: Annotated[str, typer.Option("--backend", "-b", help="toy | transformers | vllm | openai.")] = "transformers",
    baseline: Annotated[Optional[str], typer.Option("--baseline", help="Name of the undistilled model this one is compared with.")] = None,
    benchmark: Annotated[Optional[list[str]], typer.Option("--benchmark", help="Benchmark spec name or YAML path (repeatable); default: the config's.")] = None,
    rescore: Annotated[bool, typer.Option("--rescore", help="Re-judge the saved samples in --output and rewrite scores; no model runs.")] = False,
    config: ConfigOpt = None,
    overrides: SetOpt = None,
    workers: WorkersOpt = 1,
    rank: RankOpt = 0,
    world_size: WorldSizeOpt = 1,
) -> None:
    """Evaluate one model: k samples per problem (T=0.6, top-p 0.95, `<think>` prefix), every sample kept."""
    from distill.config import load, parse
    from distill.eval.config import EvalConfig, ModelSpec
    from distill.eval.stage import rescore as rescore_dir
    from distill.eval.stage import run

    if rescore:
        scores = rescore_dir(output)
    else:
        if model is None:
            raise DistillError("--model is required (or --rescore to re-judge saved samples)")
        base = {"benchmarks": list(benchmark)} if benchmark else None
        cfg = load(EvalConfig, config, overrides or [], base=base)
        if benchmark and config is not None:
            cfg = cfg.model_copy(update={"benchmarks": list(benchmark)})
        spec = parse(ModelSpec, {"name": name or Path(output).name, "backend": backend, "model": model, "baseline": baseline}, "command line")
        scores = run(cfg, spec, output, workers=workers, rank=rank, world_size=world_size)
    for bench, s in scores.get("benchmarks", {}).items():
        lo, hi = s["pass@1_ci95"]
        typer.echo(json.dumps({"benchmark": bench, "pass@1": round(s["pass@1"], 4), "ci95": [round(lo, 4), round(hi, 4)],
                               "cons@k": round(s["cons@k"], 4), "k": s["k"], "n": s["n_problems"]}))
