"""The SFT conversations from a curated stage: kept rows only, in the reasoning or answer-only view."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc

from distill.errors import DistillError, where
from distill.generate.prompting import split_think
from distill.io import read_parquet
from distill.stage import StageDir

# The answer-only control keeps R1's output shape with an empty reasoning block, as R1 itself writes
# when it skips thinking, so both students see the same template and stop token.
EMPTY_THINK = "<think>\n\n</think>\n\n"


def load_conversations(inp: Path, data_format: str) -> tuple[list[list[dict]], dict]:
    """(conversations, counts) from every finished part of curated stage `inp`."""
    stage = StageDir(inp)
    if stage.done_shards():
        stage.require_complete("filter")
    parts = stage.parts()
    if not parts:
        raise DistillError(f"{inp}: no finished curated parts (run `distill filter` into it first)")
    conversations, rows_in = [], 0
    for path in parts:
        table = read_parquet(path)
        rows_in += table.num_rows
        if "messages" not in table.column_names:
            raise DistillError(f"{where(path, field='messages')}: column missing (is this a curated stage?)")
        if "reject_reason" in table.column_names:
            table = table.filter(pc.is_null(table["reject_reason"]))
        for row, messages in enumerate(table.column("messages").to_pylist(), start=1):
            if not messages or messages[-1].get("role") != "assistant" or not messages[-1].get("content"):
                raise DistillError(f"{where(path, row, 'messages')}: a kept row must end with a non-empty assistant turn")
            conversations.append(_view(messages, data_format))
    if not conversations:
        raise DistillError(f"{inp}: no kept rows to train on ({rows_in} rows, all rejected)")
    return conversations, {"rows_in": rows_in, "rows_train": len(conversations), "parts": len(parts)}


def _view(messages: list[dict], data_format: str) -> list[dict]:
    messages = [{"role": m["role"], "content": m["content"]} for m in messages]
    if data_format == "answer_only":
        reasoning, response = split_think(messages[-1]["content"])
        answer = response if reasoning is not None else messages[-1]["content"]
        messages[-1]["content"] = EMPTY_THINK + answer
    return messages
