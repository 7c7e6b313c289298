"""Two runs of the same config give the same samples: the cheapest end that proves the whole chain
(student initialisation, Trainer data order, torch numerics, eval sampling seeds) is deterministic.
The second run uses another torch thread count, since the demo's workers get cores // workers."""

import hashlib

import pytest
import torch

from distill.eval.config import EvalConfig, ModelSpec
from distill.eval.stage import load_samples
from distill.eval.stage import run as run_eval
from distill.sft.config import StudentConfig
from distill.sft.stage import run as run_sft
from tests.sft_fixtures import write_curated

STUDENT = {
    "name": "s",
    "model": "toy:qwen2",
    "chat_template": "distill/templates/qwen2.jinja",
    "max_length": 256,
    "training": {"learning_rate": 3e-3, "max_steps": 12, "per_device_train_batch_size": 4, "logging_steps": 4, "save_steps": 100, "seed": 0},
}
EVAL = {"benchmarks": ["toy_arith"], "overrides": {"toy_arith": {"limit": 8, "k": 4}}, "max_tokens": 64,
        "bootstrap_resamples": 100, "problems_per_chunk": 4}


def _weights(model_dir) -> str:
    from safetensors.torch import load_file

    w = load_file(str(model_dir / "model.safetensors"))
    return hashlib.sha256(b"".join(w[k].numpy().tobytes() for k in sorted(w))).hexdigest()


@pytest.mark.slow
def test_sft_and_eval_twice_give_identical_weights_and_samples(tmp_path):
    curated = write_curated(tmp_path / "curated", n=48)
    threads_before = torch.get_num_threads()
    runs = []
    try:
        for name, threads in (("a", 1), ("b", 2)):
            out = tmp_path / name
            run_sft(StudentConfig.model_validate(STUDENT), curated, out / "sft", threads=threads)
            spec = ModelSpec(name="s", model=str(out / "sft" / "model"), transformers={"batch_size": 16})
            run_eval(EvalConfig.model_validate(EVAL), spec, out / "eval")
            rows = load_samples(out / "eval", ["problem_id", "sample_idx", "completion", "correct"])
            runs.append((_weights(out / "sft" / "model"), sorted((r["problem_id"], r["sample_idx"], r["completion"], r["correct"]) for r in rows)))
    finally:
        torch.set_num_threads(threads_before)
    (wa, sa), (wb, sb) = runs
    assert len(sa) == 32 and len({c for _, _, c, _ in sa}) > 1, "sampled, not one repeated string"
    assert wa == wb
    assert sa == sb
