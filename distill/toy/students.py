"""Tiny Qwen2 and Llama students built from config, so the sft and eval stages run real model code offline.

`toy:qwen2` or `toy:llama[:size]` as a student's model name resolves here; anything else is loaded
with `from_pretrained`. head_dim is 32 because vLLM's CPU attention only takes 32/64/80/96/112/128.
"""

from __future__ import annotations

from pathlib import Path

# arch -> (transformers config class, model class, toy tokenizer family); imported when a student is
# built, so parsing a config that names `toy:*` loads neither torch nor transformers.
ARCHS = {"qwen2": ("Qwen2Config", "Qwen2ForCausalLM", "qwen2"), "llama": ("LlamaConfig", "LlamaForCausalLM", "llama3")}

# hidden, layers, heads (head_dim 32), kv heads, MLP width. "tiny" is ~0.85M parameters with the toy
# vocabulary: the default, and the on-policy KD toy's teacher (pipelines/toy_kd.yaml).
SIZES = {
    "tiny": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, intermediate_size=384),
    # ~0.48M: tiny at three quarters of its width, a step ~30% cheaper: the demo's students (pipelines/sft/toy/)
    "narrow": dict(hidden_size=96, num_hidden_layers=4, num_attention_heads=3, num_key_value_heads=1, intermediate_size=288),
    # ~0.1M: a student well below the tiny teacher after the same SFT, for the on-policy KD toy (pipelines/toy_kd.yaml)
    "micro": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, intermediate_size=192),
    "small": dict(hidden_size=256, num_hidden_layers=6, num_attention_heads=8, num_key_value_heads=4, intermediate_size=768),
}
SEED = 1234  # the init of training seed 0; seed s draws SEED + s


def parse_toy_name(name: str) -> tuple[str, str] | None:
    """`toy:qwen2[:size]` -> ("qwen2", size); None for a real model name or path."""
    if not name.startswith("toy:"):
        return None
    arch, _, size = name[4:].partition(":")
    if arch not in ARCHS:
        raise ValueError(f"toy model must be one of {[f'toy:{a}' for a in ARCHS]}, got {name!r}")
    size = size or "tiny"
    if size not in SIZES:
        raise ValueError(f"toy model size must be one of {sorted(SIZES)}, got {size!r} in {name!r}")
    return arch, size


def build_student(arch: str, out_dir: Path, tokenizer=None, size: str = "tiny", seed: int = SEED) -> Path:
    """Random-init (seeded) student of `arch` saved with its tokenizer in `out_dir`; returns `out_dir`.

    `tokenizer`: a path or tokenizer object; without one, the toy tokenizer of the arch's family is
    built into `out_dir`.
    """
    import torch
    import transformers
    from transformers import AutoTokenizer

    from distill.toy.tokenizer import build_tokenizer

    if arch not in ARCHS:
        raise ValueError(f"toy arch must be one of {sorted(ARCHS)}, got {arch!r}")
    config_name, model_name, family = ARCHS[arch]
    config_cls, model_cls = getattr(transformers, config_name), getattr(transformers, model_name)
    out_dir = Path(out_dir)
    if tokenizer is None:
        tok = build_tokenizer(out_dir, family)
    else:
        tok = AutoTokenizer.from_pretrained(tokenizer) if isinstance(tokenizer, (str, Path)) else tokenizer
        tok.save_pretrained(out_dir)
    dims = SIZES[size]
    config = config_cls(
        vocab_size=len(tok),
        head_dim=dims["hidden_size"] // dims["num_attention_heads"],
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        dtype="float32",
        **dims,
    )
    torch.manual_seed(seed)
    model = model_cls(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out_dir)
    return out_dir
