"""Gather what the stages wrote in a run directory: the curation funnel, training losses, eval scores
and samples, which model is whose baseline, and the R1 paper rows for the same models.

Stages write stats; the report only reads. Missing pieces (a run stopped before sft, say) leave
their section empty instead of failing, and anything unreadable is named in `notes`.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path


from distill.config import load_yaml
from distill.eval.compare import compare, foreign_agreement
from distill.eval.stage import SCORE_COLUMNS, load_samples
from distill.filter.select import NOT_SELECTED
from distill.kd.report import kd_table
from distill.layout import CURATED, EVAL, PROMPTS, SFT
from distill.stage import StageDir

log = logging.getLogger(__name__)

REFERENCE_FILE = Path(__file__).with_name("r1_reference.json")


def reference() -> dict:
    return json.loads(REFERENCE_FILE.read_text())


def funnel(run_dir: Path, notes: list[str]) -> dict | None:
    """Totals over the filter's finished shards (those with a done/ marker): rows in, rows kept,
    rejections per reason. A killed shard's stats are left out, as the stage itself leaves them out."""
    stage = StageDir(run_dir / CURATED)
    files = [stage.stats_file(i) for i in stage.done_shards()] if stage.path.exists() else []
    if not files:
        return None
    rows_in = rows_out = 0
    reasons: Counter = Counter()
    groups: dict[str, dict] = {}
    for f in files:
        try:
            s = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            notes.append(f"{f}: unreadable ({e.msg}); left out of the funnel")
            continue
        rows_in += int(s.get("rows_in", 0))
        rows_out += int(s.get("rows_out", 0))
        rejected = s.get("rejected", {})
        if isinstance(rejected, dict):
            reasons.update({str(k): int(v) for k, v in rejected.items()})
        for group in ("by_domain", "by_source"):  # the mix: one funnel per domain and per source
            for name, g in (s.get(group) or {}).items():
                acc = groups.setdefault(group, {}).setdefault(name, {"rows_in": 0, "rows_out": 0, "rejected": Counter()})
                acc["rows_in"] += int(g.get("rows_in", 0))
                acc["rows_out"] += int(g.get("rows_out", 0))
                acc["rejected"].update(g.get("rejected", {}))
    by = {k: {n: {**g, "rejected": dict(g["rejected"].most_common())} for n, g in v.items()} for k, v in groups.items()}
    # verified traces the one-per-problem policy left out are not failures: counted apart
    not_selected = reasons.pop(NOT_SELECTED, 0)
    return {"rows_in": rows_in, "rows_out": rows_out, "rejected": dict(reasons.most_common()), "not_selected": not_selected,
            "shards": len(files), **by}


