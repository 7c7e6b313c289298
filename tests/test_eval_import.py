"""Bring your own samples (`distill eval --import` from lighteval, Qwen2.5-Math / SkyThought jsonl and
SkyThought JSON) and `--rescore` that keeps what it replaces, honours --benchmark/--model and names what
a hand-made directory lacks."""

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from distill.errors import DistillError
from distill.eval.benchmarks import load_benchmark
from distill.eval.compare import foreign_agreement
from distill.eval.config import EvalConfig, ModelSpec
from distill.eval.importers import import_samples, matcher, normalise
from distill.eval.stage import load_samples, rescore, run
from distill.report.build import run as build_report

QWEN = Path(__file__).parent / "fixtures" / "qwen25math_math_cot_100_labeled.jsonl"


def cli(*args):
    from distill.eval.cli import eval_cmd

    app = typer.Typer()
    app.command()(eval_cmd)
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def qwen_spec(tmp_path):
    """A benchmark whose problems are the fixture's own 100 MATH problems (only 5 are in MATH-500)."""
    spec = tmp_path / "math_cot_100.yaml"
    spec.write_text(f"name: math_cot_100\nsource: {QWEN}\nfields: {{prompt: question, answer: answer}}\nk: 8\n")
    return spec


def test_qwen_math_jsonl_keeps_their_labels_and_the_report_shows_agreement(tmp_path, qwen_spec):
    run_dir = tmp_path / "run"
    res = cli("--import", "qwen-math", QWEN, "-o", run_dir / "05_eval" / "qwen", "--benchmark", qwen_spec, "--model", "qwen",
              "--set", "bootstrap_resamples=200")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.splitlines()[0]) == {"imported": str(QWEN), "matched": 100, "unmatched": 0, "samples": 800, "k": 8}
    rows = load_samples(run_dir / "05_eval" / "qwen")
    theirs = [json.loads(line)["score"] for line in QWEN.read_text().splitlines()]
    assert sum(r["foreign_correct"] for r in rows) == sum(map(sum, theirs))  # every label kept (728 of 800)
    agreement = foreign_agreement(run_dir / "05_eval" / "qwen")["math_cot_100"]
    differ = [r for r in rows if r["correct"] != r["foreign_correct"]]
    assert agreement["labelled"] == 800 and agreement["agree"] == pytest.approx(1 - len(differ) / 800)
    assert [(r["problem_id"], r["sample_idx"]) for r in agreement["disagreements"]] == sorted((r["problem_id"], r["sample_idx"]) for r in differ)

    build_report(run_dir, run_dir / "report")
    md = (run_dir / "report" / "report.md").read_text()
    assert f"| qwen | math_cot_100 | 800 | {100 * agreement['agree']:.1f} |" in md
    assert md.count("| qwen | math_cot_100 | ") == 2 + len(differ)  # results row, agreement row, one per disagreement
    assert "imported from qwen-math; temperature unknown" in md


def test_problems_outside_the_benchmark_are_listed_not_imported(tmp_path):
    out = tmp_path / "m"
    summary = import_samples("qwen-math", QWEN, out, benchmarks=["math500"], model="qwen", bootstrap_resamples=200)
    math500 = {normalise(p["prompt"]) for p in load_benchmark("math500")}
    inside = [json.loads(line)["question"] for line in QWEN.read_text().splitlines()]
    assert summary["matched"] == sum(normalise(q) in math500 for q in inside) > 0
    unmatched = [json.loads(line) for line in (out / "unmatched.jsonl").read_text().splitlines()]
    assert len(unmatched) == summary["unmatched"] == 100 - summary["matched"]
    assert unmatched[0]["at"] == f"{QWEN}:1"
    from distill.report.collect import import_note

    assert import_note("qwen", out) == (f"qwen: imported from qwen-math ({QWEN.name}), {summary['matched']} problems matched to the benchmark; "
                                        f"{summary['unmatched']} not in it were left out (listed in {out / 'unmatched.jsonl'})")
    scores = json.loads((out / "scores.json").read_text())["benchmarks"]["math500"]
    assert scores["n_problems"] == summary["matched"] and scores["k"] == 8
    assert import_samples("qwen-math", QWEN, out, benchmarks=["math500"], model="qwen", bootstrap_resamples=200) == summary  # idempotent


MATH500 = load_benchmark("math500", limit=3)


