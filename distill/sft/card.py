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
    inp = Path(inp).resolve()
    dataset = f"{inp.parent.name}-traces"  # the name `distill export` suggests for the curated data's upload
    front = {
        "base_model": cfg.model if not cfg.model.startswith("toy:") and not Path(cfg.model).exists() else None,
        "datasets": [dataset],
        "library_name": "transformers",
        "tags": ["distill", "sft", "trl", "reasoning"] + (["lora"] if cfg.lora else []),
    }
    versions = ", ".join(f"{p} {version(p)}" for p in ("trl", "transformers", "torch", "peft"))
    return f"""---
{yaml.safe_dump({k: v for k, v in front.items() if v is not None}, sort_keys=False).strip()}
---

# {cfg.name}

`{cfg.model}` fine-tuned with supervised learning only on curated teacher traces, as DeepSeek-R1
distilled its students (no RL stage). Loss on the assistant turn only, end-of-turn token included.

## Data
- curated stage: `{inp.name}` of run `{inp.parent.name}` (config hash `{data_hash}`), published as `{dataset}`
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


def add_eval_results(card: Path, model_name: str, scores: dict) -> None:
    """Put a model's pass@1 per benchmark in its card's metadata (`model-index`, as the Hub reads it),
    once `distill run` has evaluated it."""
    from distill.io import write_text

    text = Path(card).read_text(encoding="utf-8")
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front) or {}
    results = [{"task": {"type": "text-generation"}, "dataset": {"name": bench, "type": bench},
                "metrics": [{"type": "pass@1", "value": round(100 * s["pass@1"], 2), "name": f"pass@1 (%), k={s['k']}, {s['n_problems']} problems"}]}
               for bench, s in sorted(scores["benchmarks"].items())]
    meta["model-index"] = [{"name": model_name, "results": results}]
    write_text(card, f"---\n{yaml.safe_dump(meta, sort_keys=False).strip()}\n---\n{body}")
