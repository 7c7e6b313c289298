"""A refused command leaves no output directory behind, so the corrected command is not then refused as a
config change; a model that cannot be loaded offline is one line naming the id, the cache and HF_HUB_OFFLINE."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distill.cli import app
from tests.sft_fixtures import write_curated

ROOT = Path(__file__).resolve().parent.parent
EVAL_SET = ["--set", "overrides.toy_arith.toy.n=8", "--set", "overrides.toy_arith.k=1", "--set", "max_tokens=64",
            "--set", "bootstrap_resamples=100"]


def cli(*argv):
    return CliRunner().invoke(app, [str(a) for a in argv])


def refused(result, *expect):
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for text in expect:
        assert text in lines[0], (text, lines[0])


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """HF_HUB_OFFLINE=1 with an empty hub cache, as the library reads them (at import)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


@pytest.mark.slow  # ~35 s: one training step of a toy student
def test_sft_with_a_mistyped_input_writes_nothing_and_the_corrected_rerun_trains(tmp_path):
    curated = write_curated(tmp_path / "03_curated", 20)
    out = tmp_path / "student"
    common = ["-o", out, "-c", ROOT / "pipelines/sft/toy/toy-llama.yaml", "--set", "training.max_steps=1", "--threads", "1"]
    refused(cli("sft", "-i", tmp_path / "03_curatd", *common), "03_curatd", "no finished curated parts")
    assert not out.exists()
    result = cli("sft", "-i", curated, *common)
    assert result.exit_code == 0, result.output
    assert (out / "done").exists()


def test_sft_with_an_uncached_student_offline_writes_nothing(tmp_path, offline):
    curated = write_curated(tmp_path / "03_curated", 4)
    out = tmp_path / "student"
    result = cli("sft", "-i", curated, "-o", out, "-c", ROOT / "pipelines/sft/toy/toy-llama.yaml", "--set", "model=Qwen/Qwen2.5-Mathh-1.5B")
    refused(result, "Qwen/Qwen2.5-Mathh-1.5B", str(offline), "HF_HUB_OFFLINE")
    assert not out.exists()


def test_generate_with_a_mistyped_input_or_teacher_writes_nothing_and_the_corrected_rerun_works(tmp_path, offline):
    from distill.prompts.config import PromptsConfig
    from distill.prompts.stage import run as run_prompts

    prompts = tmp_path / "01_prompts"
    run_prompts(PromptsConfig.model_validate({"source": "toy", "toy": {"n": 4, "seed": 0}}), prompts)
    out = tmp_path / "02_traces"
    refused(cli("generate", "-i", tmp_path / "01_prompt", "-o", out, "--set", "backend=toy"), "01_prompt", "no such directory")
    assert not out.exists()
    refused(cli("generate", "-i", prompts, "-o", out, "--set", "backend=transformers", "--set", "model=deepseek-ai/DeepSeek-R1-Distil-Qwen-7B"),
            "deepseek-ai/DeepSeek-R1-Distil-Qwen-7B", str(offline), "HF_HUB_OFFLINE")
    assert not out.exists()
    result = cli("generate", "-i", prompts, "-o", out, "--set", "backend=toy", "--set", "sampling.max_tokens=64")
    assert result.exit_code == 0, result.output
    assert (out / "done").is_dir()


def test_eval_of_an_uncached_model_offline_is_one_line_and_no_directory(tmp_path):
    out = tmp_path / "e"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "distill.cli", "eval", "-m", "Qwen/Qwen2.5-Mathh-1.5B", "-o", out, "--benchmark", "toy_arith"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if "accelerator" not in line]  # deepspeed's import-time notice
    assert len(lines) == 1, result.stderr
    for text in ("Qwen/Qwen2.5-Mathh-1.5B", str(tmp_path / "hub"), "HF_HUB_OFFLINE"):
        assert text in lines[0]
    assert not out.exists()


def test_eval_of_a_mistyped_local_path_writes_nothing_and_the_corrected_rerun_works(tmp_path):
    out = tmp_path / "e"
    refused(cli("eval", "-m", tmp_path / "runs" / "toy" / "model", "-o", out, "--benchmark", "toy_arith", *EVAL_SET),
            str(tmp_path / "runs" / "toy" / "model"), "no such local path")
    assert not out.exists()
    result = cli("eval", "-m", "toy-teacher", "--backend", "toy", "-o", out, "--benchmark", "toy_arith", *EVAL_SET)
    assert result.exit_code == 0, result.output
    assert (out / "scores.json").exists()


def test_eval_of_a_real_model_needs_a_benchmark(tmp_path):
    out = tmp_path / "e"
    refused(cli("eval", "-m", "Qwen/Qwen2.5-Math-1.5B", "-o", out), "--benchmark is required", "Qwen/Qwen2.5-Math-1.5B")
    assert not out.exists()
