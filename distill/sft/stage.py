"""SFT of one student on the curated traces with TRL's SFTTrainer: full or LoRA, resumable, one process or many.

Output directory (04_sft/<student>/):
  config.json       the student config and its hash; a rerun with another config refuses
  base/             toy students only: the random-init model and tokenizer built from config
  check.json        the pre-training check's report
  checkpoints/      trainer checkpoints; a rerun resumes from the last one
  metrics.jsonl     loss, tokens seen and tokens/s per logging step
  model/            the final model + tokenizer (LoRA merged in) with its model card README.md
  adapter/          LoRA only: the adapter alone
  summary.json      counters for the report
  done              written last: its existence means the student is finished
Under `accelerate launch` every process runs this function; only the main process writes files.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

from distill.generate.prompting import THINK_CLOSE, THINK_OPEN
from distill.io import write_json, write_text
from distill.sft.card import model_card
from distill.sft.check import check_conversations, problems, refuse_if_broken
from distill.sft.config import StudentConfig, sft_config
from distill.sft.data import load_conversations
from distill.sft.metrics import MetricsFile
from distill.stage import StageDir

log = logging.getLogger(__name__)


def run(cfg: StudentConfig, inp: Path, out: Path, *, check_only: bool = False, threads: int | None = None) -> dict:
    """Check, then train student `cfg` on curated stage `inp` into `out`; returns the summary (or the check report)."""
    import torch
    from accelerate import PartialState

    inp, out = Path(inp), Path(out)
    if threads:
        torch.set_num_threads(threads)
    state = PartialState(cpu=not torch.cuda.is_available())
    if not check_only:
        StageDir(out).prepare({**cfg.model_dump(mode="json"), "input_config": StageDir(inp).config_hash()})
        if (out / "done").exists():
            log.info("%s: already trained, nothing to do", out)
            return json.loads((out / "summary.json").read_text())

    conversations, counts = load_conversations(inp, cfg.data_format)
    with state.main_process_first():
        model_path = resolve_model(cfg.model, out)
    tokenizer, added = load_tokenizer(model_path, cfg)
    report = check_conversations(tokenizer, conversations, cfg.max_length, cfg.check_samples)
    if state.is_main_process:
        write_json(out / "check.json", {**report, "problems": problems(report, cfg.max_truncated_share)})
    if check_only:
        return report
    refuse_if_broken(report, cfg.max_truncated_share, str(out / "check.json"))

    with redirect_stdout(sys.stderr):  # the Trainer's progress bar writes its log lines to stdout
        summary = train(cfg, conversations, model_path, tokenizer, added, out)
    summary = {"student": cfg.name, "data_format": cfg.data_format, **counts, **summary}
    if state.is_main_process:
        write_text(out / "model" / "README.md", model_card(cfg, inp, model_path, summary, report))
        write_json(out / "summary.json", summary)
        write_text(out / "done", "")
    state.wait_for_everyone()
    return summary


def resolve_model(name: str, out: Path) -> str:
    """A `toy:*` name builds its random-init student once into out/base; anything else goes to from_pretrained."""
    from distill.toy.students import build_student, parse_toy_name

    toy = parse_toy_name(name)
    if toy is None:
        return name
    base = out / "base"
    if not base.exists():
        tmp = out / f".base-tmp-{os.getpid()}"
        build_student(toy[0], tmp, size=toy[1])
        os.replace(tmp, base)  # a killed build leaves only a tmp dir behind
    return str(base)


def load_tokenizer(model_path: str, cfg: StudentConfig):
    """The student's tokenizer with the training template, think tags as single non-special tokens, and the eos
    the template ends a turn with. Returns (tokenizer, think tokens that had to be added)."""
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tokenizer.chat_template = cfg.template_path().read_text(encoding="utf-8")
    vocab = tokenizer.get_vocab()
    added = [t for t in (THINK_OPEN, THINK_CLOSE) if t not in vocab]
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in added])
    if cfg.training.get("eos_token"):
        tokenizer.eos_token = cfg.training["eos_token"]
    return tokenizer, added


def train(cfg: StudentConfig, conversations: list[list[dict]], model_path: str, tokenizer, added: list[str], out: Path) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from transformers.trainer_utils import get_last_checkpoint
    from trl import SFTTrainer

    ckpt_dir = out / "checkpoints"
    args = sft_config(cfg.training, ckpt_dir, max_length=cfg.max_length, assistant_only_loss=True)
    # The model is loaded here, not by the trainer, to resize it for added think tokens first.
    model = AutoModelForCausalLM.from_pretrained(model_path, **{"dtype": "auto", **(args.model_init_kwargs or {})})
    args.model_init_kwargs = None
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    metrics = MetricsFile(out / "metrics.jsonl")
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list([{"messages": m} for m in conversations]),
        processing_class=tokenizer,
        peft_config=lora_config(cfg, tokenizer, added),
        callbacks=[metrics],
    )
    # The Trainer's tqdm bar and its printed dict per logging step: MetricsFile logs one line instead.
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    last = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
    if last:
        log.info("%s: resuming from %s", out, last)
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - start
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)

    model_dir = out / "model"
    if cfg.lora:
        if trainer.is_world_process_zero():
            trainer.model.save_pretrained(out / "adapter")
            # Merged weights, so eval (vLLM included) loads the student like any other model.
            _save_atomically(trainer.model.merge_and_unload(), tokenizer, model_dir)
    else:
        trainer.save_model(str(model_dir))
        if trainer.is_world_process_zero():
            tokenizer.save_pretrained(model_dir)
    state = trainer.state
    return {
        "steps": state.global_step,
        "processes": trainer.accelerator.num_processes,
        "resumed_from": Path(last).name if last else None,
        "train_loss": result.training_loss,
        "final_loss": next((h["loss"] for h in reversed(state.log_history) if "loss" in h), None),
        "tokens_seen": int(state.num_input_tokens_seen),
        "train_seconds": round(seconds, 1),
        "tokens_per_s": round((state.num_input_tokens_seen - metrics.start_tokens) / seconds, 1),  # this run's share
        "trainable_params": trainable,
        "model": str(model_dir),
    }


def lora_config(cfg: StudentConfig, tokenizer, added: list[str]):
    if cfg.lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        task_type="CAUSAL_LM",
        # New think tokens start random: train their embedding rows too, or the student cannot write them.
        trainable_token_indices=tokenizer.convert_tokens_to_ids(added) if added else None,
    )


def _save_atomically(model, tokenizer, model_dir: Path) -> None:
    tmp = model_dir.with_name(f".{model_dir.name}-tmp-{os.getpid()}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if model_dir.exists():
        shutil.rmtree(model_dir)
    os.replace(tmp, model_dir)

