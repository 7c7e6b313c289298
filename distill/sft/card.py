"""The model card: what the student was trained from, on what data, with what config."""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version
from pathlib import Path

import yaml


def model_card(cfg, inp: Path, base_model: str, summary: dict, check: dict) -> str:
    upstream = Path(inp) / "config.json"
    data_hash = json.loads(upstream.read_text()).get("hash") if upstream.exists() else None
    template = cfg.template_path()
    front = {
        "base_model": cfg.model if not cfg.model.startswith("toy:") else None,
        "library_name": "transformers",
        "tags": ["distill", "sft", "trl", "reasoning"] + (["lora"] if cfg.lora else []),
    }
    versions = ", ".join(f"{p} {version(p)}" for p in ("trl", "transformers", "torch", "peft"))
    return f"""---
{yaml.safe_dump({k: v for k, v in front.items() if v is not None}, sort_keys=False).strip()}
---

# {cfg.name}

`{base_model}` fine-tuned with supervised learning only on curated teacher traces, as DeepSeek-R1
distilled its students (no RL stage). Loss on the assistant turn only, end-of-turn token included.

## Data
- curated stage: `{Path(inp).resolve()}` (config hash `{data_hash}`)
- rows: {summary['rows_in']} in, {summary['rows_train']} kept and trained on, view `{cfg.data_format}`
- tokens per sample: mean {check['tokens_mean']}, longest {check['tokens_max']}; max_length {check['max_length']}: {summary['rows_too_long']} longer rows dropped, none truncated

## Training
- method: {"LoRA r=%d alpha=%d (merged into the saved weights)" % (cfg.lora.r, cfg.lora.alpha) if cfg.lora else "full fine-tune"}
- chat template: `{template.name}` (sha256 `{hashlib.sha256(template.read_bytes()).hexdigest()[:16]}`)
- steps {summary['steps']}, loss {_num(summary['train_loss'])} mean / {_num(summary['final_loss'])} last logged, {summary['tokens_seen']} tokens seen
- {versions}

## Config
```yaml
{yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False).strip()}
```
"""


def _num(x) -> str:
    """A loss for the card; None when the run was shorter than one logging step."""
    return "n/a" if x is None else f"{x:.4f}"
