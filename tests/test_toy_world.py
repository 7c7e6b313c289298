import hashlib
import json
import random
import re
from collections import Counter

import pytest

from distill.errors import DistillError
from distill.think import split_think
from distill.toy import tasks
from distill.toy.config import ToyTasks
from distill.toy.tasks import arith_space, make_code_problems, make_problems, parse_code_prompt, parse_prompt, solve, split_of
from distill.toy.teacher import ToyTeacherConfig, count_tokens, write_trace

NO_MISTAKES = dict(wrong_answer=0, self_correction=0, missing_think_close=0, repetition=0, language_switch=0, truncation=0)


def boxed(text):
    m = re.search(r"\\boxed\{(-?\d+)\}", text)
    return int(m.group(1)) if m else None


@pytest.mark.parametrize("ops", [("+",), ("-",), ("*",), ("+", "-", "*")])
def test_problems_have_exact_answers_and_held_out_split_is_disjoint(ops):
    train = make_problems(400, seed=0, ops=ops, digits=3)
    test = make_problems(100, seed=0, split="test", ops=ops, digits=3)
    assert {p["id"] for p in train}.isdisjoint({p["id"] for p in test})
    assert len({p["id"] for p in train}) == 400
    for p in train + test:
        assert int(p["answer"]) == solve(*parse_prompt(p["prompt"]))
    assert make_problems(50, seed=1, ops=ops) == make_problems(50, seed=1, ops=ops)
    assert make_problems(50, seed=1, ops=ops) != make_problems(50, seed=2, ops=ops)


def test_held_out_split_is_the_hashed_one_and_never_changes():
    """Every recorded toy eval is scored on these problems: caching must not change which are held out."""
    ops = ("+", "-", "*")
    for split in ("train", "test"):
        reference = [p for p in arith_space(ops, 2) if split_of(*p) == split]
        picked = [(m["a"], m["op"], m["b"]) for m in (json.loads(p["metadata"]) for p in make_problems(300, seed=4, split=split, ops=ops))]
        assert picked == random.Random(f"4-{split}").sample(reference, 300)
    toy_arith = [p["id"] for p in make_problems(200, seed=0, split="test", digits=3)]  # evals/toy_arith.yaml
    assert hashlib.sha256(repr(toy_arith).encode()).hexdigest()[:16] == "0bf4787c0e6b53ea"  # pinned before the cache


def test_held_out_split_is_hashed_once_per_process(monkeypatch):
    hashed = Counter()
    real = tasks.split_of
    monkeypatch.setattr(tasks, "split_of", lambda *p: hashed.update([p]) or real(*p))
    tasks._split_space.cache_clear()
    first = make_problems(100, seed=0, split="test", ops=("-",), digits=2)
    assert sum(hashed.values()) == len(arith_space(("-",), 2))
    assert make_problems(100, seed=1, split="test", ops=("-",), digits=2) != first  # another eval, same split
    assert make_problems(100, seed=0, split="test", ops=("-",), digits=2) == first
    assert sum(hashed.values()) == len(arith_space(("-",), 2))
    tasks._split_space.cache_clear()


def test_asking_for_more_problems_than_exist_is_an_error():
    with pytest.raises(DistillError, match="only .* exist"):
        make_problems(10_000, split="test", digits=2)


def test_four_digit_problems_are_drawn_from_their_split_without_listing_the_space(monkeypatch):
    """81M 4-digit additions are too many to list: they are drawn, distinct, of the asked split, by seed."""
    monkeypatch.setattr(tasks, "arith_space", lambda *a: pytest.fail("a 4-digit space was listed"))
    ops = ("+", "-", "*")
    train, test = make_problems(3000, seed=0, ops=ops, digits=4), make_problems(300, seed=0, split="test", ops=ops, digits=4)
    assert len({p["id"] for p in train}) == 3000 and {p["id"] for p in train}.isdisjoint({p["id"] for p in test})
    for split, rows in (("train", train), ("test", test)):
        for p in rows:
            a, op, b = parse_prompt(p["prompt"])
            assert split_of(a, op, b) == split and 1000 <= a <= 9999 and int(p["answer"]) == solve(a, op, b)
            assert (2 <= b <= 9) if op == "*" else (1000 <= b <= (a if op == "-" else 9999))
    assert Counter(parse_prompt(p["prompt"])[1] for p in train).keys() == set(ops)
    assert make_problems(50, seed=1, digits=4) == make_problems(50, seed=1, digits=4) != make_problems(50, seed=2, digits=4)
    programs = make_code_problems(100, seed=0, split="test", digits=4)
    assert all(1000 <= v <= 9999 and split_of(x, "+", y) == "test" for x, y in map(parse_code_prompt, (p["prompt"] for p in programs)) for v in (x, y))
    with pytest.raises(DistillError, match="draw at most half"):
        make_problems(40_000, ops=("*",), digits=4)  # 72,000 problems in all


def test_a_toy_source_s_digits_default_by_task():
    """Arithmetic defaults to 2 digits and programs to 3, as every run before `digits` applied to programs."""
    assert make_problems(20, seed=0, split="test", digits=2) == ToyTasks(n=20).make("test")
    assert make_code_problems(20, seed=0) == ToyTasks(task="code", n=20).make("train")
    assert make_code_problems(20, seed=0, digits=4) == ToyTasks(task="code", n=20, digits=4).make("train")


@pytest.mark.parametrize("ops", [("+",), ("-",), ("*",)])
def test_clean_traces_are_correct_and_well_formed(ops):
    for p in make_problems(200, seed=3, ops=ops, digits=3):
        text, finish = write_trace(p["prompt"], random.Random(p["id"]), ToyTeacherConfig(**NO_MISTAKES), 1024)
        reasoning, response = split_think(text)
        assert finish == "stop" and text.startswith("<think>\n")
        assert reasoning and f"So {p['prompt'][8:-1]} = {p['answer']}." in reasoning
        assert boxed(response) == int(p["answer"])


