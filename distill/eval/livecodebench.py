"""LiveCodeBench rows (livecodebench/code_generation_lite's published JSONL) -> prompt and tests.

Its columns: question_content, starter_code, public_test_cases (JSON), private_test_cases (JSON, or
base64 of zlib of a pickle of that JSON string), metadata (JSON with func_name for LeetCode
problems), contest_date, platform, difficulty. The hub's loading script no longer runs (datasets >= 4
refuses scripts), so the files are read as plain JSONL/Parquet.

Private tests are downloaded data: they are unpickled with an unpickler that can build only
strings, numbers, lists and dicts (no class or function is ever looked up), never `pickle.loads`.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import zlib

from distill.errors import DistillError, where


class _DataOnlyUnpickler(pickle.Unpickler):
    """Plain data only: any global (class, function) in the stream is refused."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: test cases must be plain data")


def decode_tests(value) -> list[dict]:
    """A test-case column as a list of {"input", "output", "testtype"} dicts (JSON or LCB's compressed form)."""
    if isinstance(value, list):
        return value
    try:
        return json.loads(value)
    except ValueError:
        pass
    raw = zlib.decompress(base64.b64decode(value.encode("ascii")))
    data = _DataOnlyUnpickler(io.BytesIO(raw)).load()
    return json.loads(data) if isinstance(data, (str, bytes)) else data


# How the report names this prompt: it is ours, not LCB's (lcb_runner/prompts/code_generation.py).
PROMPT_NAME = "distill's R1-style code instruction (distill/eval/livecodebench.py), not LiveCodeBench's own prompt"


def prompt(question: str, starter_code: str | None) -> str:
    """The problem with the R1-style code instruction: complete the starter code (LeetCode) or
    read stdin and write stdout; the answer is one fenced Python block."""
    if starter_code and starter_code.strip():
        return (f"{question.strip()}\n\nComplete the following starter code. Give your whole solution as one "
                f"```python code block.\n\n```python\n{starter_code.rstrip()}\n```")
    return (f"{question.strip()}\n\nWrite a Python program that reads the input from stdin and prints the answer "
            "to stdout (do not hard-code the sample tests). Give your whole program as one ```python code block.")


def problem_parts(raw: dict, source: str, rowno: int) -> tuple[str, str]:
    """(prompt text, tests JSON) of one LiveCodeBench row; functional tests carry the method's name."""
    try:
        question = raw["question_content"]
        meta = raw.get("metadata") or "{}"
        meta = json.loads(meta) if isinstance(meta, str) else meta
        tests = decode_tests(raw["public_test_cases"]) + decode_tests(raw.get("private_test_cases") or "[]")
    except KeyError as e:
        raise DistillError(f"{where(source, rowno, e.args[0])}: missing (a LiveCodeBench row needs question_content and public_test_cases)") from None
    except (ValueError, zlib.error, pickle.UnpicklingError, EOFError) as e:
        raise DistillError(f"{where(source, rowno, 'private_test_cases')}: cannot decode test cases ({e})") from None
    fn = meta.get("func_name")
    out = []
    for t in tests:
        case = {"input": t["input"], "output": t["output"], "testtype": t.get("testtype", "stdin")}
        if case["testtype"] == "functional":
            if not fn:
                raise DistillError(f"{where(source, rowno, 'metadata')}: functional tests but no func_name")
            case["fn_name"] = fn
        out.append(case)
    if not out:
        raise DistillError(f"{where(source, rowno, 'public_test_cases')}: no test cases")
    return prompt(question, raw.get("starter_code")), json.dumps(out)
