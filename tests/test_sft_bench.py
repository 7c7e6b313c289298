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


def test_gpu_check_changes_the_shipped_configs_only_through_the_rehearsal_list(gpu_check, tmp_path):
    """On a GPU: the model and step, sample and process counts; the dry run also sdpa, one micro-batch, one
    tokenizing process. padding_free, max_length, bf16 and checkpointing run as shipped in both."""
    from distill import rehearsal
    from distill.pipeline import read_pipeline
    from distill.rehearsal import diff, unlisted_changes

    student = rehearsal.shipped(gpu_check.STUDENT)
    kd = read_pipeline(gpu_check.KD_PIPELINE)
    for dry in (False, True):
        ran = gpu_check.shipped_student(tmp_path, dry, steps=10)
        assert not unlisted_changes(student, ran, "student")
        attention = {p for _, p in diff(student, ran)} & {"training/model_init_kwargs/attn_implementation"}
        assert bool(attention) == dry and ran["max_length"] == student["max_length"]
        assert not unlisted_changes(kd, gpu_check.shipped_kd(tmp_path, dry, tokens=64), "pipeline")
    assert not unlisted_changes(rehearsal.shipped(gpu_check.ZERO3), gpu_check.shipped_zero3(1), "accelerate")


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
