"""`--executor ray` on a real two-node cluster (head + a second `ray start --address` node, 127.0.0.1):
generate (toy teacher) and filter run across both nodes, the second node's raylet is killed mid-run,
and the rows equal a local run's, none duplicated, with no process left behind."""

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from distill.io import read_parquets
from distill.stage import StageDir

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ["--set", "source=toy", "--set", "toy.n=160", "--set", "rows_per_shard=10"]
# R1-long toy traces so each generate shard takes a few seconds: the kill lands mid-run
GENERATE = ["--set", "backend=toy", "--set", "samples_per_prompt=4", "--set", "sampling.max_tokens=4096", "--set", "toy.think_median_tokens=600"]


def _distill(args: list, env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "distill.cli", *map(str, args)], cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)


def _ok(proc: subprocess.Popen, timeout: float = 600) -> None:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()[-3000:]


def _rows(stage: Path) -> list[dict]:
    t = read_parquets(StageDir(stage).parts() + StageDir(stage).rejected_parts())
    return t.drop_columns([c for c in ("generated_at",) if c in t.column_names]).to_pylist()


def _kill_mid_run(cluster, proc: subprocess.Popen, stage: Path) -> bool:
    """Kill the second node's raylet once the stage has finished a shard but not all; whether it did."""
    while proc.poll() is None:
        done = len(StageDir(stage).done_shards())
        if 1 <= done < 16:
            cluster.kill_second_raylet()
            return True
        time.sleep(0.2)
    return False


def test_generate_and_filter_on_two_ray_nodes_survive_losing_one(tmp_path):
    from tests.ray_cluster import TwoNodes

    _ok(_distill(["prompts", "-o", tmp_path / "p", *PROMPTS]))
    _ok(_distill(["generate", "-i", tmp_path / "p", "-o", tmp_path / "t-local", *GENERATE]))
    _ok(_distill(["filter", "-i", tmp_path / "t-local", "-o", tmp_path / "c-local"]))

    cluster = TwoNodes(tmp_path)
    try:
        cluster.start()
        env = cluster.env()
        gen = _distill(["generate", "-i", tmp_path / "p", "-o", tmp_path / "t", *GENERATE, "--executor", "ray"], env=env)
        assert _kill_mid_run(cluster, gen, tmp_path / "t"), "generate finished before the second node could be killed"
        _ok(gen)
        # the second node is gone: filter on a fresh two-node cluster would need a restart; run it on the head
        # alone after checking the generate rows, then again on a cluster that loses a node mid-run
        assert _rows(tmp_path / "t") == _rows(tmp_path / "t-local")
        pids = {s["pid"] for s in StageDir(tmp_path / "t").stats()}
        assert len(pids) >= 2, f"shards ran in one worker only: {pids}"
    finally:
        cluster.stop()
    assert not cluster.leftovers(), cluster.leftovers()

    cluster = TwoNodes(tmp_path / "second")
    (tmp_path / "second").mkdir()
    try:
        cluster.start()
        filt = _distill(["filter", "-i", tmp_path / "t", "-o", tmp_path / "c", "--executor", "ray"], env=cluster.env())
        killed = _kill_mid_run(cluster, filt, tmp_path / "c")
        _ok(filt)
    finally:
        cluster.stop()
    assert not cluster.leftovers(), cluster.leftovers()
    rows = _rows(tmp_path / "c")
    assert rows == _rows(tmp_path / "c-local")
    ids = [(r["problem_id"], r["sample_idx"]) for r in rows]
    assert len(ids) == len(set(ids)), "no row written twice"
    if not killed:
        pytest.skip("filter finished before its kill (generate's kill was checked)")
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