def losses(run_dir: Path, notes: list[str]) -> dict[str, list[dict]]:
    """student -> [{step, loss, ...}] from 04_sft/<student>/metrics.jsonl."""
    out = {}
    for f in sorted((run_dir / SFT).glob("*/metrics.jsonl")) if (run_dir / SFT).exists() else []:
        points = []
        for n, line in enumerate(f.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                notes.append(f"{f}:{n}: unreadable line skipped")
                continue
            if isinstance(row, dict) and row.get("loss") is not None and row.get("step") is not None:
                points.append(row)
        if points:
            out[f.parent.name] = points
    return out


def pipeline_models(run_dir: Path) -> dict[str, dict]:
    """Model specs from the run's pipeline.yaml (eval.models), by name; {} when there is none."""
    f = run_dir / "pipeline.yaml"
    if not f.exists():
        return {}
    data = load_yaml(f) or {}
    models = (data.get("eval") or {}).get("models") or []
    return {m["name"]: m for m in models if isinstance(m, dict) and "name" in m}


def evals(run_dir: Path, notes: list[str]) -> dict[str, dict]:
    """model name -> {"dir", "scores", "spec"} for each 05_eval/<model>/scores.json."""
    out = {}
    specs = pipeline_models(run_dir)
    for f in sorted((run_dir / EVAL).glob("*/scores.json")) if (run_dir / EVAL).exists() else []:
        try:
            scores = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            notes.append(f"{f}: unreadable ({e.msg}); model left out")
            continue
        name = f.parent.name
        spec = {**(scores.get("model") or {}), **specs.get(name, {})}
        out[name] = {"dir": f.parent, "scores": scores, "spec": spec, "templates": spec_templates(f.parent)}
    for name in specs:
        if name not in out:
            notes.append(f"model '{name}' is in pipeline.yaml but has no scores in {run_dir / EVAL}")
    return out


def pairs(models: dict[str, dict]) -> list[tuple[str, str]]:
    """(distilled, baseline) pairs from the specs' `baseline` / `baseline_of` fields."""
    found = []
    for name, m in models.items():
        spec = m["spec"]
        if spec.get("baseline") in models:
            found.append((name, spec["baseline"]))
        if spec.get("baseline_of") in models:
            found.append((spec["baseline_of"], name))
    return sorted(set(found))


def reference_rows(models: dict[str, dict]) -> dict[str, dict]:
    """model name -> the R1 Table 5 row its spec names in `r1_reference`. Never matched by name or path:
    a model called "...Qwen-7B" trained another way would sit beside numbers that are not its own."""
    by_name = {r["model"]: r for r in reference()["rows"]}
    return {name: by_name[m["spec"]["r1_reference"]] for name, m in models.items() if m["spec"].get("r1_reference") in by_name}


def r1_protocol(spec_template: str = "r1") -> dict:
    """The R1 paper's sampling protocol as recorded in a benchmark's `protocol`; its prompt is the
    benchmark spec's own template (`r1` for math, the file's layout for GPQA and LiveCodeBench)."""
    return {**reference()["protocol"], "template": spec_template}


def _setting(key: str, value) -> str:
    if value == "unknown" or (value is None and key != "system_prompt"):  # imported samples: not saved by their tool
        return f"{key} unknown"
    return {
        "temperature": f"T={value}",
        "top_p": f"top-p {value}",
        "max_tokens": f"{value} tokens",
        "prefix": "no <think> prefix" if value == "" else f"prefix {value!r}",
        "system_prompt": "no system prompt" if value is None else f"system prompt {value!r}",
        "template": f"template {value}",
    }[key]


def r1_departures(proto: dict, spec_template: str = "r1") -> list[str]:
    """Where one benchmark's protocol differs from R1's, in words ("3072 tokens", "no <think> prefix")."""
    return [_setting(key, proto.get(key)) for key, want in r1_protocol(spec_template).items() if proto.get(key) != want]


def import_note(name: str, eval_dir: Path) -> str | None:
    """For samples imported from another tool: where from, and how many of its problems were left out."""
    try:
        imported = StageDir(eval_dir).config().get("imported")
    except (OSError, KeyError, json.JSONDecodeError):
        return None
    if not imported:
        return None
    note = f"{name}: imported from {imported['format']} ({imported['file']}), {imported['matched']} problems matched to the benchmark"
    if imported.get("unmatched"):
        note += f"; {imported['unmatched']} not in it were left out (listed in {eval_dir / 'unmatched.jsonl'})"
    return note


def spec_templates(eval_dir: Path) -> dict[str, str]:
    """benchmark -> the template its spec names (the R1 prompt for it), from the eval's config.json."""
    try:
        return {b: v["spec"]["template"] for b, v in StageDir(eval_dir).config()["benchmarks"].items()}
    except (OSError, KeyError, TypeError, json.JSONDecodeError):
        return {}


def sampling_settings(models: dict[str, dict]) -> dict[str, str]:
    """model name -> its real sampling settings, for the legend (k and limits per benchmark when they differ)."""
    out = {}
    for name, m in models.items():
        benches = m["scores"].get("benchmarks", {})
        if not benches:
            continue
        protos = {b: s.get("protocol", {}) for b, s in sorted(benches.items())}
        parts = []
        for key in r1_protocol():
            values = {b: p.get(key) for b, p in protos.items()}
            if len(set(map(repr, values.values()))) == 1:
                parts.append(_setting(key, next(iter(values.values()))))
            else:
                parts.append(", ".join(f"{b}: {_setting(key, v)}" for b, v in values.items()))
        parts.append(", ".join(f"{b} k={p.get('k')}" for b, p in protos.items()))
        parts.append("grading " + ", ".join(sorted({str(p.get("grading", "unrecorded")) for p in protos.values()})))  # strict | lenient
        parts += [f"{b} prompt: {p['prompt']}" for b, p in protos.items() if p.get("prompt")]  # a benchmark run on a prompt of ours
        source = (m["scores"].get("model") or {}).get("imported_from")
        out[name] = "; ".join(([f"imported from {source}"] if source else []) + parts)
    return out


def paper_protocol_gaps(name: str, scores: dict, ref: dict) -> list[str]:
    """Where a model's eval departs from the paper's protocol, so its numbers are not comparable to
    the paper row shown beside it (e.g. a quick run with 512 tokens or a subset of problems)."""
    gaps = []
    for col in ref["columns"]:
        bench = col.split("/")[0]
        proto = scores.get("benchmarks", {}).get(bench, {}).get("protocol")
        if proto is None:
            continue
        for key, want in ref["protocol"].items():
            if proto.get(key) != want:
                gaps.append(f"{name} / {bench}: {key}={proto.get(key)!r}, the paper used {want!r}")
        if proto.get("n_problems") != ref["n_problems"].get(bench, proto.get("n_problems")):
            gaps.append(f"{name} / {bench}: {proto.get('n_problems')} problems, the paper used {ref['n_problems'][bench]}")
    return sorted(set(gaps))


def headline_pairs(models: dict[str, dict], comparisons: list[dict]) -> list[dict]:
    """Per distilled model and benchmark: both models' pass@1 with CIs and the paired difference with its CI.
    A refused pair (other problems or k) has no number to quote; the comparison table says why in red."""
    out = []
    for c in comparisons:
        for bench, r in sorted(c["benchmarks"].items()):
            if "refused" in r:
                continue
            d = models[c["distilled"]]["scores"]["benchmarks"][bench]
            b = models[c["baseline"]]["scores"]["benchmarks"][bench]
            p = r["pass@1"]
            out.append({
                "distilled": c["distilled"], "baseline": c["baseline"], "benchmark": bench,
                "n_problems": p["n_problems"], "k": d["k"],
                "distilled_pass1": d["pass@1"], "distilled_ci": list(d["pass@1_ci95"]),
                "baseline_pass1": b["pass@1"], "baseline_ci": list(b["pass@1_ci95"]),
                "diff": p["diff"], "diff_ci": [p["ci_low"], p["ci_high"]], "p_not_better": p["p_not_better"],
            })
    return out


def contamination(run_dir: Path) -> list[dict]:
    """Each training problem decontamination removed, with the benchmark item and the shared n-gram
    (`01_prompts/removed.jsonl`; the n-gram is recorded by runs made since it was)."""
    f = run_dir / PROMPTS / "removed.jsonl"
    if not f.exists():
        return []
    with f.open(encoding="utf-8") as lines:
        return [r for line in lines if line.strip() and (r := json.loads(line)).get("reason") == "contaminated"]


def collect(run_dir: Path) -> dict:
    from distill.report.lineage import lineage
    from distill.report.traces import files, sample

    run_dir = Path(run_dir)
    notes: list[str] = []
    models = evals(run_dir, notes)
    comparisons = []
    paired = pairs(models)
    for distilled, baseline in paired:
        c = compare(models[distilled]["dir"], models[baseline]["dir"])
        comparisons.append(c)
        notes += [f"{distilled} vs {baseline}: {m}" for m in c["protocol_mismatches"]]
    samples = {name: load_samples(m["dir"], SCORE_COLUMNS) for name, m in models.items()}
    ref = reference()
    matched = reference_rows(models)
    for name in matched:
        notes += paper_protocol_gaps(name, models[name]["scores"], ref)
    notes += [n for name, m in models.items() if (n := import_note(name, m["dir"]))]
    for name, m in models.items():
        for bench, s in m["scores"]["benchmarks"].items():
            if s["termination"].get("errors"):
                notes.append(f"{name} / {bench}: {100 * s['termination']['errors']:.1f}% of samples are backend errors, scored wrong")
    return {
        "run_dir": run_dir,
        "name": run_dir.resolve().name,
        "kd": kd_table(run_dir, models),
        "funnel": funnel(run_dir, notes),
        "losses": losses(run_dir, notes),
        "models": models,
        "samples": samples,
        "comparisons": comparisons,
        "contamination": contamination(run_dir),
        "reference": ref,
        "reference_rows": matched,
        "pairs": paired,
        "headline": headline_pairs(models, comparisons),
        "traces": sample(run_dir, {name: m["spec"] for name, m in models.items()}),
        "trace_files": files(run_dir, list(models)),
        "lineage": lineage(run_dir),
        "settings": sampling_settings(models),
        # imported samples: our verdicts against the other tool's
        "agreement": {name: a for name, m in models.items() if (a := foreign_agreement(m["dir"]))},
        "notes": notes,
    }