def program_constant(text):
    return int(re.search(r"```python\nc = (\d+)\nn = int\(input\(\)\)\nprint\(n \+ c\)\n```", text).group(1))


def test_a_code_problem_needs_its_constant_computed_and_holds_out_its_addition():
    """The program's constant is the sum the prompt asks for, never a number in the prompt, so an answer-only
    student cannot copy it; held-out programs use held-out additions only; the reasoning is the addition's."""
    for split in ("train", "test"):
        problems = make_code_problems(200, seed=0, split=split)
        assert len({p["id"] for p in problems}) == 200 and problems == make_code_problems(200, seed=0, split=split)
        for p in problems:
            x, y = parse_code_prompt(p["prompt"])
            assert split_of(x, "+", y) == split
            assert json.loads(p["tests"]) == [{"input": "41", "output": str(41 + x + y)}]
            cfg = ToyTeacherConfig(**NO_MISTAKES)
            for thinking in (True, False):
                text, finish = write_trace(p["prompt"], random.Random(p["id"]), cfg, 1024, thinking)
                assert finish == "stop" and program_constant(text) == x + y
                assert str(x + y) not in re.findall(r"\d+", p["prompt"])
            addition, _ = write_trace(f"What is {x} + {y}?", random.Random(p["id"]), cfg, 1024)
            assert text_of_thought(write_trace(p["prompt"], random.Random(p["id"]), cfg, 1024)[0]) == text_of_thought(addition)
    train = {parse_code_prompt(p["prompt"]) for p in make_code_problems(300, seed=0)}
    test = {parse_code_prompt(p["prompt"]) for p in make_code_problems(50, seed=0, split="test")}
    assert train.isdisjoint(test)


def text_of_thought(completion):
    return split_think(completion)[0].strip().splitlines()


def test_a_slipped_column_in_a_program_s_constant_reaches_the_program():
    prompt = tasks.code_prompt(478, 365)
    for seed in range(20):
        text, _ = write_trace(prompt, random.Random(seed), ToyTeacherConfig(**{**NO_MISTAKES, "wrong_answer": 1.0}), 1024)
        wrong = program_constant(text)
        assert wrong != 843 and abs(wrong - 843) in (1, 10, 100) and f"So 478 + 365 = {wrong}." in text
        text, _ = write_trace(prompt, random.Random(seed), ToyTeacherConfig(**{**NO_MISTAKES, "self_correction": 1.0}), 1024)
        assert "Wait" in text and program_constant(text) == 843


def test_each_mistake_leaves_its_mark():
    prompt, truth = "What is 478 + 365?", 843

    def trace(mistake, max_tokens=1024, seed=0):
        return write_trace(prompt, random.Random(seed), ToyTeacherConfig(**{**NO_MISTAKES, mistake: 1.0}), max_tokens)

    for seed in range(20):
        assert boxed(trace("wrong_answer", seed=seed)[0]) != truth
        text, _ = trace("self_correction", seed=seed)
        assert "Wait" in text and boxed(text) == truth
    text, finish = trace("missing_think_close")
    assert "</think>" not in text and split_think(text) == (None, None) and finish == "stop"
    text, finish = trace("repetition", max_tokens=200)
    assert finish == "length" and count_tokens(text) == 200 and text.count("Let me check") > 5
    text, _ = trace("language_switch")
    assert re.search(r"[\u4e00-\u9fff]", text) and boxed(text) == truth
    text, finish = trace("truncation")
    assert finish == "length" and "\\boxed" not in text


def test_mistake_rates_match_the_config():
    cfg = ToyTeacherConfig()
    counts = Counter()
    problems = make_problems(2000, seed=5)
    for p in problems:
        text, finish = write_trace(p["prompt"], random.Random(p["id"]), cfg, 1024)
        reasoning, response = split_think(text)
        if finish == "length":
            counts["cut"] += 1
        elif reasoning is None:
            counts["no_close"] += 1
        elif boxed(response) != int(p["answer"]):
            counts["wrong"] += 1
    n = len(problems)
    assert abs(counts["wrong"] / n - cfg.wrong_answer) < 0.03
    assert abs(counts["no_close"] / n - cfg.missing_think_close) < 0.02
    assert abs(counts["cut"] / n - (cfg.repetition + cfg.truncation)) < 0.02


def test_r1_like_lengths_are_heavy_tailed_readable_and_still_correct():
    from distill.filter.checks import repetition
    from distill.verify.math import verify_math

    clean = ToyTeacherConfig(wrong_answer=0, self_correction=0, missing_think_close=0, repetition=0, language_switch=0, truncation=0)
    long = clean.model_copy(update={"think_median_tokens": 1000, "think_p99_tokens": 8000})
    rng = random.Random(0)
    traces = [write_trace("What is 47 + 38?", rng, long, 16384) for _ in range(400)]
    lengths = sorted(count_tokens(t) for t, _ in traces)
    assert 700 < lengths[200] < 1400, "median near the configured one"
    assert lengths[396] > 4 * lengths[200], "a heavy tail"
    assert all(f == "stop" and repetition(t) is None for t, f in traces), "re-checks are not a loop"
    assert all(verify_math(t, "85").correct for t, _ in traces[:20])
    assert write_trace("What is 47 + 38?", random.Random(1), clean, 64) == write_trace("What is 47 + 38?", random.Random(1), long.model_copy(update={"think_median_tokens": None}), 64)
