"""On-policy distillation of one student with TRL's DistillationTrainer: resumable, one process or many.

Output directory (04_kd/<name>/), laid out like an sft student's:
  config.json       the kd config (student and teacher as given, e.g. sft:<student>) and the prompt stage's hash
  checkpoints/      trainer checkpoints; a rerun resumes from the last one
  metrics.jsonl     per logging step: divergence, sampled length, tokens; per evaluation: KL to the teacher,
                    held-out accuracy and sampled length
  model/            the distilled student + tokenizer, with its model card README.md
  summary.json      steps, compute (tokens sampled, tokens trained, wall time), first and last held-out metrics
  done              written last
The matched-compute control (`sft_control`) is an sft student directory, 04_kd/<name>-sft-control/.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

from distill.errors import DistillError
from distill.generate.prompting import check_round_trip
from distill.io import write_json, write_text
from distill.kd.card import model_card
from distill.kd.check import same_tokenizer
from distill.kd.config import KDConfig, distillation_config
from distill.kd.data import load_prompts
from distill.sft.config import StudentConfig
from distill.sft.stage import embedding_rows, require_gpu_packages
from distill.stage import StageDir

log = logging.getLogger(__name__)

SFT_REF = "sft:"


def resolve(ref: str, sft_dir: Path | None) -> str:
    """`sft:<student>` -> that student's trained model in `sft_dir`; anything else is a path or hub id."""
    if not ref.startswith(SFT_REF):
        return ref
    if sft_dir is None:
        raise DistillError(f"{ref}: sft:<student> names a student of a pipeline run; give a model path to `distill kd`")
    student = Path(sft_dir) / ref.removeprefix(SFT_REF)
    if not (student / "done").exists():
        raise DistillError(f"{ref}: student has not finished training in {student}")
    return str(student / "model")


def run(cfg: KDConfig, inp: Path, out: Path, *, sft_dir: Path | None = None, threads: int | None = None) -> dict:
    """Distil teacher into student on the prompts of stage `inp`, into `out`; returns the summary."""
    import torch
    from accelerate import PartialState
    from transformers import AutoTokenizer

    try:
        cfg.check_training()
    except ValueError as e:
        raise DistillError(f"kd run '{cfg.name}': {e}") from None
    require_gpu_packages(f"kd run '{cfg.name}'", cfg.training)
    inp, out = Path(inp), Path(out)
    if threads:
        torch.set_num_threads(threads)
    # The trainer's own config sets up the process group (its backend, its ddp_timeout); PartialState reuses it.
    args = distillation_config(cfg, out / "checkpoints")
    state = PartialState(cpu=not torch.cuda.is_available())
    student, teacher = resolve(cfg.student, sft_dir), resolve(cfg.teacher, sft_dir)
    tokenizer, teacher_tokenizer = AutoTokenizer.from_pretrained(student), AutoTokenizer.from_pretrained(teacher)
    check_round_trip(tokenizer, student)
    same_tokenizer(tokenizer, teacher_tokenizer, student, teacher)
    StageDir(out).prepare({**cfg.model_dump(mode="json"), "input_config": StageDir(inp).config_hash()})
    if (out / "done").exists():
        log.info("%s: already distilled, nothing to do", out)
        return json.loads((out / "summary.json").read_text())
    train_rows, heldout = load_prompts(inp, cfg.heldout, cfg.prompt_template)

    with redirect_stdout(sys.stderr):  # the Trainer's progress bar writes its log lines to stdout
        summary = train(cfg, args, train_rows, heldout, student, teacher, tokenizer, out)
    summary = {"name": cfg.name, "student": cfg.student, "teacher": cfg.teacher, "prompts": len(train_rows), "heldout": len(heldout), **summary}
    if state.is_main_process:
        write_text(out / "model" / "README.md", model_card(cfg, inp, student, teacher, summary))
        write_json(out / "summary.json", summary)
        write_text(out / "done", "")
    state.wait_for_everyone()
    return summary


