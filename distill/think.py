"""The reasoning block of an R1-style completion, `<think>reasoning</think>response`, and the one place
that splits it.

A completion is split at its FIRST `</think>`: that is where the model closed its reasoning, what a chat
front-end and vLLM's R1 reasoning parser show as the answer, and what SFT trains as the reply. A second
`</think>` is a format fault (the filter's think-tag check rejects the trace); it stays inside the
response, so an answer written after it is still read from the response's end.
"""

from __future__ import annotations

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def partition_think(completion: str) -> tuple[str, str | None]:
    """(text before the first `</think>`, text after it); (completion, None) when the block never closes."""
    before, sep, after = completion.partition(THINK_CLOSE)
    return (before, after) if sep else (completion, None)


def split_think(completion: str) -> tuple[str | None, str | None]:
    """(reasoning, response) of a `<think>...</think>answer` completion; (None, None) if the tags are broken."""
    before, after = partition_think(completion)
    head = before.lstrip()
    if after is None or not head.startswith(THINK_OPEN):
        return None, None
    return head[len(THINK_OPEN):].strip("\n"), after.strip()
