import json
import os
import signal
import socket
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from distill.errors import DistillError
from distill.stage import StageDir, run_shards
from tests.stage_tasks import ROWS_PER_SHARD, numbers_task

HERE = Path(__file__).parent


def read_rows(stage: StageDir) -> list[int]:
    return [x for p in stage.parts() for x in pq.read_table(p)["x"].to_pylist()]


def test_rerun_with_another_config_is_refused_naming_the_changed_key(tmp_path):
    stage = StageDir(tmp_path / "s")
    stage.prepare({"sampling": {"temperature": 0.6, "top_p": 0.95}, "n": 4})
    stage.prepare({"sampling": {"temperature": 0.6, "top_p": 0.95}, "n": 4})  # same config: resumes
    with pytest.raises(DistillError, match=r"config\.json.*sampling\.temperature"):
        stage.prepare({"sampling": {"temperature": 1.0, "top_p": 0.95}, "n": 4})


def test_done_markers_are_written_after_outputs_and_done_shards_are_skipped(tmp_path):
    stage = StageDir(tmp_path / "s")
    calls = []

    def task(i):
        calls.append(i)
        assert not stage.is_done(i)
        return numbers_task(str(stage.path), 0, i)

    run_shards(stage, 4, task)
    assert calls == [0, 1, 2, 3]
    assert all(stage.part(i).exists() and stage.is_done(i) for i in range(4))
    assert json.loads(stage.stats_file(2).read_text())["rows_out"] == ROWS_PER_SHARD
    stage.done_file(1).unlink()  # as if shard 1 had been killed before its marker
    calls.clear()
    run_shards(stage, 4, task)
    assert calls == [1]
    assert read_rows(stage) == list(range(4 * ROWS_PER_SHARD))


def test_rank_and_world_size_split_the_shards(tmp_path):
    stage = StageDir(tmp_path / "s")
    task = partial(numbers_task, str(stage.path), 0)
    first = run_shards(stage, 5, task, rank=0, world_size=2)
    assert [s["shard"] for s in first] == [0, 2, 4]
    second = run_shards(stage, 5, task, rank=1, world_size=2)
    assert [s["shard"] for s in second] == [1, 3]
    assert stage.is_complete()
    with pytest.raises(DistillError, match="--rank"):
        run_shards(stage, 5, task, rank=2, world_size=2)


def test_process_pool_gives_the_rows_of_one_process(tmp_path):
    one, pool = StageDir(tmp_path / "one"), StageDir(tmp_path / "pool")
    run_shards(one, 6, partial(numbers_task, str(one.path), 0))
    run_shards(pool, 6, partial(numbers_task, str(pool.path), 0), workers=2)
    assert read_rows(one) == read_rows(pool)


def test_a_live_claim_is_respected_and_a_dead_one_taken_over(tmp_path):
    stage = StageDir(tmp_path / "s")
    with stage.claim(0) as mine:
        assert mine
        with stage.claim(0) as again:
            assert not again  # held by this live process
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = stage.path / "claims" / "00001"
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "since": 0}))
    with stage.claim(1) as mine:
        assert mine


def test_kill_minus_nine_mid_stage_then_rerun_equals_uninterrupted_run(tmp_path):
    ref = tmp_path / "ref"
    subprocess.run([sys.executable, str(HERE / "stage_tasks.py"), str(ref), "8", "0", "1"], check=True, cwd=HERE.parent)
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(HERE / "stage_tasks.py"), str(out), "8", "0.4", "1"], cwd=HERE.parent)
    deadline = time.time() + 60
    while len(StageDir(out).done_shards()) < 3 and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(StageDir(out).done_shards())
    assert 3 <= done_before < 8, "the kill must land mid-stage"
    subprocess.run([sys.executable, str(HERE / "stage_tasks.py"), str(out), "8", "0", "1"], check=True, cwd=HERE.parent)
    rows = read_rows(StageDir(out))
    assert rows == read_rows(StageDir(ref))
    assert len(rows) == len(set(rows)) == 8 * ROWS_PER_SHARD
    assert not list(out.glob(".*.tmp-*")), "no temporary files are left behind"


def test_an_unreadable_claim_is_live_and_a_fresh_claim_is_never_taken_over(tmp_path):
    from distill.stage import _take_over

    stage = StageDir(tmp_path / "s")
    lock = stage.path / "claims" / "00002"
    lock.parent.mkdir(parents=True)
    lock.write_text("")  # as if read between another worker's create and write
    with stage.claim(2) as mine:
        assert not mine
    # A worker judged holder `old` stale, but by the time it moves the lock a new holder wrote it.
    old = {"host": socket.gethostname(), "pid": 1, "since": 0}
    fresh = {"host": socket.gethostname(), "pid": os.getpid(), "since": 1}
    lock.write_text(json.dumps(fresh))
    assert not _take_over(lock, old)
    assert json.loads(lock.read_text()) == fresh, "the fresh claim is put back"
    lock.write_text(json.dumps(old))
    assert _take_over(lock, old) and not lock.exists()
