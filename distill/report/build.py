"""`distill report`: one self-contained HTML page (plots inline as SVG, a trace browser in plain
JS, no network) and a Markdown file (plots beside it as PNG files) from a run directory, plus
`summary.json` (the headline numbers, read by `distill run`'s closing table and scripts/demo_numbers.py).

Sections: the headline (each distilled model against its baseline, one quotable sentence each),
results with 95% CIs and termination metrics, distilled - baseline with paired CIs, the
R1 paper's rows for the same models, response lengths, the curation funnel, the training loss, the
trace browser, lineage (versions, config hashes, wall time and tokens per stage), and notes.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import re
from pathlib import Path

from distill.errors import DistillError
from distill.eval.budget import first_budget_beating, tokens_to_reach
from distill.io import write_bytes, write_json, write_text
from distill.console import points
from distill.machine import command_line
from distill.machine import summary as machine_summary
from distill.report import plots
from distill.report.collect import collect, r1_departures


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}"


def _ci(lo: float, hi: float, signed: bool = False) -> str:
    return f"[{points(lo, signed)}, {points(hi, signed)}]"


def _signed(x: float) -> str:
    return points(x, signed=True)


def results_table(data: dict) -> tuple[list[str], list[list[str]]]:
    head = ["model", "benchmark", "problems", "k", "pass@1 (%)", "95% CI", "cons@k (%)", "pass@k (%)",
            "closed thought (%)", "unfinished (%)", "repetition (%)", "tokens to answer", "protocol"]
    rows = []
    for name, m in data["models"].items():
        for bench, s in sorted(m["scores"]["benchmarks"].items()):
            t = s["termination"]
            kmax = str(s["k"])
            tta = t.get("mean_tokens_to_answer")
            departures = r1_departures(s.get("protocol", {}), m.get("templates", {}).get(bench, "r1"))
            rows.append([name, bench, str(s["n_problems"]), kmax, _pct(s["pass@1"]), _ci(*s["pass@1_ci95"]),
                         _pct(s["cons@k"]), _pct(s["pass@k"].get(kmax)), _pct(t.get("closed_thought")), _pct(t["unfinished"]), _pct(t["repetition"]),
                         "" if tta is None else f"{tta:.0f}", "not R1: " + ", ".join(departures) if departures else "R1"])
    return head, rows


def comparison_table(data: dict) -> tuple[list[str], list[list[str]]]:
    head = ["distilled", "baseline", "benchmark", "problems", "Δ pass@1 (pts)", "95% CI", "Δ cons@k (pts)", "95% CI",
            "P(Δ pass@1 ≤ 0)", "protocols"]
    rows = []
    for c in data["comparisons"]:
        for bench, r in sorted(c["benchmarks"].items()):
            if "refused" in r:  # different problem sets or k: no difference is computed (see eval.compare)
                rows.append([c["distilled"], c["baseline"], bench, "", "", "", "", "", "", f"not compared: {r['refused']}"])
                continue
            p, v = r["pass@1"], r["cons@k"]
            differ = [m.split(": ", 1)[1] for m in c["protocol_mismatches"] if m.startswith(f"{bench}: ")]
            rows.append([c["distilled"], c["baseline"], bench, str(p["n_problems"]), _signed(p["diff"]), _ci(p["ci_low"], p["ci_high"], signed=True),
                         _signed(v["diff"]), _ci(v["ci_low"], v["ci_high"], signed=True), f"{p['p_not_better']:.3f}",
                         "; ".join(differ) if differ else "same"])
    return head, rows


def reference_table(data: dict) -> tuple[list[str], list[list[str]]]:
    """For each model with a paper row: the paper's numbers and ours on the same benchmark and metric."""
    cols = data["reference"]["columns"]
    head = ["model", "source"] + list(cols.values())
    rows = []
    for name, ref in data["reference_rows"].items():
        rows.append([name, f"R1 paper: {ref['model']}"] + [str(ref["scores"].get(c, "")) for c in cols])
        ours = data["models"][name]["scores"]["benchmarks"]
        cells = []
        for c in cols:
            bench, metric = c.split("/")
            cells.append(_pct(ours[bench][metric]) if bench in ours and metric in ours[bench] else "")
        rows.append([name, "this run"] + cells)
    return head, rows


