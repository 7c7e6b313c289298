"""A small byte-level BPE tokenizer for the toy world, with a Qwen2.5 or Llama-3 family's special tokens.

Like the real families it is byte-level (any text encodes, Chinese from the teacher's language switch
included) and, like Qwen2, it splits digits one by one so column arithmetic is learnable. Its words stay
apart as in GPT-2 and Qwen2 (no token spans two words): transformers 5 loads a qwen2 model
directory's tokenizer as Qwen2Tokenizer, which keeps these merges but rebuilds Qwen2's own pre-tokenizer
over them, so a toy pre-tokenizer that merged across words (~0.63x the tokens of a trace) would be trained
one way and used another (a test loads both). Its merges are trained on toy-teacher traces of all three
domains: ~2.4 tokens per word on additions (one per digit), ~1.8 on programs and ~2.1 on greetings,
instead of ~5 bytes. `<think>` and `</think>` are added as non-special tokens: one id each, and
`decode(skip_special_tokens=True)` keeps them, as in the DeepSeek-R1 distilled models.
"""

from __future__ import annotations

import random
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from distill.generate.prompting import MATH_INSTRUCTION
from distill.think import THINK_CLOSE, THINK_OPEN
from distill.toy.tasks import arith_space, make_chat_problems, make_code_problems, prompt_for, task_of
from distill.toy.teacher import ToyTeacherConfig, write_trace

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"

# Per family: (special tokens in id order, bos, eos = the end-of-turn token, pad, chat template file).
FAMILIES = {
    "qwen2": (["<|endoftext|>", "<|im_start|>", "<|im_end|>"], None, "<|im_end|>", "<|endoftext|>", "qwen2.jinja"),
    "llama3": (
        ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|finetune_right_pad_id|>"],
        "<|begin_of_text|>",
        "<|eot_id|>",
        "<|finetune_right_pad_id|>",
        "llama3.jinja",
    ),
}
VOCAB_SIZE = 512  # 256 bytes + specials + ~240 merges: the teacher's words, operators and code become single tokens
CORPUS_TRACES = 3000


def toy_corpus(n: int = CORPUS_TRACES, seed: int = 0) -> list[str]:
    """Prompts and teacher traces of every toy domain the teacher writes, in the demo's proportions.

    Two thirds arithmetic (every op and size), a sixth code, a sixth greetings, every mistake type included
    (so Chinese too), and the no-think replies of answer-only students: merges trained on arithmetic
    alone left code at ~3 and greetings at ~4 tokens per word. Problems come from the whole space, not
    a split: the corpus only shapes merges, and skipping the split hashing keeps the build cheap.
    """
    rng = random.Random(seed)
    texts = ["system", "user", "assistant", MATH_INSTRUCTION]
    prompts = []
    for ops in (("+",), ("-",), ("*",)):
        for digits in (2, 3):
            prompts += [prompt_for(*p) for p in rng.sample(arith_space(ops, digits), n // 9)]
    prompts += [p["prompt"] for p in make_code_problems(n // 6, seed=seed)]
    prompts += [p["prompt"] for p in make_chat_problems(n // 6, seed=seed)]
    cfg = ToyTeacherConfig()
    for i, prompt in enumerate(prompts):
        user = prompt + "\n" + MATH_INSTRUCTION if task_of(prompt) == "arith" else prompt
        texts.append(user)
        texts.append(write_trace(prompt, rng, cfg, max_tokens=512, thinking=i % 4 != 0)[0])  # a quarter answer-only
    return texts


def build_tokenizer(out_dir: Path, family: str = "qwen2") -> PreTrainedTokenizerFast:
    """Train the toy BPE, attach the family's special tokens and chat template, save it to `out_dir`."""
    if family not in FAMILIES:
        raise ValueError(f"toy tokenizer family must be one of {sorted(FAMILIES)}, got {family!r}")
    specials, bos, eos, pad, template = FAMILIES[family]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            # One token per newline, never merged: a prompt ending in "<think>\n" then tokenizes as the
            # same prefix as the trained "<think>\n\n</think>" (no token straddles the boundary).
            pre_tokenizers.Split("\n", behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Mask the think tags out of the corpus: they become added tokens below, not merges.
    corpus = [t.replace(THINK_OPEN, "").replace(THINK_CLOSE, "") for t in toy_corpus()]
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.add_tokens([AddedToken(THINK_OPEN, special=False, normalized=False), AddedToken(THINK_CLOSE, special=False, normalized=False)])

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        additional_special_tokens=[s for s in specials if s not in (bos, eos, pad)],
        model_max_length=4096,
        add_bos_token=False,  # the chat template writes the BOS itself (Llama-3)
    )
    fast.chat_template = (TEMPLATES_DIR / template).read_text(encoding="utf-8")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    return fast
