"""Benchmark specs and loading; scoring of every shipped benchmark on its own reference answers
(all correct) and on perturbed answers (all wrong)."""

import json
import re

import pytest

from distill.errors import DistillError
from distill.eval.benchmarks import EVALS_DIR, available, load_benchmark, load_spec
from distill.eval.scoring import score

SHIPPED = {"math500": 500, "aime24": 30, "aime25": 30, "amc23": 40, "gsm8k": 1319, "toy_arith": 200}
R1_K = {"aime24": 64, "math500": 4, "gpqa_diamond": 8, "livecodebench": 16}
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def boxed(answer: str) -> str:
    return f"<think>\nLet me work it out.\n</think>\nThe final answer is $\\boxed{{{answer}}}$."


def perturbed(answer: str) -> str:
    """A different value: n -> n+1 for numbers, `expr` -> `expr+1` otherwise."""
    if NUMBER.match(answer):
        return str(int(answer) + 1) if "." not in answer else str(float(answer) + 1)
    return answer + "+1"


def test_every_spec_loads_with_the_r1_protocol():
    assert set(SHIPPED) | {"gpqa_diamond", "livecodebench"} <= set(available())
    for name in available():
        spec = load_spec(name)
        assert spec.name == name and spec.max_tokens == (512 if name.startswith("toy_") else 32768)
        if name in R1_K:
            assert spec.k == R1_K[name]
    assert load_spec("aime25").k == 64
    assert not load_spec("gpqa_diamond").redistributable
    assert not any("gpqa" in p.name.lower() for p in (EVALS_DIR / "data").iterdir())  # never shipped
    assert "ZubinGou/math-evaluation-harness" in (EVALS_DIR / "data" / "SOURCES.md").read_text()


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_benchmark_references_score_correct_and_perturbed_wrong(name):
    problems = load_benchmark(name)
    assert len(problems) == SHIPPED[name]
    assert len({p["id"] for p in problems}) == len(problems)
    for p in problems:
        assert p["answer"] and p["prompt"].strip() and p["domain"] == "math"
        assert "Please reason step by step" not in p["prompt"]  # the template adds it once
        right, wrong = score("math", [boxed(p["answer"]), boxed(perturbed(p["answer"]))], p["answer"])
        assert right.correct, (name, p["answer"], right)
        assert not wrong.correct and wrong.reason in ("wrong_answer", "no_answer"), (name, p["answer"], wrong)


def test_answer_normalisation_of_shipped_files():
    gsm = load_benchmark("gsm8k")
    assert gsm[0]["answer"] == "18" and all(re.fullmatch(r"-?\d+(\.\d+)?", p["answer"]) for p in gsm)  # '#### 1,600' -> '1600'
    assert load_benchmark("amc23")[0]["answer"] == "27"  # JSON float 27.0
    assert json.loads(load_benchmark("math500")[0]["metadata"])["upstream_id"] == "test/precalculus/807.json"


def test_toy_benchmark_is_the_held_out_split():
    from distill.toy.tasks import make_problems

    problems = load_benchmark("toy_arith")
    assert problems == make_problems(200, seed=0, split="test", digits=3)
    train = {p["id"] for p in make_problems(3000, seed=0, split="train", digits=3)}
    assert train.isdisjoint(p["id"] for p in problems)


def test_user_benchmark_from_spec_and_local_jsonl(tmp_path):
    (tmp_path / "mine.jsonl").write_text(
        json.dumps({"q": "What is 2+2?", "a": "4"}) + "\n" + json.dumps({"q": "Half of 1?", "a": "\\frac{1}{2}"}) + "\n"
    )
    (tmp_path / "mine.yaml").write_text("name: mine\nsource: mine.jsonl\nfields: {prompt: q, answer: a}\nk: 2\nmax_tokens: 64\n")
    problems = load_benchmark(tmp_path / "mine.yaml")
    assert [p["answer"] for p in problems] == ["4", "\\frac{1}{2}"]
    assert [v.correct for v in score("math", [boxed("0.5"), boxed("2")], "\\frac{1}{2}")] == [True, False]
    assert load_spec(tmp_path / "mine.yaml").k == 2


