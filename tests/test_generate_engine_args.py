"""Every pipelines/r1_generate*.yaml `vllm:` block as vLLM's own installed `EngineArgs` (review item 4, N15).

Construction checks every key and value the block sets (on the tiny R1-tokenizer body: the real checkpoint is
not here); `create_engine_config()` then validates model, cache, scheduler and parallel settings together,
with only distill.rehearsal's device overrides (one CPU engine: TP 1, PP 1, no Ray, no CUDA graphs).
What stays unproven without GPUs: TP 8 x PP 2 placement, FP8 weights, the KV-cache size at 0.92 of an H100/H200.
"""


import pytest

from distill import rehearsal
from distill.generate.config import RUNTIME_ONLY, GenerateConfig, vllm_engine_args
from tests import rehearsals

VLLM_CONFIGS = [p for p in rehearsals.GENERATE_CONFIGS if rehearsal.shipped(p)["backend"] == "vllm"]


def test_every_runtime_only_vllm_key_is_an_engine_argument():
    """`swap_space` is not an EngineArgs field of vLLM 0.32: listing it hid a key that fails config load."""
    known = vllm_engine_args()
    if known is None:
        pytest.skip("vllm is not installed")
    assert RUNTIME_ONLY["vllm"] - {"data_parallel_size"} <= known


def test_extra_vllm_keys_parse_where_vllm_is_not_installed(monkeypatch, caplog):
    """An SFT node or a laptop running `distill plan` parses r1_generate_h100.yaml; the vLLM node checks the keys."""
    import distill.generate.config as config

    monkeypatch.setattr(config, "vllm_engine_args", lambda: None)
    cfg = GenerateConfig(**rehearsal.shipped(rehearsals.ROOT / "pipelines" / "r1_generate_h100.yaml"))
    assert cfg.vllm.model_extra["pipeline_parallel_size"] == 2
    assert "not checked: vllm is not installed" in caplog.text


def test_r1_is_loaded_without_checkpoint_code():
    """transformers and vLLM implement deepseek_v3; the checkpoint's 2025 configuration_deepseek.py is not needed."""
    from transformers import CONFIG_MAPPING

    assert "deepseek_v3" in CONFIG_MAPPING
    assert all(GenerateConfig(**rehearsal.shipped(p)).vllm.trust_remote_code is False for p in VLLM_CONFIGS)


@pytest.mark.vllm
@pytest.mark.slow  # vLLM's import and first engine config take 1-2 min on a loaded 2-core machine
def test_each_shipped_vllm_block_is_valid_engine_args(tmp_path):
    import vllm

    from distill.generate.backends.vllm_engine import engine_kwargs
    from tests.real_students import build_model

    body = build_model("deepseek-r1", tmp_path / "r1")
    for path in VLLM_CONFIGS:
        shipped = GenerateConfig(**rehearsal.shipped(path))
        args = vllm.EngineArgs(**engine_kwargs(str(body), shipped.vllm))  # every shipped key and value, as vllm.LLM gets them
        assert args.tensor_parallel_size == shipped.vllm.tensor_parallel_size and args.max_model_len == 36864
        ran = GenerateConfig(**rehearsals.generate(path, body))
        engine = vllm.EngineArgs(**engine_kwargs(ran.model, ran.vllm)).create_engine_config()
        assert engine.model_config.max_model_len == shipped.vllm.max_model_len
        assert engine.cache_config.enable_prefix_caching == shipped.vllm.enable_prefix_caching
        assert engine.scheduler_config.max_num_seqs == shipped.vllm.max_num_seqs
