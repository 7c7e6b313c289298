import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from distill.sft.config import StudentConfig
from distill.sft.stage import run
from tests.sft_fixtures import write_curated

ROOT = Path(__file__).resolve().parent.parent
LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}


def student(per_device: int) -> dict:
    training = {"max_steps": 4, "per_device_train_batch_size": per_device, "logging_steps": 2, "save_steps": 2, "learning_rate": 1e-3}
    return {"name": "ddp", "model": "toy:llama", "chat_template": "distill/templates/llama3.jinja", "max_length": 256, "lora": LORA, "training": training}


@pytest.mark.slow
def test_lora_under_accelerate_launch_with_two_processes_saves_what_one_process_would(tmp_path):
    """Two CPU processes (gloo) with batch 2 each train, save the adapter through the trainer on every rank
    and merge it offline: the same adapter and merged model as one process with batch 4.

    accelerate 1.15 enables FSDP only on accelerator devices (a CPU launch stays MULTI_CPU), so this is
    DDP; the sharded gather itself is exercised by bench/gpu_check.py's ZeRO-3 smoke run.
    """
    inp = write_curated(tmp_path / "03_curated", 40)
    cfg = tmp_path / "student.yaml"
    cfg.write_text(yaml.safe_dump(student(per_device=2)))
    out = tmp_path / "04_sft" / "ddp"
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    cmd = [accelerate, "launch", "--config_file", str(ROOT / "pipelines/accelerate/cpu_2proc.yaml"), "-m", "distill.cli"]
    cmd += ["sft", "-c", str(cfg), "-i", str(inp), "-o", str(out), "--threads", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 4
    # Each step sees one batch of 2 per process: tokens are counted across both.
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [2, 4]
    assert (out / "done").exists() and (out / "model" / "model.safetensors").exists()

    single = run(StudentConfig(**student(per_device=4)), inp, tmp_path / "single", threads=1)
    assert single["trainable_params"] == summary["trainable_params"] and single["tokens_seen"] == summary["tokens_seen"]
    for f in ("adapter/adapter_model.safetensors", "model/model.safetensors"):
        a, b = load_file(str(out / f)), load_file(str(tmp_path / "single" / f))
        assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a), f
    base, merged = load_file(str(out / "base" / "model.safetensors")), load_file(str(out / "model" / "model.safetensors"))
    assert any(not torch.allclose(base[k], merged[k], atol=1e-4) for k in base)  # it trained: the match means something