# The report lists this many disagreements per model and benchmark; the rest are counted.
MAX_DISAGREEMENTS = 50


def agreement_table(data: dict) -> tuple[list[str], list[list[str]]]:
    head = ["model", "benchmark", "labelled samples", "agree (%)", "correct here only", "correct there only"]
    rows = [[name, bench, str(a["labelled"]), _pct(a["agree"]), str(a["only_ours_correct"]), str(a["only_theirs_correct"])]
            for name, benches in data["agreement"].items() for bench, a in benches.items()]
    return head, rows


def disagreement_table(data: dict) -> tuple[list[str], list[list[str]]]:
    head = ["model", "benchmark", "problem", "sample", "reference", "our answer", "ours", "their answer", "theirs"]
    rows = []
    for name, benches in data["agreement"].items():
        for bench, a in benches.items():
            for r in a["disagreements"][:MAX_DISAGREEMENTS]:
                rows.append([name, bench, r["problem_id"], str(r["sample_idx"]), str(r["answer"]), str(r["extracted"]),
                             "correct" if r["correct"] else "wrong", str(r["foreign_extracted"] or ""),
                             "correct" if r["foreign_correct"] else "wrong"])
            if len(a["disagreements"]) > MAX_DISAGREEMENTS:
                rows.append([name, bench, f"... and {len(a['disagreements']) - MAX_DISAGREEMENTS} more", "", "", "", "", "", ""])
    return head, rows


def funnel_table(f: dict) -> tuple[list[str], list[list[str]]]:
    head = ["step", "traces", "share of input (%)"]
    n = max(f["rows_in"], 1)
    rows = [["traces in", str(f["rows_in"]), "100.0"]]
    rows += [[f"failed: {r}", str(c), f"{100 * c / n:.1f}"] for r, c in f["rejected"].items()]
    if f.get("not_selected"):
        rows.append(["passed, not selected (another sample of the problem kept)", str(f["not_selected"]), f"{100 * f['not_selected'] / n:.1f}"])
    rows.append(["kept", str(f["rows_out"]), f"{100 * f['rows_out'] / n:.1f}"])
    return head, rows


def mix_funnel_table(f: dict) -> tuple[list[str], list[list[str]]]:
    """One funnel row per domain and per source of the mix."""
    head = ["domain / source", "traces in", "kept", "kept (%)", "main rejections"]
    rows = []
    for group, label in (("by_domain", "domain"), ("by_source", "source")):
        for name, g in sorted(f.get(group, {}).items()):
            top = ", ".join(f"{r} {c}" for r, c in list(g["rejected"].items())[:3])
            rows.append([f"{label}: {name}", str(g["rows_in"]), str(g["rows_out"]), f"{100 * g['rows_out'] / max(g['rows_in'], 1):.1f}", top])
    return head, rows


def figures(data: dict) -> dict[str, tuple[bytes, str]]:
    """name -> (PNG, SVG) of each figure the data allows."""
    figs = {}
    if data["models"]:
        figs["accuracy"] = plots.accuracy(data["models"], data["pairs"])
        figs["lengths"] = plots.lengths(data["samples"], data["models"], data["pairs"])
    for bench in budget_benchmarks(data):
        figs[f"budget-{bench}"] = plots.budget(data["models"], data["pairs"], bench)
    if data["funnel"]:
        figs["funnel"] = plots.funnel(data["funnel"])
    if data["losses"]:
        figs["loss"] = plots.loss(data["losses"])
    return figs


def budget_benchmarks(data: dict) -> list[str]:
    """The benchmarks on which some model has an accuracy-against-budget curve."""
    return sorted({b for m in data["models"].values() for b, s in m["scores"]["benchmarks"].items() if s.get("budget", {}).get("points")})


