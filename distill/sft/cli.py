"""`distill sft`: train one student on a curated stage (also under `accelerate launch`)."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from distill.cli_options import ConfigOpt, InputOpt, OutputOpt, set_option
from distill.config import load
from distill.sft.config import StudentConfig

SetOpt = set_option("training.learning_rate=1e-5")


def sft_cmd(
    input: InputOpt,
    output: OutputOpt,
    config: ConfigOpt = None,
    set: SetOpt = None,
    check: Annotated[bool, typer.Option("--check", help="Only run the pre-training check (template, masks, lengths) and print it.")] = False,
    prepare: Annotated[bool, typer.Option("--prepare", help="Only tokenize the training rows into OUTPUT/data, in this one process: run it before `accelerate launch`, whose ranks then reuse the files.")] = False,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads for torch (default: all).")] = None,
) -> None:
    """Fine-tune a student on the curated traces (full or LoRA); the check runs first and refuses a broken setup."""
    from distill.sft.check import problems
    from distill.sft.stage import run

    cfg = load(StudentConfig, config, set)
    result = run(cfg, input, output, check_only=check, prepare_only=prepare, threads=threads)
    if check:
        found = problems(result, cfg.max_too_long_share)
        typer.echo(json.dumps({k: v for k, v in result.items() if k != "examples"}, indent=2), err=True)
        typer.echo("\n".join(["check failed:"] + [f"  - {p}" for p in found]) if found else "check passed", err=True)
        raise typer.Exit(1 if found else 0)
    typer.echo(json.dumps(result, sort_keys=True), err=True)
