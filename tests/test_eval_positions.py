"""Each eval sample's token positions (distill.eval.positions): where its thought closes and where the
answer strict grading reads ends, counted in the tokens `completion_tokens` counts."""

import numpy as np

from distill.eval.config import EvalConfig, ModelSpec
from distill.eval.positions import answer_end, token_positions
from distill.eval.stage import load_samples, run
from distill.toy.teacher import count_tokens


def test_positions_of_a_thought_and_its_boxed_answer():
    text = "<think>\nadd 2 and 40\n</think>\n\nSo the answer is \\boxed{\\frac{84}{2}}. I hope this helps."
    got = token_positions(text, count_tokens(text), "stop", count_tokens)
    assert got == {"think_end_token": count_tokens(text[: text.index("</think>") + 8]),
                   "answer_end_token": count_tokens(text[: text.index("}}.") + 2])}
    # a forced prefix the engine did not count (vLLM's `<think>\n`): positions shift with completion_tokens
    assert token_positions(text, count_tokens(text) - 3, "stop", count_tokens) == {k: v - 3 for k, v in got.items()}
    assert answer_end("```python\nprint(1)\n```\nDone.", "stop") == len("```python\nprint(1)\n```")  # code: the last block
    assert answer_end("The answer is 7.\n\n", "stop") == len("The answer is 7.")  # a statement: the response's end


def test_no_close_no_answer_or_no_counter_give_null():
    unclosed = "<think>\nmaybe \\boxed{3}"
    assert token_positions(unclosed, count_tokens(unclosed), "stop", count_tokens) == {"think_end_token": None, "answer_end_token": None}
    cut = "<think>\nok\n</think>\n\\boxed{3"
    assert token_positions(cut, count_tokens(cut), "length", count_tokens) == {"think_end_token": count_tokens("<think>\nok\n</think>"), "answer_end_token": None}
    assert token_positions(cut, None, "stop", count_tokens) == token_positions(cut, 9, "stop", None) == {"think_end_token": None, "answer_end_token": None}


def test_toy_eval_stores_the_positions_of_every_sample(tmp_path):
    cfg = EvalConfig.model_validate({"benchmarks": ["toy_arith"], "bootstrap_resamples": 200, "max_tokens": 96,
                                     "overrides": {"toy_arith": {"toy": {"n": 12}, "k": 4}}})
    scores = run(cfg, ModelSpec(name="m", backend="toy", model="toy-teacher", toy={"missing_think_close": 0.2}), tmp_path / "m")
    rows = load_samples(tmp_path / "m")
    for r in rows:
        text, close = r["completion"], r["completion"].find("</think>")
        assert r["think_end_token"] == (None if close < 0 else count_tokens(text[: close + len("</think>")])), r
        if r["finish_reason"] == "length" or close < 0:
            assert r["answer_end_token"] is None
        else:
            assert r["think_end_token"] < r["answer_end_token"] <= r["completion_tokens"]
    assert {r["think_end_token"] is None for r in rows} == {True, False}  # both kinds were sampled
    assert any(r["finish_reason"] == "length" for r in rows) and any(r["answer_end_token"] for r in rows)
    closed = sorted(r["think_end_token"] for r in rows if r["think_end_token"] is not None)
    termination = scores["benchmarks"]["toy_arith"]["termination"]
    assert termination["median_think_tokens"] == float(np.median(closed))  # how long it thinks
    assert termination["closed_thought"] == len(closed) / len(rows) < 1  # how often it closes its thought
