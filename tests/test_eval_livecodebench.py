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