def budget_table(data: dict, bench: str) -> tuple[list[str], list[list[str]]]:
    """Per distilled model and its baseline on `bench`: the tokens the distilled model needs to reach the
    baseline's best pass@1, and the first budget at which it beats the baseline."""
    head = ["distilled", "baseline", "baseline's best pass@1 (%)", "distilled reaches it at (tokens)", "distilled first beats baseline at (tokens)", "curves"]
    rows = []
    for dist, base in data["pairs"]:
        curves = [data["models"].get(n, {}).get("scores", {}).get("benchmarks", {}).get(bench, {}).get("budget", {}) for n in (dist, base)]
        if not all(c.get("points") for c in curves):
            continue
        best = max(p["pass@1"] for p in curves[1]["points"])
        reach, beat = tokens_to_reach(curves[0], best), first_budget_beating(*curves)
        rows.append([dist, base, _pct(best), "not within the ladder" if reach is None else f"{reach:,}", "never" if beat is None else f"{beat:,}",
                     "exact" if all(c["exact"] for c in curves) else "estimate: " + "; ".join(sorted({c["why"] for c in curves if not c["exact"]}))])
    return head, rows


def subset_table(data: dict) -> tuple[list[str], list[list[str]]]:
    """pass@1 per subset (MATH-500 level and subject, LiveCodeBench difficulty and month, ...), see eval.breakdown."""
    head = ["model", "benchmark", "subset", "group", "problems", "pass@1 (%)", "95% CI"]
    rows = []
    for name, m in data["models"].items():
        for bench, s in sorted(m["scores"]["benchmarks"].items()):
            for key, groups in (s.get("subsets") or {}).items():
                rows += [[name, bench, key, group, str(g["n_problems"]), _pct(g["pass@1"]), _ci(*g["pass@1_ci95"])] for group, g in groups.items()]
    return head, rows


CONTAMINATION_ROWS = 200  # the report lists at most this many removals; removed.jsonl has them all


def contamination_table(data: dict) -> tuple[list[str], list[list[str]]]:
    """Each decontamination removal linked to its benchmark item and the n-gram they share."""
    head = ["training problem", "source", "benchmark item", "shared n-gram", "training prompt (start)"]
    return head, [[r["id"], r.get("source") or "", r["match"], r.get("ngram") or "(not recorded)", (r.get("prompt") or "")[:80].replace("\n", " ")]
                  for r in data["contamination"][:CONTAMINATION_ROWS]]


def headline_sentence(p: dict) -> str:
    """One sentence a person can quote: both models' pass@1 with CIs and the paired difference."""
    def ci(lo: float, hi: float, signed: bool = False, unit: str = "%") -> str:
        return f"95% CI {points(lo, signed)}{unit} to {points(hi, signed)}{unit}"

    return (
        f"{p['distilled']} reaches {points(p['distilled_pass1'])}% pass@1 ({ci(*p['distilled_ci'])}) on {p['benchmark']}, "
        f"against {points(p['baseline_pass1'])}% ({ci(*p['baseline_ci'])}) for its undistilled baseline {p['baseline']}: "
        f"{points(p['diff'], signed=True)} points ({ci(*p['diff_ci'], signed=True, unit='')}; {p['n_problems']} problems, k={p['k']})."
    )


def lineage_tables(lin: dict) -> list[tuple[str, tuple]]:
    out = []
    if lin["teachers"]:
        out.append(("teachers", (["teacher", "backend", "backend version", "prompt template", "traces"],
                                 [[str(t.get(k) or "") for k in ("teacher", "backend", "backend_version", "prompt_template")] + [f"{t['rows']:,}"]
                                  for t in lin["teachers"]])))
    out.append(("stages", (["stage", "unit", "config hash", "wall time (s)", "rows", "tokens"],
                           [[r["stage"], r["unit"], r["config_hash"] or "", "" if r["wall_s"] is None else f"{r['wall_s']:,.1f}",
                             "" if r["rows"] is None else f"{r['rows']:,}", "" if r["tokens"] is None else f"{r['tokens']:,}"]
                            for r in lin["stages"]])))
    out.append(("packages", (["package", "version"], [["git commit", lin["git_commit"]]] + [[k, v] for k, v in lin["packages"].items()])))
    if lin["invocations"]:
        out.append(("commands", (["started (UTC)", "command", "machine"],
                                 [[i["time"], command_line(i["argv"]), machine_summary(i["machine"])] for i in lin["invocations"]])))
    return out


