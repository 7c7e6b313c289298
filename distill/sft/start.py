"""The student at step 0: where <think>/</think> start, and whether it can reach `</think>` at all.

A tag added to the vocabulary (or a reserved row renamed to it) has a row the model never trained.
transformers' resize gives new rows the embeddings' mean; with tied embeddings that row is also the
output row, and the mean scores like an average token: SmolLM2-135M-Instruct gave `</think>` a
log-probability of -17.6 where the toy traces close their thought, against -2.7 for its end-of-turn
token. A short fine-tune (100 steps, lr 1e-4) does not lift one row that far, so the student learned
the reasoning and then ended its turn where `</think>` belongs (0% finished samples).

So the close tag starts as the end-of-turn token's row: it ends a segment as that token ends a turn,
so the model that wants to stop after its reasoning gives the tag the same chance (training then only
separates the two). The open tag, always forced as the reply's prefix and only read, starts as the
mean of the rows of its own spelling (`<`, `think`, `>`). The start check measures the result on the
student itself, before training.
"""

from __future__ import annotations

import logging

from distill.generate.prompting import THINK_CLOSE, THINK_OPEN

log = logging.getLogger(__name__)

# The close tag counts as out of reach when, where it belongs, it scores this many nats (~150x) below the
# end token: the student then stops there. Relative, since a random-init student scores every token alike.
UNREACHABLE_GAP = 5.0


def init_tag_rows(model, tokenizer, spelling_tokenizer, tag_ids: dict[str, int]) -> dict[str, list[int]]:
    """Set each untrained tag row (input, and output if untied): `</think>` from the end token's row, `<think>` from
    the mean of its spelling's rows in `spelling_tokenizer` (the model's own tokenizer); returns tag -> source ids."""
    import torch

    rows = [model.get_input_embeddings().weight]
    out = model.get_output_embeddings()
    if out is not None and out.weight.data_ptr() != rows[0].data_ptr():
        rows.append(out.weight)
    if any(hasattr(w, "ds_shape") for w in rows):  # ZeRO-3 partitions the rows before they can be set here
        log.warning("think tag rows left as resized: the embeddings are ZeRO-3 partitioned")
        return {}
    sources = {}
    for tag, row in tag_ids.items():
        ids = [tokenizer.eos_token_id] if tag == THINK_CLOSE else spelling_tokenizer.encode(tag, add_special_tokens=False)
        if ids and row not in ids:
            sources[tag] = ids
    with torch.no_grad():
        for tag, ids in sources.items():
            for w in rows:
                w[tag_ids[tag]] = w[ids].mean(0)
    return sources


def untrained_tag_ids(tokenizer, base_vocab: dict[str, int]) -> dict[str, int]:
    """tag -> id for the think tags that were not in the model's own vocabulary under their own name."""
    return {t: tokenizer.convert_tokens_to_ids(t) for t in (THINK_OPEN, THINK_CLOSE) if t not in base_vocab}


def close_tag_start(model, tokenizer, rendered: list[list[int]]) -> dict:
    """Mean log-probability of `</think>` (its first token) and of the end token, where the close tag stands
    in the rendered training rows, on the student as training will start."""
    import torch

    close = tokenizer.encode(THINK_CLOSE, add_special_tokens=False)
    eos = tokenizer.eos_token_id
    close_lp, eos_lp = [], []
    model.eval()
    with torch.no_grad():
        for ids in rendered:
            at = [i for i in range(1, len(ids)) if ids[i : i + len(close)] == close]
            if not at:
                continue
            ids = ids[: at[-1]]  # the prefix that predicts the last close tag is all the forward needs
            logits = model(torch.tensor([ids], device=model.device)).logits[0]
            logp = logits[[i - 1 for i in at]].float().log_softmax(-1)  # only the rows that predict a close tag
            close_lp += logp[:, close[0]].tolist()
            eos_lp += logp[:, eos].tolist()
    model.train()
    if not close_lp:
        return {"rows": 0}
    mean = lambda xs: round(sum(xs) / len(xs), 2)  # noqa: E731
    return {"rows": len(close_lp), "close_logp": mean(close_lp), "eos_logp_there": mean(eos_lp)}


def start_problems(start: dict) -> list[str]:
    if start.get("rows") and start["close_logp"] < start["eos_logp_there"] - UNREACHABLE_GAP:
        return [
            f"{THINK_CLOSE} starts out of reach: mean log-probability {start['close_logp']} where the traces close their "
            f"thought (the end token scores {start['eos_logp_there']} there), so the student would learn the reasoning and "
            "then stop instead of closing it: initialise the tag rows from their spelling (distill.sft.start.init_tag_rows)"
        ]
    return []