def test_skythought_json_with_temperatures_and_bare_responses(tmp_path):
    results = {}
    for i, p in enumerate(MATH500):
        right = f"<think>ok</think> The answer is $\\boxed{{{p['answer']}}}$."
        responses = [{"content": right, "correctness": True, "reason": None}, {"content": "\\boxed{-1}", "correctness": i == 0, "reason": None}]
        results[p["prompt"]] = {"problem": p["prompt"], "answer": p["answer"], "responses": {"0.7": responses},
                                "token_usages": {"0.7": [{"completion_tokens": 10, "prompt_tokens": 5}] * 2}}
    f = tmp_path / "results.json"
    f.write_text(json.dumps(results))
    out = tmp_path / "sky"
    assert import_samples("skythought", f, out, benchmarks=["math500"], model="sky", bootstrap_resamples=200)["samples"] == 6
    rows = sorted(load_samples(out), key=lambda r: (r["problem_id"], r["sample_idx"]))
    assert [r["correct"] for r in rows if r["sample_idx"] == 0] == [True] * 3 and all(r["completion_tokens"] == 10 for r in rows)
    a = foreign_agreement(out)["math500"]
    assert a["only_theirs_correct"] == 1 and a["agree"] == pytest.approx(5 / 6)  # their label on the '-1' of problem 1

    results[MATH500[0]["prompt"]]["responses"]["0.6"] = []
    f.write_text(json.dumps(results))
    with pytest.raises(DistillError, match="problem 1: field 'responses': samples at several temperatures"):
        import_samples("skythought", f, tmp_path / "two", benchmarks=["math500"], model="sky")


def lighteval_rows(new: bool):
    wrap = "Solve the following math problem efficiently and clearly.\n\n{}\n\nThink step by step."
    rows = []
    for i, p in enumerate(MATH500):
        text = f"so $\\boxed{{{p['answer']}}}$" if i else "so $\\boxed{0.5}$"
        verdict = {"extractive_match": 1.0 if i else 0.0}
        if new:
            rows.append({"doc": {"query": wrap.format(p["prompt"]), "choices": [], "gold_index": 0},
                         "model_response": {"text": [text], "input": "..."}, "metric": verdict})
        else:
            rows.append({"example": wrap.format(p["prompt"]), "predictions": [text], "gold": [p["answer"]], "metrics": verdict})
    return rows


@pytest.mark.parametrize("new", [True, False], ids=["lighteval-current", "lighteval-older"])
def test_lighteval_details_parquet_matches_templated_queries(tmp_path, new):
    f = tmp_path / "details_math_500.parquet"
    pq.write_table(pa.Table.from_pylist(lighteval_rows(new)), f)
    out = tmp_path / "le"
    assert import_samples("lighteval", f, out, benchmarks=["math500"], model="le", bootstrap_resamples=200)["matched"] == 3
    rows = load_samples(out)
    assert sorted(r["foreign_correct"] for r in rows) == [False, True, True]
    assert sum(r["correct"] for r in rows) == 2  # '0.5' is not the first problem's answer
    assert foreign_agreement(out)["math500"]["agree"] == 1.0


def test_matching_ignores_case_spacing_and_unicode_forms():
    match = matcher([{"id": "a", "prompt": "What is  $2+2$?\nGive a number."}, {"id": "b", "prompt": "Short"}])
    assert match("what is $2+2$? give a number.")["id"] == "a"
    assert match("Answer this:\n\nWHAT IS $2+2$? Give a number.\n(boxed)")["id"] == "a"  # wrapped in a template
    assert match("Short story") is None  # a very short problem is matched only exactly


@pytest.mark.parametrize("content, message", [
    ('{"question": "q", "gt": "1"}\n', "field 'code': missing"),
    ('{"question": "q", "code": ["a", "b"], "score": [true]}\n', "1 verdicts and 2 predictions for 2 samples"),
    ('not json\n', ":1: malformed JSON"),
])
def test_bad_foreign_files_are_one_line_errors_naming_the_row(tmp_path, content, message):
    f = tmp_path / "x.jsonl"
    f.write_text(content)
    with pytest.raises(DistillError, match=message) as e:
        import_samples("qwen-math", f, tmp_path / "o", benchmarks=["math500"], model="m")
    assert "\n" not in str(e.value) and not (tmp_path / "o" / "part-00000.parquet").exists()


def small_eval(out, name="m"):
    """Two toy benchmarks (the shipped one and a second split of the toy world), 4 problems x k=2 each."""
    second = Path(out).parent.parent / "toy_more.yaml"
    second.write_text("name: toy_more\nsource: toy\ntoy: {n: 4, seed: 1, ops: ['+'], digits: 2}\nk: 2\nmax_tokens: 512\n")
    cfg = EvalConfig.model_validate({"benchmarks": ["toy_arith", str(second)], "bootstrap_resamples": 200,
                                     "overrides": {"toy_arith": {"toy": {"n": 4}, "k": 2}}})
    return run(cfg, ModelSpec(name=name, backend="toy", model="toy-teacher"), out)


