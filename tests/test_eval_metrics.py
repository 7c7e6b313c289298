"""pass@k, cons@k, bootstrap CIs and termination metrics against values computed by hand."""

import math
import random

import numpy as np
import pytest

from distill.eval.metrics import ends_in_loop, k_values, majority_vote, paired_difference, pass_at_k, wilson_ci
from distill.eval.scores import summarize


@pytest.mark.parametrize(
    "n,c,k,expected",
    [
        (4, 1, 1, 1 / 4),  # pass@1 is the share correct
        (4, 1, 2, 1 - 3 / 6),  # 1 - C(3,2)/C(4,2)
        (4, 2, 2, 1 - 1 / 6),  # 1 - C(2,2)/C(4,2)
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (5, 0, 3, 0.0),
        (5, 3, 3, 1.0),  # only 2 wrong samples: any 3 include a correct one
        (64, 1, 64, 1.0),
    ],
)
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_matches_the_binomial_formula_and_rejects_bad_input():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 64)
        c, k = rng.randint(0, n), rng.randint(1, n)
        assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-9)
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 8)


def test_k_values_are_powers_of_two_then_k():
    assert k_values(1) == [1]
    assert k_values(4) == [1, 2, 4]
    assert k_values(64) == [1, 2, 4, 8, 16, 32, 64]
    assert k_values(6) == [1, 2, 4, 6]


def test_majority_vote():
    assert majority_vote(["2", "3", "3", None], [False, True, True, False]) is True
    assert majority_vote(["2", "3", "3", None], [True, False, False, False]) is False
    assert majority_vote(["2", "3"], [False, True]) is False  # a tie goes to the first answer seen
    assert majority_vote(["3", "2"], [True, False]) is True
    assert majority_vote([None, None], [False, False]) is False
    assert majority_vote(["1 / 2", "1/2", "3"], [True, True, False]) is True  # whitespace does not split votes
    assert majority_vote([None, None, "7"], [False, False, True]) is True  # unanswered samples do not vote


def test_wilson_is_honest_at_zero_and_one_hundred_percent():
    lo, hi = wilson_ci(0.0, 50)
    assert lo == 0.0 and hi == pytest.approx(0.0714, abs=1e-4)  # 0 of 50: up to 7.1%, not [0, 0]
    lo, hi = wilson_ci(1.0, 50)
    assert hi == 1.0 and lo == pytest.approx(1 - 0.0714, abs=1e-4)
    lo, hi = wilson_ci(0.5, 400)  # large n: the normal interval, +-1.96 * 0.025
    assert (lo, hi) == (pytest.approx(0.4512, abs=1e-3), pytest.approx(0.5488, abs=1e-3))


def test_paired_difference_at_zero_is_an_interval_not_a_point():
    r = paired_difference([0.0] * 50, [0.0] * 50)
    assert r["diff"] == 0.0 and r["ci_low"] == pytest.approx(-0.0714, abs=1e-4) and r["ci_high"] == pytest.approx(0.0714, abs=1e-4)
    assert r["p_not_better"] == 1.0
    # one success in 50 against none: the lower limit is below zero, never exactly +0.0
    r = paired_difference([1.0] + [0.0] * 49, [0.0] * 50)
    assert r["ci_low"] < 0 < r["diff"] < r["ci_high"]


def test_paired_difference_enumerated_p_value():
    # Three problems with differences [0, 0, 1]: P(resampled mean <= 0) = P(no draw of the third) = 8/27.
    r = paired_difference([0, 0, 1], [0, 0, 0], n_resamples=20_000, seed=2)
    assert r["p_not_better"] == pytest.approx(8 / 27, abs=0.015)


