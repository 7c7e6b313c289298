"""The curated dataset's card: README.md in the curated stage directory, in the Hugging Face
dataset-card format, so `datasets.load_dataset(<dir>)` loads the kept rows as they are (the YAML
`configs` point it at `part-*.parquet`; `rejected` is a second config) and a reader sees the
funnel, the sources, the decontamination and the licences."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from distill.filter.config import VerifyConfig
from distill.filter.select import NOT_SELECTED
from distill.io import write_text
from distill.stage import StageDir

# Licence of the sources the project itself generates (the project's own, Apache-2.0); anything else must name its own.
KNOWN_LICENCES = {"toy": "apache-2.0"}
VERIFIERS = {
    "math": "math-verify: the extracted answer against the reference, symbolically",
    "code": "the problem's tests, run in the sandbox (stdin/stdout and function calls)",
    "choice": "the chosen letter against the reference (math-verify when the reference is not a letter)",
    "judge": "the LLM judge when one is configured; otherwise the readability checks only (verdict `unverifiable`)",
    "none": "none: the readability checks only (verdict `unverifiable`)",
}


def _sizes(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


def _licences(prompts_cfg: dict, sources: list[str]) -> dict[str, str]:
    """source -> licence: a `license` given in the prompts config (per source where sources are listed),
    the project's own for generated data, else "unknown"."""
    given = {}
    for s in prompts_cfg.get("sources") or [prompts_cfg]:
        if isinstance(s, dict) and s.get("license"):
            given[s.get("name") or s.get("source")] = s["license"]
    return {src: given.get(src) or prompts_cfg.get("license") or KNOWN_LICENCES.get(src, "unknown") for src in sources}


def dataset_card(curated: Path, prompts: Path | None = None) -> str:
    curated = Path(curated)
    stage = StageDir(curated)
    stats = stage.stats()
    rows_in = sum(int(s.get("rows_in", 0)) for s in stats)
    kept = sum(int(s.get("rows_out", 0)) for s in stats)
    reasons: Counter = Counter()
    for s in stats:
        reasons.update({k: int(v) for k, v in (s.get("rejected") or {}).items()})
    not_selected = reasons.pop(NOT_SELECTED, 0)
    by_source: Counter = Counter()
    teachers: Counter = Counter()
    for p in stage.parts():
        t = pq.read_table(p, columns=["source", "teacher", "backend", "sampling", "prompt_template"])
        by_source.update(t["source"].to_pylist())
        teachers.update(zip(t["teacher"].to_pylist(), t["backend"].to_pylist(), t["sampling"].to_pylist(), t["prompt_template"].to_pylist()))
    prompts_cfg, contaminated, removed = {}, Counter(), 0
    if prompts is not None and (Path(prompts) / "config.json").exists():
        pstage = StageDir(prompts)
        prompts_cfg = pstage.config()
        for s in pstage.stats():
            contaminated.update({k: int(v) for k, v in (s.get("contaminated_by") or {}).items()})
            removed += int(s.get("rows_in", 0)) - int(s.get("rows_out", 0))
    licences = _licences(prompts_cfg, sorted(by_source))
    distinct = sorted(set(licences.values()))
    header = {
        "pretty_name": f"{curated.parent.name} curated teacher traces",
        "license": distinct[0] if len(distinct) == 1 else "other",
        "task_categories": ["text-generation"],
        "tags": ["reasoning", "distillation", "rejection-sampling", "distill"],
        "size_categories": [_sizes(kept)],
        "configs": [
            {"config_name": "default", "data_files": [{"split": "train", "path": "part-*.parquet"}]},
            {"config_name": "rejected", "data_files": [{"split": "train", "path": "rejected/part-*.parquet"}]},
        ],
    }
    funnel = ([f"| traces in | {rows_in:,} |"] + [f"| failed: {r} | {c:,} |" for r, c in reasons.most_common()]
              + ([f"| passed, not selected (another sample of the problem kept) | {not_selected:,} |"] if not_selected else [])
              + [f"| kept | {kept:,} |"])
    routes = VerifyConfig.model_validate(stage.config().get("verify") or {}).routes
    verifiers = [f"| {d} | {VERIFIERS[r]} |" for d, r in routes.items()]
    teacher_rows = [f"| {t} | {b or '-'} | `{s or '-'}` | {tpl or '-'} | {n:,} |" for (t, b, s, tpl), n in teachers.most_common()]
    sources = [f"| {s} | {n:,} | {licences[s]} |" for s, n in by_source.most_common()]
    decon = (
        f"The prompts stage dropped {removed:,} of its input problems as duplicates or benchmark contamination; "
        + (", ".join(f"{n:,} matched {b}" for b, n in contaminated.most_common()) + "." if contaminated else "none matched a benchmark.")
        + f" Benchmarks checked: {', '.join((prompts_cfg.get('decontaminate') or {}).get('benchmarks') or []) or 'none'}"
        + f" ({(prompts_cfg.get('decontaminate') or {}).get('ngram', '?')}-gram overlap)."
        if prompts_cfg else "No prompts stage was given to the card writer, so decontamination is not described here."
    )
    config_hash = stage.config_hash()
    return f"""---
{yaml.safe_dump(header, sort_keys=False).strip()}
---

# {header['pretty_name']}

Teacher traces kept by rejection sampling (`distill filter`), one row per kept trace, with the SFT
conversation in `messages`. The `rejected` configuration holds every rejected trace with its
`reject_reason`. Filter config hash: `{config_hash}`.

```python
from datasets import load_dataset

kept = load_dataset("YOUR_ORG/{curated.parent.name}-traces")  # after `distill export` and an upload of its directory
rejected = load_dataset("YOUR_ORG/{curated.parent.name}-traces", "rejected")
kept = load_dataset("path/to/this/directory")  # the same, from a local copy
```

## Teacher

| teacher | backend | sampling | prompt template | kept traces |
|---|---|---|---|---|
{chr(10).join(teacher_rows)}

The prompt template is the chat each problem was sent as (`distill/generate/prompting.py`: `r1` is
R1's own usage advice: the problem as the user turn, no system prompt, the answer in `\\boxed{{}}`).

## Verification

| domain | verifier |
|---|---|
{chr(10).join(verifiers)}

## Funnel

| step | traces |
|---|---|
{chr(10).join(funnel)}

## Sources

| source | kept traces | licence |
|---|---|---|
{chr(10).join(sources)}

Generated traces inherit the terms of the teacher that wrote them as well as the problems' licence.

## Decontamination

{decon}

## Columns

`id`, `source`, `domain`, `prompt`, `answer`, `tests`, `metadata` (the problem); `sample_idx`,
`teacher`, `completion`, `reasoning`, `response`, `finish_reason`, token counts, `sampling` and
lineage (the trace); `verdict` (correct | incorrect | unverifiable), `extracted`, `reject_reason`,
`messages` (the curation). The record shapes are in the distill repository's `docs/design.md`.
"""


def write_dataset_card(curated: Path, prompts: Path | None = None) -> Path:
    path = Path(curated) / "README.md"
    write_text(path, dataset_card(curated, prompts))
    return path


