"""LiveCodeBench from its published JSONL layout (a hand-written set in the same columns): date window,
safe decoding of compressed private tests, starter code in the prompt, stdin and functional tests
judged in the sandbox."""

import base64
import json
import os
import pickle
import zlib

import pytest

from distill.errors import DistillError
from distill.eval.benchmarks import load_benchmark
from distill.eval.livecodebench import decode_tests
from distill.eval.scoring import score


def compressed(tests: list[dict]) -> str:
    """LiveCodeBench's private_test_cases encoding: base64(zlib(pickle(json string)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


def row(qid, date, question, public, private, starter="", func_name=None, platform="atcoder"):
    return {"question_title": qid, "question_content": question, "platform": platform, "question_id": qid,
            "contest_id": "c", "contest_date": date, "starter_code": starter, "difficulty": "easy",
            "public_test_cases": json.dumps(public), "private_test_cases": private,
            "metadata": json.dumps({"func_name": func_name} if func_name else {})}


STDIN = [{"input": "2 3\n", "output": "5\n", "testtype": "stdin"}]
STDIN_PRIVATE = [{"input": "10 -4\n", "output": "6\n", "testtype": "stdin"}, {"input": "0 0\n", "output": "0\n", "testtype": "stdin"}]
FUNC = [{"input": "[2,7,11,15]\n9", "output": "[0, 1]", "testtype": "functional"}]
FUNC_PRIVATE = [{"input": "[3,2,4]\n6", "output": "[1, 2]", "testtype": "functional"}]
STARTER = "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n        "


@pytest.fixture
def lcb_dir(tmp_path):
    d = tmp_path / "code_generation_lite"
    d.mkdir()
    rows1 = [row("abc1", "2024-09-01T00:00:00", "Print a+b.", STDIN, compressed(STDIN_PRIVATE)),
             row("old", "2024-05-01T00:00:00", "Too old.", STDIN, "[]")]
    rows2 = [row("lc1", "2024-12-10T00:00:00", "Return indices of two numbers adding to target.", FUNC, json.dumps(FUNC_PRIVATE),
                 starter=STARTER, func_name="twoSum", platform="leetcode")]
    (d / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows1))
    (d / "test2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows2))
    return d


def test_loads_the_window_with_private_tests_and_starter_code(lcb_dir):
    problems = load_benchmark("livecodebench", source=str(lcb_dir))
    assert [json.loads(p["metadata"])["upstream_id"] for p in problems] == ["abc1", "lc1"]  # "old" is outside 2024-08..2025-01
    stdin, func = problems
    assert [t["input"] for t in json.loads(stdin["tests"])] == ["2 3\n", "10 -4\n", "0 0\n"]
    assert "stdin" in stdin["prompt"] and "class Solution" not in stdin["prompt"]
    assert STARTER.rstrip() in func["prompt"] and all(t["fn_name"] == "twoSum" for t in json.loads(func["tests"]))
    assert json.loads(func["metadata"])["contest_date"].startswith("2024-12-10")


def test_stdin_and_functional_solutions_judged_in_the_sandbox(lcb_dir):
    stdin, func = load_benchmark("livecodebench", source=str(lcb_dir))
    right = "<think>\nadd\n</think>\n```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    passes_public_only = "<think>\nx\n</think>\n```python\nprint(5)\n```"
    assert [v.correct for v in score("code", [right, passes_public_only], None, stdin["tests"])] == [True, False]
    solution = ("```python\nclass Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
                "        seen = {}\n        for i, x in enumerate(nums):\n            if target - x in seen:\n"
                "                return [seen[target - x], i]\n            seen[x] = i\n\n"
                "if __name__ == '__main__':\n    print(Solution().twoSum([1, 2], 3))\n```")
    reversed_ = solution.replace("[seen[target - x], i]", "[i, seen[target - x]]")
    v_right, v_wrong, v_cut = score("code", [f"<think>\nok\n</think>\n{solution}", f"<think>\nok\n</think>\n{reversed_}", "<think>\nclass Sol"],
                                    None, func["tests"], finish_reasons=["stop", "stop", "length"])
    assert (v_right.correct, v_wrong.reason, v_cut.reason) == (True, "wrong_answer", "unfinished")


def test_private_tests_never_run_pickled_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    payload = base64.b64encode(zlib.compress(pickle.dumps(Evil()))).decode()
    with pytest.raises(pickle.UnpicklingError, match="plain data"):
        decode_tests(payload)
    assert not marker.exists()
    d = tmp_path / "lcb"
    d.mkdir()
    (d / "test.jsonl").write_text(json.dumps(row("x", "2024-10-01", "q", STDIN, payload)) + "\n")
    with pytest.raises(DistillError, match=r"test\.jsonl:1: field 'private_test_cases': cannot decode"):
        load_benchmark("livecodebench", source=str(d))
    assert not marker.exists()


def test_hub_rows_filtered_by_date_in_arrow_and_read_once_per_process(lcb_dir, monkeypatch):
    import datasets

    import distill.eval.benchmarks as benchmarks

    rows = [json.loads(line) for f in ("test.jsonl", "test2.jsonl") for line in (lcb_dir / f).read_text().splitlines()]
    loads = []

    def load_dataset(*args, **kwargs):  # the hub's five JSONL files, as `datasets` returns them
        loads.append(args)
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(benchmarks, "_LOADED", {})
    hub = benchmarks._load_hf(benchmarks.load_spec("livecodebench"))
    assert [(n, r["question_id"]) for n, r in hub] == [(1, "abc1"), (3, "lc1")]  # "old" (row 2) never became a dict
    first = load_benchmark("livecodebench")
    first[0]["prompt"] = "changed by a caller"
    again = load_benchmark("livecodebench")  # a second model, or decontamination, in the same run
    assert len(loads) == 2 and again[0]["prompt"].startswith("Print a+b.")  # the direct read above, then one for both


def _stdin_tests(output: str) -> str:
    return json.dumps([{"input": "", "output": output, "testtype": "stdin"}])


@pytest.mark.parametrize("printed, expected, correct", [
    ("print(0.50)", "0.5\n", True),  # Decimal("0.50") == Decimal("0.5"): LCB accepts float formatting
    ("print('1.0 2')", "1 2.00\n", True),
    ("print('  7  ')\nprint('x')", "7\n x \n", True),  # every line stripped, as LCB's get_stripped_lines
    ("print(0.6)", "0.5\n", False),
    ("print('abc')", "abd\n", False),
    ("print(1)\nprint()\nprint(2)", "1\n2\n", False),  # an inner empty line is a line: counts differ
])
def test_stdin_outputs_compared_as_livecodebench_does(printed, expected, correct):
    [v] = score("code", [f"```python\n{printed}\n```"], None, _stdin_tests(expected))
    assert v.correct is correct, v


def test_functional_returns_compared_by_equality_in_the_program():
    """A numpy.int64 return equals the expected int under LCB's `==` but is no JSON value; the sandbox's
    interpreter may lack numpy, so a stand-in with the same two properties is used there."""
    tests = json.dumps([{"input": "[1, 2, 3]", "output": "6", "testtype": "functional", "fn_name": "total"},
                        {"input": "[4]", "output": "4", "testtype": "functional", "fn_name": "total"}])
    numpy_int = ("```python\ntry:\n    from numpy import int64\nexcept ImportError:\n    class int64:\n"
                 "        def __init__(self, v): self.v = v\n        def __eq__(self, o): return self.v == o\n"
                 "class Solution:\n    def total(self, xs):\n        return int64(sum(xs))\n```")
    pair = "```python\nclass Solution:\n    def total(self, xs):\n        return (sum(xs), 0)\n```"
    printed_pass = "```python\nclass Solution:\n    def total(self, xs):\n        print('PASS')\n        return -1\n```"
    tuple_tests = json.dumps([{"input": "[1, 2]", "output": "[3, 0]", "testtype": "functional", "fn_name": "total"}])
    assert [v.correct for v in score("code", [numpy_int, printed_pass], None, tests)] == [True, False]
    assert score("code", [pair], None, tuple_tests)[0].correct  # a tuple is taken as a list, as LCB does


def test_eval_sets_no_memory_cap_and_lcb_timeout_while_the_filter_keeps_its_cap():
    from distill.eval.scoring import CODE_MEMORY_MB, CODE_TIMEOUT_S
    from distill.filter.config import FilterConfig
    from distill.verify.code_sandbox import verify_code

    big = "```python\nx = bytearray(200 << 20)\nprint(len(x) > 0)\n```"
    tests = _stdin_tests("True\n")
    assert (CODE_TIMEOUT_S, CODE_MEMORY_MB) == (6.0, None) and FilterConfig().verify.code_memory_mb == 512
    assert score("code", [big], None, tests)[0].correct
    assert verify_code(big, tests, memory_mb=128).reason == "memory_limit"  # a cap, as the filter sets one


def test_the_report_names_the_prompt_livecodebench_ran_on():
    from distill.eval.livecodebench import PROMPT_NAME
    from distill.report.collect import sampling_settings

    proto = {"temperature": 0.6, "top_p": 0.95, "max_tokens": 32768, "k": 16, "prefix": "<think>\n", "system_prompt": None,
             "template": "plain", "grading": "strict", "prompt": PROMPT_NAME}
    settings = sampling_settings({"m": {"scores": {"benchmarks": {"livecodebench": {"protocol": proto}}}}})["m"]
    assert settings.endswith(f"livecodebench prompt: {PROMPT_NAME}") and "not LiveCodeBench's own prompt" in settings
