import json

import pytest
import torch
from safetensors.torch import load_file

from distill.errors import DistillError
from distill.sft.config import StudentConfig
from distill.sft.stage import run
from tests.sft_fixtures import write_curated

TRAINING = {"max_steps": 6, "per_device_train_batch_size": 4, "learning_rate": 1e-3, "logging_steps": 2, "save_steps": 3}


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    return write_curated(tmp_path_factory.mktemp("curated") / "03_curated", 40, shards=2)


def student(arch="qwen2", **kw) -> StudentConfig:
    template = {"qwen2": "qwen2", "llama": "llama3"}[arch]
    fields = dict(name=arch, model=f"toy:{arch}", chat_template=f"distill/templates/{template}.jinja", max_length=256, training=TRAINING)
    return StudentConfig(**{**fields, **kw})


def weights(path):
    return load_file(str(path / "model.safetensors"))


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_full_fine_tune_changes_every_weight_and_writes_the_student(arch, curated, tmp_path):
    out = tmp_path / arch
    summary = run(student(arch), curated, out, threads=1)

    before, after = weights(out / "base"), weights(out / "model")
    assert before.keys() == after.keys()
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    assert unchanged == []
    assert summary["steps"] == 6 and summary["rows_train"] < summary["rows_in"] == 40
    assert summary["trainable_params"] == sum(t.numel() for k, t in before.items() if k != "lm_head.weight")

    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [2, 4, 6]
    assert all(m["loss"] > 0 and m["tokens_per_s"] > 0 for m in metrics)
    assert metrics[-1]["tokens_seen"] == summary["tokens_seen"] > metrics[0]["tokens_seen"]

    card = (out / "model" / "README.md").read_text()
    assert str(curated.resolve()) not in card and "03_curated" in card and "full fine-tune" in card and f"toy:{arch}" in card  # no local path
    assert (out / "done").exists() and json.loads((out / "check.json").read_text())["problems"] == []

    assert run(student(arch), curated, out) == summary  # done: a no-op
    with pytest.raises(DistillError, match="another config .*learning_rate"):
        run(student(arch, training={**TRAINING, "learning_rate": 5e-4}), curated, out)


def test_lora_trains_the_adapter_only(curated, tmp_path):
    from peft import PeftModel
    from transformers import AutoTokenizer

    from distill.sft.stage import load_model

    out = tmp_path / "lora"
    cfg = student(lora={"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]})
    summary = run(cfg, curated, out, threads=1)

    base = weights(out / "base")
    tok = AutoTokenizer.from_pretrained(out / "model")
    adapted = PeftModel.from_pretrained(load_model(str(out / "base"), None, tok, untied=True), out / "adapter")
    lora_b = {k: v for k, v in adapted.state_dict().items() if "lora_B" in k}
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b.values())  # B starts at zero: it moved
    trained = ("lora_", "trainable_tokens_delta", "modules_to_save")
    assert summary["trainable_params"] == sum(v.numel() for k, v in adapted.state_dict().items() if any(t in k for t in trained))

    # LoRA layers, the think tokens' input rows and the output layer (untied to train it): nothing else.
    merged = weights(out / "model")
    changed = {k for k in base if not torch.equal(base[k], merged[k])}
    assert "lm_head.weight" in merged and any(k.endswith("q_proj.weight") for k in changed)
    assert all(k.endswith(("q_proj.weight", "v_proj.weight", "embed_tokens.weight")) for k in changed)
    think = tok.convert_tokens_to_ids(["<think>", "</think>"])
    embed = "model.embed_tokens.weight"
    assert (base[embed] != merged[embed]).any(dim=1).nonzero().flatten().tolist() == sorted(think)
    assert not torch.equal(merged["lm_head.weight"][think], base[embed][think])
    assert "LoRA r=4" in (out / "model" / "README.md").read_text()


def test_config_rejects_keys_that_are_not_sft_config_fields():
    with pytest.raises(ValueError, match="not a trl.SFTConfig field"):
        student(training={"learning_rat": 1e-3}).check_training()
    with pytest.raises(ValueError, match="training.max_length is set by distill sft"):
        student(training={"max_length": 10})
    with pytest.raises(ValueError, match="toy model must be one of"):
        student(model="toy:gpt2")


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_checkpoint_and_matches_an_uninterrupted_one(curated, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    cfg = student()
    whole = run(cfg, curated, tmp_path / "whole", threads=1)

    out = tmp_path / "killed"
    script = Path(__file__).with_name("sft_kill.py")
    proc = subprocess.run([sys.executable, str(script), cfg.model_dump_json(), str(curated), str(out), "4"], capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert (out / "checkpoints" / "checkpoint-3").exists() and not (out / "done").exists()

    resumed = run(cfg, curated, out, threads=1)
    assert resumed["resumed_from"] == "checkpoint-3" and resumed["steps"] == whole["steps"]
    a, b = weights(tmp_path / "whole" / "model"), weights(out / "model")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [2, 4, 6]
