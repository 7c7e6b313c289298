"""The thin typer commands: options parse, config overrides apply, the stage runs."""

import json

import typer
from typer.testing import CliRunner

from distill.filter.cli import filter_cmd
from distill.prompts.cli import prompts_cmd
from distill.stage import StageDir
from tests.filter_fixtures import toy_traces, write_traces_stage


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("prompts")(prompts_cmd)
    app.command("filter")(filter_cmd)
    return app


def test_prompts_and_filter_commands(tmp_path):
    runner = CliRunner()
    res = runner.invoke(_app(), ["prompts", "-o", str(tmp_path / "p"), "--set", "toy.n=30", "--set", "rows_per_shard=10"])
    assert res.exit_code == 0, res.output
    assert len(StageDir(tmp_path / "p").parts()) == 3
    write_traces_stage(tmp_path / "t", toy_traces(10, 4), shards=2)
    cfg = tmp_path / "filter.yaml"
    cfg.write_text("select:\n  policy: first\n")
    res = runner.invoke(_app(), ["filter", "-i", str(tmp_path / "t"), "-o", str(tmp_path / "c"), "-c", str(cfg), "--set", "checks.max_paragraph_chars=100"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "c" / "config.json").read_text())["config"]["select"]["policy"] == "first"
    stats = StageDir(tmp_path / "c").stats()
    assert sum(s["rows_out"] for s in stats) <= 10 and all("rejected" in s for s in stats)
