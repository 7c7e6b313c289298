"""pipelines/slurm/*.sbatch under fake Slurm commands (tests/slurm_shims: sbatch, srun, scontrol, ray, and recorders
for distill and accelerate). The fake srun enforces Slurm's step-resource rule, so a launch whose step would wait
forever for GPUs another step holds is refused (N3); array tasks leave held shards to their holders (N15)."""

import json
import logging
import os
import socket
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from distill.stage import StageDir, run_shards
from tests.launch import run_launch
from tests.stage_tasks import numbers_task

ROOT = Path(__file__).resolve().parent.parent
SHIMS = Path(__file__).resolve().parent / "slurm_shims"

# The two-node launch as shipped before the fix: the driver as a second step on the head node.
OLD_LAUNCH = """set -euo pipefail
NODES=($(scontrol show hostnames "$SLURM_JOB_NODELIST"))
HEAD=${NODES[0]}
srun --nodes=1 --ntasks=1 -w "$HEAD" ray start --head --port=6379 --num-gpus=8 --block &
sleep 20
for node in "${NODES[@]:1}"; do
  srun --nodes=1 --ntasks=1 -w "$node" ray start --address="$HEAD:6379" --num-gpus=8 --block &
done
sleep 20
export RAY_ADDRESS="$HEAD:6379"
srun --nodes=1 --ntasks=1 -w "$HEAD" --kill-on-bad-exit=1 distill generate --config c.yaml --input r/01_prompts --output r/02_traces
"""


def sbatch(tmp_path: Path, *args: str) -> tuple[int, list[str]]:
    state = tmp_path / "slurm"
    env = {**os.environ, "PATH": f"{SHIMS}:{Path(sys.executable).parent}:{os.environ['PATH']}", "SHIM_STATE": str(state)}
    proc = run_launch(["sbatch", *args], timeout=120, cwd=ROOT, env=env)
    log = (state / "log").read_text().splitlines() if (state / "log").exists() else []
    return proc.returncode, log


def test_the_old_two_node_launch_is_refused_by_the_step_rule(tmp_path):
    old = tmp_path / "old.sbatch"
    old.write_text(OLD_LAUNCH)
    rc, log = sbatch(tmp_path, "--nodes=2", str(old))
    assert rc != 0
    assert any(line.startswith("REFUSED nodes=node1:") and "distill generate" in line for line in log), log
    assert not any(line.startswith("DISTILL") for line in log)


def test_two_node_generate_starts_every_step_and_the_driver_after_ray_counts_16_gpus(tmp_path):
    rc, log = sbatch(tmp_path, "--nodes=2", "pipelines/slurm/generate.sbatch", "pipelines/r1_generate_h100.yaml", "runs/r1")
    assert rc == 0, log
    assert not any(line.startswith("REFUSED") for line in log), log
    steps = [line for line in log if line.startswith("STEP")]
    assert [s.split(":")[0] for s in steps] == ["STEP nodes=node1 overlap=0", "STEP nodes=node2 overlap=0"]  # one Ray node each
    driver = [line for line in log if line.startswith("DISTILL")]
    assert driver == [f"DISTILL node=batch ray_gpus=16: generate --config pipelines/r1_generate_h100.yaml --input runs/r1/01_prompts --output runs/r1/02_traces"]
    assert log.index(driver[0]) > max(log.index(line) for line in log if line.startswith("RAY"))


def test_a_ray_node_that_never_joins_fails_the_job_after_the_wait_not_the_driver(tmp_path):
    state = tmp_path / "slurm"
    env = {**os.environ, "PATH": f"{SHIMS}:{os.environ['PATH']}", "SHIM_STATE": str(state), "SHIM_LOST_NODE": "node2", "RAY_WAIT_S": "3"}
    proc = run_launch(["sbatch", "--nodes=2", "pipelines/slurm/generate.sbatch", "c.yaml", "r"], timeout=120, cwd=ROOT, env=env)
    assert proc.returncode != 0 and "Ray at node1:6379: 8 of 16 GPUs after 3 s" in proc.stderr
    assert "DISTILL" not in (state / "log").read_text()


def test_one_node_array_tasks_leave_held_shards_and_sft_starts_one_launcher_per_node(tmp_path):
    rc, log = sbatch(tmp_path, "--array=0-1", "pipelines/slurm/generate.sbatch", "pipelines/r1_generate.yaml", "runs/r1")
    assert rc == 0, log
    distill = sorted(line for line in log if line.startswith("DISTILL"))
    assert len(distill) == 2 and all(line.endswith("--output runs/r1/02_traces --leave-held") for line in distill)

    rc, log = sbatch(tmp_path / "sft", "--nodes=2", "pipelines/slurm/sft.sbatch", "pipelines/sft/qwen2.5-32b.yaml", "runs/r1")
    assert rc == 0, log
    assert not any(line.startswith("REFUSED") for line in log)
    steps = [line for line in log if line.startswith("STEP")]
    assert steps[0].startswith("STEP nodes=node1 overlap=0: distill sft --prepare")  # one process tokenizes first
    assert [s.split(":")[0] for s in steps[1:]] == ["STEP nodes=node1 node2 overlap=0"]
    assert sorted(line.split(":")[0] for line in log if line.startswith("ACCELERATE")) == ["ACCELERATE node=node1 procid=0", "ACCELERATE node=node2 procid=1"]


def test_a_worker_that_leaves_held_shards_exits_at_once_and_says_so(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="distill.stage")
    """N15: a Slurm array task whose remaining shards another live task holds returns at once instead of waiting
    HELD_WAIT_S and failing (which fails an `afterok` dependency on the array)."""
    stage = StageDir(tmp_path / "s")
    stage.prepare({"task": "numbers"})
    lock = stage.claim_file(3)
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": "node-17", "pid": 4242, "since": time.time()}))
    started = time.time()
    ran = run_shards(stage, 5, partial(numbers_task, str(stage.path), 0), leave_held=True)
    assert time.time() - started < 10  # HELD_WAIT_S is 60
    assert [s["shard"] for s in ran] == [0, 1, 2, 4] and stage.done_shards() == [0, 1, 2, 4]
    assert "1 shard(s) left to the workers that hold them: [3]" in caplog.text
