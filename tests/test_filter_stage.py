"""`distill filter` end to end on toy traces and planted rows: files, reasons, stats, workers, resume."""

import json

import pytest

from distill.errors import DistillError
from distill.filter.config import FilterConfig
from distill.filter.stage import run
from distill.generate.prompting import messages_for
from distill.io import read_parquets
from distill.records import CURATED
from distill.stage import StageDir
from distill.toy.tasks import make_problems
from tests.filter_fixtures import toy_traces, trace_row, write_traces_stage

GOOD = "<think>\nWe need {a} + {b}.\nSo it is {c}.\n</think>\n{a} + {b} = \\boxed{{{c}}}"


def _planted() -> list[dict]:
    """One problem per failure mode, sample 0 always good; the bad sample is sample 1."""
    problems = make_problems(8, seed=3)
    bad = {
        "wrong_answer": ("<think>\nsum\n</think>\n\\boxed{{{w}}}", "stop"),
        "no_answer": ("<think>\nsum\n</think>\nI am not sure.", "stop"),
        "no_think_close": ("<think>\nsum is {c} \\boxed{{{c}}}", "stop"),
        "truncated": ("<think>\nWe need {a} + {b}. Ones", "length"),
        "repetition": ("<think>\n" + "Let me check {a} + {b} again.\n" * 300 + "</think>\n\\boxed{{{c}}}", "stop"),
        "language_mixing": ("<think>\n我们需要计算 {a} 加 {b}，个位相加，十位相加，答案是 {c}。\n</think>\n\\boxed{{{c}}}", "stop"),
        "code_in_reasoning": ("<think>\n```python\nprint({a} + {b})\n```\n</think>\n\\boxed{{{c}}}", "stop"),
        "duplicate": (GOOD, "stop"),
    }
    rows = []
    for p, (reason, (template, finish)) in zip(problems, bad.items()):
        meta = json.loads(p["metadata"])
        a, b, c = meta["a"], meta["b"], int(p["answer"])
        fill = dict(a=a, b=b, c=c, w=c + 1)
        rows.append(trace_row(p, 0, GOOD.format(**fill)))
        rows.append(trace_row({**p, "metadata": json.dumps({**meta, "planted": reason})}, 1, template.format(**fill), finish))
    return rows


def test_planted_rows_get_their_reason(tmp_path):
    rows = _planted()
    write_traces_stage(tmp_path / "traces", rows, shards=2)
    totals = run(FilterConfig(), tmp_path / "traces", tmp_path / "curated")
    stage = StageDir(tmp_path / "curated")
    kept = read_parquets(stage.parts()).to_pylist()
    rejected = read_parquets(stage.rejected_parts())
    assert rejected.schema.equals(CURATED) and read_parquets(stage.parts()).schema.equals(CURATED)
    got = {(json.loads(r["metadata"]).get("planted"), r["reject_reason"]) for r in rejected.to_pylist()}
    assert got == {(reason, reason) for reason in ("wrong_answer", "no_answer", "no_think_close", "truncated", "repetition", "language_mixing", "code_in_reasoning", "duplicate")}
    assert len(kept) == 8 and all(r["sample_idx"] == 0 and r["verdict"] == "correct" for r in kept)
    assert totals["rows_in"] == 16 and totals["rows_out"] == 8
    assert totals["rejected"] == {reason: 1 for reason, _ in got}


def test_kept_rows_carry_sft_messages_and_stats_add_up(tmp_path):
    rows = toy_traces(40, 4, seed=1)
    write_traces_stage(tmp_path / "traces", rows, shards=3)
    totals = run(FilterConfig(), tmp_path / "traces", tmp_path / "curated")
    stage = StageDir(tmp_path / "curated")
    kept = read_parquets(stage.parts()).to_pylist()
    rejected = read_parquets(stage.rejected_parts()).to_pylist()
    assert len(kept) + len(rejected) == len(rows)
    for r in kept:
        assert r["reject_reason"] is None and r["verdict"] == "correct" and r["extracted"] == r["answer"]
        assert r["messages"] == messages_for(r["prompt"], "math") + [{"role": "assistant", "content": r["completion"]}]
    assert all(r["reject_reason"] and r["messages"] is None for r in rejected)
    for s in stage.stats():
        assert s["rows_in"] == s["rows_out"] + sum(s["rejected"].values())
    assert totals["rows_out"] == len(kept)
    assert totals["rejected"]["wrong_answer"] == sum(r["reject_reason"] == "wrong_answer" for r in rejected) > 0


def test_two_workers_same_output_and_resume(tmp_path):
    rows = toy_traces(30, 4, seed=2)
    write_traces_stage(tmp_path / "traces", rows, shards=4)
    cfg = FilterConfig.model_validate({"select": {"policy": "shortest"}})
    one = run(cfg, tmp_path / "traces", tmp_path / "a", workers=1)
    two = run(cfg, tmp_path / "traces", tmp_path / "b", workers=2)
    assert one.pop("cpu_seconds") > 0 and two.pop("cpu_seconds") > 0
    assert one == two
    a = read_parquets(StageDir(tmp_path / "a").parts())
    assert a.equals(read_parquets(StageDir(tmp_path / "b").parts()))
    assert max(a.group_by("id").aggregate([("sample_idx", "count")]).column("sample_idx_count").to_pylist()) == 1
    # a killed run: shard 2 lost its output and marker; the rerun redoes only that shard
    stage = StageDir(tmp_path / "a")
    stage.done_file(2).unlink()
    stage.part(2).unlink()
    before = stage.stats_file(0).stat().st_mtime_ns
    again = run(cfg, tmp_path / "traces", tmp_path / "a")
    assert again.pop("cpu_seconds") > 0 and again == one
    assert stage.stats_file(0).stat().st_mtime_ns == before
    assert read_parquets(stage.parts()).equals(a)
    with pytest.raises(DistillError, match="another config"):
        run(FilterConfig(), tmp_path / "traces", tmp_path / "a")


def test_unfinished_input_is_refused(tmp_path):
    write_traces_stage(tmp_path / "traces", toy_traces(4, 2), shards=2)
    StageDir(tmp_path / "traces").done_file(1).unlink()
    with pytest.raises(DistillError, match="not finished"):
        run(FilterConfig(), tmp_path / "traces", tmp_path / "curated")


def test_code_problems_are_verified_in_the_sandbox():
    from distill.filter.stage import curate_rows

    tests = json.dumps([{"input": "3 4\n", "output": "7"}, {"input": "10 -2\n", "output": "8"}])
    problem = {"id": "c1", "source": "t", "domain": "code", "prompt": "Read a and b; print a + b.", "answer": None, "tests": tests, "metadata": None}
    good = "<think>\nadd them\n</think>\n```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    bad = good.replace("a + b", "a - b")
    rows = [trace_row(problem, 0, good), trace_row(problem, 1, bad), trace_row(problem, 2, good.replace("print(a + b)", "import os\nos.fork()\nwhile True: pass"))]
    cfg = FilterConfig.model_validate({"verify": {"code_timeout_s": 2}})
    kept, rejected, counts = curate_rows(rows, cfg)
    assert [r["sample_idx"] for r in kept] == [0] and kept[0]["extracted"].startswith("a, b =")
    assert counts == {"wrong_answer": 1, "timeout": 1}
