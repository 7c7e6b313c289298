"""The one list of changes a CPU rehearsal may make to a shipped real config, each with its reason.

A test that runs a real config (pipelines/*.yaml, pipelines/sft/*.yaml, pipelines/accelerate/*.yaml) on
a CPU, and bench/gpu_check.py on a GPU, change it only through `apply`, and `unlisted_changes` diffs the
shipped file against what ran: any other difference fails the test. Allowed: model paths, sizes and
counts; the device; an attention kernel the CPU cannot run; dtype only where the CPU op does not exist
(none today: bf16 trains on CPU torch, slowly, so it runs as shipped). Everything else (padding-free,
max_length, gradient checkpointing, bf16, learning rates, schedules, templates, protocols) runs as written.

Keys are paths into the YAML, `/` between segments; a list whose items all have a `name` is addressed by
name (`sft/students/qwen2.5-math-1.5b/model`), other lists as one value; `*` matches one segment.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DROP = object()  # the value that removes a key (or a named list item)

CPU_ATTENTION = "sdpa"


@dataclass(frozen=True)
class Override:
    key: str
    reason: str
    drop_only: bool = False  # the rehearsal may leave the entry out, not change it


def _under(prefix: str, overrides: tuple[Override, ...]) -> tuple[Override, ...]:
    return tuple(Override(f"{prefix}/{o.key}", o.reason, o.drop_only) for o in overrides)


MODEL = "a tiny random model of the real architecture with the real tokenizer replaces the checkpoint (no Hub, no GPU memory)"
FLASH = "flash_attention_4 is a CUDA kernel (SM >= 9.0); the CPU runs the same model with sdpa"
STEPS = "count: a few optimizer steps (2 in the tests, 10 or 1 in bench/gpu_check.py) instead of the whole run"

STUDENT = (
    Override("model", MODEL),
    Override("training/model_init_kwargs/attn_implementation", FLASH),
    Override("training/max_steps", STEPS),
    Override("training/gradient_accumulation_steps", "count: one micro-batch per step; 8-16 only multiply CPU time"),
    Override("training/dataset_num_proc", "count: one tokenizing process for a few rows (16 only cost start-up time on 2 cores)"),
)

KD_RUN = (
    Override("student", MODEL),
    Override("teacher", MODEL),
    Override("training/model_init_kwargs/attn_implementation", FLASH),
    Override("training/teacher_model_init_kwargs/attn_implementation", FLASH),
    Override("training/max_steps", STEPS),
    Override("training/gradient_accumulation_steps", "count: one micro-batch per step"),
    Override("max_completion_length", "size: fewer sampled tokens than 8,192 (a few on a CPU)"),
    Override("heldout", "count: a few held-out problems out of a few prompts"),
    Override("generation", "device: `trl vllm-serve` syncs weights over NCCL (CUDA only) from a server on GPUs of its own; "
             "the CPU, and the one-GPU check, sample with transformers"),
    Override("training/vllm_server_host", "device: no vLLM server without generation: vllm_server", drop_only=True),
    Override("training/vllm_server_port", "device: no vLLM server without generation: vllm_server", drop_only=True),
)

# One CPU engine in place of a GPU engine: what generate and eval models share.
CPU_ENGINE = (
    Override("vllm/enforce_eager", "device: CUDA graphs exist only on GPUs"),
    Override("vllm/tensor_parallel_size", "device: one CPU engine, not 8 GPUs"),
    Override("vllm/data_parallel_size", "device: one CPU engine"),
)

GENERATE = (
    Override("model", MODEL),
    *CPU_ENGINE,
    Override("vllm/pipeline_parallel_size", "device: one CPU engine, not 2 nodes"),
    Override("vllm/distributed_executor_backend", "device: Ray places GPUs of two nodes; one CPU engine needs none", drop_only=True),
    Override("sampling/max_tokens", "size: a few tokens per trace instead of 32,768"),
    Override("samples_per_prompt", "count: samples per problem"),
    Override("chunk_size", "count: problems per checkpoint, so a few problems still make several chunks"),
)

EVAL_MODEL = (Override("model", MODEL), *CPU_ENGINE)

PIPELINE = (
    Override("run_dir", "the run lands in the test's temporary directory"),
    Override("prompts/sources/*/source", "no Hub: a local Parquet of a few rows in the dataset's real columns"),
    Override("prompts/sources/*/limit", "count: every row of the few written"),
    Override("prompts/decontaminate/benchmarks", "no Hub: Hub-read benchmarks move to `files` (the config's documented way)"),
    Override("prompts/decontaminate/files", "no Hub: the Hub-read benchmarks' problems as local files"),
    *_under("generate", GENERATE),
    Override("sft/students/*", "count: one student per architecture in the end-to-end run (each is rehearsed alone too)", drop_only=True),
    *_under("sft/students/*", STUDENT),
    *_under("kd/runs/*", KD_RUN),
    Override("eval/models/*", "count: one student and its baseline", drop_only=True),
    *_under("eval/models/*", EVAL_MODEL),
    Override("eval/max_tokens", "size: a few tokens per answer"),
    Override("eval/bootstrap_resamples", "count: bootstrap resamples of the confidence interval"),
    Override("eval/problems_per_chunk", "count: problems per checkpoint"),
    Override("eval/overrides/*/limit", "count: 2 problems per benchmark"),
    Override("eval/overrides/*/k", "count: one sample per problem instead of each spec's k"),
    Override("eval/overrides/*/source", "no Hub: a Hub-read benchmark from a local file in its dataset's layout"),
)

ACCELERATE = (
    Override("num_processes", "count: 2 CPU processes (one per GPU in bench/gpu_check.py) instead of 8 GPUs"),
    Override("use_cpu", "device: processes on the CPU (gloo) instead of CUDA devices"),
    Override("gpu_ids", "device: the CPU processes have no GPUs to list", drop_only=True),
    Override("main_process_port", "a free port on a shared machine"),
    Override("mixed_precision", "dtype: the launch tests compare a 2-process run with a one-process fp32 run at 1e-5; "
             "bf16 trains on CPU (the student rehearsals run it) but its rounding would hide a wrong gradient sum"),
)

OVERRIDES: dict[str, tuple[Override, ...]] = {
    "pipeline": PIPELINE,  # r1_distill.yaml, r1_kd.yaml (read with read_pipeline)
    "student": STUDENT,  # pipelines/sft/*.yaml
    "generate": GENERATE,  # pipelines/r1_generate*.yaml
    "accelerate": ACCELERATE,  # pipelines/accelerate/*.yaml
}


REHEARSAL_STEPS = 2  # optimizer steps of a CPU rehearsal


def shipped(path: Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def student_changes(model: Path, prefix: str = "", steps: int = REHEARSAL_STEPS) -> dict:
    """A student on another body (`model`): `steps` optimizer steps of one micro-batch each, one tokenizing process."""
    changes = {"model": str(model), "training/max_steps": steps, "training/gradient_accumulation_steps": 1, "training/dataset_num_proc": 1}
    return {prefix + k: v for k, v in changes.items()}


def student(path: Path, model: Path, steps: int = REHEARSAL_STEPS) -> dict:
    """A pipelines/sft/*.yaml as `student_changes` says, on sdpa."""
    return cpu_attention(apply(shipped(path), "student", student_changes(model, steps=steps)), "student")


def kd_run_changes(pipeline: dict, student: Path, teacher: Path, steps: int = REHEARSAL_STEPS, tokens: int = 8, heldout: int = 2) -> dict:
    """The pipeline's first kd run on the two given models, sampling with transformers: `steps` steps of one
    sample, `tokens` sampled tokens, `heldout` held-out problems."""
    run = pipeline["kd"]["runs"][0]
    changes = {"student": str(student), "teacher": str(teacher), "generation": "transformers", "max_completion_length": tokens,
               "heldout": heldout, "training/max_steps": steps, "training/gradient_accumulation_steps": 1}  # fmt: skip
    changes.update({f"training/{k}": DROP for k in ("vllm_server_host", "vllm_server_port") if k in run["training"]})
    return {f"kd/runs/{run['name']}/{k}": v for k, v in changes.items()}


def override_for(kind: str, path: str, removed: bool = False) -> Override | None:
    """The listed override of config `kind` that allows changing (or, `removed`, dropping) `path`."""
    parts = path.split("/")
    for o in OVERRIDES[kind]:
        pattern = o.key.split("/")
        if len(pattern) == len(parts) and all(p in ("*", s) for p, s in zip(pattern, parts)) and (removed or not o.drop_only):
            return o
    return None


def apply(config: dict, kind: str, changes: dict[str, Any]) -> dict:
    """A copy of `config` with `changes` (path -> value, or DROP) applied; KeyError for a path not listed."""
    out = copy.deepcopy(config)
    for path, value in changes.items():
        if override_for(kind, path, removed=value is DROP) is None:
            raise KeyError(f"{path}: not in distill.rehearsal.OVERRIDES[{kind!r}]; a rehearsal may not change it")
        *parents, last = path.split("/")
        node = out
        for p in parents:
            node = _child(node, p)
        _set(node, last, value)
    return out


def cpu_attention(config: dict, kind: str) -> dict:
    """Every listed attn_implementation present in `config` set to the CPU's kernel (the rest as shipped)."""
    found = {p: v for p, v in _flatten(config).items() if p.split("/")[-1] == "attn_implementation"}
    return apply(config, kind, {p: CPU_ATTENTION for p, v in found.items() if v != CPU_ATTENTION})


def unlisted_changes(shipped: dict, ran: dict, kind: str) -> list[str]:
    """Every difference between the shipped config and the one a rehearsal ran that no override allows."""
    return [f"{what} {path}" for what, path in diff(shipped, ran) if override_for(kind, path, removed=what == "removed") is None]


def diff(a: Any, b: Any, path: str = "") -> list[tuple[str, str]]:
    """(changed|added|removed, path) for each difference between two YAML trees: an added mapping as
    each of its leaves, a removed key or named list item as itself."""
    a, b = _keyed(a), _keyed(b)
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return [] if a == b else [("changed", path)]
    out = []
    for k in list(a) + [k for k in b if k not in a]:
        p = f"{path}/{k}" if path else str(k)
        if k not in b:
            out.append(("removed", p))
        elif k not in a:
            out.extend(("added", leaf) for leaf in _flatten(b[k], p))
        else:
            out.extend(diff(a[k], b[k], p))
    return out


def _keyed(value: Any) -> Any:
    """A list of named mappings as a mapping by name (how paths address it); anything else as it is."""
    if isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v for v in value):
        return {v["name"]: v for v in value}
    return value


def _flatten(value: Any, path: str = "") -> dict[str, Any]:
    value = _keyed(value)
    if not isinstance(value, dict):
        return {path: value}
    out = {}
    for k, v in value.items():
        out.update(_flatten(v, f"{path}/{k}" if path else str(k)))
    return out


def _child(node: Any, key: str) -> Any:
    if isinstance(node, list):
        return next(v for v in node if v.get("name") == key)
    return node.setdefault(key, {})


def _set(node: Any, key: str, value: Any) -> None:
    if isinstance(node, list):
        item = next(i for i, v in enumerate(node) if v.get("name") == key)
        if value is DROP:
            del node[item]
        else:
            node[item] = value
    elif value is DROP:
        node.pop(key, None)
    else:
        node[key] = value
