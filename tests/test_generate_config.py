"""Generate configs: the shipped R1 configs load and validate; bad values are one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from distill.config import load
from distill.errors import DistillError
from distill.generate.backends import BACKENDS
from distill.generate.config import BackendConfig, GenerateConfig, vllm_engine_args
from distill.pricing import Price

PIPELINES = Path(__file__).resolve().parent.parent / "pipelines"


@pytest.mark.parametrize("name", ["r1_generate.yaml", "r1_generate_h100.yaml", "r1_generate_api.yaml"])
def test_shipped_r1_configs_load_with_the_r1_protocol(name):
    cfg = load(GenerateConfig, PIPELINES / name)
    # The API's deepseek-reasoner is not R1 today: that config leaves the teacher to the served model name.
    assert cfg.teacher == (None if cfg.backend == "openai" else "deepseek-ai/DeepSeek-R1")
    assert (cfg.sampling.temperature, cfg.sampling.top_p, cfg.sampling.max_tokens) == (0.6, 0.95, 32768)
    assert cfg.prompt_template == "r1" and cfg.force_think and cfg.backend in BACKENDS
    if cfg.backend == "vllm":
        assert cfg.vllm.tensor_parallel_size == 8 and cfg.vllm.max_model_len >= 32768 + 1024
        assert (cfg.vllm.model_extra or {}).get("pipeline_parallel_size", 1) == (2 if "h100" in name else 1)
    else:
        assert cfg.openai.api_key_env == "DEEPSEEK_API_KEY" and "sk-" not in (PIPELINES / name).read_text()
        assert cfg.openai.price is not None and cfg.openai.max_spend_usd


def test_defaults_are_the_r1_protocol():
    cfg = GenerateConfig()
    assert (cfg.sampling.temperature, cfg.sampling.top_p, cfg.sampling.max_tokens) == (0.6, 0.95, 32768)
    assert cfg.backend == "toy" and cfg.force_think and cfg.prompt_template == "r1"


def test_runtime_knobs_are_not_part_of_the_identity():
    a = GenerateConfig(backend="openai", openai={"base_url": "http://a/v1", "max_concurrency": 4})
    b = GenerateConfig(backend="openai", openai={"base_url": "http://b/v1", "max_concurrency": 64})
    assert a.identity() == b.identity()
    assert a.identity() != GenerateConfig(backend="openai", sampling={"seed": 1}).identity()


@pytest.mark.parametrize(
    "override, field",
    [
        ("budget.accept=5", "(top level)"),
        ("prompt_template=nope", "prompt_template"),
        ("backend=sglang", "backend"),
        ("vllm.tensor_parallel_size=0", "vllm.tensor_parallel_size"),
        ("sampling.top_p=1.5", "sampling.top_p"),
        ("openai.api_key=sk-123", "openai.api_key"),  # keys never go in a config: unknown field
    ],
)
def test_bad_values_name_the_field(tmp_path, override, field):
    cfg_file = tmp_path / "g.yaml"
    cfg_file.write_text("samples_per_prompt: 2\n")
    with pytest.raises(DistillError, match=re.escape(f"g.yaml: field '{field}'")):
        load(GenerateConfig, cfg_file, [override])


def test_backend_config_is_usable_alone():
    assert BackendConfig(backend="transformers", model="some/dir").transformers.batch_size == 8


@pytest.mark.skipif(vllm_engine_args() is None, reason="vllm is not installed")
def test_vllm_engine_arguments_pass_through_and_unknown_ones_are_named(tmp_path):
    cfg = GenerateConfig(backend="vllm", vllm={"pipeline_parallel_size": 2, "distributed_executor_backend": "ray", "kv_cache_dtype": "fp8"})
    assert cfg.vllm.model_extra == {"pipeline_parallel_size": 2, "distributed_executor_backend": "ray", "kv_cache_dtype": "fp8"}
    assert "kv_cache_dtype" in cfg.identity()["vllm"] and "pipeline_parallel_size" not in cfg.identity()["vllm"]
    cfg_file = tmp_path / "g.yaml"
    cfg_file.write_text("backend: vllm\nvllm:\n  pipeline_paralel_size: 2\n")
    with pytest.raises(DistillError, match="vllm.pipeline_paralel_size: not an engine argument of vLLM") as e:
        load(GenerateConfig, cfg_file)
    assert "\n" not in str(e.value)


def test_price_table_costs_cached_input_and_output():
    p = Price(input=0.28, cached_input=0.028, output=0.42)
    assert p.cost(1_000_000, 2_000_000, cached_tokens=500_000) == pytest.approx(0.14 + 0.014 + 0.84)
    assert Price(input=1, output=2).cost(1_000_000, 0, cached_tokens=1_000_000) == pytest.approx(1.0)
