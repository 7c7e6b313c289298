"""Per-subset pass@1 with CIs (distill.eval.breakdown) on the shipped MATH-500 file: level and subject
from its metadata, a date read as its month and an AIME page URL as its year."""

import json

import pytest

from distill.eval.benchmarks import load_benchmark
from distill.eval.breakdown import breakdown, subset_value, subsets
from distill.eval.scores import per_problem

MATH500 = load_benchmark("math500")


def test_math500_splits_by_level_and_subject():
    groups = subsets(MATH500)
    assert set(groups) == {"level", "subject"}
    assert sorted(set(groups["level"].values())) == ["1", "2", "3", "4", "5"]
    assert len(set(groups["subject"].values())) == 7 and "Precalculus" in groups["subject"].values()


def test_breakdown_of_samples_on_math500_matches_each_subset_by_hand():
    problems = MATH500[:120]
    # a made-up model that solves every level-1/2 problem, half the samples of level 3, nothing above
    level = {p["id"]: int(json.loads(p["metadata"])["level"]) for p in problems}
    rows = [{"problem_id": p["id"], "sample_idx": j, "extracted": "x", "correct": level[p["id"]] <= 2 or (level[p["id"]] == 3 and j < 2)}
            for p in problems for j in range(4)]
    out = breakdown(rows, problems)
    for lv, want in [("1", 1.0), ("2", 1.0), ("3", 0.5), ("4", 0.0), ("5", 0.0)]:
        g = out["level"][lv]
        assert g["pass@1"] == want and g["n_problems"] == sum(v == int(lv) for v in level.values())
        assert g["pass@1_ci95"][0] <= want <= g["pass@1_ci95"][1]
    assert list(out["level"]) == ["1", "2", "3", "4", "5"]
    by_subject = out["subject"]
    total = sum(g["n_problems"] for g in by_subject.values())
    assert total == 120
    overall = sum(p["pass@1"] for p in per_problem(rows).values()) / 120
    assert sum(g["pass@1"] * g["n_problems"] for g in by_subject.values()) / total == pytest.approx(overall)


def test_dates_are_months_and_urls_are_years():
    assert subset_value("2024-08-03T00:00:00") == "2024-08"
    assert subset_value("https://artofproblemsolving.com/wiki/index.php/2024_AIME_I_Problems/Problem_2") == "2024"
    assert subset_value("https://example.com/no-year") is None and subset_value("hard") == "hard"


def test_scores_and_the_report_show_the_subsets_of_an_imported_math500_run(tmp_path):
    from distill.eval.importers import import_samples
    from distill.report.build import run as build_report

    problems = MATH500[:40]
    f = tmp_path / "q.jsonl"
    f.write_text("".join(json.dumps({"question": p["prompt"], "code": [f"\\boxed{{{p['answer'] if i % 3 else 'nope'}}}"] * 2}) + "\n"
                         for i, p in enumerate(problems)))
    out = tmp_path / "run" / "05_eval" / "m"
    import_samples("qwen-math", f, out, benchmarks=["math500"], model="m", bootstrap_resamples=200)
    scores = json.loads((out / "scores.json").read_text())["benchmarks"]["math500"]
    assert set(scores["subsets"]) == {"level", "subject"}
    assert sum(g["n_problems"] for g in scores["subsets"]["level"].values()) == 40
    build_report(tmp_path / "run", tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Per-subset pass@1" in md
    lv = scores["subsets"]["level"]["1"]
    assert f"| m | math500 | level | 1 | {lv['n_problems']} | {100 * lv['pass@1']:.1f} |" in md
