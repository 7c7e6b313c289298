"""The eval stage over the toy backend: every sample kept, scores.json, resume, rescore, comparison."""

import json

import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

import distill.eval.stage as eval_stage
from distill.errors import DistillError
from distill.eval.compare import compare, protocol_mismatches
from distill.eval.config import EvalConfig, ModelSpec
from distill.eval.stage import load_samples, rescore, run
from distill.records import EVAL_SAMPLE
from distill.verify.math import verify_math

N, K = 24, 4


def cfg(**kw):
    base = {"benchmarks": ["toy_arith"], "overrides": {"toy_arith": {"toy": {"n": N}, "k": K}},
            "problems_per_shard": 8, "problems_per_chunk": 4, "bootstrap_resamples": 1000}
    return EvalConfig.model_validate({**base, **kw})


TEACHER = ModelSpec(name="teacher", backend="toy", model="toy-teacher")
SLOPPY = ModelSpec(name="sloppy", backend="toy", model="toy-teacher", toy={"wrong_answer": 0.6}, baseline_of="teacher")


def sorted_rows(out):
    return sorted(load_samples(out), key=lambda r: (r["problem_id"], r["sample_idx"]))


def test_eval_keeps_every_sample_and_scores_them(tmp_path):
    out = tmp_path / "teacher"
    scores = run(cfg(), TEACHER, out)
    rows = sorted_rows(out)
    assert len(rows) == N * K and pq.read_schema(out / "part-00000.parquet") == EVAL_SAMPLE
    assert {(r["problem_id"], r["sample_idx"]) for r in rows} == {(p, j) for p in {r["problem_id"] for r in rows} for j in range(K)}
    for r in rows:  # every sample's verdict is the verifier's, and each completion is the raw text
        assert r["completion"].startswith("<think>\n") and r["model"] == "teacher"
        assert r["correct"] == verify_math(r["completion"], r["answer"]).correct
    s = scores["benchmarks"]["toy_arith"]
    assert json.loads((out / "scores.json").read_text())["benchmarks"]["toy_arith"]["pass@1"] == s["pass@1"]
    assert s["pass@1"] == pytest.approx(sum(r["correct"] for r in rows) / len(rows))
    assert s["n_problems"] == N and s["k"] == K and set(s["pass@k"]) == {"1", "2", "4"}
    assert s["pass@1"] <= s["pass@k"]["2"] <= s["pass@k"]["4"]
    assert s["protocol"]["temperature"] == 0.6 and s["protocol"]["top_p"] == 0.95 and s["protocol"]["prefix"] == "<think>\n"
    assert s["protocol"]["system_prompt"] is None
    assert 0 <= s["termination"]["unfinished"] < 0.5


def test_killed_shard_resumes_without_regenerating_finished_chunks(tmp_path, monkeypatch):
    out = tmp_path / "teacher"
    run(cfg(), TEACHER, out)
    reference = sorted_rows(out)
    # Undo shard 1 and pretend its worker died after its first chunk (4 problems) was checkpointed.
    (out / "done" / "00001").unlink()
    first_chunk = pq.read_table(out / "part-00001.parquet").slice(0, 4 * K)
    (out / "part-00001.parquet").unlink()
    (out / "chunks" / "00001").mkdir(parents=True)
    pq.write_table(first_chunk, out / "chunks" / "00001" / "00000.parquet")
    (out / "chunks" / "00001" / "00000.json").write_text('{"items": [0, 1, 2, 3]}')
    (out / "scores.json").unlink()

    real = eval_stage.EvalShard.first_jobs
    calls = []

    def counting(self, item):
        calls.append(self.items[item]["id"])
        return real(self, item)

    monkeypatch.setattr(eval_stage.EvalShard, "first_jobs", counting)
    run(cfg(), TEACHER, out)
    assert len(calls) == 4  # only the problems of shard 1 after its first chunk were sampled again
    assert sorted_rows(out) == reference  # same samples: seeds depend on (seed, problem, sample), not on the run
    assert not (out / "chunks" / "00001").exists()


def test_another_protocol_in_the_same_directory_is_refused(tmp_path):
    run(cfg(), TEACHER, tmp_path / "m")
    with pytest.raises(DistillError, match="temperature"):
        run(cfg(temperature=0.7), TEACHER, tmp_path / "m")


