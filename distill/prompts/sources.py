"""Read the problems of one source of the mix (the toy world, a local JSONL/Parquet file or a Hugging
Face dataset) as PROBLEM rows, and fingerprint the source so a resume can tell whether it changed.

Rows are streamed: a file or dataset of any size is read batch by batch; the optional shuffle holds
only its buffer.
"""

from __future__ import annotations

import json
import os
import random
import re
import unicodedata
from pathlib import Path
from typing import Iterable, Iterator

from distill.errors import DistillError, where
from distill.generate.prompting import NO_THINK_PREFIX
from distill.io import iter_jsonl, iter_parquet_rows, sha256_file
from distill.prompts.config import RowRule, SourceConfig
from distill.records import DOMAINS, content_id, to_json


def normalise_text(text: str) -> str:
    """Unicode NFC, Unix newlines, no trailing spaces on lines, no outer blank lines."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


def _scalar_answer(value) -> str:
    """A reference as a string; 27.0 (AMC files store floats) becomes "27"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _answer(value, src: SourceConfig, loc: tuple, col: str) -> str | None:
    """The reference answer; a list is a set of accepted answers only where the source says so."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        if not src.multi_answer:
            raise DistillError(
                f"{where(loc[0], loc[1], col)}: a list {_short(value)} where one answer belongs "
                f"(set multi_answer: true on source '{src.label}' if any of them is accepted)"
            )
        if not value or any(isinstance(v, (list, dict)) or v is None for v in value):
            raise DistillError(f"{where(loc[0], loc[1], col)}: accepted answers must be a non-empty list of scalars, got {_short(value)}")
        return to_json([_scalar_answer(v) for v in value])
    if isinstance(value, dict):
        raise DistillError(f"{where(loc[0], loc[1], col)}: an object {_short(value)} where an answer belongs")
    return _scalar_answer(value)


def _short(value, n: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= n else text[: n - 3] + "..."


def _chat(value, loc: tuple, col: str) -> tuple[list[dict], str, str]:
    """(earlier turns, last user turn, last assistant reply) of an imported conversation."""
    if not isinstance(value, list) or not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in value):
        raise DistillError(f"{where(loc[0], loc[1], col)}: expected a list of {{role, content}} turns, got {_short(value)}")
    turns = [{"role": str(m.get("role")), "content": m["content"]} for m in value]
    if len(turns) < 2 or turns[-1]["role"] != "assistant" or turns[-2]["role"] != "user":
        raise DistillError(f"{where(loc[0], loc[1], col)}: the conversation must end with a user turn and the assistant's reply")
    return turns[:-2], turns[-2]["content"], turns[-1]["content"]


def _get(raw: dict, column: str):
    """The value of `column`; `a.b` is field b of the struct (dict) in column a."""
    value = raw.get(column)
    if value is None and "." in column:
        value = raw
        for key in column.split("."):
            value = value.get(key) if isinstance(value, dict) else None
    return value


def _tests(value, loc: tuple, col: str) -> str | None:
    """Tests as a JSON list of {input, output[, fn_name, type]}; a {input: [...], output: [...]} pair of
    lists (CodeContests' layout) is zipped into one."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("input"), list) and isinstance(value.get("output"), list):
        if len(value["input"]) != len(value["output"]):
            raise DistillError(f"{where(loc[0], loc[1], col)}: {len(value['input'])} test inputs but {len(value['output'])} outputs")
        value = [{"input": i, "output": o} for i, o in zip(value["input"], value["output"])]
    if not isinstance(value, list):
        raise DistillError(f"{where(loc[0], loc[1], col)}: tests must be a list of {{input, output}}, got {_short(value)}")
    return to_json(value)


def _lettered(src: SourceConfig, raw: dict, loc: tuple, question: str) -> tuple[str, str]:
    """The problem text with shuffled lettered options, and the correct letter (seeded by the question,
    so a rerun gives the same letters)."""
    c = src.choices
    options = []
    for col in [c.correct, *c.incorrect]:
        value = _get(raw, col)
        if value is None or not str(value).strip():
            raise DistillError(f"{where(loc[0], loc[1], col)}: missing or empty option")
        options.append(str(value).strip())
    order = list(range(len(options)))
    random.Random(content_id(src.label, question)).shuffle(order)
    lines = [f"{'ABCDEFGHIJ'[i]}) {options[j]}" for i, j in enumerate(order)]
    return c.format.format(prompt=question, options="\n".join(lines)), "ABCDEFGHIJ"[order.index(0)]


def to_problem(raw: dict, src: SourceConfig, loc: tuple) -> dict:
    """One source record as a PROBLEM row; `loc` = (file, row) for error messages."""
    cols = src.columns
    meta: dict = {}
    answer = None
    if "messages" in cols:
        context, prompt, reply = _chat(_get(raw, cols["messages"]), loc, cols["messages"])
        if context:
            meta["context"] = context
        answer = reply
    else:
        col = cols.get("prompt", "prompt")
        prompt = _get(raw, col)
        if not isinstance(prompt, str) or not prompt.strip():
            raise DistillError(f"{where(loc[0], loc[1], col)}: missing or empty problem text (columns.prompt = {col!r})")
        if src.choices is not None:
            prompt, answer = _lettered(src, raw, loc, prompt.strip())
        elif "answer" in cols:
            answer = _answer(_get(raw, cols["answer"]), src, loc, cols["answer"])
    domain = _get(raw, cols["domain"]) if "domain" in cols else src.domain
    if domain not in DOMAINS:
        raise DistillError(f"{where(loc[0], loc[1], cols.get('domain', 'domain'))}: domain {domain!r} not in {DOMAINS}")
    tests = _tests(_get(raw, cols["tests"]), loc, cols["tests"]) if "tests" in cols else None
    metadata = _get(raw, cols["metadata"]) if "metadata" in cols else None
    prompt = normalise_text(prompt)
    if isinstance(metadata, dict):
        meta = {**metadata, **meta}
    meta["source_row"] = loc[1]
    if src.multi_answer and "answer" in cols and isinstance(_get(raw, cols["answer"]), (list, tuple)):
        meta["multi_answer"] = True  # the answer column holds a JSON list of accepted answers
    if "id" in cols and _get(raw, cols["id"]) is not None:
        meta["source_id"] = str(_get(raw, cols["id"]))  # the content id is ours; the source's is kept
    if src.nonreasoning is not None:
        meta["nonreasoning"] = src.nonreasoning
        if src.nonreasoning == "imported":
            if not isinstance(answer, str) or not answer.strip():
                raise DistillError(f"{where(loc[0], loc[1], cols.get('answer', cols.get('messages')))}: an imported reply must be non-empty text")
            meta["reply"] = NO_THINK_PREFIX + answer.strip()
    return {
        "id": content_id(src.label, prompt),
        "source": src.label,
        "domain": domain,
        "prompt": prompt,
        "answer": answer,
        "tests": tests,
        "metadata": to_json(meta),
    }


_LATEX_OK = re.compile(r"\\(?:d?t?frac|sqrt|pi|cdot|times|circ|infty|left|right|pm|mp|div|degree|%|,|!|;|\s)")
_CLOSED = re.compile(r"[\d\s.,+\-*/^(){}\[\]%:=<>|!']*")


def closed_form(value) -> bool:
    """A number or a closed-form expression of numbers (fractions, roots, pi, degrees), no words: the
    answers math-verify compares reliably. "proof", "notfound", "x = 3 or y" and prose are not."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, (int, float)):
        return True
    text = str(value).strip().strip("$").strip()
    box = re.fullmatch(r"\\boxed\{(.*)\}", text, re.DOTALL)
    text = box.group(1) if box else text
    text = _LATEX_OK.sub(" ", text).replace("^\\circ", "").replace("π", " ")
    return bool(text.strip()) and _CLOSED.fullmatch(text) is not None and (any(c.isdigit() for c in text) or "pi" in str(value))


def _empty(value) -> bool:
    return value is None or (isinstance(value, (str, list, dict, tuple)) and len(value) == 0)


def _passes(rec: dict, rule: RowRule) -> bool:
    value = _get(rec, rule.column)
    text = "" if value is None else value if isinstance(value, str) else json.dumps(value, default=str)
    if rule.present is not None and _empty(value) == rule.present:
        return False
    if rule.in_ is not None and value not in rule.in_:
        return False
    if rule.not_in is not None and value in rule.not_in:
        return False
    if rule.regex is not None and not re.search(rule.regex, text):
        return False
    if rule.not_regex is not None and re.search(rule.not_regex, text):
        return False
    if rule.numeric is not None and closed_form(value) != rule.numeric:
        return False
    return True


def _raw_records(src: SourceConfig) -> Iterator[tuple[tuple, dict]]:
    """(location, raw record) in source order."""
    s = src.source
    if s == "toy":
        for i, p in enumerate(src.toy.make("train"), start=1):
            yield ("toy", i), p
    elif s.startswith("hf:"):
        from datasets import load_dataset

        ds = load_dataset(s[3:], src.subset, split=src.split, revision=src.revision, streaming=True)
        for i, rec in enumerate(ds, start=1):
            yield (s, i), rec
    elif s.endswith(".jsonl") or s.endswith(".json"):
        for lineno, rec in iter_jsonl(_file(s)):
            yield (s, lineno), rec
    elif s.endswith(".parquet"):
        for row, rec in iter_parquet_rows(_file(s)):
            yield (s, row), rec
    else:
        raise DistillError(f"source {s!r}: expected 'toy', a .jsonl/.parquet path or 'hf:<dataset>'")


def _file(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise DistillError(f"{p}: file not found")
    if not p.is_file():
        raise DistillError(f"{p}: expected a file, found a directory")
    return p


def shuffled(items: Iterable, seed: int, buffer: int) -> Iterator:
    """A seeded buffered shuffle: deterministic, and memory bounded by `buffer` items."""
    rng = random.Random(seed)
    buf: list = []
    for item in items:
        if len(buf) < buffer:
            buf.append(item)
            continue
        j = rng.randrange(buffer)
        yield buf[j]
        buf[j] = item
    rng.shuffle(buf)
    yield from buf


class SourceReader:
    """PROBLEM rows of one source after its row filter (and shuffle), with the counts of what was read."""

    def __init__(self, src: SourceConfig):
        self.src = src
        self.read = 0  # raw records read
        self.filtered = 0  # dropped by `where`

    def _kept_records(self) -> Iterator[tuple[tuple, dict]]:
        for loc, rec in _raw_records(self.src):
            self.read += 1
            if self.src.source != "toy" and not all(_passes(rec, rule) for rule in self.src.where):
                self.filtered += 1
                continue
            yield loc, rec

    def __iter__(self) -> Iterator[dict]:
        records = self._kept_records()
        if self.src.seed is not None:
            records = shuffled(records, self.src.seed, self.src.shuffle_buffer)
        for loc, raw in records:
            yield self._toy_row(raw) if self.src.source == "toy" else to_problem(raw, self.src, loc)

    def _toy_row(self, row: dict) -> dict:
        """A toy problem under this source's name, marked non-reasoning where the source says so."""
        meta = json.loads(row["metadata"])
        if self.src.nonreasoning == "imported":
            meta["reply"] = NO_THINK_PREFIX + row["answer"]
        if self.src.nonreasoning is not None:
            meta["nonreasoning"] = self.src.nonreasoning
        return {**row, "source": self.src.label, "metadata": to_json(meta)}


def _file_print(path: Path) -> dict:
    """size, mtime and sha256 of a file. Hashed on every run, not only when size or mtime changed: a
    same-size replacement with its mtime restored must not mix old and new rows on resume, and sha256
    reads ~400 MB/s on this 2-core box, well under the time the stage then takes to read the file."""
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime": st.st_mtime, "sha256": sha256_file(path)}


def fingerprint(src: SourceConfig) -> dict:
    """What identifies the data of a source: a local file's size, mtime and content hash; a dataset's
    name, subset, split and revision (the Hub's commit sha when it can be asked; a local dataset
    directory's file hashes); the toy world's generator config."""
    s = src.source
    if s == "toy":
        return {"toy": src.toy.model_dump(mode="json")}
    if not s.startswith("hf:"):
        return _file_print(_file(s))
    name = s[3:]
    out = {"dataset": name, "subset": src.subset, "split": src.split, "revision": src.revision}
    local = Path(name)
    if local.is_dir():
        files = sorted(p for p in local.rglob("*") if p.is_file())
        out["files"] = {str(p.relative_to(local)): _file_print(p) for p in files}
    elif not os.environ.get("HF_HUB_OFFLINE") and not (src.revision and re.fullmatch(r"[0-9a-f]{40}", src.revision)):
        try:
            from huggingface_hub import HfApi

            out["sha"] = HfApi().dataset_info(name, revision=src.revision).sha
        except Exception as e:  # offline or gated: the configured revision is all there is to record
            out["sha"] = None
            out["sha_error"] = type(e).__name__
    return out


def identity(print_: dict) -> dict:
    """The part of a fingerprint that decides the data: everything but modification times and the
    reason a lookup failed."""
    skip = {"mtime", "sha_error"}
    return {k: identity(v) if isinstance(v, dict) else v for k, v in print_.items() if k not in skip}


def problem_text(rec: dict) -> str:
    """The problem statement of a benchmark record, whichever column holds it (any case: GPQA's is "Question")."""
    by_name = {k.lower(): v for k, v in rec.items()}
    for key in ("prompt", "problem", "question"):
        if isinstance(by_name.get(key), str) and by_name[key].strip():
            return by_name[key]
    raise DistillError(f"benchmark record has no 'prompt', 'problem' or 'question' text: keys {sorted(rec)}")
