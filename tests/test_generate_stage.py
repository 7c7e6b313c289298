"""The generate stage with the toy backend: rows and lineage, determinism, budget, resume, many workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from distill.errors import DistillError
from distill.generate.config import GenerateConfig
from distill.generate.stage import read_traces, run
from distill.stage import StageDir
from distill.think import split_think
from distill.verify.math import verify_math

sys.path.insert(0, str(Path(__file__).parent))
from generate_fixtures import make_prompts_stage, trace_rows  # noqa: E402

WORKER = Path(__file__).parent / "generate_fixtures.py"
# Short traces keep the toy teacher's repetition loops small (it repeats up to max_tokens).
TOY = {"samples_per_prompt": 3, "chunk_size": 16, "sampling": {"max_tokens": 256}}


def test_rows_lineage_and_split(tmp_path):
    inp = make_prompts_stage(tmp_path / "p", 40, 15)
    summary = run(GenerateConfig(**TOY), inp, tmp_path / "t")
    t = read_traces(tmp_path / "t")
    assert summary["rows"] == t.num_rows == 40 * 3
    assert summary["shards_done"] == summary["shards_total"] == 3
    rows = t.to_pylist()
    per_problem = Counter(r["id"] for r in rows)
    assert set(per_problem.values()) == {3}
    for shard in range(3):  # every sample of a problem is in the shard of its problem
        src = pq.read_table(StageDir(inp).part(shard))["id"].to_pylist()
        assert set(pq.read_table(StageDir(tmp_path / "t").part(shard))["id"].to_pylist()) == set(src)
    for r in rows:
        assert r["completion"].startswith("<think>\n")
        assert (r["reasoning"], r["response"]) == split_think(r["completion"])
        assert r["backend"] == "toy" and r["teacher"] == "toy-teacher" and r["prompt_template"] == "r1"
        assert r["finish_reason"] in ("stop", "length") and r["completion_tokens"] > 0
        assert '"temperature": 0.6' in r["sampling"] and r["generated_at"].endswith("+00:00")
    assert sum(s["completion_tokens"] for s in StageDir(tmp_path / "t").stats()) == sum(r["completion_tokens"] for r in rows)


def test_rerun_is_identical_and_other_config_refused(tmp_path):
    inp = make_prompts_stage(tmp_path / "p", 20, 10)
    run(GenerateConfig(**TOY), inp, tmp_path / "a")
    run(GenerateConfig(**TOY), inp, tmp_path / "b", workers=2)  # a process pool writes the same rows
    assert trace_rows(tmp_path / "a") == trace_rows(tmp_path / "b")
    again = run(GenerateConfig(**TOY), inp, tmp_path / "a")  # everything done: nothing reruns
    assert again["shards_this_run"] == 0 and again["rows"] == 60
    with pytest.raises(DistillError, match="another config.*sampling.seed"):
        run(GenerateConfig(**{**TOY, "sampling": {"max_tokens": 256, "seed": 1}}), inp, tmp_path / "a")


def test_missing_input_is_a_one_line_error(tmp_path):
    with pytest.raises(DistillError, match="no finished prompts shards"):
        run(GenerateConfig(**TOY), tmp_path / "nope", tmp_path / "t")


def test_budget_stops_at_m_correct_and_reports_cost(tmp_path):
    inp = make_prompts_stage(tmp_path / "p", 30, 30)
    cfg = GenerateConfig(**{**TOY, "samples_per_prompt": 6, "budget": {"accept": 2, "round_size": 1}})
    summary = run(cfg, inp, tmp_path / "t")
    rows = read_traces(tmp_path / "t").to_pylist()
    by_problem: dict[str, list] = {}
    for r in sorted(rows, key=lambda r: r["sample_idx"]):
        by_problem.setdefault(r["id"], []).append(r)
    at_budget = 0
    for samples in by_problem.values():
        assert [r["sample_idx"] for r in samples] == list(range(len(samples)))
        ok = [r["reasoning"] is not None and verify_math(r["completion"], r["answer"]).correct for r in samples]
        if sum(ok) >= 2:  # stopped at the sample that made the second correct trace
            at_budget += 1
            assert ok[-1] and sum(ok) == 2
        else:
            assert len(samples) == 6
    assert summary["budget"]["problems_at_budget"] == at_budget > 0
    assert len(rows) < 30 * 6  # the budget saved samples
    acc = summary["budget"]["accepted"]
    assert summary["budget"]["samples_per_accepted"] == pytest.approx(len(rows) / acc, rel=1e-3)
    assert summary["budget"]["tokens_per_accepted"] == pytest.approx(sum(r["completion_tokens"] for r in rows) / acc, rel=1e-3)


def _worker(cfg_file: Path, inp: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    return subprocess.Popen([sys.executable, str(WORKER), str(cfg_file), str(inp), str(out)], env=env, stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_kill_mid_shard_then_resume_matches_uninterrupted(tmp_path):
    inp = make_prompts_stage(tmp_path / "p", 1200, 1200)  # one shard of many chunks
    cfg = {**TOY, "samples_per_prompt": 2, "chunk_size": 40}
    cfg_file = tmp_path / "g.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    run(GenerateConfig(**cfg), inp, tmp_path / "ref")

    out = tmp_path / "killed"
    proc = _worker(cfg_file, inp, out)
    chunks = StageDir(out).chunks(0)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(chunks.glob("*.parquet"))) < 2:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = len(list(chunks.glob("*.parquet")))
    assert not StageDir(out).is_done(0) and 2 <= written < 30, "the worker must die mid-shard"

    summary = run(GenerateConfig(**cfg), inp, out)
    assert trace_rows(out) == trace_rows(tmp_path / "ref")
    assert StageDir(out).stats()[0]["chunks_resumed"] == written
    assert summary["rows"] == 2400 and not chunks.exists()


@pytest.mark.slow
@pytest.mark.parametrize("n_workers", [2, 3])
def test_concurrent_workers_write_exactly_one_workers_rows(tmp_path, n_workers):
    inp = make_prompts_stage(tmp_path / "p", 240, 20)  # 12 shards to share
    cfg_file = tmp_path / "g.yaml"
    cfg_file.write_text(yaml.safe_dump(TOY))
    run(GenerateConfig(**TOY), inp, tmp_path / "one")

    out = tmp_path / "many"
    procs = [_worker(cfg_file, inp, out) for _ in range(n_workers)]
    assert [p.wait(timeout=120) for p in procs] == [0] * n_workers
    rows = trace_rows(out)
    assert len(rows) == len(set((i, s) for i, s, _ in rows))  # no duplicates
    assert rows == trace_rows(tmp_path / "one")
    assert StageDir(out).is_complete()
    ran = Counter(s["shard"] for s in StageDir(out).stats())
    assert set(ran) == set(range(12)) and set(ran.values()) == {1}


@pytest.mark.slow
def test_ray_executor_matches_the_local_run(tmp_path):
    ray = pytest.importorskip("ray")
    inp = make_prompts_stage(tmp_path / "p", 60, 15)
    run(GenerateConfig(**TOY), inp, tmp_path / "local")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = run(GenerateConfig(**TOY), inp, tmp_path / "ray", executor="ray")
        ray_pids = {s["pid"] for s in StageDir(tmp_path / "ray").stats()}
    finally:
        ray.shutdown()
    assert summary["shards_this_run"] == 4 and summary["rows"] == 180
    assert trace_rows(tmp_path / "ray") == trace_rows(tmp_path / "local")
    assert os.getpid() not in ray_pids  # the shards really ran in Ray's worker processes


def test_bad_problem_row_names_file_row_and_field(tmp_path):
    inp = make_prompts_stage(tmp_path / "p", 6, 6)
    t = pq.read_table(StageDir(inp).part(0))
    prompts = t["prompt"].to_pylist()
    prompts[3] = ""
    pq.write_table(t.set_column(t.schema.get_field_index("prompt"), "prompt", [prompts]), StageDir(inp).part(0))
    with pytest.raises(DistillError, match=r"part-00000.parquet:4: field 'prompt': required"):
        run(GenerateConfig(**TOY), inp, tmp_path / "t")


def test_a_held_claim_keeps_its_heartbeat_fresh(tmp_path, monkeypatch):
    import distill.stage

    monkeypatch.setattr(distill.stage, "CLAIM_HEARTBEAT_S", 0.05)
    stage = StageDir(tmp_path / "s")
    with stage.claim(0) as mine:
        assert mine
        lock = tmp_path / "s" / "claims" / "00000"
        os.utime(lock, (time.time() - 3600, time.time() - 3600))  # as if the holder had hung for an hour
        time.sleep(0.3)
        assert time.time() - lock.stat().st_mtime < 1  # a live holder is never taken for abandoned
        with stage.claim(0) as other:
            assert not other
    assert not lock.exists()


def test_truncated_samples_get_one_longer_try_that_replaces_them(tmp_path):
    inp = make_prompts_stage(tmp_path / "p", 20, 20)
    short = {**TOY, "sampling": {"max_tokens": 96}}
    run(GenerateConfig(**short), inp, tmp_path / "plain")
    summary = run(GenerateConfig(**short, regenerate_truncated=512), inp, tmp_path / "longer")
    plain = {(r["id"], r["sample_idx"]): r for r in read_traces(tmp_path / "plain").to_pylist()}
    longer = {(r["id"], r["sample_idx"]): r for r in read_traces(tmp_path / "longer").to_pylist()}
    assert plain.keys() == longer.keys()  # one row per sample still: the new try replaced the cut one
    cut = {k for k, r in plain.items() if r["finish_reason"] == "length"}
    assert 0 < len(cut) < len(plain)
    for k, r in plain.items():
        if k in cut:
            assert longer[k]["completion_tokens"] > 96 or longer[k]["finish_reason"] == "stop", k
        else:  # samples that ended on their own are untouched (same seed, same text)
            assert longer[k]["completion"] == r["completion"] and longer[k]["finish_reason"] == r["finish_reason"]
    assert sum(r["finish_reason"] == "length" for r in longer.values()) < len(cut)
    assert summary["regenerated"] == len(cut)
