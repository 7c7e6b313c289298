"""Imports flow one way: every module imports on its own in a fresh interpreter (no import circle needs
a particular order), the real stage configs and the low modules do not pull in the toy world, the
pipeline or the eval stage, and one function splits a completion at `</think>`."""

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import distill

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted(m.name for m in pkgutil.walk_packages(distill.__path__, "distill.") if not m.name.endswith("__main__"))
TOY_WORLD = ("distill.toy.tasks", "distill.toy.teacher", "distill.toy.students", "distill.toy.tokenizer")
# module -> modules it must not import (directly or through others)
MUST_NOT_IMPORT = {
    "distill.generate.config": TOY_WORLD,
    "distill.eval.config": TOY_WORLD,
    "distill.prompts.config": TOY_WORLD,
    "distill.prompts.decontam": ("distill.eval",),
    "distill.console": ("distill.progress", "distill.pipeline"),
    "distill.progress": ("distill.pipeline",),
    "distill.report.collect": ("distill.pipeline",),
    "distill.layout": ("distill.pipeline", "distill.stage"),
}

PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(m for m in sys.modules if m == "distill" or m.startswith("distill."))))
"""


def _imported_by(module: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", PROBE, module], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, f"{module} does not import on its own:\n{result.stderr[-2000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def _check(modules):
    for module in modules:
        loaded = _imported_by(module)
        for banned in MUST_NOT_IMPORT.get(module, ()):
            hits = [m for m in loaded if m == banned or m.startswith(banned + ".")]
            assert not hits, f"{module} imports {hits}"


def test_configs_and_low_modules_keep_their_imports_one_way():
    _check(sorted(MUST_NOT_IMPORT))


@pytest.mark.slow  # one interpreter per module, ~80 of them
def test_each_module_imports_alone_in_a_fresh_interpreter():
    # an import circle shows as an ImportError when the circle is entered from another module first
    _check(MODULES)


def test_one_function_splits_at_think_close():
    from distill.think import split_think
    from distill.verify import answer_text

    # the first </think> ends the reasoning; a stray second one stays in the response
    text = "<think>\nplan\n</think>\nanswer \\boxed{1}\n</think> more \\boxed{2}"
    assert split_think(text) == ("plan", "answer \\boxed{1}\n</think> more \\boxed{2}")
    assert answer_text(text).strip() == "answer \\boxed{1}\n</think> more \\boxed{2}"
    assert answer_text("no tags \\boxed{3}") == "no tags \\boxed{3}"
    assert split_think("<think> never closed") == (None, None)
    sources = [p for p in (ROOT / "distill").rglob("*.py") if p.name != "think.py"]
    assert not [p for p in sources if 'partition("</think>")' in p.read_text() or "partition(THINK_CLOSE)" in p.read_text()]
