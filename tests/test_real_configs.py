"""The shipped real pipelines agree with each other and with what their models and installs can do (review N6, N7, N13)."""

import json
import tomllib
from pathlib import Path

import pytest

from distill.config import parse
from distill.errors import DistillError
from distill.pipeline import PipelineConfig, load_pipeline, read_pipeline
from distill.sft.stage import ATTENTION_PACKAGES, _installed

ROOT = Path(__file__).resolve().parent.parent
R1, KD = ROOT / "pipelines" / "r1_distill.yaml", ROOT / "pipelines" / "r1_kd.yaml"


def test_a_model_both_pipelines_evaluate_has_one_record():
    """runs/r1 is shared: 05_eval/<name> refuses a second, different record of the same model."""
    r1 = {m.name: m.model_dump(mode="json") for m in load_pipeline(R1).eval.models}
    kd = {m.name: m.model_dump(mode="json") for m in load_pipeline(KD).eval.models}
    shared = set(r1) & set(kd)
    assert shared == {"r1-distill-qwen-7b", "qwen2.5-math-7b-instruct"}
    assert all(r1[n] == kd[n] for n in shared), [n for n in shared if r1[n] != kd[n]]


def test_an_eval_context_beyond_the_models_positions_is_refused_at_config_load(tmp_path):
    """vLLM refuses max_model_len > max_position_embeddings at engine start; a config readable here says so first."""
    model = tmp_path / "qwen2.5-math-7b-instruct"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"max_position_embeddings": 4096, "rope_theta": 10000.0}))
    data = read_pipeline(KD)
    baseline = next(m for m in data["eval"]["models"] if m["name"] == "qwen2.5-math-7b-instruct")
    baseline["model"] = str(model)
    parse(PipelineConfig, data, KD)  # as shipped: 4,096
    baseline.update(max_model_len=36864, max_tokens=None)
    with pytest.raises(DistillError, match="max_model_len 36864 is more than its 4096 positions"):
        parse(PipelineConfig, data, KD)


def test_a_students_eval_context_is_checked_against_its_extended_positions():
    data = read_pipeline(R1)
    student = next(s for s in data["sft"]["students"] if s["name"] == "qwen2.5-math-7b")
    student["training"]["model_init_kwargs"]["max_position_embeddings"] = 32768
    with pytest.raises(DistillError, match="r1-distill-qwen-7b': max_model_len 36864 is more than its 32768 positions"):
        parse(PipelineConfig, data, R1)


def test_the_math_students_are_evaluated_with_r1s_32768_new_tokens():
    """They are saved with 36,864 positions precisely so that R1's protocol fits (review N13)."""
    from distill.eval.config import token_limit
    from distill.eval.stage import resolved_specs

    cfg = load_pipeline(R1)
    for m in cfg.eval.models:
        if m.model in ("sft:qwen2.5-math-1.5b", "sft:qwen2.5-math-7b"):
            assert m.max_model_len == 36864 and m.max_tokens is None
            assert {token_limit(s.max_tokens, m) for s in resolved_specs(cfg.eval)} == {32768}


def attention_kernels() -> set[str]:
    cfgs = [*(s.training for s in load_pipeline(R1).sft.students), *(r.training for r in load_pipeline(KD).kd.runs)]
    return {(t.get(k) or {}).get("attn_implementation") for t in cfgs for k in ("model_init_kwargs", "teacher_model_init_kwargs")} - {None}


def test_every_attention_kernel_a_shipped_config_asks_for_is_in_the_gpu_extra():
    """transformers accepts FA2 only from the flash-attn distribution, which `[gpu]` does not install (review N7)."""
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]
    installed_by_extra = {req.split(">")[0].split("=")[0].strip() for req in extra}
    assert {ATTENTION_PACKAGES[k] for k in attention_kernels()} <= installed_by_extra


@pytest.mark.skipif(_installed("flash-attn-4"), reason="flash-attn-4 is installed here")
def test_kd_names_the_gpu_extra_when_its_attention_kernel_is_missing(tmp_path):
    from distill.kd.config import KDConfig
    from distill.kd.stage import run

    kd = load_pipeline(KD).kd.runs[0]
    cfg = KDConfig(**{**kd.model_dump(mode="json"), "student": str(tmp_path / "s"), "teacher": str(tmp_path / "t")})
    with pytest.raises(DistillError, match=r"teacher_model_init_kwargs.attn_implementation=flash_attention_4 needs flash-attn-4.*distill\[gpu\]"):
        run(cfg, tmp_path / "in", tmp_path / "out")


def test_the_vllm_extra_pins_the_minor_the_tests_run():
    """`LLM.enqueue` and `vllm.tokenizers` need 0.32; 0.33 pins another torch (review N8)."""
    from distill.generate.config import _vllm_version

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["vllm"]
    assert extra == ["vllm==0.32.*"]
    installed = _vllm_version()
    if installed != "(unknown version)":
        assert installed.startswith("0.32."), installed


def test_r1_kd_states_the_trl_vllm_pair_of_its_server():
    header = KD.read_text().split("\nname:")[0]
    assert "trl==1.16.*" in header and "vllm==0.31.*" in header
