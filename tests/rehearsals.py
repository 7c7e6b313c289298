"""The shipped real configs as the CPU tests run them: each built only through distill.rehearsal's list.

One builder per kind of shipped file (the student and KD ones live in distill.rehearsal, which
bench/gpu_check.py shares); the tests that run a real config take it from here, and
tests/test_rehearsal_overrides.py diffs each shipped file against the same builder's output.
"""

from __future__ import annotations

from pathlib import Path

from distill.rehearsal import DROP, REHEARSAL_STEPS, apply, shipped, student, unlisted_changes
from distill.sft.config import StudentConfig

ROOT = Path(__file__).resolve().parent.parent
STUDENT_CONFIGS = sorted((ROOT / "pipelines" / "sft").glob("*.yaml"))
GENERATE_CONFIGS = sorted((ROOT / "pipelines").glob("r1_generate*.yaml"))
ACCELERATE_CONFIGS = sorted((ROOT / "pipelines" / "accelerate").glob("*.yaml"))


def real_body(model: str) -> str:
    """The tests/real_students.MODELS key of a hub id: meta-llama/Llama-3.3-70B-Instruct -> llama-3.3-70b-instruct."""
    return model.split("/")[-1].lower()


def student_config(path: Path, models, steps: int = REHEARSAL_STEPS) -> StudentConfig:
    """`student` on the tiny body of the config's own model (`models`: conftest's fixture), no unlisted change."""
    ran = student(path, models(real_body(shipped(path)["model"])), steps)
    assert not unlisted_changes(shipped(path), ran, "student")
    return StudentConfig(**ran)


def generate(path: Path, model: Path | None = None) -> dict:
    """A pipelines/r1_generate*.yaml for one CPU vLLM engine (its `vllm:` block otherwise as shipped)."""
    data = shipped(path)
    if data["backend"] != "vllm":
        return data
    changes = {"vllm/tensor_parallel_size": 1, "vllm/enforce_eager": True}
    if "pipeline_parallel_size" in data["vllm"]:
        changes["vllm/pipeline_parallel_size"] = 1
    if "distributed_executor_backend" in data["vllm"]:
        changes["vllm/distributed_executor_backend"] = DROP
    if model is not None:
        changes["model"] = str(model)
    return apply(data, "generate", changes)


def accelerate(path: Path, processes: int = 2) -> dict:
    """A pipelines/accelerate/*.yaml for `processes` CPU processes."""
    changes = {"num_processes": processes, "use_cpu": True}
    data = shipped(path)
    if "gpu_ids" in data:
        changes["gpu_ids"] = DROP
    return apply(data, "accelerate", changes)
