"""Where the think tags start, and the checks that catch a student which reasons and never closes its thought."""

import logging

import pytest
import torch
from transformers import AutoTokenizer

from distill.sft.check import problems, render
from distill.sft.config import StudentConfig
from distill.sft.smoke import warn_if_low
from distill.sft.stage import load_model, load_tokenizer
from distill.sft.start import close_tag_start, start_problems
from tests.real_students import build_model
from tests.sft_fixtures import curated_rows


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    """A tiny tied-embedding Qwen2.5 body with the real tokenizer: <think>/</think> are added tokens there."""
    path = build_model("qwen2.5-math-1.5b", tmp_path_factory.mktemp("qwen"))
    cfg = StudentConfig(name="s", model=str(path), chat_template="distill/templates/qwen2.jinja", training={})
    tok = load_tokenizer(str(path), cfg)
    return path, tok, load_model(str(path), {}, tok)


@pytest.fixture(scope="module")
def rendered(qwen):
    _, tok, _ = qwen
    return [render(tok, r["messages"])[0] for r in curated_rows(8, seed=3) if r["messages"]][:2]


def test_added_close_tag_starts_as_the_end_token_and_open_tag_as_its_spelling(qwen):
    """The 0% of SmolLM2 after SFT: the resized </think> row scored like an average token (-17.6 nats where the
    thought closes, the end token -2.7), and the student ended its turn there instead."""
    path, tok, model = qwen
    rows = model.get_input_embeddings().weight
    assert model.get_output_embeddings().weight.data_ptr() == rows.data_ptr()  # tied: one row reads and writes
    close, open_ = tok.convert_tokens_to_ids(["</think>", "<think>"])
    assert torch.equal(rows[close], rows[tok.eos_token_id])
    spelling = AutoTokenizer.from_pretrained(path).encode("<think>", add_special_tokens=False)
    assert len(spelling) > 1 and torch.allclose(rows[open_], rows[spelling].mean(0))


def test_start_check_passes_the_student_as_loaded(qwen, rendered):
    _, tok, model = qwen
    start = close_tag_start(model, tok, rendered)
    assert start["rows"] == len(rendered) and start["close_logp"] == pytest.approx(start["eos_logp_there"], abs=1e-3)
    assert start_problems(start) == []


def test_start_check_refuses_a_close_tag_far_below_the_end_token():
    """SmolLM2-135M-Instruct's start before the fix (measured): the tag at -17.6 nats where it belongs, its end token at -2.65."""
    start = {"rows": 4, "close_logp": -17.6, "eos_logp_there": -2.65}
    report = {"samples": 4, "think_lost": 0, "mask_all_zero": 0, "eos_missing_from_labels": 0, "too_long_share": 0.0,
              "max_length": 512, "start": start}
    assert "</think> starts out of reach" in problems(report, 1.0)[0]
    assert start_problems({**start, "close_logp": -2.65}) == []


def test_sft_warns_loudly_when_few_thoughts_close(caplog):
    with caplog.at_level(logging.WARNING):
        warn_if_low({"prompts": 5, "closed_thought": 0, "closed_share": 0.0, "sample": "<think>\nSo 1 + 1 = 2."}, "s")
        warn_if_low({"prompts": 5, "closed_thought": 5, "closed_share": 1.0, "sample": "<think>\n</think>2"}, "t")
    assert len(caplog.records) == 1 and "only 0/5 training prompts close their thought" in caplog.records[0].message
