"""The pre-training check: render samples through the student's template and find what would silently
ruin a distillation run while the loss still looks healthy.

- think tags lost: the trained tokens, decoded as eval decodes them, miss a <think>/</think> the trace
  had (a template that strips reasoning from history, or think tags registered as special tokens);
- assistant mask all zero: no token would be trained (no `{% generation %}` in the template);
- end token missing from labels: the model never learns to stop;
- answer missing from labels: the response after </think> is not trained (the student reasons, then stops);
- too long: rows longer than max_length are dropped from training (a truncated trace loses its answer
  and end token and teaches the student not to stop); too large a share of them refuses the run;
- max_length beyond the model's max_position_embeddings: positions the model cannot encode;
- </think> out of reach at the start (`start`, measured on the loaded student by distill.sft.start): the
  student learns the reasoning and then ends its turn where the tag belongs.

It also reports the mix: the share of reasoning samples and of non-reasoning ones (an empty or absent
think block), over all conversations.
"""

from __future__ import annotations

import random
from collections import Counter

from transformers import PreTrainedTokenizerBase

from distill.errors import DistillError
from distill.sft.start import start_problems
from distill.think import THINK_CLOSE, THINK_OPEN, split_think


def render(tokenizer: PreTrainedTokenizerBase, messages: list[dict]) -> tuple[list[int], list[int]]:
    """(input_ids, assistant mask) exactly as trl's SFTTrainer tokenizes a conversation."""
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    return list(out["input_ids"]), list(out["assistant_masks"])


def is_reasoning(reply: str) -> bool:
    """A reply with a non-empty think block; an empty (`<think>\\n\\n</think>`) or absent one is non-reasoning."""
    reasoning, _ = split_think(reply)
    return bool(reasoning and reasoning.strip())


def mix_shares(conversations: list[list[dict]]) -> dict[str, float]:
    kinds = Counter("reasoning" if is_reasoning(c[-1]["content"]) else "nonreasoning" for c in conversations)
    return {k: round(kinds[k] / len(conversations), 4) if conversations else 0.0 for k in ("reasoning", "nonreasoning")}


def check_conversations(
    tokenizer: PreTrainedTokenizerBase, conversations: list[list[dict]], max_length: int, samples: int = 2000, seed: int = 0
) -> dict:
    """Counts of each failure over a seeded sample of conversations, with the first failing example of each."""
    picked = conversations if len(conversations) <= samples else random.Random(seed).sample(conversations, samples)
    eos_id = tokenizer.eos_token_id
    counts = {"think_lost": 0, "mask_all_zero": 0, "eos_missing_from_labels": 0, "answer_missing_from_labels": 0, "too_long": 0}
    examples: dict[str, str] = {}
    lengths = []
    for messages in picked:
        ids, mask = render(tokenizer, messages)
        lengths.append(len(ids))
        trained = [i for i, m in zip(ids, mask) if m]
        assistant = "".join(m["content"] for m in messages if m["role"] == "assistant")
        failures = []
        if not trained:
            failures.append("mask_all_zero")
        elif eos_id not in trained:
            failures.append("eos_missing_from_labels")
        seen = tokenizer.decode(trained or ids, skip_special_tokens=True)
        if any(tag in assistant and tag not in seen for tag in (THINK_OPEN, THINK_CLOSE)):
            failures.append("think_lost")
        _, answer = split_think(messages[-1]["content"])
        if trained and answer and answer not in seen:
            failures.append("answer_missing_from_labels")
        if len(ids) > max_length:
            failures.append("too_long")
        for f in failures:
            counts[f] += 1
            examples.setdefault(f, tokenizer.decode(ids)[-300:])
    n = len(picked)
    think_ids = [tokenizer.convert_tokens_to_ids(t) for t in (THINK_OPEN, THINK_CLOSE)]
    return {
        "samples": n,
        **counts,
        "too_long_share": round(counts["too_long"] / n, 4) if n else 0.0,
        "max_length": max_length,
        "tokens_max": max(lengths, default=0),
        "tokens_mean": round(sum(lengths) / n, 1) if n else 0.0,
        "eos_token": tokenizer.eos_token,
        "think_single_token": all(i is not None and i != tokenizer.unk_token_id for i in think_ids),
        "examples": examples,
        "mix": mix_shares(conversations),
    }


def problems(report: dict, max_too_long_share: float) -> list[str]:
    """Human-readable reasons to refuse training; empty when the setup is sound."""
    n = report["samples"]
    out = []
    if report["think_lost"]:
        out.append(
            f"think tags lost in {report['think_lost']}/{n} samples: the template or tokenizer drops <think>/</think> "
            "(keep the reasoning in the assistant turn; add the tags as non-special tokens)"
        )
    if report["mask_all_zero"]:
        out.append(
            f"assistant mask all zero in {report['mask_all_zero']}/{n} samples: wrap the assistant content in "
            "{% generation %}...{% endgeneration %} in the chat template"
        )
    if report["eos_missing_from_labels"]:
        out.append(
            f"end token {report['eos_token']!r} missing from the labels in {report['eos_missing_from_labels']}/{n} samples: "
            "put the end-of-turn token inside {% generation %}, or set training.eos_token to the template's end-of-turn token"
        )
    if report["too_long_share"] > max_too_long_share:
        out.append(
            f"{report['too_long_share']:.1%} of samples exceed max_length={report['max_length']} tokens and would be dropped "
            f"(longest {report['tokens_max']}; allowed {max_too_long_share:.1%}): raise max_length or filter long traces"
        )
    if report.get("answer_missing_from_labels"):
        out.append(
            f"the answer after {THINK_CLOSE} is missing from the labels in {report['answer_missing_from_labels']}/{n} samples: "
            "keep the whole assistant content inside {% generation %}"
        )
    out += start_problems(report.get("start") or {})
    positions = report.get("max_position_embeddings")
    if positions is not None and report["max_length"] > positions:
        out.append(
            f"max_length={report['max_length']} exceeds the model's max_position_embeddings={positions}: extend the context "
            "in training.model_init_kwargs (max_position_embeddings and rope_parameters; see qwen2.5-math-7b.yaml)"
        )
    return out


def refuse_if_broken(report: dict, max_too_long_share: float, source: str) -> None:
    found = problems(report, max_too_long_share)
    if found:
        raise DistillError(f"{source}: refusing to train: " + "; ".join(found))
