import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.sft_fixtures import write_curated

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_sft_under_accelerate_launch_with_two_cpu_processes(tmp_path):
    inp = write_curated(tmp_path / "03_curated", 40)
    cfg = tmp_path / "student.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "name": "ddp",
                "model": "toy:llama",
                "chat_template": "distill/templates/llama3.jinja",
                "max_length": 256,
                "training": {"max_steps": 4, "per_device_train_batch_size": 2, "logging_steps": 2, "save_steps": 2},
            }
        )
    )
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
