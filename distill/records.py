"""The record shapes that flow through the stages, and their pyarrow schemas.

Stages add columns; they never invent a new shape. Every row carries a stable content id so that
reruns, dedup and decontamination agree across machines.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable

import pyarrow as pa

from distill.errors import DistillError

DOMAINS = ("math", "code", "science", "general")
VERDICTS = ("correct", "incorrect", "unverifiable")

PROBLEM = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("answer", pa.string()),  # reference answer; null when there is none
        pa.field("tests", pa.string()),  # code problems: JSON list of test cases
        pa.field("metadata", pa.string()),  # JSON object
    ]
)

TRACE = pa.schema(
    list(PROBLEM)
    + [
        pa.field("sample_idx", pa.int32(), nullable=False),
        pa.field("teacher", pa.string(), nullable=False),
        pa.field("completion", pa.string(), nullable=False),  # raw text, "<think>" prefix included
        pa.field("reasoning", pa.string()),  # inside <think>...</think>; null when the tags are broken
        pa.field("response", pa.string()),  # after </think>
        pa.field("finish_reason", pa.string()),  # "stop" | "length" | backend-specific
        pa.field("prompt_tokens", pa.int32()),
        pa.field("completion_tokens", pa.int32()),
        pa.field("sampling", pa.string()),  # JSON of the sampling parameters
        # lineage: which engine wrote this row, with what template, and when
        pa.field("backend", pa.string()),
        pa.field("backend_version", pa.string()),
        pa.field("prompt_template", pa.string()),
        pa.field("generated_at", pa.string()),  # ISO 8601, UTC
        # what actually answered (an API's served model name and build) and what it cost
        pa.field("served_model", pa.string()),
        pa.field("system_fingerprint", pa.string()),
        pa.field("cached_tokens", pa.int32()),  # part of prompt_tokens served from the provider's cache
        pa.field("reasoning_tokens", pa.int32()),  # part of completion_tokens, when the API reports it
        pa.field("cost_usd", pa.float64()),  # from the config's price table; null without one
        pa.field("attempts", pa.int32()),  # requests this sample took to get its answer (errors retried)
        pa.field("error", pa.string()),  # the endpoint's message when finish_reason is "error"
    ]
)

MESSAGES = pa.list_(pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())]))

CURATED = pa.schema(
    list(TRACE)
    + [
        pa.field("verdict", pa.string(), nullable=False),
        pa.field("extracted", pa.string()),
        pa.field("reject_reason", pa.string()),  # null when kept
        pa.field("messages", MESSAGES),  # the SFT conversation, for kept rows
    ]
)

EVAL_SAMPLE = pa.schema(
    [
        pa.field("benchmark", pa.string(), nullable=False),
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("sample_idx", pa.int32(), nullable=False),
        pa.field("answer", pa.string()),  # the reference, kept so scores can be recomputed alone
        pa.field("completion", pa.string(), nullable=False),
        pa.field("extracted", pa.string()),  # the parsed answer that was compared; null when none was
        pa.field("correct", pa.bool_(), nullable=False),
        pa.field("finish_reason", pa.string()),
        pa.field("completion_tokens", pa.int32()),
        # of those tokens, how many up to the first closing thought marker and up to the graded answer's
        # end (distill.eval.positions); null without a close, without an answer, or without a tokenizer
        pa.field("think_end_token", pa.int32()),
        pa.field("answer_end_token", pa.int32()),
        pa.field("reason", pa.string()),  # why not correct: wrong_answer, no_answer, unfinished, timeout, ...
        pa.field("grading", pa.string()),  # the policy that judged it: strict | lenient (null: written before policies)
        # samples imported from another tool (`distill eval --import`): its own verdict and parsed answer;
        # null for samples this project drew
        pa.field("foreign_correct", pa.bool_()),
        pa.field("foreign_extracted", pa.string()),
    ]
)


def content_id(*parts: str) -> str:
    """Stable 16-hex id from content, e.g. `content_id(source, prompt)` for a problem."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def to_json(value: Any) -> str | None:
    """Canonical JSON for the JSON-in-a-string columns (sorted keys, so hashes are stable)."""
    return None if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def to_table(rows: Iterable[dict], schema: pa.Schema) -> pa.Table:
    """Rows to a table of exactly `schema`; extra keys are dropped, a missing non-null field is an error."""
    rows = list(rows)
    columns = {}
    for field in schema:
        values = [r.get(field.name) for r in rows]
        if not field.nullable:
            for i, v in enumerate(values):
                if v is None:
                    raise DistillError(f"row {i + 1}: field '{field.name}' is required but missing")
        columns[field.name] = values
    return pa.Table.from_pydict(columns, schema=schema)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select and cast `table` to `schema`'s columns, in order; missing nullable columns become null."""
    cols = []
    for field in schema:
        if field.name in table.column_names:
            cols.append(table.column(field.name).cast(field.type))
        elif field.nullable:
            cols.append(pa.nulls(table.num_rows, field.type))
        else:
            raise DistillError(f"column '{field.name}' is required but missing")
    return pa.Table.from_arrays(cols, schema=schema)
