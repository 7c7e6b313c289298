"""The exact text a model saw, for the trace browser: template bugs are the commonest distillation bug, and
they only show in the rendered text, not in the problem.

- eval: the problem through the model's chat template with the forced prefix, rendered by the function the
  generate backends use (`render_chat`), from the protocol the eval recorded;
- sft: a curated conversation through the student's saved tokenizer and template, by the function training
  tokenizes with (`sft.check.render`), cut into runs of supervised (in the loss) and unsupervised tokens.
"""

from __future__ import annotations

import logging
from pathlib import Path

from distill.eval.stage import request_messages
from distill.generate.prompting import TEMPLATES, render_chat
from distill.sft.check import render
from distill.sft.data import answer_only

log = logging.getLogger(__name__)

# Backends that render the chat template here; the others (an API, the toy teacher) receive the messages.
TEMPLATED_BACKENDS = ("transformers", "vllm")


def load_tokenizer(path: str | Path):
    """The tokenizer (with its chat template) saved at `path` or cached for a hub id; None, logged, when it
    cannot be loaded here (an uncached hub id offline): the browser then shows the messages."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path))
    except Exception as e:  # offline, gated, no tokenizer files: the report still builds
        log.warning("tokenizer of %s not loadable here (%s: %s); the trace browser shows its messages instead", path, type(e).__name__, e)
        return None


def messages_text(messages: list[dict]) -> str:
    """Chat messages as sent to an endpoint that applies its own template."""
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)


def eval_prompt(tokenizer, problem: dict, proto: dict) -> str | None:
    """What an eval model was given for `problem` under `proto`: the rendered prompt when `tokenizer` is
    the model's, otherwise the messages (and the forced prefix); None for samples another tool made with a
    prompt of its own (an import records its template as unknown)."""
    if proto.get("template") not in TEMPLATES:
        return None
    messages = request_messages(problem, proto)
    if tokenizer is None:
        prefix = f"\n\n[assistant, forced prefix]\n{proto['prefix']}" if proto.get("prefix") else ""
        return messages_text(messages) + prefix
    return render_chat(tokenizer, messages, proto.get("prefix") or "")


def sft_segments(tokenizer, messages: list[dict], data_format: str) -> list[list]:
    """[[text, 1 if in the loss else 0], ...]: one training row as the student sees it, consecutive tokens of
    the same kind decoded together (special tokens kept)."""
    if data_format == "answer_only":
        messages = answer_only(messages)["messages"]
    ids, mask = render(tokenizer, messages)
    segments, start = [], 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or bool(mask[i]) != bool(mask[start]):
            segments.append([tokenizer.decode(ids[start:i], skip_special_tokens=False), 1 if mask[start] else 0])
            start = i
    return segments
