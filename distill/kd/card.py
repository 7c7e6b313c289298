"""The model card of a distilled student: which student and teacher, on what prompts, what it cost, what it measured."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import yaml


def model_card(cfg, inp: Path, student: str, teacher: str, summary: dict) -> str:
    upstream = Path(inp) / "config.json"
    data_hash = json.loads(upstream.read_text()).get("hash") if upstream.exists() else None
    divergence = {0.0: "forward KL", 0.5: "JSD", 1.0: "reverse KL"}.get(cfg.beta, f"generalized JSD (beta={cfg.beta})")
    front = {"library_name": "transformers", "tags": ["distill", "on-policy-distillation", "trl", "reasoning"]}
    versions = ", ".join(f"{p} {version(p)}" for p in ("trl", "transformers", "torch"))
    start, end = summary.get("heldout_start"), summary.get("heldout_end")
    return f"""---
{yaml.safe_dump(front, sort_keys=False).strip()}
---

# {cfg.name}

`{cfg.student}` (`{student}`) distilled on-policy from `{cfg.teacher}` (`{teacher}`): the student samples
completions to the prompts and is trained to match the teacher's next-token distribution on every token of its own
samples ({divergence}; Agarwal et al. 2023, trl `DistillationTrainer`). No reward is used.

## Data
- prompt stage: `{Path(inp).resolve()}` (config hash `{data_hash}`), template `{cfg.prompt_template}`
- problems: {summary['prompts']} trained on, {summary['heldout']} held out for the metrics below

## Training
- generation: {cfg.generation}, up to {cfg.max_completion_length} tokens per sample; steps {summary['steps']}
- compute: {summary['tokens_generated']} tokens sampled, {summary['tokens_trained']} tokens trained, {summary['train_seconds']} s in training steps
- held-out (student samples, reverse KL to the teacher per token / accuracy): {_held(start)} at the start, {_held(end)} at the end
- {versions}

## Config
```yaml
{yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False).strip()}
```
"""


def _held(h: dict | None) -> str:
    if h is None:
        return "n/a"
    acc = "n/a" if h.get("heldout_accuracy") is None else f"{100 * h['heldout_accuracy']:.1f}%"
    return f"KL {h['kl_to_teacher']:.4f} / {acc} (step {h['step']})"
