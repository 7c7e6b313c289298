"""Format/readability checks and the rejection-sampling selection policies, as pure functions."""

import pytest

from distill.filter import checks
from distill.filter.config import SelectConfig
from distill.filter.select import Sample, select

PROSE = (
    "Let me think about the triangle. The sides are 3, 4 and 5, so by the converse of Pythagoras the angle "
    "opposite the longest side is right. Then the area is half of 3 times 4, which is 6. Wait, I should check "
    "whether the problem asks for the perimeter instead; it says area, so 6 stands. "
)


@pytest.mark.parametrize(
    "completion, reason",
    [
        ("<think>\nok\n</think>\n\\boxed{1}", None),
        ("ok\n</think>\n\\boxed{1}", "no_think_open"),
        ("<think>\nok and never closed \\boxed{1}", "no_think_close"),
        ("<think>\na\n</think>\n<think>\nb\n</think>\n\\boxed{1}", "duplicate_think"),
        ("</think><think>\nswapped", "no_think_open"),
    ],
)
def test_think_format(completion, reason):
    assert checks.think_format(completion) == reason


def test_truncated():
    assert checks.truncated("length") == "truncated"
    assert checks.truncated("stop") is None


def test_repetition_catches_a_loop_not_prose():
    loop = PROSE + "Let me check 47 + 38 again.\n" * 200
    assert checks.repetition(loop) == "repetition"
    varied = " ".join(f"Step {i}: we add {i * 7 % 13} to {i * i} and get {i * i + i * 7 % 13}; {PROSE[i % 50:i % 50 + 40]}" for i in range(60))
    assert checks.repetition(varied) is None


def test_language_mixing():
    english = checks.main_script("What is the area of a 3-4-5 triangle?")
    assert english == "latin"
    assert checks.language_mixing(PROSE, english) is None
    mixed = PROSE[:200] + "我们需要计算三角形的面积，所以答案是六。" * 5
    assert checks.language_mixing(mixed, english) == "language_mixing"
    chinese = checks.main_script("三角形的面积是多少？")
    assert checks.language_mixing("三角形的面积是六。答案是 6。", chinese) is None


def test_long_paragraph_and_code_in_reasoning():
    assert checks.long_paragraph("short\n\n" + "x" * 6000) == "long_paragraph"
    assert checks.long_paragraph(("y" * 3000 + "\n\n") * 4) is None
    assert checks.code_in_reasoning("try:\n```python\nprint(1)\n```", "math") == "code_in_reasoning"
    assert checks.code_in_reasoning("try:\n```python\nprint(1)\n```", "code") is None


def _samples(correct: list[bool], tokens: list[int] | None = None) -> list[Sample]:
    tokens = tokens or [100] * len(correct)
    return [
        Sample(i, i, f"text {i}", tokens[i], ok, None if ok else "wrong_answer") for i, ok in enumerate(correct)
    ]


def _kept(samples):
    return [s.sample_idx for s in samples if s.reason is None]


def test_policies():
    s = _samples([False, True, True, True], [10, 50, 20, 30])
    select(s, SelectConfig(policy="all"))
    assert _kept(s) == [1, 2, 3]
    s = _samples([False, True, True, True], [10, 50, 20, 30])
    select(s, SelectConfig(policy="first"))
    assert _kept(s) == [1] and [x.reason for x in s[2:]] == ["not_selected"] * 2
    s = _samples([False, True, True, True], [10, 50, 20, 30])
    select(s, SelectConfig(policy="shortest"))
    assert _kept(s) == [2]
    s = _samples([True] * 5)
    select(s, SelectConfig(policy="all", max_per_prompt=2))
    assert _kept(s) == [0, 1]


def test_dedup_and_pass_rate_band():
    s = _samples([True, True, True])
    s[2].completion = s[0].completion
    select(s, SelectConfig())
    assert [x.reason for x in s] == [None, None, "duplicate"]
    easy = _samples([True] * 8)
    select(easy, SelectConfig(pass_rate_max=0.9))
    assert {x.reason for x in easy} == {"too_easy"}
    hard = _samples([True] + [False] * 7)
    select(hard, SelectConfig(pass_rate_min=0.25))
    assert hard[0].reason == "too_hard" and hard[1].reason == "wrong_answer"
    middle = _samples([True, False, True, False])
    select(middle, SelectConfig(pass_rate_min=0.25, pass_rate_max=0.75))
    assert _kept(middle) == [0, 2]


def test_readability_checks_on_real_responses():
    """On 800 real MATH responses, the repetition/language/paragraph checks flag only the three that
    degenerate into multilingual junk after their boxed answer (labelled correct by answer alone)."""
    import json
    from pathlib import Path

    flagged = set()
    for line in (Path(__file__).parent / "fixtures" / "qwen25math_math_cot_100_labeled.jsonl").open():
        r = json.loads(line)
        script = checks.main_script(r["question"])
        for k, text in enumerate(r["response"]):
            if checks.repetition(text) or checks.language_mixing(text, script) or checks.long_paragraph(text):
                flagged.add((r["idx"], k))
    assert flagged == {(25, 1), (45, 5), (48, 3)}
