"""`distill kd`: on-policy distillation of one student after SFT (also under `accelerate launch`)."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from distill.cli_options import ConfigOpt, InputOpt, OutputOpt, set_option
from distill.config import load
from distill.kd.config import KDConfig

SetOpt = set_option("max_completion_length=512")


def kd_cmd(
    input: InputOpt,
    output: OutputOpt,
    config: ConfigOpt = None,
    set: SetOpt = None,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads for torch (default: all).")] = None,
) -> None:
    """Distil a teacher into an SFT'd student on the student's own samples (trl DistillationTrainer); the input is a
    prompts or curated stage. Student and teacher must share a tokenizer and chat template (checked first)."""
    from distill.kd.stage import run

    cfg = load(KDConfig, config, set)
    typer.echo(json.dumps(run(cfg, input, output, threads=threads), sort_keys=True), err=True)