def test_rescore_keeps_a_backup_of_what_changed_and_honours_benchmark_and_model(tmp_path):
    out = tmp_path / "05_eval" / "m"
    small_eval(out)
    small_eval(tmp_path / "05_eval" / "other", name="other")
    parts = {p.name: p.read_bytes() for p in out.glob("part-*.parquet")}
    scores = (out / "scores.json").read_bytes()
    toy_part = next(p for p in out.glob("part-*.parquet") if pq.read_table(p)["benchmark"][0].as_py() == "toy_arith")
    t = pq.read_table(toy_part)  # damage the saved verdicts of toy_arith only
    i = t.schema.get_field_index("correct")
    pq.write_table(t.set_column(i, t.schema.field(i), pa.array([True] * t.num_rows)), toy_part)
    damaged = toy_part.read_bytes()

    res = cli("--rescore", "-o", tmp_path / "05_eval", "--model", "m", "--benchmark", "toy_more")
    assert res.exit_code == 0, res.output
    assert {json.loads(line)["model"] for line in res.stdout.splitlines()} == {"m"}
    assert toy_part.read_bytes() == damaged  # not asked for: untouched
    assert {p.name: p.read_bytes() for p in out.glob("part-*.parquet") if p != toy_part} == {n: b for n, b in parts.items() if n != toy_part.name}
    (backup,) = (out / "backups").iterdir()  # toy_more's verdicts did not change; scores.json did (the damaged toy_arith part)
    assert {p.name for p in backup.iterdir()} == {"scores.json"} and (backup / "scores.json").read_bytes() == scores

    assert cli("--rescore", "-o", out, "--benchmark", "toy_arith").exit_code == 0
    newest = sorted((out / "backups").iterdir())[-1]
    assert newest != backup and {p.name for p in newest.iterdir()} == {toy_part.name, "scores.json"}  # only what was replaced
    assert (newest / toy_part.name).read_bytes() == damaged
    assert cli("--rescore", "-o", out).exit_code == 0
    assert len(list((out / "backups").iterdir())) == 2  # nothing changed: no third backup
    assert json.loads((out / "scores.json").read_text())["benchmarks"]["toy_arith"]["pass@1"] < 1.0

    res = cli("--rescore", "-o", out, "--model", "other")
    assert isinstance(res.exception, DistillError) and "holds the samples of model 'm', not 'other'" in str(res.exception)
    res = cli("--rescore", "-o", out, "--benchmark", "aime24")
    assert isinstance(res.exception, DistillError) and "no samples of aime24" in str(res.exception)


def test_rescore_names_what_a_hand_made_directory_lacks(tmp_path):
    out = tmp_path / "m"
    small_eval(out)
    cases = tmp_path / "cases"

    def case(name, damage):
        d = cases / name
        shutil.copytree(out, d)
        damage(d)
        with pytest.raises(DistillError) as e:
            rescore(d)
        assert "\n" not in str(e.value)
        return str(e.value)

    assert "no config.json" in case("no-config", lambda d: (d / "config.json").unlink())
    assert "part-00000.parquet has no done/00000 marker" in case("no-done", lambda d: shutil.rmtree(d / "done"))

    def no_shards(d):
        c = json.loads((d / "config.json").read_text())
        del c["config"]["shards"]
        (d / "config.json").write_text(json.dumps(c))

    assert "config.json: no field 'shards'" in case("no-shards", no_shards)
    assert "not a directory" in case("file", lambda d: (shutil.rmtree(d), d.write_text("x")))


def qwen_lines(problems, texts):
    return "".join(json.dumps({"question": p["prompt"], "gt": p["answer"], "code": t}) + "\n" for p, t in zip(problems, texts))


