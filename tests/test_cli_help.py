"""`--help` reads as written: the stage list keeps `[kd]`, flags carry no type placeholder, and each
command's `--set` example names a key its own config has."""

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.config import load

ROOT = Path(__file__).resolve().parent.parent


def help_text(*command):
    result = CliRunner().invoke(app, [*command, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.output


def test_top_level_help_lists_every_stage_and_no_placeholders():
    text = help_text()
    assert "sft -> [kd] -> eval -> report" in " ".join(text.split())
    assert "<bool>" not in text


def _applies(command: str, override: str) -> None:
    """The override parses against the config the command reads."""
    from distill.eval.config import EvalConfig
    from distill.filter.config import FilterConfig
    from distill.generate.config import GenerateConfig
    from distill.kd.config import KDConfig
    from distill.pipeline import load_pipeline
    from distill.prompts.config import PromptsConfig
    from distill.sft.config import StudentConfig

    if command in ("run", "plan"):
        load_pipeline(ROOT / "pipelines" / "toy.yaml", [override])
        return
    path = ROOT / "pipelines/sft/toy/toy-llama.yaml" if command == "sft" else None
    base = {"name": "x", "student": "s", "teacher": "t"} if command == "kd" else None
    cls = {"prompts": PromptsConfig, "generate": GenerateConfig, "filter": FilterConfig, "sft": StudentConfig, "kd": KDConfig, "eval": EvalConfig}[command]
    before, after = load(cls, path, [], base), load(cls, path, [override], base)
    assert before != after, f"{override} changed nothing in {cls.__name__}"


@pytest.mark.parametrize("command", ["prompts", "generate", "filter", "sft", "kd", "eval", "run", "plan"])
def test_each_set_example_is_a_key_of_that_command(command):
    text = " ".join(help_text(command).split())
    assert "<bool>" not in text
    (example,) = re.findall(r"e\.g\. --set (\S+=\S+)", text)
    _applies(command, example)