def train(cfg: KDConfig, args, rows: list[dict], heldout: list[dict], student: str, teacher: str, tokenizer, out: Path) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from transformers.trainer_utils import get_last_checkpoint

    from distill.kd.trainer import KDMetricsFile, Ledger, OnPolicyDistillationTrainer
    from distill.sft.metrics import log_instead_of_printing

    ckpt_dir = Path(args.output_dir)
    model = AutoModelForCausalLM.from_pretrained(student, **{"dtype": "auto", **(args.model_init_kwargs or {})})
    args.model_init_kwargs = None
    teacher_model = AutoModelForCausalLM.from_pretrained(teacher, **{"dtype": "auto", **(args.teacher_model_init_kwargs or {})})
    args.teacher_model_init_kwargs = None
    # One tokenizer, but checkpoints may pad the embedding matrix differently (Qwen2.5: 1.5B 151,936 rows, 32B
    # 152,064); the rows past the tokenizer are never sampled, so the student is padded to the teacher's size.
    rows_s, rows_t = embedding_rows(model), embedding_rows(teacher_model)
    if rows_s != rows_t:
        if rows_s > rows_t or cfg.generation != "transformers":  # vLLM would load the unpadded checkpoint
            raise DistillError(f"{student}: {rows_s} embedding rows, the teacher {teacher} has {rows_t}; pad the student's "
                               "checkpoint to the teacher's size (resize_token_embeddings) or use generation: transformers")
        model.resize_token_embeddings(rows_t)
    metrics = KDMetricsFile(out / "metrics.jsonl")
    trainer = OnPolicyDistillationTrainer(
        model=model,
        teacher_model=teacher_model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        eval_dataset=Dataset.from_list(heldout) if heldout else None,
        processing_class=tokenizer,
        callbacks=[metrics, Ledger(budget_tokens=cfg.budget_tokens)],
    )
    log_instead_of_printing(trainer)
    last = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
    if last:
        log.info("%s: resuming from %s", out, last)
    elif heldout:
        trainer.evaluate()  # step 0: where the SFT student starts
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    session = time.perf_counter() - start
    st = trainer.state
    if heldout and not any(h.get("step") == st.global_step and "eval_loss" in h for h in st.log_history):
        trainer.evaluate()  # the final student, unless the last step was just evaluated
    trainer.save_model(str(out / "model"))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(out / "model")
    ledger = trainer.ledger()
    held = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["split"] == "heldout"] if heldout else []
    return {
        "steps": st.global_step,
        "processes": trainer.accelerator.num_processes,
        "resumed_from": Path(last).name if last else None,
        "train_loss": result.training_loss,
        "tokens_generated": ledger.tokens_generated,
        "tokens_trained": int(st.num_input_tokens_seen),  # prompt + sampled tokens through student and teacher
        "train_seconds": round(ledger.seconds, 1),
        "session_seconds": round(session, 1),
        "budget_tokens": cfg.budget_tokens,
        "heldout_start": held[0] if held else None,  # the student as SFT left it
        "heldout_end": held[-1] if held else None,
        "model": str(out / "model"),
    }


def control_config(cfg: KDConfig, student: StudentConfig, student_model: str, kd_summary: dict, sft_summary: dict) -> StudentConfig:
    """The student's own SFT config (then `sft_control.training`), continued from its SFT model. The Ledger ends it at
    the KD run's training time; max_steps is only a ceiling, twice the steps the SFT run's rate predicts, since that
    rate was measured on other threads and load (a schedule that decays over max_steps is cut where the time ends,
    so a constant rate, as the KD run's, is the fair control)."""
    rate = sft_summary["steps"] / max(sft_summary["train_seconds"], 1e-9)
    training = {k: v for k, v in student.training.items() if k not in ("num_train_epochs", "max_steps")}
    training.update(max_steps=max(1, math.ceil(2 * rate * kd_summary["train_seconds"])), restore_callback_states_from_checkpoint=True)
    training.update(cfg.sft_control.training)
    return student.model_copy(update={"name": f"{cfg.name}-sft-control", "model": student_model, "training": training})


def run_control(cfg: KDConfig, student: StudentConfig, curated: Path, kd_dir: Path, out: Path, sft_dir: Path, threads: int | None = None) -> dict:
    """SFT the KD run's student further on the curated traces for the KD run's training wall time."""
    from distill.kd.trainer import Ledger
    from distill.sft.stage import run as run_sft

    kd_summary = json.loads((Path(kd_dir) / "summary.json").read_text())
    sft_summary = json.loads((Path(sft_dir) / student.name / "summary.json").read_text())
    control = control_config(cfg, student, resolve(cfg.student, sft_dir), kd_summary, sft_summary)
    log.info("%s: SFT control for %.0f s (the KD run's training time)", out, kd_summary["train_seconds"])
    return run_sft(control, curated, out, threads=threads, callbacks=(Ledger(max_seconds=kd_summary["train_seconds"]),))
