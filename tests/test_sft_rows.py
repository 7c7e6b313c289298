"""What reaches the trainer: over-long rows dropped whole, GPU-only settings refused up front."""

import json

import pytest
from transformers import AutoTokenizer

from distill.errors import DistillError
from distill.sft.config import StudentConfig
from distill.sft.stage import run
from tests.sft_fixtures import curated_rows, write_curated


def test_rows_longer_than_max_length_are_dropped_never_truncated(tmp_path):
    inp = write_curated(tmp_path / "curated", 40)
    out = tmp_path / "out"
    kept = [r["messages"] for r in curated_rows(40) if r["messages"]]
    # Every kept row in one batch of one step: the tokens trained on are exactly the rows that fit.
    training = {"max_steps": 1, "per_device_train_batch_size": len(kept), "logging_steps": 1, "save_steps": 1}
    cfg = StudentConfig(name="s", model="toy:qwen2", chat_template="distill/templates/qwen2.jinja", training=training)
    run(cfg, inp, out, check_only=True)  # builds the toy model; the check reads the lengths
    tok = AutoTokenizer.from_pretrained(out / "base")
    tok.chat_template = cfg.template_path().read_text()
    lengths = sorted(len(tok.apply_chat_template(m, tokenize=True, return_dict=True)["input_ids"]) for m in kept)
    max_length = lengths[len(lengths) // 2]
    cfg = cfg.model_copy(update={"max_length": max_length, "max_too_long_share": 1.0})

    summary = run(cfg, inp, out, threads=1)
    fits = [n for n in lengths if n <= max_length]
    assert summary["rows_too_long"] == len(lengths) - len(fits) > 0
    assert summary["rows_train"] == len(fits) and summary["rows_kept"] == len(kept)
    assert summary["tokens_seen"] == sum(fits)  # a truncated row would add max_length tokens
    assert json.loads((out / "check.json").read_text())["too_long"] > 0
    assert f"{summary['rows_too_long']} longer rows dropped" in (out / "model" / "README.md").read_text()


def test_check_refuses_max_length_beyond_the_models_positions(tmp_path):
    inp = write_curated(tmp_path / "curated", 10)
    cfg = StudentConfig(name="s", model="toy:llama", chat_template="distill/templates/llama3.jinja", max_length=4096)
    report = run(cfg, inp, tmp_path / "out", check_only=True)
    assert report["max_position_embeddings"] == 2048
    assert "exceeds the model's max_position_embeddings=2048" in json.loads((tmp_path / "out" / "check.json").read_text())["problems"][0]
    extended = cfg.model_copy(update={"training": {"model_init_kwargs": {"max_position_embeddings": 4096}}})
    assert run(extended, inp, tmp_path / "out2", check_only=True)["max_position_embeddings"] == 4096


def test_a_missing_gpu_package_is_one_line_naming_the_extra(tmp_path):
    inp = write_curated(tmp_path / "curated", 10)
    training = {"model_init_kwargs": {"attn_implementation": "flash_attention_4"}}
    cfg = StudentConfig(name="s", model="toy:qwen2", chat_template="distill/templates/qwen2.jinja", training=training)
    with pytest.raises(DistillError, match=r"attn_implementation=flash_attention_4 needs flash-attn-4, not installed: pip install 'distill\[gpu\]'"):
        run(cfg, inp, tmp_path / "out")
    assert not (tmp_path / "out").exists()
