"""A tokenizer that does not give back the text it encodes is refused wherever a model's text goes in: the
teacher's engine (before its weights load), the transformers backend, SFT and KD. DeepSeek-R1's published
tokenizer files beside a Llama config.json are such a tokenizer under transformers 5.x, the case of
DeepSeek-R1-Distill-Llama (huggingface/transformers#47017); beside R1's own config (deepseek_v3) they round-trip
(tests/test_r1_rehearsal.py::test_the_teacher_tokenizer_keeps_spaces_and_newlines)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from distill.errors import DistillError
from distill.generate.config import HFOptions, VLLMOptions
from distill.generate.prompting import check_round_trip
from tests.real_students import MODELS, build_model, real_tokenizer, tokenizer_dir


@pytest.fixture(scope="module")
def published_r1(tmp_path_factory) -> Path:
    """R1's tokenizer files exactly as published (tokenizer_class LlamaTokenizerFast) beside a tiny Llama body."""
    out = build_model("deepseek-r1", tmp_path_factory.mktemp("r1"))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(tokenizer_dir("deepseek-r1")) / name, out / name)
    return out


def test_vllm_refuses_r1_as_published_before_loading_weights(published_r1, monkeypatch):
    import vllm

    from distill.generate.backends.vllm_engine import VLLMBackend

    def engine_started(**kwargs):
        raise AssertionError("the engine started before the tokenizer was checked")

    monkeypatch.setattr(vllm, "LLM", engine_started)
    with pytest.raises(DistillError) as e:
        VLLMBackend(str(published_r1), VLLMOptions())
    message = str(e.value)
    assert message.startswith(f"{published_r1}: its tokenizer") and "\n" not in message
    assert "'Whatis2+2?" in message and '"tokenizer_class": "PreTrainedTokenizerFast"' in message and "#47017" in message


def test_transformers_backend_refuses_r1_as_published(published_r1):
    from distill.generate.backends.hf import TransformersBackend

    with pytest.raises(DistillError, match=r"does not give back the text it encodes"):
        TransformersBackend(str(published_r1), HFOptions())


def test_sft_refuses_a_student_whose_tokenizer_loses_spaces(published_r1):
    from distill.sft.config import StudentConfig
    from distill.sft.stage import load_tokenizer

    cfg = StudentConfig(name="s", model=str(published_r1), chat_template="distill/templates/qwen2.jinja")
    with pytest.raises(DistillError, match=r"does not give back the text it encodes"):
        load_tokenizer(str(published_r1), cfg)


@pytest.mark.parametrize("family", sorted({spec.tokenizer for spec in MODELS.values()}))
def test_the_tokenizers_the_test_models_are_built_with_round_trip(family):
    """Each tokenizer as build_model writes it (the teacher's naming the byte-level class, beside its Llama body) and
    as published beside its model's own config (R1's: model_type deepseek_v3, no edit needed)."""
    [tokenizer_class] = {spec.tokenizer_class for spec in MODELS.values() if spec.tokenizer == family}
    check_round_trip(real_tokenizer(family, tokenizer_class=tokenizer_class), family)
    check_round_trip(real_tokenizer(family), family)
