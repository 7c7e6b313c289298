"""Random-init toy teacher and student with one tokenizer (the tiny and micro Llama) and a prompt stage, for the kd tests."""

from __future__ import annotations

from pathlib import Path

from distill.toy.students import build_student

from tests.sft_fixtures import write_curated

TRAINING = {"max_steps": 6, "per_device_train_batch_size": 4, "learning_rate": 3e-3, "logging_steps": 2, "save_steps": 3, "eval_steps": 6, "seed": 0}


def models(root: Path) -> tuple[Path, Path]:
    teacher = build_student("llama", Path(root) / "teacher", size="tiny")
    student = build_student("llama", Path(root) / "student", tokenizer=teacher, size="micro")
    return teacher, student


def kd_fields(teacher: Path, student: Path, **kw) -> dict:
    return {"name": "micro-kd", "student": str(student), "teacher": str(teacher), "heldout": 8, "max_completion_length": 24, "training": TRAINING, **kw}


def prompts(root: Path) -> Path:
    return write_curated(Path(root) / "03_curated", 40)
