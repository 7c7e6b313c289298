"""The math and multiple-choice verifiers, and their agreement with real labelled samples."""

import json
from pathlib import Path

import pytest

from distill.verify.choice import extract_choice, verify_choice
from distill.verify.math import verify_math, verify_math_many

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize(
    "completion, reference, verdict",
    [
        ("<think>\n7+8=15\n</think>\nSo \\boxed{15}", "15", "correct"),
        ("<think>\nhmm\n</think>\nThe answer is $\\boxed{\\frac{1}{2}}$.", "0.5", "correct"),
        ("<think>\nhmm\n</think>\n\\boxed{\\dfrac{\\sqrt{2}}{2}}", "\\frac{1}{\\sqrt{2}}", "correct"),
        ("<think>\nI think \\boxed{3}\n</think>\nFinal: \\boxed{4}", "3", "incorrect"),
        ("Therefore the answer is \\boxed{16}.", "15", "incorrect"),
        ("I do not know.", "15", "incorrect"),
        ("\\boxed{15}", None, "unverifiable"),
    ],
)
def test_verify_math_verdicts(completion, reference, verdict):
    assert verify_math(completion, reference).verdict == verdict


def test_verify_math_reasons_and_extracted():
    wrong = verify_math("\\boxed{16}", "15")
    assert (wrong.reason, wrong.extracted) == ("wrong_answer", "16")
    assert verify_math("no answer here", "15").reason == "no_answer"
    assert verify_math("\\boxed{1}", None).reason == "no_reference"


def test_pathological_input_is_bounded_and_quiet(caplog):
    """A 400k-char loop with nested braces: answered fast, and no log line carries the input."""
    import time

    loop = "\\frac{\\frac{\\frac{1}{2}}{3}}{" * 20000
    start = time.time()
    v = verify_math("<think>\n" + loop + "\n</think>\n" + loop, "1")
    assert time.time() - start < 10
    assert v.verdict in ("incorrect", "unverifiable")
    assert all(len(r.getMessage()) < 1000 for r in caplog.records)
    start = time.time()
    tower = verify_math("\\boxed{9^{9^{9^{9}}}}", "3", timeout_s=1)  # sympy would compute this for ages
    assert time.time() - start < 5 and tower.verdict == "incorrect"


def test_labelled_traces_agree_at_least_99_percent():
    """Qwen2.5-Math's 800 labelled MATH samples: >= 99% agreement; the disagreements are the listed ones."""
    rows = [json.loads(line) for line in (FIXTURES / "qwen25math_math_cot_100_labeled.jsonl").open()]
    pairs, labels, keys = [], [], []
    for r in rows:
        for k, (resp, score) in enumerate(zip(r["response"], r["score"])):
            pairs.append((resp, r["answer"]))
            labels.append(score)
            keys.append((r["idx"], k))
    verdicts = verify_math_many(pairs, workers=2)
    disagree = {key: v for key, v, label in zip(keys, verdicts, labels) if v.correct != label}
    agreement = 1 - len(disagree) / len(pairs)
    assert agreement >= 0.99, f"agreement {agreement:.4f}; disagreements {sorted(disagree)}"
    listed = json.loads((FIXTURES / "math_verify_disagreements.json").read_text())
    assert {(d["idx"], d["sample"]) for d in listed} == set(disagree)
    for d in listed:
        v = disagree[(d["idx"], d["sample"])]
        assert (v.verdict, v.extracted) == (d["verdict"], d["extracted"]), d["explanation"]


@pytest.mark.parametrize(
    "text, letter",
    [
        ("The answer is (B).", "B"),
        ("Answer: C", "C"),
        ("<think>\nmaybe A\n</think>\nso \\boxed{D}", "D"),
        ("I think A is wrong, the answer is B", "B"),
        ("Answer is a number", None),
        ("no idea", None),
    ],
)
def test_extract_choice(text, letter):
    assert extract_choice(text) == letter


def test_verify_choice():
    assert verify_choice("The answer is (B).", "B").verdict == "correct"
    assert verify_choice("The answer is (B).", "(c)").reason == "wrong_answer"
    assert verify_choice("no idea", "A").reason == "no_answer"
    assert verify_choice("B", "42").verdict == "unverifiable"
