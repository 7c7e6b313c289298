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

import distill.procs
import distill.stage
from distill.errors import DistillError
from distill.stage import StageDir, run_shards
from tests.stage_tasks import ROWS_PER_SHARD, numbers_task, wait_group_gone

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


def test_a_damaged_done_shard_is_named_to_readers_and_regenerated_by_its_stage(tmp_path):
    stage = StageDir(tmp_path / "s")
    calls = []

    def task(i):
        calls.append(i)
        return numbers_task(str(stage.path), 0, i)

    run_shards(stage, 4, task)
    want = read_rows(stage)
    stage.part(1).unlink()  # lost: the readers must not renumber the three parts left
    pq.write_table(pq.read_table(stage.part(2)).slice(0, 2), stage.part(2))  # short: 2 rows, stats say 5
    with pytest.raises(DistillError, match=r"part-00001\.parquet: file not found \(shard 1 of .*\); rerun the stage"):
        stage.parts()
    with pytest.raises(DistillError, match=r"part-00001\.parquet: file not found \(shard 1 of "):
        stage.require_complete("numbers")
    assert not stage.is_complete()
    calls.clear()
    run_shards(stage, 4, task)
    assert calls == [1, 2] and read_rows(stage) == want and stage.is_complete()


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


def test_a_torn_claim_is_respected_while_fresh_and_taken_over_once_untouched(tmp_path):
    stage = StageDir(tmp_path / "s")
    lock = stage.claim_file(2)
    lock.parent.mkdir(parents=True)
    lock.write_text('{"host": "vm", "pi')  # storage damage: no holder can be read from it
    with stage.claim(2) as mine:
        assert not mine
    old = time.time() - 3 * distill.stage.CLAIM_HEARTBEAT_S
    os.utime(lock, (old, old))
    with stage.claim(2) as mine:
        assert mine


def test_a_fresh_claim_is_never_taken_over(tmp_path):
    from distill.stage import _take_over

    lock = StageDir(tmp_path / "s").claim_file(2)
    lock.parent.mkdir(parents=True)
    # A worker judged holder `old` stale, but by the time it moves the lock a new holder wrote it.
    old = json.dumps({"host": socket.gethostname(), "pid": 1, "since": 0}).encode()
    fresh = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": 1}).encode()
    lock.write_bytes(fresh)
    assert not _take_over(lock, old)
    assert lock.read_bytes() == fresh, "the fresh claim is put back"
    lock.write_bytes(old)
    assert _take_over(lock, old) and not lock.exists()
    assert not list(lock.parent.iterdir()), "no temporary file is left"


def test_a_live_pid_of_another_process_is_not_the_holder(tmp_path):
    """pids restart in containers: a claim of pid P started at time T is abandoned once P runs another program."""
    stage = StageDir(tmp_path / "s")
    lock = stage.claim_file(0)
    lock.parent.mkdir(parents=True)
    me = {"host": socket.gethostname(), "pid": os.getpid(), "started": distill.procs.proc_start(os.getpid()), "since": 0}
    lock.write_text(json.dumps(me))
    with stage.claim(0) as mine:
        assert not mine, "this very process holds it"
    lock.write_text(json.dumps({**me, "started": me["started"] - 1}))
    with stage.claim(0) as mine:
        assert mine, "same pid, other start time: another process"


def test_a_claim_without_start_time_on_a_live_pid_is_judged_by_its_heartbeat(tmp_path):
    """An older version wrote no start time; its pid may now be any live process, so only the heartbeat tells."""
    stage = StageDir(tmp_path / "s")
    lock = stage.claim_file(0)
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": 0}))
    with stage.claim(0) as mine:
        assert not mine, "heartbeat fresh: respected"
    old = time.time() - 3 * distill.stage.CLAIM_HEARTBEAT_S
    os.utime(lock, (old, old))
    with stage.claim(0) as mine:
        assert mine, "heartbeat stopped: taken over although the pid is alive"


def test_shards_held_elsewhere_fail_the_stage_naming_them_and_status_shows_them(tmp_path, monkeypatch):
    monkeypatch.setattr(distill.stage, "HELD_WAIT_S", 0.3)
    from typer.testing import CliRunner

    from distill.cli import app

    run = tmp_path / "run"
    stage = StageDir(run / "01_prompts")
    stage.prepare({"task": "numbers"})
    lock = stage.claim_file(3)
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": "node-17", "pid": 4242, "since": time.time() - 300}))
    with pytest.raises(DistillError, match=r"1 shard\(s\) unfinished.*shard 3: node-17:4242, claimed 5m ago, heartbeat \d+s ago"):
        run_shards(stage, 5, partial(numbers_task, str(stage.path), 0))
    assert stage.done_shards() == [0, 1, 2, 4]
    (run / "pipeline.yaml").write_text("name: x\n")
    result = CliRunner().invoke(app, ["status", str(run)], terminal_width=250)
    assert result.exit_code == 0, result.output
    assert "4/5 shards" in result.stdout and "shard 3 held by node-17:4242" in result.stdout


def test_pool_workers_exit_when_only_their_parent_is_killed(tmp_path):
    out = tmp_path / "s"
    proc = subprocess.Popen([sys.executable, str(HERE / "stage_tasks.py"), str(out), "8", "5", "2"], cwd=HERE.parent, start_new_session=True)
    claims = out / "claims"
    deadline = time.time() + 60
    while len([p for p in claims.glob("*") if p.name.isdigit()] if claims.exists() else []) < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert len(list(claims.glob("0*"))) == 2, "both workers hold a shard"
    os.kill(proc.pid, signal.SIGKILL)  # the parent only: its workers and the resource tracker are orphaned
    proc.wait()
    left = wait_group_gone(proc.pid, timeout_s=10)
    if left:
        os.killpg(proc.pid, signal.SIGKILL)
    assert not left, "pool workers outlived their parent"


def test_a_shard_whose_holder_dies_while_the_stage_waits_is_taken_over(tmp_path, monkeypatch):
    monkeypatch.setattr(distill.stage, "HELD_WAIT_S", 30)
    stage = StageDir(tmp_path / "s")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    lock = stage.claim_file(1)
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": holder.pid, "started": distill.procs.proc_start(holder.pid)}))
    started = time.time()
    ran = run_shards(stage, 3, partial(numbers_task, str(stage.path), 0))
    holder.wait()
    assert [s["shard"] for s in ran] == [0, 1, 2] and stage.is_complete()
    assert 1 < time.time() - started < 20, "shard 1 ran once its holder was gone, not before"
