"""The reasoning block of an R1-style completion, `<think>reasoning</think>response`, and the one place
that splits it.

A completion is split at its FIRST `</think>`: that is where the model closed its reasoning, what a chat
front-end and vLLM's R1 reasoning parser show as the answer, and what SFT trains as the reply. A second
`</think>` is a format fault (the filter's think-tag check rejects the trace); it stays inside the
response, so an answer written after it is still read from the response's end.
"""

from __future__ import annotations

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"

# The thought markers graders recognise: R1 and Qwen3's first; then SkyThought, Bespoke and OpenThoughts';
# then two that other tools' dumps use. Imports can name others (`distill eval --import --thought-markers`).
THOUGHT_MARKERS = (
    (THINK_OPEN, THINK_CLOSE),
    ("<|begin_of_thought|>", "<|end_of_thought|>"),
    ("<thinking>", "</thinking>"),
    ("<reasoning>", "</reasoning>"),
)


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


def thought_end(completion: str) -> int | None:
    """Character offset just after the first closing thought marker (of any family above), None when there is none:
    the same first-close rule as `partition_think`."""
    ends = [at + len(close) for _, close in THOUGHT_MARKERS if (at := completion.find(close)) >= 0]
    return min(ends) if ends else None
