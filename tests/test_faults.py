"""Kill -9 at seeded random points inside each data stage and eval, on the toy world: the whole process
group, or only the parent (its pool workers must then exit on their own). After each kill no process of
the run is left; after the resume the rows equal an uninterrupted run's, none twice, no temp file left."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from distill.stage import StageDir
from tests.stage_tasks import wait_group_gone

ROOT = Path(__file__).resolve().parent.parent
KILLS_PER_STAGE = 4  # alternating: whole group, parent only
SEED = 20261125


def stage_args(stage: str, run: Path) -> list[str]:
    """The CLI call of one stage of a tiny toy run, reading the stage before it in `run`."""
    return {
        "prompts": ["prompts", "-o", run / "p", "--set", "toy.n=240", "--set", "rows_per_shard=30"],
        "generate": ["generate", "-i", run / "p", "-o", run / "t", "--set", "backend=toy", "--set", "samples_per_prompt=2",
                     "--set", "chunk_size=3", "--set", "sampling.max_tokens=128"],
        "filter": ["filter", "-i", run / "t", "-o", run / "c"],
        "eval": ["eval", "-o", run / "e", "--model", "toy-teacher", "--backend", "toy", "--set", "overrides.toy_arith.toy.n=48",
                 "--set", "overrides.toy_arith.k=2", "--set", "problems_per_shard=6", "--set", "problems_per_chunk=2",
                 "--set", "max_tokens=96", "--set", "bootstrap_resamples=100"],
    }[stage]


OUT = {"prompts": "p", "generate": "t", "filter": "c", "eval": "e"}


def command(stage: str, run: Path, workers: int) -> list[str]:
    return [sys.executable, "-m", "distill.cli", *map(str, stage_args(stage, run)), "--workers", str(workers)]


def env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


def entries(path: Path) -> int:
    return sum(len(files) + len(dirs) for _, dirs, files in os.walk(path))


def kill_once(cmd: list[str], out: Path, delay_s: float, whole_group: bool) -> bool:
    """Start a stage, wait until it writes, kill it `delay_s` later; True if it was still running."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    before = entries(out)
    deadline = time.time() + 60
    while proc.poll() is None and entries(out) == before and time.time() < deadline:
        time.sleep(0.005)
    time.sleep(delay_s)
    running = proc.poll() is None
    try:
        os.killpg(proc.pid, signal.SIGKILL) if whole_group else os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    # A worker still starting (spawn: a fresh interpreter importing the stage) exits once it gets to its
    # start-up hook; on a loaded 2-core machine that can take many seconds.
    left = wait_group_gone(proc.pid, timeout_s=60)
    if left:
        os.killpg(proc.pid, signal.SIGKILL)
    assert not left, f"{cmd[3]}: processes {left} outlived a kill of {'the group' if whole_group else 'the parent'}"
    return running


def rows(out: Path) -> list[dict]:
    """Every row of a stage's parts in shard order; the generation timestamp is the one field that differs."""
    table = pq.read_table([str(p) for p in StageDir(out).parts()])
    return table.drop_columns([c for c in ("generated_at",) if c in table.column_names]).to_pylist()


def key(row: dict) -> tuple:
    return tuple(row.get(c) for c in ("benchmark", "problem_id", "id", "sample_idx"))


@pytest.mark.slow
def test_kill_nine_at_random_points_of_every_stage_then_resume(tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "run"
    rng = random.Random(SEED)
    landed = {}
    for stage in ("prompts", "generate", "filter", "eval"):
        started = time.time()
        subprocess.run(command(stage, ref, 1), cwd=ROOT, env=env(), check=True, capture_output=True)
        window = time.time() - started
        landed[stage] = 0
        for k in range(KILLS_PER_STAGE):
            landed[stage] += kill_once(command(stage, run, 2), run / OUT[stage], rng.uniform(0, window / 2), whole_group=k % 2 == 0)
        done = subprocess.run(command(stage, run, 2), cwd=ROOT, env=env(), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        got, want = rows(run / OUT[stage]), rows(ref / OUT[stage])
        assert got == want, f"{stage}: rows differ from the uninterrupted run"
        assert len({key(r) for r in got}) == len(got), f"{stage}: duplicated rows"
        assert not list((run / OUT[stage]).rglob(".*.tmp-*")), f"{stage}: temporary files left"
        assert not list((run / OUT[stage]).glob("claims/*")), f"{stage}: claims left"
        print(f"{stage}: {time.time() - started:.1f} s")
    # Most kills must land mid-stage, or the test proves little (the rest hit a finished stage's rerun).
    assert sum(landed.values()) >= 2 * len(landed), landed
    print(f"kills that landed mid-stage: {landed}")
