"""R1 prompts and the split of a completion into reasoning and response.

Usage advice from the DeepSeek-R1 card: no system prompt; for math append the boxed-answer
instruction; force the response to start with "<think>\\n".
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from distill.errors import DistillError
from distill.think import THINK_CLOSE, THINK_OPEN

THINK_PREFIX = "<think>\n"
# An empty think block: how a non-reasoning sample starts (R1's replies without a chain of thought, a
# teacher with thinking off), so students see the same turn shape with or without reasoning.
NO_THINK_PREFIX = "<think>\n\n</think>\n\n"
MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

# name -> per-domain suffix appended to the problem text; "plain" sends the problem as it is.
TEMPLATES: dict[str, dict[str, str]] = {
    "r1": {"math": "\n" + MATH_INSTRUCTION, "science": "\n" + MATH_INSTRUCTION},
    "plain": {},
}


def known_template(name: str) -> str:
    """Config validator: a prompt template name must be one of TEMPLATES."""
    if name not in TEMPLATES:
        raise ValueError(f"'{name}' is not one of {sorted(TEMPLATES)}")
    return name


TemplateName = Annotated[str, AfterValidator(known_template)]


def user_prompt(problem: str, domain: str, template: str = "r1") -> str:
    return problem + TEMPLATES[template].get(domain, "")


def messages_for(problem: str, domain: str, template: str = "r1") -> list[dict]:
    return [{"role": "user", "content": user_prompt(problem, domain, template)}]


def render_chat(tokenizer, messages: list[dict], prefix: str = "") -> str:
    """The model's chat template with the assistant turn opened, then the forced `prefix`.

    Some templates (DeepSeek-R1's own, since 2025-05) already open the turn with "<think>\\n"; the prefix
    is then not written twice.
    """
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if prefix and text.rstrip().endswith(prefix.rstrip()):
        return text[: len(text.rstrip()) - len(prefix.rstrip())] + prefix
    return text + prefix


ROUND_TRIP_PROBE = "What is 2 + 2?\nReason step by step, then answer."


def check_round_trip(tokenizer, model: str) -> None:
    """Refuse a tokenizer that does not give back the text it encodes: every prompt, trace and score would be of
    another text. transformers 5.x loads a byte-level tokenizer.json whose tokenizer_config.json names
    LlamaTokenizerFast beside a Llama config.json so (the pre-tokenizer is replaced: spaces and newlines vanish),
    e.g. DeepSeek-R1-Distill-Llama's (huggingface/transformers#47017), and so does vLLM, which loads tokenizers
    through transformers. R1/V3 themselves load correctly: their model_type deepseek_v3 is routed to the byte-level
    backend."""
    back = tokenizer.decode(tokenizer.encode(ROUND_TRIP_PROBE, add_special_tokens=False))
    if back == ROUND_TRIP_PROBE:
        return
    hint = ""
    if "LlamaTokenizer" in type(tokenizer).__name__:
        hint = ("; a byte-level tokenizer.json under tokenizer_class LlamaTokenizerFast beside a Llama config (e.g. "
                "DeepSeek-R1-Distill-Llama, huggingface/transformers#47017): set \"tokenizer_class\": \"PreTrainedTokenizerFast\" "
                "in its tokenizer_config.json")
    raise DistillError(f"{model}: its tokenizer ({type(tokenizer).__name__}) does not give back the text it encodes "
                       f"({ROUND_TRIP_PROBE!r} -> {back!r}){hint}")
