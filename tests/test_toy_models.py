import random

import pytest
import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

from distill.generate.prompting import messages_for
from distill.toy.students import build_student, parse_toy_name
from distill.toy.tasks import make_chat_problems, make_code_problems, make_problems
from distill.toy.teacher import ToyTeacherConfig, write_trace
from distill.toy.tokenizer import FAMILIES, build_tokenizer

END_OF_TURN = {"qwen2": "<|im_end|>", "llama3": "<|eot_id|>"}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def tokenizer(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    build_tokenizer(out, request.param)
    return request.param, AutoTokenizer.from_pretrained(out)  # offline, from the saved files only


def conversation(seed=0):
    p = make_problems(1, seed=seed)[0]
    completion, _ = write_trace(p["prompt"], random.Random(seed), ToyTeacherConfig(self_correction=1.0), 512)
    return messages_for(p["prompt"], "math") + [{"role": "assistant", "content": completion}]


def test_think_tags_are_single_non_special_tokens_that_survive_decoding(tokenizer):
    _, tok = tokenizer
    for tag in ("<think>", "</think>"):
        ids = tok(tag, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1
        assert tag not in tok.all_special_tokens
    text = "<think>\nOnes: 7 + 8 = 15.\n</think>\n\\boxed{85}"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"], skip_special_tokens=True) == text


def test_digits_are_split_one_by_one_and_any_text_round_trips(tokenizer):
    _, tok = tokenizer
    assert [t for t in tok.tokenize("12345") if t.strip("Ġ")] == list("12345")
    odd = "个位: 7 + 8 = 15. 写 5 — naïve ☃ \t\n"
    assert tok.decode(tok(odd, add_special_tokens=False)["input_ids"]) == odd


def test_template_trains_the_assistant_turn_and_its_end_token_only(tokenizer):
    family, tok = tokenizer
    messages = conversation()
    out = tok.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    trained = [i for i, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert tok.eos_token == END_OF_TURN[family]
    assert tok.decode(trained) == messages[-1]["content"].strip() + END_OF_TURN[family]
    prompt = tok.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert tok.apply_chat_template(messages, tokenize=False).startswith(prompt)


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_students_build_from_config_and_load_with_from_pretrained(arch, tmp_path):
    out = build_student(arch, tmp_path / arch)
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.config.model_type == arch
    assert model.config.head_dim in (32, 64, 80, 96, 112, 128)  # vLLM's CPU attention
    assert model.config.vocab_size == len(tok)
    assert model.get_input_embeddings().weight.data_ptr() == model.get_output_embeddings().weight.data_ptr()
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    again = AutoModelForCausalLM.from_pretrained(build_student(arch, tmp_path / "again", tokenizer=out))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_toy_model_names():
    assert parse_toy_name("toy:qwen2") == ("qwen2", "tiny")
    assert parse_toy_name("toy:llama:small") == ("llama", "small")
    assert parse_toy_name("Qwen/Qwen2.5-Math-7B") is None
    with pytest.raises(ValueError, match="toy:qwen2"):
        parse_toy_name("toy:gpt2")


def test_merges_cover_every_domain_the_teacher_writes(tokenizer):
    """Arithmetic-only merges left programs at ~3 and greetings at ~4 tokens per word (slow SFT and eval)."""
    _, tok = tokenizer
    rng = random.Random(3)
    domains = {
        "arith": (make_problems(50, seed=3, split="test", digits=3), 2.6),  # one token per digit
        "code": (make_code_problems(30, seed=3, split="test"), 2.2),
        "chat": (make_chat_problems(60, seed=3, split="test"), 2.5),
    }
    for name, (problems, bound) in domains.items():
        texts = [p["prompt"] + "\n" + write_trace(p["prompt"], rng, ToyTeacherConfig(), 256)[0] for p in problems]
        tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)
        assert tokens / sum(len(t.split()) for t in texts) < bound, name


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_a_student_s_tokenizer_loads_as_it_was_trained(arch, tmp_path):
    """From a model directory transformers 5 loads a qwen2 tokenizer as Qwen2Tokenizer, which keeps the
    trained merges but rebuilds Qwen2's own pre-tokenizer over them: the toy's must split text the same way."""
    student = build_student(arch, tmp_path / "student")
    as_trained = Tokenizer.from_file(str(student / "tokenizer.json"))  # the saved pipeline, pre-tokenizer included
    as_loaded = AutoTokenizer.from_pretrained(student)
    rng = random.Random(5)
    problems = make_problems(40, seed=5, split="test", digits=4) + make_code_problems(20, seed=5, split="test")
    problems += make_chat_problems(20, seed=5, split="test")
    cfg = ToyTeacherConfig(language_switch=0.2, repetition=0.1)  # Chinese and loops too
    for p in problems:
        messages = [{"role": "user", "content": p["prompt"]}, {"role": "assistant", "content": write_trace(p["prompt"], rng, cfg, 512)[0]}]
        text = as_loaded.apply_chat_template(messages, tokenize=False)
        assert as_loaded(text)["input_ids"] == as_trained.encode(text).ids, text
