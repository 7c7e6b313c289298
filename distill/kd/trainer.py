"""trl's DistillationTrainer plus what the kd stage measures: reverse KL to the teacher and accuracy on held-out
prompts, the compute spent (tokens sampled, wall time) carried across resumes, and a budget that stops training."""

from __future__ import annotations

import json
import logging
import time

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState
from trl import DistillationTrainer

from distill.eval.scoring import score
from distill.kd.data import SCORED_DOMAINS
from distill.sft.metrics import MetricsFile

log = logging.getLogger(__name__)


class Ledger(TrainerCallback, ExportableState):
    """Tokens the student sampled and seconds spent in training steps (evaluation excluded); saved in every
    checkpoint, so a resumed run counts on from its checkpoint and work lost to a kill is not counted.
    Stops training once `budget_tokens` are sampled or `max_seconds` spent (the matched-compute control)."""

    def __init__(self, budget_tokens: int | None = None, max_seconds: float | None = None):
        self.budget_tokens, self.max_seconds = budget_tokens, max_seconds
        self.tokens_generated = 0
        self.seconds = 0.0
        self._last = None

    def state(self) -> dict:
        return {
            "args": {"budget_tokens": self.budget_tokens, "max_seconds": self.max_seconds},
            "attributes": {"tokens_generated": self.tokens_generated, "seconds": self.seconds},
        }

    def on_train_begin(self, args, state, control, **kwargs):
        self._last = time.perf_counter()

    def on_evaluate(self, args, state, control, **kwargs):
        self._last = time.perf_counter()  # held-out evaluation is measurement, not training compute

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        self.seconds += now - self._last
        self._last = now
        if (self.budget_tokens and self.tokens_generated >= self.budget_tokens) or (self.max_seconds and self.seconds >= self.max_seconds):
            control.should_training_stop = True
            control.should_save = True


class OnPolicyDistillationTrainer(DistillationTrainer):
    """Evaluation reports reverse KL(student || teacher) per completion token on the student's samples, whatever
    divergence `beta` trains, and scores held-out samples that have a reference answer (reward-free: the score
    is only measured, never trained on)."""

    def ledger(self) -> Ledger:
        # Looked up each time: resuming replaces the callback with one restored from the checkpoint.
        return next(cb for cb in self.callback_handler.callbacks if isinstance(cb, Ledger))

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        beta, self.beta = self.beta, 1.0
        try:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        finally:
            self.beta = beta

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        n_tokens = int(out["completion_mask"].sum())
        if self.model.training:
            self.ledger().tokens_generated += n_tokens
            return out
        texts = self.processing_class.batch_decode(out["completion_ids"] * out["completion_mask"], skip_special_tokens=True)
        for row, text in zip(inputs, texts):
            if row.get("answer") is not None and row.get("domain") in SCORED_DOMAINS:
                [verdict] = score("math", [text], row["answer"])
                self._metrics["eval"]["heldout_accuracy"].append(float(verdict.correct))
        return out


# trainer log key -> metrics.jsonl key
TRAIN_KEYS = {
    "loss": "divergence",
    "completions/mean_length": "sampled_length",
    "completions/clipped_ratio": "clipped_share",
    "entropy": "entropy",
    "learning_rate": "learning_rate",
    "grad_norm": "grad_norm",
}
EVAL_KEYS = {"eval_loss": "kl_to_teacher", "eval_heldout_accuracy": "heldout_accuracy", "eval_completions/mean_length": "heldout_length"}


class KDMetricsFile(MetricsFile):
    """metrics.jsonl of a kd run: a training row per logging step (divergence, sampled length, tokens, time) and a
    held-out row per evaluation (KL to the teacher, accuracy, sampled length); trimmed on resume like sft's, and
    logged as one line each."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        keys = TRAIN_KEYS if "loss" in logs else EVAL_KEYS if "eval_loss" in logs else None
        if keys is None:
            return
        row = {"step": state.global_step, "split": "train" if keys is TRAIN_KEYS else "heldout"}
        row.update({ours: logs[theirs] for theirs, ours in keys.items() if logs.get(theirs) is not None})
        if keys is TRAIN_KEYS:  # as sft's rows: `distill status` and the run display read steps, rate and ETA
            row.update(max_steps=state.max_steps, tokens_seen=state.num_input_tokens_seen, time=round(time.time(), 3))
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        log.info("%s step %d/%d  %s", row["split"], state.global_step, state.max_steps,
                 "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("step", "split", "max_steps", "time", "tokens_seen")))
