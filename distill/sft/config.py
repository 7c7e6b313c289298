"""A student: which model, which chat template, which data view, and trl.SFTConfig overrides.

Training hyperparameters are not re-declared here: `training` holds `trl.SFTConfig` fields and is
validated by constructing one (`check_training`, run by `distill sft` before anything else), so every
TRL/transformers option (schedulers, DeepSpeed, report_to) is available under its own documented name.
Parsing a config imports neither torch nor trl: a vLLM node running `distill run --only generate`
parses every student without loading the training stack.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from distill.config import Config

# Keys the stage sets itself: where checkpoints go, the sequence length, the loss mask and how trl takes the rows.
RESERVED_TRAINING_KEYS = ("output_dir", "max_length", "assistant_only_loss", "completion_only_loss", "resume_from_checkpoint", "dataset_kwargs")

PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent


class LoraSpec(Config):
    """A peft LoRA adapter; the saved model is the base with the adapter merged in."""

    r: int = Field(16, ge=1, description="adapter rank")
    alpha: int = Field(32, ge=1, description="scaling numerator (lora_alpha)")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the adapter input")
    target_modules: list[str] | str = Field("all-linear", description="module names, or 'all-linear'")


class StudentConfig(Config):
    """One student of the R1 recipe: SFT on the curated traces only, no RL."""

    name: str = Field(description="student name; its run lands in 04_sft/<name>")
    model: str = Field(description="Hub id or local path for from_pretrained, or toy:qwen2 / toy:llama[:size] built from config")
    chat_template: str = Field(
        description="Jinja file with {% generation %} markers, e.g. distill/templates/qwen2.jinja; "
        "relative paths resolve against the working directory, then the distill install"
    )
    data_format: Literal["reasoning", "answer_only"] = Field(
        "reasoning",
        description="reasoning: the curated <think> trace; answer_only: the same problems with an empty "
        "<think></think> and the response only (the undistilled-baseline control)",
    )
    lora: LoraSpec | None = Field(None, description="train a LoRA adapter instead of every weight")
    max_length: int = Field(
        4096, ge=16, description="tokens per training sequence (prompt + trace); longer rows are dropped, never truncated"
    )
    max_too_long_share: float = Field(
        0.05, ge=0, le=1, description="the check refuses to train when a larger share of rows is longer than max_length"
    )
    check_samples: int = Field(2000, ge=1, description="rows rendered by the pre-training check (a seeded sample)")
    training: dict[str, Any] = Field(
        default_factory=dict, description="trl.SFTConfig fields (learning_rate, num_train_epochs, packing, report_to...)"
    )

    @field_validator("model")
    @classmethod
    def _toy_name(cls, v: str) -> str:
        from distill.toy.students import parse_toy_name

        parse_toy_name(v)
        return v

    @field_validator("chat_template")
    @classmethod
    def _template_exists(cls, v: str) -> str:
        resolve_path(v)
        return v

    @model_validator(mode="after")
    def _no_reserved_training_keys(self) -> "StudentConfig":
        reserved = [k for k in RESERVED_TRAINING_KEYS if k in self.training]
        if reserved:
            raise ValueError(f"training.{reserved[0]} is set by distill sft (use the student's own field or the output dir)")
        return self

    def check_training(self) -> None:
        """ValueError unless `training` builds a trl.SFTConfig (imports trl: call it where training happens)."""
        sft_config(self.training, Path(tempfile.gettempdir()) / "distill-sft-validate", validate_only=True)

    def template_path(self) -> Path:
        return resolve_path(self.chat_template)


def resolve_path(value: str) -> Path:
    """A file path as given, else relative to the distill install (so shipped configs work from anywhere)."""
    p = Path(value)
    if p.is_file():
        return p
    if not p.is_absolute() and (PACKAGE_ROOT / p).is_file():
        return PACKAGE_ROOT / p
    raise ValueError(f"{value}: file not found (also looked in {PACKAGE_ROOT})")


def sft_config(training: dict, output_dir: Path, validate_only: bool = False, **fixed):
    """Build the trl.SFTConfig (see `trainer_config`)."""
    from trl import SFTConfig

    return trainer_config(SFTConfig, training, output_dir, validate_only, **fixed)


def trainer_config(config_cls, training: dict, output_dir: Path, validate_only: bool = False, **fixed):
    """Build a TRL trainer config (SFTConfig, DistillationConfig); machine-dependent defaults (bf16,
    checkpointing) follow the hardware, then `training` (the user's fields), then `fixed` (the stage's).

    `validate_only` checks a GPU config on a machine without one (use_cpu lets bf16 through) and sets up no
    device: see `_validating`.
    """
    import torch

    on_gpu = torch.cuda.is_available()
    args = {
        "use_cpu": not on_gpu,  # also what puts `accelerate launch`ed CPU processes on gloo DDP
        "bf16": on_gpu and torch.cuda.is_bf16_supported(),
        "gradient_checkpointing": on_gpu,  # trl turns it on by default; on CPU it only costs time
        "dataloader_pin_memory": on_gpu,
        "ddp_find_unused_parameters": False,  # a causal LM uses every weight in each step
        "report_to": "none",
        "logging_steps": 10,
        "save_strategy": "steps",
        "save_steps": 500,
        "save_total_limit": 2,
        "include_num_input_tokens_seen": "non_padding",
        **training,
        **fixed,
    }
    if validate_only:
        args["use_cpu"] = True
    try:
        config = (_validating(config_cls) if validate_only else config_cls)(output_dir=str(output_dir), **args)
    except TypeError as e:  # an unknown key: "__init__() got an unexpected keyword argument 'x'"
        raise ValueError(f"training: not a trl.{config_cls.__name__} field ({str(e).split('argument ')[-1]})") from None
    if not validate_only:
        config.report_to = _installed_trackers(config.report_to)
    return config


def _validating(config_cls):
    """`config_cls` whose `device` is the CPU, set up nowhere. TrainingArguments.__post_init__ reads `self.device`,
    which builds accelerate's PartialState: under `accelerate launch` that initialises the process group, and a
    validation (use_cpu) would leave gloo behind for the real trainer, whose NCCL group and ddp_timeout never
    take effect. Every value check still runs; only the device setup is skipped."""
    import torch

    return type(config_cls.__name__, (config_cls,), {"device": property(lambda self: torch.device("cpu"))})


def _installed_trackers(report_to: list[str]) -> list[str]:
    """report_to minus the trackers not installed here: a config naming tensorboard or wandb still trains."""
    from transformers.integrations import get_available_reporting_integrations

    available = set(get_available_reporting_integrations())
    missing = [r for r in report_to if r not in available]
    if missing:
        logging.getLogger(__name__).warning("report_to: %s not installed; metrics go to metrics.jsonl only", ", ".join(missing))
    return [r for r in report_to if r in available]
