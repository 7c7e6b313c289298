"""pipelines/r1_kd.yaml's run trains on this CPU as written: trl's DistillationTrainer with the run's exact
training arguments (bf16, gradient checkpointing, its schedule and temperature), then its matched-compute
SFT control (the student's own shipped SFT config), each two optimizer steps; only distill.rehearsal's
changes are made (tiny bodies of the two real Qwen2.5 architectures with the real tokenizer, sdpa,
transformers sampling instead of a `trl vllm-serve` server, few tokens)."""

import pytest

from distill import rehearsal
from distill.kd.config import KDConfig
from distill.pipeline import read_pipeline
from distill.rehearsal import apply, cpu_attention
from distill.sft.config import StudentConfig
from tests import rehearsals
from tests.real_students import build_model
from tests.sft_fixtures import write_curated

REAL = rehearsals.ROOT / "pipelines" / "r1_kd.yaml"


def sft_student(pipeline: dict, ref: str) -> StudentConfig:
    name = ref.removeprefix("sft:")
    return StudentConfig(**next(s for s in pipeline["sft"]["students"] if s["name"] == name))


@pytest.mark.slow
def test_r1_kd_run_and_its_sft_control_take_two_optimizer_steps_as_written(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from distill.kd.stage import run as run_kd
    from distill.kd.stage import run_control
    from distill.sft.stage import run as run_sft

    shipped = read_pipeline(REAL)
    kd_shipped = shipped["kd"]["runs"][0]
    curated = write_curated(tmp_path / "03_curated", 8, digits=1)
    sft_dir = tmp_path / "04_sft"
    trained = {}
    for role in ("student", "teacher"):  # each SFT'd first, as the real run: SFT's own rehearsal of its shipped config
        cfg = sft_student(shipped, kd_shipped[role])
        body = build_model(rehearsals.real_body(cfg.model), tmp_path / "bodies" / cfg.name)
        cfg = StudentConfig(**cpu_attention(apply(cfg.model_dump(mode="json"), "student", rehearsal.student_changes(body)), "student"))
        run_sft(cfg, curated, sft_dir / cfg.name, threads=1)
        trained[role] = (cfg, sft_dir / cfg.name / "model")

    ran = cpu_attention(apply(shipped, "pipeline", rehearsal.kd_run_changes(shipped, trained["student"][1], trained["teacher"][1])), "pipeline")
    cfg = KDConfig(**ran["kd"]["runs"][0])
    assert cfg.training["bf16"] and cfg.training["gradient_checkpointing"] and cfg.sft_control is not None
    summary = run_kd(cfg, curated, tmp_path / "04_kd" / cfg.name, threads=1)
    assert summary["steps"] == rehearsal.REHEARSAL_STEPS and summary["tokens_generated"] > 0
    before = AutoModelForCausalLM.from_pretrained(trained["student"][1], dtype=torch.bfloat16)
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "04_kd" / cfg.name / "model", dtype=torch.bfloat16)
    assert any(not torch.equal(p, q) for p, q in zip(before.parameters(), after.parameters())), "KD changed no parameter"

    control_out = tmp_path / "04_kd" / f"{cfg.name}-sft-control"
    control = run_control(cfg, trained["student"][0], curated, tmp_path / "04_kd" / cfg.name, control_out, sft_dir, threads=1)
    assert control["steps"] >= 1 and control["rows_too_long"] == 0
