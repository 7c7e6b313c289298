"""After training: does the student close its thought? A greedy generation on a few training prompts.

The loss can look healthy while the student never writes `</think>` (it learned the reasoning and
not the format): eval would then count every sample unfinished, hours later. Five prompts it was
trained on, generated as eval prompts them (the chat template, then the forced "<think>\\n"), show it
at once; `sft` warns loudly when too few close their thought.
"""

from __future__ import annotations

import logging

from distill.generate.prompting import THINK_CLOSE, THINK_PREFIX, render_chat
from distill.sft.check import is_reasoning

log = logging.getLogger(__name__)

PROMPTS = 5
LOW_SHARE = 0.6  # below this share of closed thoughts, `sft` warns


def smoke_generate(model, tokenizer, conversations: list[list[dict]], max_new_tokens: int) -> dict:
    """Share of up to PROMPTS reasoning training prompts whose greedy continuation closes its thought, and one sample."""
    import torch

    picked = [c[:-1] for c in conversations if is_reasoning(c[-1]["content"])][:PROMPTS]
    if not picked:
        return {"prompts": 0}
    was_training = model.training
    model.eval()
    replies = []
    with torch.no_grad():  # one prompt at a time: no padding (Llama-3's tokenizer has no pad token)
        for messages in picked:
            ids = tokenizer(render_chat(tokenizer, messages, THINK_PREFIX), return_tensors="pt", add_special_tokens=False).to(model.device)
            out = model.generate(
                **ids, max_new_tokens=max_new_tokens, do_sample=False,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id,
            )
            replies.append(tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
    model.train(was_training)
    closed = sum(THINK_CLOSE in r for r in replies)
    return {"prompts": len(replies), "closed_thought": closed, "closed_share": round(closed / len(replies), 2), "sample": THINK_PREFIX + replies[0]}


def warn_if_low(smoke: dict, where: str) -> None:
    if smoke.get("prompts") and smoke["closed_share"] < LOW_SHARE:
        log.warning(
            "!!! %s: only %d/%d training prompts close their thought with %s after training: eval will count the rest "
            "unfinished. Check the start (check.json: start.close_logp), train longer or with a higher learning rate. "
            "Sample: %r",
            where, smoke["closed_thought"], smoke["prompts"], THINK_CLOSE, smoke["sample"][-300:],
        )