def test_import_honours_grading_and_names_the_formats(tmp_path):
    f = tmp_path / "q.jsonl"
    cut = "<think>\nso far \\boxed{%s} but wait"
    f.write_text(qwen_lines(MATH500, [[cut % p["answer"]] for p in MATH500]))
    strict = import_samples("qwen-math", f, tmp_path / "strict", benchmarks=["math500"], model="m", bootstrap_resamples=200)
    assert strict["samples"] == 3 and not any(r["correct"] for r in load_samples(tmp_path / "strict"))
    res = cli("--import", "qwen-math", f, "-o", tmp_path / "lenient", "--benchmark", "math500", "--model", "m", "--grading", "lenient",
              "--set", "bootstrap_resamples=200")
    assert res.exit_code == 0, res.output
    rows = load_samples(tmp_path / "lenient")
    assert all(r["correct"] and r["grading"] == "lenient" for r in rows)
    assert json.loads((tmp_path / "lenient" / "scores.json").read_text())["benchmarks"]["math500"]["protocol"]["grading"] == "lenient"

    with pytest.raises(DistillError, match=r"--import qwen_math: unknown format \(the formats are lighteval \(a details Parquet\), qwen-math"):
        import_samples("qwen_math", f, tmp_path / "x", benchmarks=["math500"], model="m")
    with pytest.raises(DistillError, match=r"malformed JSON .*read as --import skythought; the formats are lighteval"):
        import_samples("skythought", f, tmp_path / "y", benchmarks=["math500"], model="m")


def test_a_dump_of_several_benchmarks_imports_in_one_call(tmp_path):
    aime = load_benchmark("aime24", limit=2)
    f = tmp_path / "q.jsonl"
    f.write_text(qwen_lines(MATH500 + aime, [[f"\\boxed{{{p['answer']}}}"] * 2 for p in MATH500 + aime]))
    summary = import_samples("qwen-math", f, tmp_path / "o", benchmarks=["math500", "aime24"], model="m", bootstrap_resamples=200)
    assert summary == {"matched": 5, "unmatched": 0, "samples": 10, "k": 2}
    scores = json.loads((tmp_path / "o" / "scores.json").read_text())["benchmarks"]
    assert {b: (s["n_problems"], s["pass@1"]) for b, s in scores.items()} == {"math500": (3, 1.0), "aime24": (2, 1.0)}
    assert rescore(tmp_path / "o")["benchmarks"].keys() == {"math500", "aime24"}


def test_named_thought_markers_make_an_unclosed_thought_unfinished(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text(qwen_lines(MATH500, [[f"[[T]] maybe \\boxed{{{p['answer']}}}", f"[[T]] ok [[/T]] \\boxed{{{p['answer']}}}"] for p in MATH500]))
    import_samples("qwen-math", f, tmp_path / "o", benchmarks=["math500"], model="m", bootstrap_resamples=200, thought_markers=("[[T]]", "[[/T]]"))
    rows = sorted(load_samples(tmp_path / "o"), key=lambda r: r["sample_idx"])
    assert [r["reason"] for r in rows if r["sample_idx"] == 0] == ["unfinished"] * 3
    assert all(r["correct"] for r in rows if r["sample_idx"] == 1)


def test_imported_samples_get_the_budget_curve_when_the_tokenizer_is_given(tmp_path):
    from transformers import AutoTokenizer

    from distill.toy.tokenizer import build_tokenizer

    build_tokenizer(tmp_path / "tok")
    tok = AutoTokenizer.from_pretrained(tmp_path / "tok")
    f = tmp_path / "q.jsonl"
    texts = [[f"<think>\n{'step ' * (40 * i)}\n</think>\n\\boxed{{{p['answer']}}}"] for i, p in enumerate(MATH500, start=1)]
    f.write_text(qwen_lines(MATH500, texts))
    without = import_samples("qwen-math", f, tmp_path / "a", benchmarks=["math500"], model="m", bootstrap_resamples=200)
    assert without["samples"] == 3
    assert "skipped" in json.loads((tmp_path / "a" / "scores.json").read_text())["benchmarks"]["math500"]["budget"]
    import_samples("qwen-math", f, tmp_path / "b", benchmarks=["math500"], model="m", bootstrap_resamples=200, tokenizer=str(tmp_path / "tok"))
    rows = sorted(load_samples(tmp_path / "b"), key=lambda r: r["completion_tokens"])
    assert [r["completion_tokens"] for r in rows] == sorted(len(tok(t[0], add_special_tokens=False)["input_ids"]) for t in texts)
    thoughts = sorted(len(tok(t[0].split("</think>")[0] + "</think>", add_special_tokens=False)["input_ids"]) for t in texts)
    assert [r["think_end_token"] for r in rows] == thoughts and all(r["answer_end_token"] == r["completion_tokens"] for r in rows)
    assert {r["think_end_token"] for r in load_samples(tmp_path / "a")} == {None}  # without the tokenizer: nothing to count with
    curve = json.loads((tmp_path / "b" / "scores.json").read_text())["benchmarks"]["math500"]["budget"]
    assert not curve["exact"] and "another tool" in curve["why"]
    assert curve["points"][-1]["budget"] == rows[-1]["completion_tokens"] and curve["points"][-1]["pass@1"] == 1.0