def _sections(data: dict) -> list[tuple[str, str, tuple | None, str | None]]:
    """(id, title, table, figure name) in page order. The headline, trace browser and lineage are
    rendered apart (they are not a table and a figure)."""
    out = []
    if data["models"]:
        out.append(("results", "Results", results_table(data), "accuracy"))
    if data["comparisons"]:
        out.append(("comparison", "Distilled vs baseline (paired over problems)", comparison_table(data), None))
    if data.get("kd"):
        out.append(("kd", "After SFT: on-policy distillation vs more SFT (paired over problems; tokens generated: "
                    "by the teacher for SFT's traces, by the student for KD)", data["kd"], None))
    if data["reference_rows"]:  # only models whose eval spec names a paper row (r1_reference)
        out.append(("reference", "DeepSeek-R1 paper, Table 5 (same models)", reference_table(data), None))
    if data.get("agreement"):
        out.append(("agreement", "Imported samples: our verdicts against the other tool's", agreement_table(data), None))
        out.append(("disagreements", "Imported samples: where the verdicts disagree", disagreement_table(data), None))
    if data["models"]:
        out.append(("lengths", "Response lengths", None, "lengths"))
    if data.get("contamination"):
        n = len(data["contamination"])
        out.append(("contamination", f"Decontamination: {n} training problems removed for overlapping a benchmark"
                    + (f" (first {CONTAMINATION_ROWS}; all in 01_prompts/removed.jsonl)" if n > CONTAMINATION_ROWS else ""),
                    contamination_table(data), None))
    if data["funnel"]:
        out.append(("funnel", "Curation funnel", funnel_table(data["funnel"]), "funnel"))
        if len(data["funnel"].get("by_domain", {})) + len(data["funnel"].get("by_source", {})) > 2:
            out.append(("mix", "Curation funnel by domain and source", mix_funnel_table(data["funnel"]), None))
    if data["losses"]:
        final = [[s, str(p[-1]["step"]), f"{p[-1]['loss']:.4f}"] for s, p in sorted(data["losses"].items())]
        out.append(("loss", "Training loss", (["student", "last step", "last loss"], final), "loss"))
    if data["models"] and subset_table(data)[1]:
        out.append(("subsets", "Per-subset pass@1 (95% CI over the subset's problems)", subset_table(data), None))
    for bench in budget_benchmarks(data):
        out.append((f"budget-{bench}", f"Accuracy against thinking budget: {bench}", budget_table(data, bench), f"budget-{bench}"))
    return out


BUDGET_NOTE = (
    "Accuracy against thinking budget comes from the one sampling at the full budget: a sample drawn with a smaller "
    "max_tokens is the first tokens of the same sample (same seed and engine), so a sample that finished within the "
    "budget keeps its verdict and any longer one counts as unfinished, hence wrong. It is exact for vLLM (per-request "
    "seeds) and the toy teacher, and marked an estimate otherwise (the transformers backend seeds each batch, an API, "
    "imported samples)."
)

LEGEND = (
    "pass@1: mean correctness over the k samples per problem, averaged over problems (the R1 protocol: T=0.6, "
    "top-p 0.95, 32,768 tokens, response forced to start with `<think>\\n`, no system prompt; a row marked "
    "'not R1' names how its model was sampled instead, and each model's settings are listed below). cons@k: majority vote over the k answers. "
    "pass@k: unbiased estimator. 95% CI of a rate: Wilson over problems; of a paired difference: MOVER from both Wilson intervals and the per-problem correlation (Newcombe 1998); P(Δ ≤ 0): paired bootstrap over problems. Unfinished: samples cut at the "
    "token limit; repetition: samples ending in a repeated block; tokens to answer: mean completion tokens "
    "of samples that stopped with an answer. "
    + BUDGET_NOTE
)