def test_pairing_narrows_the_interval_when_problems_differ_in_difficulty():
    rng = np.random.default_rng(4)
    difficulty = rng.uniform(0, 1, size=200)
    a = np.clip(difficulty + 0.05 + rng.normal(0, 0.05, 200), 0, 1)
    b = np.clip(difficulty + rng.normal(0, 0.05, 200), 0, 1)
    paired = paired_difference(a, b, seed=5)
    unpaired = paired_difference(a, rng.permutation(b), seed=5)  # same rates, pairing destroyed
    assert paired["diff"] == pytest.approx(unpaired["diff"])
    assert paired["ci_high"] - paired["ci_low"] < (unpaired["ci_high"] - unpaired["ci_low"]) / 3
    assert paired["ci_low"] > 0  # a real 0.05 gain is detected
    with pytest.raises(ValueError):
        paired_difference([1, 0], [1])


def test_loop_detection():
    assert ends_in_loop("<think>\nWe need 47 + 38.\n" + "Let me check the tens again.\n" * 40)
    assert ends_in_loop("x" + "ab" * 150)
    assert not ends_in_loop("<think>\nOnes: 7 + 8 = 15.\n</think>\n47 + 38 = \\boxed{85}" + "}" * 5)
    assert not ends_in_loop("Let me check.\n" * 3)  # too short to call a loop
    text = "".join(f"Step {i}: add the column {i % 7}.\n" for i in range(200))
    assert not ends_in_loop(text)  # long but each line differs


def _rows(pid, correct, extracted, finish=None, tokens=None):
    return [
        {"problem_id": pid, "sample_idx": j, "correct": c, "extracted": e, "completion": "<think>\nok\n</think>\n\\boxed{1}",
         "finish_reason": (finish or ["stop"] * len(correct))[j], "completion_tokens": (tokens or [10] * len(correct))[j]}
        for j, (c, e) in enumerate(zip(correct, extracted))
    ]


def test_summarize_hand_computed():
    rows = _rows("p1", [True, False, False, False], ["5", "6", "6", "7"], tokens=[10, 20, 30, 40]) + _rows(
        "p2", [True, True, False, True], ["3", "3", "4", None], finish=["stop", "stop", "stop", "length"], tokens=[10, 10, 10, 100]
    )
    random.Random(0).shuffle(rows)  # order of rows must not matter
    s = summarize(rows, 4)
    assert s["n_problems"] == 2 and s["n_samples"] == 8
    assert s["pass@1"] == pytest.approx((0.25 + 0.75) / 2)
    assert s["cons@k"] == pytest.approx(0.5)  # p1 votes "6" (wrong), p2 votes "3" (right)
    assert s["pass@k"]["2"] == pytest.approx((0.5 + 1.0) / 2)
    assert s["pass@k"]["4"] == 1.0
    t = s["termination"]
    assert t["unfinished"] == pytest.approx(1 / 8) and t["no_answer"] == pytest.approx(1 / 8)
    assert t["mean_tokens"] == pytest.approx(230 / 8)
    assert t["mean_tokens_to_answer"] == pytest.approx(130 / 7)
    assert s["pass@1_ci95"] == pytest.approx([0.0945, 0.9055], abs=1e-3)  # Wilson over the 2 problems


def test_summarize_refuses_problems_without_k_samples():
    from distill.errors import DistillError

    with pytest.raises(DistillError, match="k=4"):
        summarize(_rows("p1", [True, False, False], ["1", "2", "2"]), 4)


def test_headline_sentence_at_zero_quotes_intervals_not_points():
    from distill.report.build import headline_sentence

    zero = paired_difference([0.0] * 50, [0.0] * 50)
    p = {"distilled": "d", "baseline": "b", "benchmark": "toy_arith", "n_problems": 50, "k": 1,
         "distilled_pass1": 0.0, "distilled_ci": list(wilson_ci(0.0, 50)), "baseline_pass1": 0.0, "baseline_ci": list(wilson_ci(0.0, 50)),
         "diff": zero["diff"], "diff_ci": [zero["ci_low"], zero["ci_high"]]}
    sentence = headline_sentence(p)
    assert "0.0% pass@1 (95% CI 0.0% to 7.1%)" in sentence
    assert "0.0 points (95% CI -7.1 to +7.1;" in sentence
    assert "(0.0-0.0)" not in sentence and "+0.0" not in sentence
