"""`distill eval --audit RUN_DIR --benchmark X`: a finished run's curated problems checked against a
benchmark; a planted copy of a MATH-500 problem is found with its item and the shared n-gram, and the
prompts stage records the n-gram of each decontamination removal."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import typer
from typer.testing import CliRunner

from distill.eval.benchmarks import load_benchmark
from distill.pipeline import CURATED
from distill.prompts.decontam import Decontaminator
from distill.prompts.dedup import words
from distill.stage import StageDir

MATH500 = load_benchmark("math500", limit=3)


def cli(*args):
    from distill.eval.cli import eval_cmd

    app = typer.Typer()
    app.command()(eval_cmd)
    return CliRunner().invoke(app, [str(a) for a in args])


def curated_run(tmp_path, rows):
    stage = StageDir(tmp_path / "run" / CURATED)
    stage.path.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), stage.part(0))
    stage.finish(0, {"rows_in": len(rows), "rows_out": len(rows)})
    return tmp_path / "run"


def test_the_audit_finds_a_planted_benchmark_problem_among_curated_ones(tmp_path):
    planted = MATH500[1]["prompt"]
    rows = [
        {"id": "a", "prompt": "What is 12 + 30? Show your steps.", "reject_reason": None},
        {"id": "b", "prompt": "Please solve: " + planted.upper() + " Thanks!", "reject_reason": None},  # the copy, recased and wrapped
        {"id": "b", "prompt": "Please solve: " + planted.upper() + " Thanks!", "reject_reason": None},  # a second sample of it
        {"id": "c", "prompt": MATH500[2]["prompt"], "reject_reason": "wrong_answer"},  # rejected: not training data
    ]
    run_dir = curated_run(tmp_path, rows)
    res = cli("--audit", run_dir, "--benchmark", "math500")
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    (match,) = lines[:-1]
    assert match["id"] == "b" and match["benchmark_item"] == f"math500/{MATH500[1]['id']}"
    assert len(match["ngram"].split()) == 8 and match["ngram"] in " ".join(words(planted))
    assert lines[-1] == {"audited": str(run_dir), "benchmarks": ["math500"], "problems": 2, "ngram": 8, "overlapping": 1}
    assert "needs --benchmark" in str(cli("--audit", run_dir).exception)


def test_a_removal_names_the_shared_ngram():
    index = Decontaminator([("bench/1", "Find the number of ordered pairs of positive integers whose sum is ten.")], n=8)
    pid, ngram = index.evidence("Warm-up. find the NUMBER of ordered pairs of positive integers, whose sum is 12")
    assert pid == "bench/1" and ngram == "find the number of ordered pairs of positive"  # the first shared 8 words
    assert index.match("unrelated text about eight words that share nothing here") is None
    short = Decontaminator([("bench/2", "Compute 2+2.")], n=8)
    assert short.evidence("compute 2 + 2") == ("bench/2", "compute 2 2")


def test_the_report_links_each_removal_to_its_benchmark_item_and_ngram(tmp_path):
    from distill.report.build import run as build_report

    run_dir = curated_run(tmp_path, [{"id": "a", "sample_idx": 0, "prompt": "What is 12 + 30?", "reject_reason": None}])
    removed = [{"id": "x1", "source": "web", "reason": "contaminated", "match": "math500/test/algebra/1", "ngram": "how many vertical asymptotes does the graph of", "prompt": "How many vertical asymptotes does the graph of y=2/(x^2+x-6) have?"},
               {"id": "x2", "source": "web", "reason": "duplicate", "match": "x0", "prompt": "dup"}]
    (run_dir / "01_prompts").mkdir()
    (run_dir / "01_prompts" / "removed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in removed))
    build_report(run_dir, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Decontamination: 1 training problems removed for overlapping a benchmark" in md
    assert "| x1 | web | math500/test/algebra/1 | how many vertical asymptotes does the graph of | How many vertical" in md
    assert "| x2 |" not in md
