"""An on-policy distillation run: which student, which teacher, which prompts, and trl.DistillationConfig overrides.

The student samples completions to the prompts and is trained to match the teacher's next-token
distribution on its own samples (Agarwal et al. 2023, GKD; `trl.DistillationTrainer`). As in the sft
stage, `training` holds the trainer config's own fields and is validated by constructing one (`check_training`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from distill.config import Config
from distill.generate.prompting import TemplateName

# generation -> (use_vllm, vllm_mode) of trl.DistillationConfig
GENERATION = {"transformers": (False, "colocate"), "vllm_colocate": (True, "colocate"), "vllm_server": (True, "server")}

# Keys the stage sets itself, from the fields below or from the output directory.
RESERVED_TRAINING_KEYS = ("output_dir", "beta", "max_completion_length", "use_vllm", "vllm_mode", "resume_from_checkpoint")


class ControlSpec(Config):
    """The matched-compute control: the same student trained further with SFT for the wall time the KD run took."""

    training: dict[str, Any] = Field(
        default_factory=dict, description="trl.SFTConfig fields over the student's own SFT ones (e.g. learning_rate)"
    )


class KDConfig(Config):
    """On-policy distillation of one student after SFT."""

    name: str = Field(description="run name; its output lands in 04_kd/<name>")
    student: str = Field(description="the student to improve: a model path, or in a pipeline sft:<student> (its SFT checkpoint)")
    teacher: str = Field(description="the teacher, same tokenizer and chat template: a model path or id, or sft:<student>")
    prompt_template: TemplateName = Field("r1", description="how a problem becomes the user turn (as in generate)")
    heldout: int = Field(
        64, ge=0, description="problems split off the prompt set (never trained on) for KL to the teacher and accuracy"
    )
    beta: float = Field(
        1.0, ge=0, le=1, description="the divergence trained: 0 forward KL, 0.5 JSD, 1 reverse KL (on-policy GKD's choice)"
    )
    max_completion_length: int = Field(1024, ge=1, description="tokens the student samples per prompt")
    generation: Literal["transformers", "vllm_colocate", "vllm_server"] = Field(
        "transformers",
        description="student sampling: transformers (CPU or GPU), vLLM in the training processes, or a `trl vllm-serve` server",
    )
    budget_tokens: int | None = Field(
        None, ge=1, description="stop once the student has sampled this many completion tokens (besides max_steps/epochs)"
    )
    sft_control: ControlSpec | None = Field(
        None, description="pipeline only: also train <name>-sft-control, SFT from the same student for the same wall time"
    )
    training: dict[str, Any] = Field(
        default_factory=dict, description="trl.DistillationConfig fields (learning_rate, max_steps, temperature, vllm_*...)"
    )

    @model_validator(mode="after")
    def _no_reserved_training_keys(self) -> "KDConfig":
        reserved = [k for k in RESERVED_TRAINING_KEYS if k in self.training]
        if reserved:
            raise ValueError(f"training.{reserved[0]} is set by distill kd (use the kd config's own field or the output dir)")
        return self

    def check_training(self) -> None:
        """ValueError unless `training` builds a trl.DistillationConfig (imports trl: called where training happens)."""
        distillation_config(self, Path(tempfile.gettempdir()) / "distill-kd-validate", validate_only=True)


def distillation_config(cfg: KDConfig, output_dir: Path, validate_only: bool = False):
    """The trl.DistillationConfig: the sft stage's hardware defaults, then `training`, then this config's fields."""
    from trl import DistillationConfig

    from distill.sft.config import trainer_config

    use_vllm, vllm_mode = GENERATION[cfg.generation]
    defaults = {
        "eval_strategy": "steps" if cfg.heldout else "no",
        "eval_steps": 50,
        "per_device_eval_batch_size": 16,
        # The budget and the matched control read the tokens sampled and the wall time from the checkpoint.
        "restore_callback_states_from_checkpoint": True,
        "include_num_input_tokens_seen": "no",  # trl counts prompt + sampled tokens itself; the Trainer's count sees no input_ids
    }
    return trainer_config(
        DistillationConfig,
        {**defaults, **cfg.training},
        output_dir,
        validate_only,
        beta=cfg.beta,
        max_completion_length=cfg.max_completion_length,
        use_vllm=use_vllm,
        vllm_mode=vllm_mode,
    )
