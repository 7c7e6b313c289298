"""`distill eval --replay DIR --model PATH --problem ID --sample K`: regenerate one saved sample from the
eval directory's records alone (the problem as evaluated, its protocol: template, system prompt, prefix,
temperature, top-p, max_tokens, seed; the model's backend options, and the runtime ones its shard ran
with) and say whether it reproduces token for token; if not, where it first diverges and which recorded
setting differs from now.

What can differ: the model's files (their recorded identity), the engine and its version (recorded in
each shard's stats), and for the transformers backend the batch (it seeds and samples one padded batch
together, so a sample replays exactly only in the batch it was drawn in). Equality is of the text and
the token count.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from distill.errors import DistillError
from distill.eval.identity import model_identity
from distill.eval.stage import check_eval_dir, request_messages
from distill.generate.backends import make_backend
from distill.generate.backends.base import Request, Sampling
from distill.generate.config import RUNTIME_ONLY, BackendConfig
from distill.io import read_parquet
from distill.stage import StageDir

CONTEXT = 60  # characters shown on each side of the first divergence


def _recorded(out: Path, config: dict, problem_id: str, sample: int) -> tuple[int, dict]:
    """(shard, saved row) of the sample."""
    stage = StageDir(out)
    for i, (bench, _, _) in enumerate(config["shards"]):
        t = pq.read_table(stage.part(i))
        hit = t.filter(pc.and_(pc.equal(t["problem_id"], problem_id), pc.equal(t["sample_idx"], sample)))
        if hit.num_rows:
            return i, hit.to_pylist()[0]
    raise DistillError(f"{out}: no sample {sample} of problem '{problem_id}' (see the trace browser or part-*.parquet for ids)")


def first_difference(a: str, b: str) -> int | None:
    """Character offset where two texts first differ, None when equal."""
    if a == b:
        return None
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def _backend_config(recorded: dict, runtime: dict, model: str) -> BackendConfig:
    """The backend as the shard ran it: the config's model record and the shard's runtime options."""
    fields = {f: recorded[f] for f in BackendConfig.model_fields if f in recorded}
    name = recorded["backend"]
    if runtime:
        fields[name] = {**fields.get(name, {}), **runtime}
    return BackendConfig(**fields, model=model)


def command(out: Path, model: str, problem_id: str, sample: int) -> str:
    """The replay command line for one sample (shown by the report's trace browser)."""
    return f"distill eval --replay {out} --model {model} --problem {problem_id} --sample {sample}"


def replay(out: Path, model: str, problem_id: str, sample: int) -> dict:
    """{"reproduced", "diverges_at" (char offset), "recorded"/"replayed" (text around it), "differs" (settings)}."""
    out = Path(out)
    config = check_eval_dir(out)
    shard, row = _recorded(out, config, problem_id, sample)
    bench = row["benchmark"]
    proto = config["benchmarks"][bench]["protocol"]
    if "imported" in config:
        raise DistillError(f"{out}: imported from {config['imported']['format']}; its samples were drawn by another tool and cannot be replayed")
    problem = next(p for p in read_parquet(out / "problems" / f"{bench}.parquet").to_pylist() if p["id"] == problem_id)
    recorded = config["model"]
    engine = StageDir(out).shard_stats(shard).get("engine")
    backend = make_backend(_backend_config(recorded, (engine or {}).get("runtime") or {}, model))
    try:
        request = Request(id=problem_id, messages=request_messages(problem, proto), prefix=proto["prefix"])
        sampling = Sampling(temperature=proto["temperature"], top_p=proto["top_p"], max_tokens=proto["max_tokens"], n=proto["k"], seed=proto["seed"])
        got = backend.generate([request], sampling)[0][sample]
    finally:
        backend.close()
    differs = []
    if (now := model_identity(model)) != recorded.get("identity"):
        differs.append(f"model identity: recorded {recorded.get('identity')}, now {now}")
    if engine is None:
        differs.append("engine version: not recorded for this shard")
    elif (engine["backend"], engine["version"]) != (backend.name, backend.version):
        differs.append(f"engine: recorded {engine['backend']} {engine['version']}, now {backend.name} {backend.version}")
    if engine is not None and "runtime" not in engine and RUNTIME_ONLY.get(recorded["backend"]):
        differs.append("engine runtime options: not recorded for this shard (replayed with the defaults)")
    if recorded["backend"] == "transformers":
        differs.append("batch: the transformers backend seeds and samples each padded batch together; the replay's batch is this problem alone")
    at = first_difference(row["completion"], got.text)
    result = {"benchmark": bench, "problem": problem_id, "sample": sample, "reproduced": at is None and got.finish_reason == row["finish_reason"],
              "completion_tokens": [row["completion_tokens"], got.completion_tokens], "differs": differs}
    if at is not None:
        result |= {"diverges_at": at, "recorded": row["completion"][max(0, at - CONTEXT): at + CONTEXT],
                   "replayed": got.text[max(0, at - CONTEXT): at + CONTEXT]}
    return result