def markdown(data: dict, figs: dict[str, str]) -> str:
    lines = [f"# distill report: {data['name']}", ""]
    if data["headline"]:
        lines += [f"**{headline_sentence(p)}**" for p in data["headline"]] + [""]
    lines += [LEGEND, ""]
    if data.get("settings"):
        lines += ["Sampling settings per model:", ""] + [f"- {n}: {s}" for n, s in data["settings"].items()] + [""]
    for sid, title, table, fig in _sections(data):
        lines += [f"## {title}", ""]
        if sid == "reference":
            lines += [f"Source: {data['reference']['citation']}", ""]
        if table is not None:
            lines += _md_table(table)
        if fig:
            lines += [f"![{title}]({figs[fig]})", ""]
    lines += ["## Lineage", ""]
    for _, table in lineage_tables(data["lineage"]):
        lines += _md_table(table)
    lines += [f"The trace browser ({len(data['traces'])} sampled traces and samples) is in index.html.", ""]
    if data["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in data["notes"]] + [""]
    return "\n".join(lines)


def _md_table(table: tuple) -> list[str]:
    head, rows = table
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return lines + [""]


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child,td:nth-child(2){text-align:left}
td{white-space:nowrap}td.long{white-space:normal;min-width:16em}
.scroll{overflow-x:auto}svg{max-width:100%;height:auto;display:block;margin:8px 0}figure{margin:8px 0;overflow-x:auto}
.legend,.note{color:#555;font-size:13px}.warn{color:#a40}
#headline{background:#f5f8fc;border-left:4px solid #1f77b4;padding:8px 14px;margin:12px 0}
#headline p{font-size:15px;margin:6px 0}
.tb-controls{display:flex;flex-wrap:wrap;gap:12px;align-items:center;font-size:13px;margin:8px 0}
details.trace{border:1px solid #ddd;border-radius:4px;margin:4px 0;padding:2px 8px;font-size:13px}
details.trace summary{cursor:pointer;display:flex;flex-wrap:wrap;gap:8px}
.v{font-weight:600;padding:0 6px;border-radius:3px}.v-correct,.v-kept{background:#dff0d8}.v-incorrect,.v-rejected{background:#f8d7da}
.v-trained{background:#d9e8f6}.sup{background:#d6f0c8;color:#111}.unsup{color:#888}#tb-search{min-width:14em}
.tb-meta{color:#555}.tb-h{font-weight:600;margin-top:6px}
pre{white-space:pre-wrap;word-break:break-word;background:#fafafa;border:1px solid #eee;padding:6px;max-height:360px;overflow:auto;font-size:12px}
"""

BROWSER = Path(__file__).with_name("trace_browser.html")


# Cells up to this many characters (names, numbers, CIs) stay on one line; longer ones (a protocol's
# departures, a refusal) may wrap.
ONE_LINE_CHARS = 40
# The smallest share of its natural size a figure is drawn at: below it the 8-9 pt text is too small to
# read (a phone), so the figure scrolls sideways instead.
MIN_FIGURE_SCALE = 0.8


def _cell_class(cell: str) -> str:
    """Red for cells that say a number is not what it seems (another protocol, a refused comparison);
    `long` for text that may wrap."""
    classes = (["warn"] if cell.startswith(("not R1", "not compared")) else []) + (["long"] if len(cell) > ONE_LINE_CHARS else [])
    return f' class="{" ".join(classes)}"' if classes else ""


def _html_table(sid: str, table: tuple) -> str:
    head, rows = table
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td{_cell_class(c)}>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<div class="scroll"><table id="table-{sid}"><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table></div>'


def _min_width(svg: str) -> str:
    """The SVG with a minimum drawn width of MIN_FIGURE_SCALE of its natural one (matplotlib gives it in pt)."""
    m = re.match(r'<svg[^>]*?\swidth="([\d.]+)pt"', svg)
    if not m:
        return svg
    return svg.replace("<svg ", f'<svg style="min-width:{round(float(m.group(1)) * 4 / 3 * MIN_FIGURE_SCALE)}px" ', 1)


def _json_script(element_id: str, obj) -> str:
    """JSON inside a script element, escaped so no value can close the element early."""
    text = json.dumps(obj, ensure_ascii=False).replace("</", "<\\/").replace("<!--", "<\\!--")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def html_page(data: dict, figs: dict[str, tuple[bytes, str]], out: Path) -> str:
    """The page written to out/index.html (links to the run's files are relative to `out`)."""
    made = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = [f"<h1>distill report: {html.escape(data['name'])}</h1>"]
    if data["headline"]:
        body.append('<section id="headline">' + "".join(f"<p>{html.escape(headline_sentence(p))}</p>" for p in data["headline"]) + "</section>")
    body.append(f'<p class="legend">{html.escape(LEGEND)} Generated {made}.</p>')
    if data.get("settings"):
        body.append('<ul class="legend" id="settings">' + "".join(
            f"<li>{html.escape(n)}: {html.escape(s)}</li>" for n, s in data["settings"].items()) + "</ul>")
    for sid, title, table, fig in _sections(data):
        body.append(f'<section id="{sid}"><h2>{html.escape(title)}</h2>')
        if sid == "reference":
            body.append(f'<p class="note">Source: {html.escape(data["reference"]["citation"])}</p>')
        if table is not None:
            body.append(_html_table(sid, table))
        if fig:
            body.append(f'<figure id="plot-{fig}" aria-label="{html.escape(title)}">{_min_width(figs[fig][1])}</figure>')
        body.append("</section>")
    if data["traces"]:
        body.append('<section id="traces"><h2>Trace browser</h2><p class="note">A sample: for curation, a few kept traces per domain '
                    "and a few rejected per reason; for each student, a few training rows as it saw them (its chat template, "
                    "the tokens in the loss highlighted); for each evaluated model, correct and incorrect samples with the prompt "
                    "as the model saw it, the answer extracted, the verdict and why. Long completions keep their start and end. "
                    "Every row is in the Parquet files linked under the filters.</p>")
        links = {g: [os.path.relpath(f, out) for f in fs] for g, fs in data["trace_files"].items()}
        body.append(_json_script("trace-data", data["traces"]) + _json_script("trace-files", links)
                    + BROWSER.read_text(encoding="utf-8") + "</section>")
    body.append('<section id="lineage"><h2>Lineage</h2>')
    for name, table in lineage_tables(data["lineage"]):
        body.append(_html_table(f"lineage-{name}", table))
    body.append("</section>")
    if data["notes"]:
        body.append('<section id="notes"><h2>Notes</h2><ul>' + "".join(f'<li class="warn">{html.escape(n)}</li>' for n in data["notes"]) + "</ul></section>")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>distill report: {html.escape(data['name'])}</title><style>{CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def summary(data: dict, page: Path) -> dict:
    """The headline as data: what `distill run` prints at the end and scripts/demo_numbers.py tabulates."""
    kd = {"head": data["kd"][0], "rows": data["kd"][1]} if data.get("kd") else None
    return {"run": data["name"], "report": str(page), "pairs": data["headline"],
            "sentences": [headline_sentence(p) for p in data["headline"]], "funnel": data["funnel"], "kd": kd,
            "budget_curves": {name: {b: s["budget"] for b, s in m["scores"]["benchmarks"].items() if s.get("budget", {}).get("points")}
                              for name, m in data["models"].items()},
            # how often each model closes its thought and how long it thinks (tokens up to `</think>`)
            "closed_thought": _termination(data, "closed_thought"),
            "median_think_tokens": _termination(data, "median_think_tokens")}


def _termination(data: dict, key: str) -> dict:
    """model -> benchmark -> one termination metric (None where its scores predate the metric)."""
    return {name: {b: s["termination"].get(key) for b, s in m["scores"]["benchmarks"].items()} for name, m in data["models"].items()}


def run(run_dir: Path, out: Path) -> Path:
    """Write out/index.html, out/report.md, out/plots/*.png and out/summary.json; return the HTML page's path."""
    run_dir, out = Path(run_dir), Path(out)
    if not run_dir.is_dir():
        raise DistillError(f"{run_dir}: run directory not found")
    data = collect(run_dir)
    if not data["models"] and not data["funnel"] and not data["losses"]:
        raise DistillError(f"{run_dir}: nothing to report (no 03_curated/stats, 04_sft/*/metrics.jsonl or 05_eval/*/scores.json)")
    figs = figures(data)
    for name, (png, _) in figs.items():
        write_bytes(out / "plots" / f"{name}.png", png)
    write_text(out / "report.md", markdown(data, {n: f"plots/{n}.png" for n in figs}))
    write_text(out / "index.html", html_page(data, figs, out))
    write_json(out / "summary.json", summary(data, out / "index.html"))
    return out / "index.html"
