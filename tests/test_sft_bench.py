"""bench/gpu_check.py runs on GPU machines only; here: it imports, validates its arguments and refuses a CPU."""

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
    assert (args.seq, args.sections) == (8192, ["sft", "zero3", "generate"])
    dry = gpu_check.parse_args(["--dry-run"])
    assert dry.seq <= 512 and dry.steps <= 7 and dry.max_tokens <= 64
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--steps", "3"])
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--sections", "eval"])


def test_gpu_check_without_a_gpu_says_so(gpu_check):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SystemExit, match="no CUDA device; run with --dry-run"):
        gpu_check.main([])
