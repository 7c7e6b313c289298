"""One process keeps its engine full across shard boundaries: the next shard is claimed and submitted while
the last one's long tail finishes (distill/generate/stream.py `drive`), for generate and eval alike; a
kill -9 while two shards are open resumes to the same rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from distill.eval.config import EvalConfig, ModelSpec
from distill import engines
from distill.eval.benchmarks import load_benchmark
from distill.eval.stage import load_samples, resolved_specs
from distill.eval.stage import run as run_eval
from distill.generate.config import GenerateConfig
from distill.generate.stage import run
from distill.stage import StageDir

sys.path.insert(0, str(Path(__file__).parent))
from generate_fixtures import TimedToy, make_prompts_stage, trace_rows  # noqa: E402

WORKER = Path(__file__).parent / "generate_fixtures.py"
CFG = {"samples_per_prompt": 2, "chunk_size": 4, "sampling": {"max_tokens": 128}}


def _shard_ids(inp: Path, n: int) -> list[list[str]]:
    return [pq.read_table(StageDir(inp).part(i), columns=["id"])["id"].to_pylist() for i in range(n)]


def _span(events: list[tuple], ids: list[str]) -> tuple[int, int]:
    """(tick of the shard's first submit, tick of its last finished request)."""
    ids = set(ids)
    return (min(t for e, i, t in events if e == "submit" and i in ids), max(t for e, i, t in events if e == "done" and i in ids))


def test_next_shard_is_submitted_before_the_last_one_drains(tmp_path):
    inp = make_prompts_stage(tmp_path / "p", 60, 20)
    shards = _shard_ids(inp, 3)
    cfg = GenerateConfig(**CFG)
    engine = TimedToy(cfg.toy, capacity=8, long_ids=frozenset({shards[0][0], shards[1][3]}))
    run(cfg, inp, tmp_path / "t", backend=engine)

    spans = [_span(engine.events, ids) for ids in shards]
    assert spans[1][0] < spans[0][1] and spans[2][0] < spans[1][1], f"shard spans (first submit, last done): {spans}"
    # ... yet a process holds no more than it can keep busy: shard 2 waits until shard 1 runs short.
    assert spans[2][0] > spans[1][0]
    run(cfg, inp, tmp_path / "ref")  # the plain toy teacher, one shard after the other: the same rows
    assert trace_rows(tmp_path / "t") == trace_rows(tmp_path / "ref")
    assert [s["rows_out"] for s in StageDir(tmp_path / "t").stats()] == [40, 40, 40]


def test_eval_shards_overlap_too(tmp_path):
    cfg = EvalConfig(benchmarks=["toy_arith"], problems_per_shard=6, problems_per_chunk=2,
                     overrides={"toy_arith": {"toy": {"n": 18}, "k": 2}})  # fmt: skip
    model = ModelSpec(name="toy-teacher", model="toy-teacher", backend="toy")
    problems = [p["id"] for p in load_benchmark(resolved_specs(cfg)[0])]
    engine = TimedToy(GenerateConfig().toy, capacity=4, long_ids=frozenset({problems[0], problems[7]}))
    with engines.lend(model, engine):
        scores = run_eval(cfg, model, tmp_path / "e")
    spans = [_span(engine.events, problems[a : a + 6]) for a in range(0, 18, 6)]
    assert spans[1][0] < spans[0][1], f"shard spans (first submit, last done): {spans}"
    assert len(load_samples(tmp_path / "e")) == 36 and scores["benchmarks"]["toy_arith"]


def test_kill_while_two_shards_are_open_resumes_to_the_same_rows(tmp_path):
    inp = make_prompts_stage(tmp_path / "p", 120, 40)
    shards = _shard_ids(inp, 3)
    long_ids = [shards[0][0], shards[1][0]]  # each shard's first request outlasts the rest of it
    cfg_file = tmp_path / "g.yaml"
    cfg_file.write_text(yaml.safe_dump(CFG))
    run(GenerateConfig(**CFG), inp, tmp_path / "ref")

    out = StageDir(tmp_path / "killed")
    proc = subprocess.Popen([sys.executable, str(WORKER), str(cfg_file), str(inp), str(out.path), *long_ids],
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 60
    while time.time() < deadline and not list(out.chunks(1).glob("*.parquet")):
        time.sleep(0.002)
    open_claims = set(out.held_claims())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert {0, 1} <= open_claims and not out.is_done(0), f"the kill must land while shards 0 and 1 are both open (claims {open_claims})"

    summary = run(GenerateConfig(**CFG), inp, out.path)
    assert trace_rows(out.path) == trace_rows(tmp_path / "ref") and summary["rows"] == 240


class SlowScoring:
    """A scoring pool whose results arrive 0.2 s after they are asked for (LCB tests in a sandbox), recording
    the engine's clock when each chunk was submitted and when its result was taken."""

    def __init__(self, engine: TimedToy):
        self.engine, self.clocks = engine, []

    def submit(self, fn, *args, **kwargs):
        import threading
        from concurrent.futures import Future

        future, result, asked = Future(), fn(*args, **kwargs), self.engine.clock
        threading.Timer(0.2, future.set_result, [result]).start()
        original = future.result
        future.result = lambda *a: (self.clocks.append((asked, self.engine.clock)), original(*a))[1]
        return future


def test_eval_loop_keeps_generating_while_a_chunk_is_scored(tmp_path, monkeypatch):
    cfg = EvalConfig(benchmarks=["toy_arith"], problems_per_shard=64, problems_per_chunk=2, overrides={"toy_arith": {"toy": {"n": 12}, "k": 2}})
    model = ModelSpec(name="toy-teacher", model="toy-teacher", backend="toy")
    engine = TimedToy(GenerateConfig().toy, capacity=4, tick_s=0.02)
    pool = SlowScoring(engine)
    monkeypatch.setattr("distill.eval.stage._scoring_pool", lambda backend: pool)
    with engines.lend(model, engine):
        run_eval(cfg, model, tmp_path / "e")
    assert len(load_samples(tmp_path / "e")) == 24 and len(pool.clocks) == 12
    # the first chunks' scores were taken ticks after they were asked for: the engine ran meanwhile
    assert pool.clocks[0][1] > pool.clocks[0][0], pool.clocks