def test_multiple_choice_from_a_local_csv(tmp_path):
    """GPQA's layout (a user's local copy): options shuffled per problem, the letter scored."""
    import csv

    path = tmp_path / "gpqa.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, ["Record ID", "Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2",
                               "Incorrect Answer 3", "High-level domain", "Subdomain"])
        w.writeheader()
        for i in range(20):
            w.writerow({"Record ID": f"r{i}", "Question": f"Which is right #{i}?", "Correct Answer": f"right {i}",
                        "Incorrect Answer 1": "wrong a", "Incorrect Answer 2": "wrong b", "Incorrect Answer 3": "wrong c",
                        "High-level domain": "Physics", "Subdomain": "x"})
    problems = load_benchmark("gpqa_diamond", source=str(path))
    assert load_benchmark("gpqa_diamond", source=str(path)) == problems  # shuffle is deterministic
    letters = {p["answer"] for p in problems}
    assert len(letters) > 1  # not always "A"
    for p in problems:
        line = next(l for l in p["prompt"].splitlines() if l.startswith(p["answer"] + ")"))
        assert "right" in line and "Answer: $LETTER" in p["prompt"] and p["domain"] == "science"
        wrong = "ABCD".replace(p["answer"], "")[0]
        assert [(v.extracted, v.correct) for v in score("choice", [f"...\nAnswer: {p['answer']}", f"...\nAnswer: {wrong}"], p["answer"])] == [
            (p["answer"], True), (wrong, False)]


def test_bad_benchmark_input_names_file_row_and_field(tmp_path):
    (tmp_path / "b.jsonl").write_text(json.dumps({"problem": "ok", "answer": "1"}) + "\n" + json.dumps({"problem": "x"}) + "\n")
    (tmp_path / "b.yaml").write_text("name: b\nsource: b.jsonl\n")
    with pytest.raises(DistillError, match=r"b\.jsonl:2: field 'answer': missing"):
        load_benchmark(tmp_path / "b.yaml")
    (tmp_path / "c.yaml").write_text("name: c\nsource: b.jsonl\nscorer: magic\n")
    with pytest.raises(DistillError, match=r"c\.yaml: field 'scorer'"):
        load_spec(tmp_path / "c.yaml")
    with pytest.raises(DistillError, match="no such benchmark spec"):
        load_spec("nope")
    (tmp_path / "d.jsonl").write_text(json.dumps({"problem": "same", "answer": "1"}) + "\n" + json.dumps({"problem": "same", "answer": "1"}) + "\n")
    (tmp_path / "d.yaml").write_text("name: d\nsource: d.jsonl\n")
    with pytest.raises(DistillError, match=r"d\.jsonl:2: duplicate of row 1"):
        load_benchmark(tmp_path / "d.yaml")


def test_hub_benchmark_offline_asks_for_a_local_file(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DistillError, match="overrides.livecodebench.source"):
        load_benchmark("livecodebench")


def test_user_code_benchmark_runs_programs_against_its_tests(tmp_path):
    tests = json.dumps([{"input": "2 3\n", "output": "5\n"}, {"input": "10 -4\n", "output": "6\n"}])
    (tmp_path / "sums.jsonl").write_text(json.dumps({"question": "Read a and b, print a+b.", "tests": tests}) + "\n")
    (tmp_path / "sums.yaml").write_text(
        "name: sums\nsource: sums.jsonl\nfields: {prompt: question, answer: null, tests: tests}\ndomain: code\nscorer: code\ntemplate: plain\n"
    )
    (p,) = load_benchmark(tmp_path / "sums.yaml")
    right = "<think>\nadd\n</think>\n```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    wrong = right.replace("a + b", "a - b")
    verdicts = score("code", [right, wrong, "no code"], p["answer"], p["tests"])
    assert [v.correct for v in verdicts] == [True, False, False]
    assert "print(a + b)" in verdicts[0].extracted