def test_rescore_recomputes_from_saved_samples_only(tmp_path, monkeypatch):
    out = tmp_path / "teacher"
    before = run(cfg(), TEACHER, out)["benchmarks"]["toy_arith"]
    # Corrupt the saved verdicts; rescoring must re-judge the completions, with no backend at all.
    for part in sorted(out.glob("part-*.parquet")):
        t = pq.read_table(part)
        pq.write_table(t.set_column(t.schema.get_field_index("correct"), "correct", [[True] * t.num_rows]), part)
    monkeypatch.setattr(eval_stage.engines, "engine", lambda cfg: pytest.fail("rescore must not build a backend"))
    after = rescore(out)["benchmarks"]["toy_arith"]
    for key in ("pass@1", "pass@1_ci95", "cons@k", "pass@k", "termination", "protocol"):
        assert after[key] == before[key], key


def test_distilled_vs_baseline_paired_ci_and_protocol_check(tmp_path):
    run(cfg(), TEACHER, tmp_path / "teacher")
    run(cfg(), SLOPPY, tmp_path / "sloppy")
    c = compare(tmp_path / "teacher", tmp_path / "sloppy", resamples=2000)
    r = c["benchmarks"]["toy_arith"]["pass@1"]
    a = json.loads((tmp_path / "teacher" / "scores.json").read_text())["benchmarks"]["toy_arith"]["pass@1"]
    b = json.loads((tmp_path / "sloppy" / "scores.json").read_text())["benchmarks"]["toy_arith"]["pass@1"]
    assert r["diff"] == pytest.approx(a - b) and r["n_problems"] == N
    assert r["ci_low"] <= r["diff"] <= r["ci_high"] and r["ci_low"] > 0  # 60% injected slips: a clear gap
    assert c["protocol_mismatches"] == []

    run(cfg(temperature=1.0, overrides={"toy_arith": {"toy": {"n": N}, "k": 2}}), SLOPPY, tmp_path / "hot")
    found = compare(tmp_path / "teacher", tmp_path / "hot")["protocol_mismatches"]
    assert any("temperature differs" in m for m in found) and any(m.startswith("toy_arith: k differs") for m in found)
    sa = json.loads((tmp_path / "teacher" / "scores.json").read_text())
    assert protocol_mismatches(sa, {"benchmarks": {}}) == ["toy_arith: evaluated for a only"]


def test_cli_eval_and_rescore(tmp_path):
    from distill.eval.cli import eval_cmd

    app = typer.Typer()
    app.command()(eval_cmd)
    out = tmp_path / "cli"
    args = ["--output", str(out), "--model", "toy-teacher", "--backend", "toy", "--set", "overrides.toy_arith.toy.n=8",
            "--set", "overrides.toy_arith.k=2", "--set", "bootstrap_resamples=200"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    line = json.loads(res.output.strip().splitlines()[-1])
    assert line["benchmark"] == "toy_arith" and line["n"] == 8 and line["k"] == 2
    res2 = CliRunner().invoke(app, ["--output", str(out), "--rescore"])
    assert res2.exit_code == 0 and json.loads(res2.output.strip().splitlines()[-1])["pass@1"] == line["pass@1"]
    res3 = CliRunner().invoke(app, ["--output", str(tmp_path / "x")])
    assert isinstance(res3.exception, DistillError) and "--model" in str(res3.exception)


def test_worker_pool_writes_the_same_samples(tmp_path):
    run(cfg(), TEACHER, tmp_path / "one")
    run(cfg(), TEACHER, tmp_path / "two", workers=2)
    assert sorted_rows(tmp_path / "two") == sorted_rows(tmp_path / "one")


def test_pipeline_eval_section_hash_ignores_the_model_list(tmp_path):
    from distill.pipeline import EvalSection as Section  # the eval config plus its models

    run(Section.model_validate({**cfg().model_dump(), "models": [TEACHER.model_dump()]}), TEACHER, tmp_path / "t")
    # a second model in the list: the same stage config, so this resumes instead of refusing
    run(Section.model_validate({**cfg().model_dump(), "models": [TEACHER.model_dump(), SLOPPY.model_dump()]}), TEACHER, tmp_path / "t")
    # `budgets` is recorded only when set (directories made before it existed keep their config hash)
    assert json.loads((tmp_path / "t" / "config.json").read_text())["config"]["eval"] == cfg().model_dump(mode="json", exclude={"budgets"})
