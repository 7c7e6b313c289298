"""N2: validating a training config under `accelerate launch` must not create the process group; the trainer's
own config does (with its backend and, on a GPU, its ddp_timeout: transformers passes no timeout for a CPU group)."""

import os
import sys
from pathlib import Path

import pytest

from tests.launch import rank_reports, run_launch

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import json, os, sys, torch.distributed as dist
from pathlib import Path
from distill.config import load
from distill.pipeline import load_pipeline
from distill.sft.config import StudentConfig, sft_config
from distill.sft.stage import process_group

for path in sorted(Path("pipelines/sft").glob("*.yaml")):
    load(StudentConfig, path).check_training()
for run in load_pipeline(Path("pipelines/r1_kd.yaml")).kd.runs:
    run.check_training()
after_check = dist.is_initialized()
sft_config({}, Path(sys.argv[1]))  # the real config, as the stage builds it before anything else
report = {"after_check": after_check, "after_config": process_group()}
Path(sys.argv[2], f"rank-{os.environ['RANK']}.json").write_text(json.dumps(report))
"""


@pytest.mark.slow  # two processes importing trl: ~45 s on 2 loaded cores
def test_check_training_leaves_no_process_group_under_a_two_process_launch(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", str(probe), str(tmp_path / "out"), str(tmp_path)]
    proc = run_launch(cmd, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = rank_reports(tmp_path)
    assert len(lines) == 2
    for rank in lines:
        assert rank["after_check"] is False  # every shipped sft student and the kd run validated, no group made
        assert rank["after_config"]["backend"] == "gloo"  # the trainer's config makes it (on a GPU: nccl, its ddp_timeout)
