"""bench/gpu_check.py runs on GPU machines; here: its arguments, the configs it runs, its CPU refusal and its dry run."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_validates_its_arguments(gpu_check):
    args = gpu_check.parse_args([])
    assert args.sections == ["sft", "zero3", "generate", "kd"]
    dry = gpu_check.parse_args(["--dry-run"])
    assert dry.rows <= 64 and dry.max_tokens <= 64
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--rows", "3"])
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--sections", "eval"])


def test_gpu_check_runs_the_shipped_student_changed_only_as_its_override_lists_say(gpu_check, tmp_path):
    from distill.config import load
    from distill.sft.config import StudentConfig

    shipped = load(StudentConfig, gpu_check.STUDENT)
    for dry, listed in ((False, gpu_check.GPU_CHECK_OVERRIDES), (True, {**gpu_check.GPU_CHECK_OVERRIDES, **gpu_check.CPU_OVERRIDES})):
        ran = gpu_check.shipped_student(tmp_path, dry, steps=10)
        changed = {f"training.{k}" for k in set(shipped.training) | set(ran.training) if shipped.training.get(k) != ran.training.get(k)}
        changed |= {k for k in ("model", "max_length", "name", "chat_template", "lora", "data_format") if getattr(shipped, k) != getattr(ran, k)}
        if dry:  # the init kwargs changed key by key, as listed
            changed.discard("training.model_init_kwargs")
            changed |= {f"training.model_init_kwargs.{k}" for k in ("attn_implementation", "max_position_embeddings")}
            changed |= {"training.bf16"} if shipped.training["bf16"] else set()
        changed -= {"training.num_train_epochs"}  # replaced by max_steps
        assert changed <= set(listed), changed - set(listed)
        assert ran.training["padding_free"] and not ran.training["packing"] and ran.training["gradient_checkpointing"]
        assert ran.max_length == (512 if dry else shipped.max_length)


def test_gpu_check_without_a_gpu_says_so(gpu_check):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SystemExit, match="no CUDA device; run with --dry-run"):
        gpu_check.main([])


@pytest.mark.slow
def test_gpu_check_dry_run_runs_the_shipped_sft_and_kd_configs_on_cpu(tmp_path):
    """The dry run (tiny model, CPU overrides only) of the sections a CPU can run: `sft` (the shipped 1.5B student,
    padding-free, unpacked) and `kd` (r1_kd.yaml's run); zero3 says it needs a GPU."""
    import subprocess
    import sys

    cmd = [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--dry-run", "--sections", "sft", "zero3", "kd", "--rows", "16", "--problems", "8", "--work", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "qwen2.5-math-1.5b.yaml" in proc.stdout and "r1_kd.yaml" in proc.stdout and "skipped: needs a GPU" in proc.stdout
    summary = (tmp_path / "distill-sft" / "summary.json").read_text()
    assert '"steps": 10' in summary
