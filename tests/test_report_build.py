"""The report from a run directory: headline, tables with CIs, R1 reference rows, funnel, loss, plots,
trace browser, lineage; and the HTML page rendered by headless Chromium: its screenshot checked where the
DOM says the tables and plots are, no legend over a plot's data, and the trace browser's filters."""

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from distill.console import points
from distill.errors import DistillError
from distill.eval.config import EvalConfig, ModelSpec
from distill.eval.stage import run as run_eval
from distill.report.build import run as build_report
from distill.report.collect import paper_protocol_gaps, reference, reference_rows
from distill.stage import StageDir

FUNNEL = [
    {"shard": 0, "rows_in": 100, "rows_out": 70, "rejected": {"wrong_answer": 18, "repetition": 7, "missing_think_close": 5}},
    {"shard": 1, "rows_in": 50, "rows_out": 36, "rejected": {"wrong_answer": 9, "language_mixing": 5}},
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory as the stages leave it: filter stats, a student's loss log, two evaluated models."""
    d = tmp_path_factory.mktemp("run") / "toyrun"
    curated = StageDir(d / "03_curated")
    for s in FUNNEL:
        curated.finish(s["shard"], s)
    # a shard killed after its stats but before its done marker: not part of the funnel
    curated.stats_file(2).write_text(json.dumps({"shard": 2, "rows_in": 999, "rows_out": 0, "rejected": {"wrong_answer": 999}}))
    (d / "04_sft" / "qwen-tiny").mkdir(parents=True)
    lines = [json.dumps({"step": s, "loss": 3.0 / s, "tokens_seen": 1000 * s}) for s in range(1, 21)]
    (d / "04_sft" / "qwen-tiny" / "metrics.jsonl").write_text("\n".join(lines[:10] + ["{broken"] + lines[10:]) + "\n")
    cfg = EvalConfig.model_validate({"benchmarks": ["toy_arith"], "overrides": {"toy_arith": {"toy": {"n": 30}}}, "bootstrap_resamples": 1000})
    models = [
        ModelSpec(name="distilled", backend="toy", model="toy-teacher", baseline="baseline", r1_reference="DeepSeek-R1-Distill-Qwen-1.5B"),
        ModelSpec(name="baseline", backend="toy", model="toy-teacher", toy={"wrong_answer": 0.6, "repetition": 0.2}),
    ]
    for m in models:
        run_eval(cfg, m, d / "05_eval" / m.name)
    (d / "pipeline.yaml").write_text(yaml.safe_dump({"name": "toyrun", "eval": {"models": [m.model_dump(mode="json") for m in models]}}))
    build_report(d, d / "report")
    return d


def table(md: str, header_start: str) -> list[list[str]]:
    lines = md.splitlines()
    i = next(i for i, l in enumerate(lines) if l.startswith("| " + header_start))
    rows = []
    for l in lines[i + 2 :]:
        if not l.startswith("|"):
            break
        rows.append([c.strip() for c in l.strip("|").split("|")])
    return rows


def test_markdown_has_results_with_cis_comparison_reference_funnel_and_loss(run_dir):
    md = (run_dir / "report" / "report.md").read_text()
    scores = {m: json.loads((run_dir / "05_eval" / m / "scores.json").read_text())["benchmarks"]["toy_arith"] for m in ("distilled", "baseline")}
    results = {r[0]: r for r in table(md, "model | benchmark")}
    for m, s in scores.items():
        assert results[m][4] == f"{100 * s['pass@1']:.1f}"
        assert results[m][5] == f"[{100 * s['pass@1_ci95'][0]:.1f}, {100 * s['pass@1_ci95'][1]:.1f}]"
        assert results[m][8] == f"{100 * s['termination']['closed_thought']:.1f}"
        assert results[m][9] == f"{100 * s['termination']['unfinished']:.1f}"
    (cmp_row,) = table(md, "distilled | baseline")
    assert cmp_row[:3] == ["distilled", "baseline", "toy_arith"]
    assert float(cmp_row[4]) == pytest.approx(100 * (scores["distilled"]["pass@1"] - scores["baseline"]["pass@1"]), abs=0.051)
    lo, hi = (float(x) for x in cmp_row[5].strip("[]").split(","))
    assert 0 < lo <= float(cmp_row[4]) <= hi
    ref = table(md, "model | source")
    assert ref[0][:3] == ["distilled", "R1 paper: DeepSeek-R1-Distill-Qwen-1.5B", "28.9"] and ref[0][4] == "83.9"
    assert "arXiv:2501.12948" in md and "Table 5" in md
    funnel = {r[0]: int(r[1]) for r in table(md, "step | traces")}
    assert funnel == {"traces in": 150, "failed: wrong_answer": 27, "failed: repetition": 7, "failed: missing_think_close": 5,
                      "failed: language_mixing": 5, "kept": 106}
    assert table(md, "student | last step") == [["qwen-tiny", "20", "0.1500"]]
    assert "metrics.jsonl:11: unreadable line skipped" in md  # named, not silently dropped
    for name in ("accuracy", "lengths", "funnel", "loss"):
        assert f"(plots/{name}.png)" in md
        assert (run_dir / "report" / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_is_self_contained(run_dir):
    page = (run_dir / "report" / "index.html").read_text()
    assert not re.search(r'(href|src)="(?!#)', page) and "<link" not in page and "<img" not in page  # only in-page SVG references
    assert not re.search(r"https?://(?!www\.w3\.org/)", page), "no network address but SVG namespaces"
    assert len(re.findall(r"<svg", page)) == 5 and "<script src" not in page  # accuracy, budget-toy_arith, lengths, funnel, loss
    assert len(page.encode()) < 3_000_000
    for sid in ("headline", "table-results", "table-comparison", "table-reference", "table-funnel", "plot-accuracy", "plot-funnel",
                "traces", "trace-data", "table-lineage-stages", "table-lineage-packages"):
        assert f'id="{sid}"' in page


def test_headline_quotes_both_models_with_cis_and_the_difference(run_dir):
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    (pair,) = summary["pairs"]
    d, b = (json.loads((run_dir / "05_eval" / m / "scores.json").read_text())["benchmarks"]["toy_arith"] for m in ("distilled", "baseline"))
    assert (pair["distilled"], pair["baseline"]) == ("distilled", "baseline")
    assert pair["distilled_pass1"] == d["pass@1"] and pair["baseline_ci"] == b["pass@1_ci95"]
    (sentence,) = summary["sentences"]
    lo, hi = d["pass@1_ci95"]
    assert sentence.startswith(f"distilled reaches {100 * d['pass@1']:.1f}% pass@1 (95% CI {100 * lo:.1f}% to {100 * hi:.1f}%)")
    assert f"against {100 * b['pass@1']:.1f}%" in sentence and f"{points(pair['diff'], signed=True)} points" in sentence
    page = (run_dir / "report" / "index.html").read_text()
    assert page.index('id="headline"') < page.index('id="results"') and html.escape(sentence) in page
    md = (run_dir / "report" / "report.md").read_text()
    assert md.splitlines()[2] == f"**{sentence}**"


def test_trace_browser_samples_each_model_with_verdicts_and_reasons(run_dir):
    page = (run_dir / "report" / "index.html").read_text()
    data = json.loads(re.search(r'<script type="application/json" id="trace-data">(.*?)</script>', page, re.S).group(1))
    for model in ("distilled", "baseline"):
        rows = [r for r in data if r["group"] == model]
        assert {r["verdict"] for r in rows} == {"correct", "incorrect"}
        assert all(r["reason"] == "matches the reference" for r in rows if r["verdict"] == "correct")
        assert all(r["completion"] and r["benchmark"] == "toy_arith" for r in rows)


def test_lineage_names_versions_hashes_and_tokens(run_dir):
    page = (run_dir / "report" / "index.html").read_text()
    lineage = page[page.index('id="lineage"') :]
    for model in ("distilled", "baseline"):
        h = json.loads((run_dir / "05_eval" / model / "config.json").read_text())["hash"]
        assert h in lineage
    tokens = sum(s["completion_tokens"] for s in StageDir(run_dir / "05_eval" / "distilled").stats())
    assert f"{tokens:,}" in lineage
    for pkg in ("transformers", "torch", "git commit"):
        assert f"<td>{pkg}</td>" in lineage


def test_reference_rows_only_for_models_that_name_one():
    models = {
        "student": {"spec": {"model": "runs/x/04_sft/s/model", "r1_reference": "DeepSeek-R1-Distill-Qwen-7B"}},
        "base": {"spec": {"model": "/models/Qwen/Qwen2.5-Math-7B/"}},
        # a model whose path reads like a released one gets no paper row unless its config names it
        "lookalike": {"spec": {"model": "me/DeepSeek-R1-Distill-Llama-8B-my-retrain"}},
    }
    rows = reference_rows(models)
    assert set(rows) == {"student"} and rows["student"]["scores"]["aime24/pass@1"] == 55.5


def test_departures_from_the_paper_protocol_are_named():
    proto = {"temperature": 0.6, "top_p": 0.95, "max_tokens": 32768, "prefix": "<think>\n", "system_prompt": None, "n_problems": 30}
    same = {"benchmarks": {"aime24": {"protocol": proto}, "toy_arith": {"protocol": {**proto, "max_tokens": 512}}}}
    assert paper_protocol_gaps("m", same, reference()) == []  # toy_arith is not a paper benchmark
    quick = {"benchmarks": {"aime24": {"protocol": {**proto, "max_tokens": 4096}}, "math500": {"protocol": {**proto, "n_problems": 50}}}}
    assert paper_protocol_gaps("m", quick, reference()) == [
        "m / aime24: max_tokens=4096, the paper used 32768",
        "m / math500: 50 problems, the paper used 500",
    ]


def test_nothing_to_report_is_an_error(tmp_path):
    with pytest.raises(DistillError, match="nothing to report"):
        build_report(tmp_path, tmp_path / "report")


CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--force-device-scale-factor=1", "--hide-scrollbars"]
WIDTH, HEIGHT = 1200, 4000

# Appended to a copy of the page: after load, writes into the DOM (which --dump-dom returns) each
# element's box, every legend and data-area box of every figure, and what the trace browser shows
# after a scripted filter.
PROBE_JS = """<script>window.addEventListener('load', () => {
  const box = (e) => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; };
  const out = {boxes: {}, figures: {}, filtered: {}};
  for (const id of ['headline', 'table-results', 'table-comparison', 'plot-accuracy', 'plot-funnel', 'plot-loss'])
    out.boxes[id] = box(document.getElementById(id));
  for (const fig of ['accuracy', 'lengths', 'funnel', 'loss']) {
    const f = document.getElementById('plot-' + fig);
    out.figures[fig] = {
      legends: [...f.querySelectorAll(`[id^="${fig}-legend-"]`)].map(box),
      data: [...f.querySelectorAll(`[id^="${fig}-data-"]`)].map(box),
    };
  }
  const set = (id, v) => { const s = document.getElementById(id); s.value = v; s.dispatchEvent(new Event('change')); };
  const shown = () => [...document.querySelectorAll('#tb-list details.trace')].filter((d) => !d.hidden)
      .map((d) => [d.dataset.group, d.dataset.benchmark, d.dataset.verdict]);
  out.filtered.initial = shown();
  set('tb-group', 'baseline');
  out.filtered.baseline = shown();
  set('tb-verdict', 'incorrect');
  out.filtered.incorrect = shown();
  out.filtered.count = document.getElementById('tb-count').textContent;
  const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  pre.hidden = true; document.body.appendChild(pre);
});</script>"""


def _overlap(a, b) -> float:
    """Area shared by two [left, top, width, height] boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0.0, w) * max(0.0, h)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/install_system_deps.sh installs it)")
def test_html_renders_in_headless_chromium_legends_clear_of_data_and_browser_filters(run_dir, tmp_path):
    import numpy as np
    from PIL import Image

    page = tmp_path / "page.html"
    page.write_text((run_dir / "report" / "index.html").read_text().replace("</body>", PROBE_JS + "</body>"))
    common = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={WIDTH},{HEIGHT}"]
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=60, check=True).stdout
    probe = json.loads(html.unescape(re.search(r'<pre id="probe"[^>]*>(.*?)</pre>', dom, re.S).group(1)))
    shot = tmp_path / "shot.png"
    subprocess.run([*common, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=60, check=True)
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape == (HEIGHT, WIDTH, 3)
    boxes = probe["boxes"]

    def region(box):
        x, y, w, h = (int(round(v)) for v in box)
        assert w > 100 and h > 30 and y + h <= HEIGHT, box  # laid out, with real size, inside the shot
        return img[y : y + h, x : x + w]

    for tid in ("headline", "table-results", "table-comparison"):
        dark = (region(boxes[tid]).max(axis=2) < 110).mean()  # glyphs and borders
        assert dark > 0.02, (tid, dark)
    for pid in ("plot-accuracy", "plot-funnel", "plot-loss"):
        px = region(boxes[pid])
        colored = (px.max(axis=2) - px.min(axis=2) > 80).mean()  # bars and curves, not grey text
        assert colored > 0.002, (pid, colored)
    assert (img[:, : int(boxes["headline"][0]) - 2] == 255).all(), "the page margin is blank: the checks above see the page, not noise"

    for fig, parts in probe["figures"].items():
        assert parts["data"], fig
        for legend in parts["legends"]:
            assert legend[2] > 10 and legend[3] > 10, (fig, legend)
            for data in parts["data"]:
                assert _overlap(legend, data) < 1.0, f"{fig}: legend {legend} covers data area {data}"
    assert sum(len(p["legends"]) for p in probe["figures"].values()) >= 3

    data = json.loads(re.search(r'<script type="application/json" id="trace-data">(.*?)</script>', page.read_text(), re.S).group(1))
    filtered = probe["filtered"]
    assert filtered["initial"] and {g for g, _, _ in filtered["initial"]} == {data[0]["group"]}
    assert len(filtered["baseline"]) == sum(r["group"] == "baseline" for r in data)
    want = sum(r["group"] == "baseline" and r["verdict"] == "incorrect" for r in data)
    assert want > 0 and len(filtered["incorrect"]) == want and filtered["count"] == f"{want} shown"
    assert all(g == "baseline" and v == "incorrect" for g, _, v in filtered["incorrect"])
