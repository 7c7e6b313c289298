"""Generate configs: the shipped R1 configs load and validate; bad values are one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from distill.config import load
from distill.errors import DistillError
from distill.generate.backends import BACKENDS
from distill.generate.config import BackendConfig, GenerateConfig

PIPELINES = Path(__file__).resolve().parent.parent / "pipelines"


@pytest.mark.parametrize("name", ["r1_generate.yaml", "r1_generate_api.yaml"])
def test_shipped_r1_configs_load_with_the_r1_protocol(name):
    cfg = load(GenerateConfig, PIPELINES / name)
    assert cfg.teacher == "deepseek-ai/DeepSeek-R1"
    assert (cfg.sampling.temperature, cfg.sampling.top_p, cfg.sampling.max_tokens) == (0.6, 0.95, 32768)
    assert cfg.prompt_template == "r1" and cfg.force_think and cfg.backend in BACKENDS
    if cfg.backend == "vllm":
        assert cfg.vllm.tensor_parallel_size == 8 and cfg.vllm.max_model_len >= 32768 + 1024
    else:
        assert cfg.openai.api_key_env == "DEEPSEEK_API_KEY" and "sk-" not in (PIPELINES / name).read_text()


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
