"""Benchmark specs (`evals/<name>.yaml`) and the loader that turns a benchmark into PROBLEM rows.

A spec says where the problems are (a JSONL shipped in `evals/data/`, a user's local file, a Hugging
Face dataset, or the toy world's held-out split), which fields hold the problem and its answer, how
to score it and the R1 protocol's k and token limit for it. A user adds a benchmark with one spec
file and one local JSONL.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Literal

from pydantic import Field

from distill.config import Config, load_yaml, parse
from distill.errors import DistillError, where
from distill.eval import livecodebench
from distill.io import iter_rows
from distill.records import content_id, to_json
from distill.toy.config import ToyTasks

EVALS_DIR = Path(__file__).resolve().parents[2] / "evals"


class FieldMap(Config):
    """Which columns of the source rows hold what."""

    prompt: str = Field("problem", description="column with the problem text")
    answer: str | None = Field("answer", description="column with the reference answer (None: no reference)")
    id: str | None = Field(None, description="column with the upstream id, kept in metadata")
    tests: str | None = Field(None, description="code problems: column with the test cases")
    metadata: list[str] = Field(default_factory=list, description="extra columns copied into metadata")


class ChoiceSpec(Config):
    """Multiple choice built from a correct and several incorrect answer columns (GPQA's layout).

    Options are shuffled with a per-problem seed, so the correct letter is stable across runs and
    machines but not always 'A'.
    """

    correct: str = Field(description="column with the correct option")
    incorrect: list[str] = Field(description="columns with the wrong options")
    format: str = Field(
        "{prompt}\n\n{options}",
        description="problem text layout; {prompt} is the question, {options} the lettered options",
    )


class DateWindow(Config):
    """Only problems whose date column falls in [start, end] (ISO dates, inclusive): LiveCodeBench's
    contamination control (R1: contests from 2024-08-01 to 2025-01-31)."""

    column: str = Field("contest_date", description="column with an ISO date or datetime")
    start: str = Field(description="first date kept, YYYY-MM-DD")
    end: str = Field(description="last date kept, YYYY-MM-DD")


class BenchmarkSpec(Config):
    name: str = Field(description="benchmark name used in scores, sample rows and the report")
    description: str = ""
    source: str = Field(
        description="a JSONL/Parquet/CSV path (relative to evals/), 'hf:<dataset>' or 'toy'"
    )
    hf_config: str | None = Field(None, description="hf: dataset config name, e.g. gpqa_diamond")
    hf_data_files: list[str] | None = Field(
        None, description="hf: read these data files of the dataset repo directly (for datasets whose loading script no longer runs)"
    )
    split: str = Field("test", description="hf: dataset split")
    fields: FieldMap = Field(default_factory=FieldMap)
    choices: ChoiceSpec | None = None
    toy: ToyTasks | None = None
    answer_pattern: str | None = Field(
        None, description="regex with one group that pulls the final answer out of the answer column (GSM8K: '#### n')"
    )
    numeric_answer: bool = Field(False, description="drop thousands separators from the answer ('1,600' -> '1600')")
    strip_prompt_suffix: str | None = Field(None, description="text removed from the end of each prompt (an instruction baked into the file)")
    layout: Literal["plain", "livecodebench"] = Field(
        "plain", description="livecodebench: build prompt and tests from LiveCodeBench's columns (distill.eval.livecodebench)"
    )
    date_window: DateWindow | None = Field(None, description="keep only problems dated inside this window (recorded in scores)")
    domain: Literal["math", "code", "science", "general"] = "math"
    rel_tol: float | None = Field(
        None, gt=0, description="science: a numeric answer within this relative tolerance of the reference is correct (math: exact)"
    )
    scorer: Literal["math", "choice", "code"] = "math"
    k: int = Field(4, ge=1, description="samples per problem (R1/open-r1: 64 AIME, 4 MATH-500, 8 GPQA, 16 LiveCodeBench)")
    max_tokens: int = Field(32768, ge=1, description="generation limit per sample (R1: 32,768)")
    template: str = Field("r1", description="prompt template in distill.generate.prompting.TEMPLATES")
    redistributable: bool = Field(True, description="False: never write problem text into shipped files (GPQA)")
    attribution: str = ""


def spec_path(name_or_path: str | Path) -> Path:
    """`math500` -> evals/math500.yaml; a path to a .yaml file is used as it is."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        return p
    return EVALS_DIR / f"{name_or_path}.yaml"


def available() -> list[str]:
    return sorted(p.stem for p in EVALS_DIR.glob("*.yaml"))


def load_spec(name_or_path: str | Path, *, source: str | None = None) -> BenchmarkSpec:
    """The spec of a shipped benchmark (by name) or of a spec file; `source` replaces its data source."""
    path = spec_path(name_or_path)
    if not path.exists():
        raise DistillError(f"{path}: no such benchmark spec (shipped: {', '.join(available())})")
    data = load_yaml(path)
    if source is not None:
        data["source"] = source
    spec = parse(BenchmarkSpec, data, path)
    if spec.source == "toy" and spec.toy is None:
        raise DistillError(f"{path}: field 'toy': required when source is 'toy'")
    return spec.model_copy(update={"source": _resolve_source(spec.source, path.parent)})


def _resolve_source(source: str, spec_dir: Path) -> str:
    if source == "toy" or source.startswith("hf:"):
        return source
    p = Path(source).expanduser()
    return str(p if p.is_absolute() else (spec_dir / p))


# Decoded problems by (spec, limit): `distill run` evaluates every model and decontaminates against the same
# benchmarks; LiveCodeBench alone is five JSONL files of several GB with compressed tests to decode.
_LOADED: dict[tuple[str, int | None], list[dict]] = {}


def load_benchmark(name_or_spec: str | Path | BenchmarkSpec, *, source: str | None = None, limit: int | None = None) -> list[dict]:
    """The benchmark's problems as PROBLEM-shaped dicts, in file order (first `limit` if given); read once per process."""
    spec = name_or_spec if isinstance(name_or_spec, BenchmarkSpec) else load_spec(name_or_spec, source=source)
    key = (spec.model_dump_json(), limit)
    if key not in _LOADED:
        _LOADED[key] = _load(spec, limit)
    return [dict(p) for p in _LOADED[key]]


def _load(spec: BenchmarkSpec, limit: int | None) -> list[dict]:
    if spec.source == "toy":
        rows = spec.toy.make("test")
        return rows[:limit] if limit else rows
    problems = []
    seen: dict[str, int] = {}
    files = {spec.source: spec}
    for src, rowno, raw in _read_rows(spec):
        file_spec = files.setdefault(src, spec.model_copy(update={"source": src}))  # errors name the file, not its folder
        if spec.date_window is not None and not _in_window(file_spec, raw, rowno):
            continue
        p = _to_problem(file_spec, raw, rowno)
        if p["id"] in seen:  # the same problem twice would be counted twice in every score
            raise DistillError(f"{where(src, rowno)}: duplicate of row {seen[p['id']]} (same problem text)")
        seen[p["id"]] = rowno
        problems.append(p)
        if limit and len(problems) >= limit:
            break
    if not problems:
        raise DistillError(f"{spec.source}: benchmark '{spec.name}' has no problems")
    return problems


def _in_window(spec: BenchmarkSpec, raw: dict, rowno: int) -> bool:
    return _within(spec.date_window, _column(spec, raw, spec.date_window.column, rowno))


def _within(w: DateWindow, day) -> bool:
    return w.start <= str(day)[:10] <= w.end


def _read_rows(spec: BenchmarkSpec):
    """(file, 1-based row number, dict) from a local JSONL/Parquet/CSV file, a folder of JSONL/Parquet
    files or a Hugging Face dataset."""
    src = spec.source
    if src.startswith("hf:"):
        for rowno, raw in _load_hf(spec):
            yield src, rowno, raw
        return
    path = Path(src)
    if not path.exists():
        raise DistillError(f"{path}: benchmark '{spec.name}' data not found (set its source to a local file)")
    if path.is_dir():  # a dataset's published files, e.g. LiveCodeBench's test.jsonl ... test5.jsonl
        files = sorted(p for p in path.iterdir() if p.suffix in (".jsonl", ".parquet"))
        if not files:
            raise DistillError(f"{path}: no .jsonl or .parquet files for benchmark '{spec.name}'")
        for f in files:
            yield from _read_rows(spec.model_copy(update={"source": str(f)}))
        return
    for rowno, raw in iter_rows(path):
        yield src, rowno, raw


def _load_hf(spec: BenchmarkSpec) -> list[tuple[int, dict]]:
    """(1-based row number, row) of a hub dataset; with a date window, only the rows inside it."""
    import datasets

    name = spec.source.removeprefix("hf:")
    try:
        if spec.hf_data_files:
            files = [f"hf://datasets/{name}/{f}" for f in spec.hf_data_files]
            ds = datasets.load_dataset("json" if files[0].endswith(".jsonl") else "parquet", data_files=files, split="train")
        else:
            ds = datasets.load_dataset(name, spec.hf_config, split=spec.split)
    except Exception as e:  # offline, gated (GPQA), or missing: all mean "give me a local copy"
        raise DistillError(
            f"benchmark '{spec.name}': cannot load {spec.source} ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
            f"download it yourself and pass a local file, e.g. --set overrides.{spec.name}.source=/path/file.jsonl"
        ) from None
    rows = range(len(ds))
    w = spec.date_window
    if w is not None and w.column in ds.column_names:  # one column read: only the window's rows become Python dicts
        rows = [i for i, day in enumerate(ds[w.column]) if _within(w, day)]
    return [(i + 1, raw) for i, raw in zip(rows, ds.select(rows))]


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # AMC's answers are JSON floats (27.0)
    return str(value)


def _column(spec: BenchmarkSpec, raw: dict, column: str, rowno: int):
    if column not in raw:
        raise DistillError(f"{where(spec.source, rowno, column)}: missing (columns: {', '.join(list(raw)[:12])})")
    return raw[column]


def _answer(spec: BenchmarkSpec, raw: dict, rowno: int) -> str | None:
    if spec.fields.answer is None:
        return None
    ans = _text(_column(spec, raw, spec.fields.answer, rowno))
    if ans is not None and spec.answer_pattern:
        m = re.search(spec.answer_pattern, ans, re.DOTALL)
        if not m:
            raise DistillError(f"{where(spec.source, rowno, spec.fields.answer)}: does not match answer_pattern {spec.answer_pattern!r}")
        ans = m.group(1).strip()
    if ans is not None and spec.numeric_answer:
        ans = ans.replace(",", "")
    return ans


def _options(spec: BenchmarkSpec, raw: dict, rowno: int, question: str) -> tuple[str, str]:
    """Lettered, shuffled options and the correct letter."""
    c = spec.choices
    correct = str(_column(spec, raw, c.correct, rowno)).strip()
    options = [correct] + [str(_column(spec, raw, col, rowno)).strip() for col in c.incorrect]
    random.Random(content_id(spec.name, question)).shuffle(options)
    letters = "ABCDEFGHIJ"[: len(options)]
    listed = "\n".join(f"{L}) {o}" for L, o in zip(letters, options))
    return c.format.format(prompt=question, options=listed), letters[options.index(correct)]


def _to_problem(spec: BenchmarkSpec, raw: dict, rowno: int) -> dict:
    prompt = _column(spec, raw, spec.fields.prompt, rowno)
    if not isinstance(prompt, str) or not prompt.strip():
        raise DistillError(f"{where(spec.source, rowno, spec.fields.prompt)}: expected non-empty text")
    if spec.strip_prompt_suffix and prompt.endswith(spec.strip_prompt_suffix):
        prompt = prompt[: -len(spec.strip_prompt_suffix)]
    if spec.choices is not None:
        prompt, answer = _options(spec, raw, rowno, prompt.strip())
    else:
        answer = _answer(spec, raw, rowno)
    tests = None
    if spec.layout == "livecodebench":
        prompt, tests = livecodebench.problem_parts(raw, spec.source, rowno)
    elif spec.fields.tests is not None:
        t = _column(spec, raw, spec.fields.tests, rowno)
        tests = t if isinstance(t, str) else json.dumps(t)
    meta = {"benchmark": spec.name, "row": rowno}
    if spec.fields.id is not None:
        meta["upstream_id"] = _text(_column(spec, raw, spec.fields.id, rowno))
    for col in spec.fields.metadata:
        if col in raw:
            meta[col] = _text(raw[col])
    return {
        "id": content_id(spec.name, prompt),
        "source": spec.name,
        "domain": spec.domain,
        "prompt": prompt,
        "answer": answer,
        "tests": tests,
        "metadata": to_json(meta),
    }
