from pathlib import Path

import pytest
import yaml

from distill.config import parse
from distill.errors import DistillError
from distill.kd.config import KDConfig
from distill.pipeline import PipelineConfig, load_pipeline

ROOT = Path(__file__).resolve().parent.parent


def kd(**kw) -> dict:
    return {"name": "k", "student": "s", "teacher": "t", **kw}


def test_training_takes_distillation_config_fields_and_not_the_stages_own():
    KDConfig(**kd(training={"learning_rate": 1e-5, "vllm_server_port": 8001})).check_training()
    with pytest.raises(ValueError, match=r"training: not a trl.DistillationConfig field \('no_such_key'\)"):
        KDConfig(**kd(training={"no_such_key": 1})).check_training()
    with pytest.raises(DistillError, match=r"training.beta is set by distill kd"):
        parse(KDConfig, kd(training={"beta": 0.5}), "kd.yaml")
    with pytest.raises(DistillError, match=r"field 'generation'"):
        parse(KDConfig, kd(generation="sglang"), "kd.yaml")


def test_a_pipeline_kd_run_must_name_students_of_the_run():
    data = yaml.safe_load((ROOT / "pipelines" / "toy_kd.yaml").read_text())
    load_pipeline(ROOT / "pipelines" / "toy_kd.yaml").kd.runs[0].check_training()  # the shipped one is consistent
    data["kd"]["runs"][0]["teacher"] = "sft:nobody"
    data["sft"]["students"] = [load_pipeline(ROOT / "pipelines" / "toy_kd.yaml").sft.students[i].model_dump() for i in range(3)]
    with pytest.raises(DistillError, match=r"kd run 'toy-llama-micro-kd': teacher sft:nobody is not in sft.students"):
        parse(PipelineConfig, data, "toy_kd.yaml")


def test_r1_kd_reuses_the_r1_runs_data_and_students_unchanged():
    """r1_kd.yaml runs in runs/r1 after r1_distill.yaml and takes its sections by `file#section` reference."""
    kd, r1 = load_pipeline(ROOT / "pipelines" / "r1_kd.yaml"), load_pipeline(ROOT / "pipelines" / "r1_distill.yaml")
    assert kd.dir == r1.dir
    for section in ("prompts", "generate", "filter", "sft"):
        assert getattr(kd, section) == getattr(r1, section), section
    run = kd.kd.runs[0]
    run.check_training()  # its training keys build a trl.DistillationConfig (bf16, vLLM server, ZeRO-3 ready)
    assert run.generation == "vllm_server" and run.sft_control is not None
    assert {m.model for m in kd.eval.models} >= {run.student, f"kd:{run.name}", f"kd:{run.name}-sft-control"}
