"""Where in a sample's tokens its thought closes and its graded answer ends (EVAL_SAMPLE `think_end_token`,
`answer_end_token`): how long the model thought, and how many tokens it needed to state its answer.

Both count the tokens `completion_tokens` counts (vLLM's leave out the forced `<think>\\n` prefix, the toy
teacher's keep it): a position is `completion_tokens` less the tokens of the text after it, counted
with the model's tokenizer. The answer's end is the end of the text strict grading reads the answer from:
the response's last `\\boxed{}`, else its last code block (as the code verifier reads one), else the
response itself. Neither depends on the verdict, so a rescore leaves them as they are.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Callable

from distill.think import THOUGHT_MARKERS, thought_end
from distill.verify.choice import boxed_spans
from distill.verify.code_sandbox import FENCE

log = logging.getLogger(__name__)

Counter = Callable[[str], int]


def tokenizer_counter(tokenizer: str) -> Counter:
    """Text -> its token count under a tokenizer (a local path or hub id); raises what transformers raises."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer)
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


@functools.lru_cache(maxsize=4)
def sample_counter(backend: str, model: str) -> Counter | None:
    """The token counter of a model's samples: the toy teacher's, else the model's tokenizer (an API's model
    only when its tokenizer lies in a local directory); None, with a warning, when none loads here."""
    if backend == "toy":
        from distill.toy.teacher import count_tokens

        return count_tokens
    if backend == "openai" and not Path(model).is_dir():
        return None
    try:
        return tokenizer_counter(model)
    except Exception as e:  # no tokenizer files, hub unreachable: the positions stay null
        log.warning("model '%s': tokenizer not loadable here (%s); think_end_token and answer_end_token left null", model, type(e).__name__)
        return None


def answer_end(completion: str, finish_reason: str | None) -> int | None:
    """Character offset where the graded answer ends (see the module doc); None when the sample was cut or
    its thought never closed (no response to read an answer from)."""
    if finish_reason == "length":
        return None
    start = thought_end(completion)
    if start is None and completion.lstrip().startswith(tuple(open_ for open_, _ in THOUGHT_MARKERS)):
        return None  # a thought opened and never closed
    start = start or 0
    response = completion[start:]
    if boxes := boxed_spans(response):
        return start + min(boxes[-1][1] + 1, len(response))
    if fences := list(FENCE.finditer(response)):
        return start + fences[-1].end()
    return start + len(response.rstrip())


def token_positions(completion: str, completion_tokens: int | None, finish_reason: str | None, count: Counter | None) -> dict:
    """{"think_end_token", "answer_end_token"}: tokens up to and including the first closing thought marker,
    and up to the graded answer's end; null where there is none or nothing to count with."""
    if count is None or completion_tokens is None:
        return {"think_end_token": None, "answer_end_token": None}

    def at(char: int | None) -> int | None:
        return None if char is None else max(0, completion_tokens - count(completion[char:]))

    return {"think_end_token": at(thought_end(completion)), "answer_end_token": at(answer_end(completion, finish_reason))}
