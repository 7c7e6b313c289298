"""`distill plan PIPELINE.yaml`: what a run will cost before it starts.

Per source of the prompts mix: problems (its quota), teacher samples, expected tokens, expected kept SFT
samples, and GPU-hours at a stated (assumed) generation throughput or the API cost at a stated price;
then the tokens each SFT student trains on and the samples each evaluated model draws. A toy source's
tokens are drafted by the toy teacher itself, as it would write them. The
per-source assumptions (`expect:` in each source: keep rate, mean prompt and completion tokens) are
replaced by measured values when a pilot run directory is given (`--pilot runs/pilot`): the mean
tokens per sample and keep rate of each source in its traces and curated stages, and the throughput
its generate stage logged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from distill.errors import DistillError
from distill.filter.stage import totals as filter_totals
from distill.layout import CURATED, TRACES
from distill.pipeline import PipelineConfig
from distill.pricing import Price
from distill.stage import StageDir

# Generated tokens/s of one engine: an ASSUMPTION, not a measurement (a batched vLLM engine serving a 7B-32B
# reasoning model on one recent GPU is typically quoted in the low thousands). Replace it with --tokens-per-s,
# or measure it: --pilot reads the throughput a pilot run's generate stage logged.
DEFAULT_TOKENS_PER_S = 2000.0
TOY_DRAFT = 64  # problems of a toy source the planner has the toy teacher write, to predict its token counts


@dataclass
class SourcePlan:
    source: str
    domain: str
    kind: str  # reasoning | nonreasoning_imported | nonreasoning_teacher
    problems: int | None  # None: no quota, every row of the source
    samples: int | None
    prompt_tokens: int | None
    completion_tokens: int | None
    kept: int | None
    keep_rate: float
    basis: str  # where the token counts come from: pilot (measured) | toy teacher (drafted) | expect (assumed)


@dataclass
class Pilot:
    """Per-source means measured in a pilot run directory."""

    prompt_tokens: dict[str, float]
    completion_tokens: dict[str, float]
    keep_rate: dict[str, float]
    tokens_per_s: float | None


def read_pilot(run_dir: Path) -> Pilot:
    traces, curated = StageDir(run_dir / TRACES), StageDir(run_dir / CURATED)
    parts = traces.parts()
    if not parts:
        raise DistillError(f"{traces.path}: no finished trace shards to measure (run the pilot's generate stage first)")
    sums: dict[str, list[float]] = {}
    for part in parts:
        t = pq.read_table(part, columns=["source", "prompt_tokens", "completion_tokens", "backend"])
        t = t.filter(pc.not_equal(t["backend"], "imported"))  # imported replies cost no generation
        for src, p, c in zip(t["source"].to_pylist(), t["prompt_tokens"].to_pylist(), t["completion_tokens"].to_pylist()):
            acc = sums.setdefault(src, [0, 0, 0])
            acc[0] += p or 0
            acc[1] += c or 0
            acc[2] += 1
    stats = traces.stats()
    seconds = sum(s.get("generate_seconds", 0) for s in stats)
    tokens = sum(s.get("completion_tokens", 0) for s in stats)
    keep = {}
    if curated.path.exists() and curated.stats():
        for src, f in filter_totals(curated.stats()).get("by_source", {}).items():
            keep[src] = f["rows_out"] / f["rows_in"] if f["rows_in"] else 0.0
    return Pilot(
        prompt_tokens={k: v[0] / v[2] for k, v in sums.items() if v[2]},
        completion_tokens={k: v[1] / v[2] for k, v in sums.items() if v[2]},
        keep_rate=keep,
        tokens_per_s=tokens / seconds if seconds else None,
    )


def plan(cfg: PipelineConfig, pilot: Pilot | None = None) -> list[SourcePlan]:
    n = cfg.generate.samples_per_prompt
    out = []
    for src, quota in zip(cfg.prompts.sources, cfg.prompts.quotas()):
        label = src.label
        kind = f"nonreasoning_{src.nonreasoning}" if src.nonreasoning else "reasoning"
        per_problem = n if kind == "reasoning" else 1
        if quota is None and src.source == "toy":
            quota = src.toy.n  # a toy source's size is its config
        samples = None if quota is None else quota * per_problem
        measured = pilot is not None and label in pilot.completion_tokens
        p_tok = pilot.prompt_tokens[label] if measured else src.expect.prompt_tokens
        c_tok = pilot.completion_tokens[label] if measured else src.expect.completion_tokens
        basis = "pilot" if measured else "expect"
        if not measured and src.source == "toy" and cfg.generate.backend == "toy":
            p_tok, c_tok = _toy_tokens(cfg, src, thinking=kind == "reasoning")  # the toy teacher is cheap to ask
            basis = "toy teacher"
        rate = pilot.keep_rate.get(label, src.expect.keep_rate) if pilot is not None else src.expect.keep_rate
        if kind == "nonreasoning_imported":
            p_tok = c_tok = 0  # no teacher call
        out.append(
            SourcePlan(
                source=label,
                domain=src.domain,
                kind=kind,
                problems=quota,
                samples=samples,
                prompt_tokens=None if samples is None else round(samples * p_tok),
                completion_tokens=None if samples is None else round(samples * c_tok),
                kept=None if samples is None else round(samples * rate),
                keep_rate=round(rate, 4),
                basis=basis,
            )
        )
    return out


def _toy_tokens(cfg: PipelineConfig, src, thinking: bool) -> tuple[float, float]:
    """Mean prompt and completion tokens of the toy teacher on the first problems of a toy source, written
    as the generate stage would write them (same teacher config and token limit)."""
    import random

    from distill.toy.teacher import count_tokens, write_trace

    problems = src.toy.model_copy(update={"n": min(src.toy.n, TOY_DRAFT)}).make("train")
    rng = random.Random(0)
    drafts = [write_trace(p["prompt"], rng, cfg.generate.toy, cfg.generate.sampling.max_tokens, thinking=thinking)[0] for p in problems]
    return (sum(count_tokens(p["prompt"]) for p in problems) / len(problems), sum(map(count_tokens, drafts)) / len(drafts))


def cost_line(cfg: PipelineConfig, rows: list[SourcePlan], tokens_per_s: float, price: Price | None) -> str:
    """GPU-hours for a local engine, USD for a paid endpoint at `price`; the assumption it rests on, stated."""
    prompt = sum(r.prompt_tokens or 0 for r in rows)
    completion = sum(r.completion_tokens or 0 for r in rows)
    g = cfg.generate
    if g.backend == "openai":
        if price is None:
            return "API cost: give --price-input and --price-output (USD per 1M tokens, from your provider's price list)"
        return (
            f"API cost: ${price.cost(prompt, completion):,.0f} at ${price.input}/1M input and ${price.output}/1M output tokens "
            f"({g.openai.model or g.model})"
        )
    if g.backend == "toy":
        return f"generation: the toy teacher writes {completion:,} tokens procedurally on the CPU (seconds; no GPU)"
    gpus = g.vllm.tensor_parallel_size if g.backend == "vllm" else 1
    hours = completion / tokens_per_s / 3600
    return (
        f"GPU-hours: {hours * gpus:,.1f} ({hours:,.1f} engine-hours x {gpus} GPU(s) per engine) at {tokens_per_s:,.0f} "
        f"generated tokens/s per engine ({g.backend}, {g.model}; the rate is an assumption unless --pilot measured it)"
    )


def training_lines(cfg: PipelineConfig, rows: list[SourcePlan]) -> list[str]:
    """The compute after generation, in tokens (hours would need one more assumed throughput): SFT tokens per
    student (kept samples x their mean length x epochs, or max_steps), and eval samples per model."""
    kept = [r for r in rows if r.kept is not None and r.samples]
    tokens = sum(r.kept * ((r.prompt_tokens or 0) + (r.completion_tokens or 0)) / r.samples for r in kept)
    out = []
    for s in cfg.sft.students:
        steps, epochs = s.training.get("max_steps", -1), s.training.get("num_train_epochs", 3.0)
        batch = s.training.get("per_device_train_batch_size", 8) * s.training.get("gradient_accumulation_steps", 1)
        seen = min(tokens * epochs, steps * batch * s.max_length) if steps and steps > 0 else tokens * epochs
        out.append(f"sft {s.name}: ~{seen:,.0f} tokens through the model ({s.model})")
    from distill.eval.stage import resolved_specs

    per_model = []
    for spec in resolved_specs(cfg.eval):
        n = spec.toy.n if spec.toy is not None else None
        per_model.append(f"{spec.name} {'?' if n is None else f'{n:,}'} problems x k={spec.k}, <= {spec.max_tokens:,} tokens each")
    out.append(f"eval: {len(cfg.eval.models)} model(s) x ({'; '.join(per_model)})")
    return out


def print_plan(cfg: PipelineConfig, rows: list[SourcePlan], cost: str, compute: list[str], *, as_json: bool = False) -> None:
    """The per-source table, the generation cost, then the SFT and eval compute."""
    if as_json:
        print(json.dumps({"sources": [asdict(r) for r in rows], "cost": cost, "compute": compute}, indent=2))
        return
    table = Table(title=f"plan: {cfg.name} ({cfg.generate.samples_per_prompt} samples per reasoning problem)")
    for col in ("source", "domain", "kind", "problems", "samples", "prompt tok", "completion tok", "keep rate", "kept"):
        table.add_column(col, justify="left" if col in ("source", "domain", "kind") else "right")

    def fmt(v):
        return "all rows" if v is None else f"{v:,}"

    for r in rows:
        rate = f"{r.keep_rate:.0%}" + (" (pilot)" if r.basis == "pilot" else "")
        tokens = fmt(r.completion_tokens) + ("" if r.basis == "expect" else f" ({r.basis})")
        table.add_row(r.source, r.domain, r.kind, fmt(r.problems), fmt(r.samples), fmt(r.prompt_tokens), tokens, rate, fmt(r.kept))
    known = [r for r in rows if r.samples is not None]
    table.add_row(
        "total", "", "", fmt(sum(r.problems for r in known)), fmt(sum(r.samples for r in known)),
        fmt(sum(r.prompt_tokens for r in known)), fmt(sum(r.completion_tokens for r in known)), "",
        fmt(sum(r.kept for r in known)),
    )  # fmt: skip
    console = Console(width=max(150, Console().width))
    console.print(table)
    console.print(cost, markup=False)
    for line in compute:
        console.print(line, markup=False)
    if len(known) < len(rows):
        console.print("sources without a quota read every row: their size is unknown until the prompts stage has run")
