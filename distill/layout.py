"""Where each stage writes inside a run directory: the names every reader of a run (pipeline, progress,
report, plan) agrees on. Kept in a module that imports nothing, so readers need not import the pipeline."""

from __future__ import annotations

STAGES = ("prompts", "generate", "filter", "sft", "kd", "eval", "report")
PROMPTS, TRACES, CURATED, SFT, KD, EVAL, REPORT = "01_prompts", "02_traces", "03_curated", "04_sft", "04_kd", "05_eval", "report"
LOGS = "logs"  # <run>/logs/<stage>.log: what the libraries print (see distill.console)


def trained_in_run(ref: str) -> tuple[str, str] | None:
    """(stage directory, name) of a model a pipeline trained, named `sft:<student>` or `kd:<run>`; None for any other."""
    for prefix, stage in (("sft:", SFT), ("kd:", KD)):
        if ref.startswith(prefix):
            return stage, ref.removeprefix(prefix)
    return None
