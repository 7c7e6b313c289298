"""The grading policy through the eval stage: recorded per sample and in scores.json, switched by
rescore, unfinished samples never credited under strict; parts written before the reason/grading
columns still read."""

import json
import shutil

import pyarrow.parquet as pq
import pytest

from distill.eval.compare import protocol_mismatches
from distill.eval.config import EvalConfig, ModelSpec
from distill.eval.stage import load_samples, rescore, run, write_scores
from distill.report.collect import sampling_settings
from distill.verify import is_unfinished
from distill.verify.math import verify_math

CFG = EvalConfig.model_validate({"benchmarks": ["toy_arith"], "overrides": {"toy_arith": {"toy": {"n": 16}, "k": 4}},
                                 "problems_per_shard": 8, "problems_per_chunk": 8, "bootstrap_resamples": 200})
# a careless teacher: many traces cut at the limit or never closing </think>
CARELESS = ModelSpec(name="careless", backend="toy", model="toy-teacher", toy={"truncation": 0.3, "missing_think_close": 0.3})


def test_strict_then_lenient_rescore(tmp_path):
    out = tmp_path / "careless"
    strict = run(CFG, CARELESS, out)["benchmarks"]["toy_arith"]
    rows = load_samples(out)
    unfinished = [r for r in rows if is_unfinished(r["completion"], r["finish_reason"], force_think=True)]
    assert unfinished and all(not r["correct"] and r["reason"] == "unfinished" and r["extracted"] is None for r in unfinished)
    assert {r["grading"] for r in rows} == {"strict"} and strict["protocol"]["grading"] == "strict"
    assert all(r["reason"] is None for r in rows if r["correct"]) and all(r["reason"] for r in rows if not r["correct"])
    assert strict["termination"]["reasons"]["unfinished"] == pytest.approx(len(unfinished) / len(rows))

    shutil.copytree(out, tmp_path / "strict")
    lenient = rescore(out, grading="lenient")["benchmarks"]["toy_arith"]
    again = load_samples(out)
    assert {r["grading"] for r in again} == {"lenient"} and lenient["protocol"]["grading"] == "lenient"
    for r in again:
        assert r["correct"] == verify_math(r["completion"], r["answer"], grading="lenient").correct
    assert lenient["pass@1"] >= strict["pass@1"]
    assert "unfinished" not in lenient["termination"]["reasons"]
    # a strict and a lenient scoring of the same samples are not comparable
    a, b = (json.loads((d / "scores.json").read_text()) for d in (tmp_path / "strict", out))
    assert protocol_mismatches(a, b) == ["toy_arith: grading differs (a='strict', b='lenient')"]
    assert sampling_settings({"m": {"scores": b}})["m"].endswith("toy_arith k=4; grading lenient")  # the report's legend


def test_parts_written_before_reasons_still_read(tmp_path):
    out = tmp_path / "m"
    run(CFG, CARELESS, out)
    for part in out.glob("part-*.parquet"):  # as written before the reason and grading columns existed
        t = pq.read_table(part)
        pq.write_table(t.drop(["reason", "grading"]), part)
    rows = load_samples(out)
    assert rows and all(r["reason"] is None and r["grading"] is None for r in rows)
    old = write_scores(out)["benchmarks"]["toy_arith"]
    assert old["protocol"]["grading"] == "unrecorded"
    assert old["termination"]["no_answer"] == pytest.approx(sum(r["extracted"] is None for r in rows) / len(rows))
    assert rescore(out)["benchmarks"]["toy_arith"]["protocol"]["grading"] == "strict"  # the config's policy


def test_cli_grading_for_a_run_and_a_rescore(tmp_path):
    import typer
    from typer.testing import CliRunner

    from distill.errors import DistillError
    from distill.eval.cli import eval_cmd

    app = typer.Typer()
    app.command()(eval_cmd)
    out = tmp_path / "cli"
    base = ["--output", str(out), "--set", "overrides.toy_arith.toy.n=8", "--set", "overrides.toy_arith.k=2", "--set", "bootstrap_resamples=200"]
    res = CliRunner().invoke(app, [*base, "--model", "toy-teacher", "--backend", "toy", "--grading", "lenient"])
    assert res.exit_code == 0, res.output
    assert {r["grading"] for r in load_samples(out)} == {"lenient"}
    res = CliRunner().invoke(app, ["--output", str(out), "--rescore", "--grading", "strict"])
    assert res.exit_code == 0, res.output
    assert {r["grading"] for r in load_samples(out)} == {"strict"}
    assert json.loads((out / "scores.json").read_text())["benchmarks"]["toy_arith"]["protocol"]["grading"] == "strict"
    res = CliRunner().invoke(app, ["--output", str(out), "--rescore", "--grading", "loose"])
    assert isinstance(res.exception, DistillError) and "strict, lenient" in str(res.exception)
