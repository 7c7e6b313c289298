"""Training metrics as JSON lines in the student's directory, where the report and `distill status` read them."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from transformers import TrainerCallback

from distill.io import write_text

log = logging.getLogger(__name__)


class MetricsFile(TrainerCallback):
    """Appends {step, max_steps, epoch, loss, learning_rate, grad_norm, tokens_seen, tokens_per_s, time}
    per logging step (time: Unix seconds, for rates and ETAs) and logs the same as one line.

    On resume, lines past the checkpoint's step are dropped first, so the file has each step once.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._t = self._tokens = None
        self.start_tokens = 0  # tokens seen before this run (non-zero after a resume)

    def on_train_begin(self, args, state, control, **kwargs):
        self.start_tokens = state.num_input_tokens_seen
        self._t, self._tokens = time.perf_counter(), state.num_input_tokens_seen
        if state.is_world_process_zero and self.path.exists():
            kept = [line for line in self.path.read_text().splitlines() if line and json.loads(line)["step"] <= state.global_step]
            write_text(self.path, "".join(line + "\n" for line in kept))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        now, tokens = time.perf_counter(), state.num_input_tokens_seen
        row = {
            "step": state.global_step,
            "max_steps": state.max_steps,
            "epoch": round(state.epoch or 0.0, 4),
            "loss": logs["loss"],
            "learning_rate": logs.get("learning_rate"),
            "grad_norm": logs.get("grad_norm"),
            "tokens_seen": tokens,
            "tokens_per_s": round((tokens - self._tokens) / max(now - self._t, 1e-9), 1),
            "time": round(time.time(), 3),
        }
        self._t, self._tokens = now, tokens
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        log.info("step %d/%d  loss %.4f  lr %.3g  %.0f tok/s", row["step"], row["max_steps"], row["loss"],
                 row["learning_rate"] or 0.0, row["tokens_per_s"])


def log_instead_of_printing(trainer) -> None:
    """Drop the Trainer's tqdm bar and the dict it prints per logging step: its metrics file logs one line instead
    (sft and kd alike), which goes to the student's log under `distill run` and to stderr otherwise."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
