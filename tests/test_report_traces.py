"""The report of a real (tiny) `distill run`: the trace browser shows the prompt each model saw through its chat
template, each student's training rows with the loss mask, kept code traces, a search box and the files with every
sample; the lineage names the command line and the machine; and, rendered by headless Chromium, the rendered
prompt and the mask are on screen, plot text stays readable at phone width and names and CIs do not wrap at 1280 px."""

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from distill.generate.prompting import MATH_INSTRUCTION
from distill.machine import cpu_model

ROOT = Path(__file__).resolve().parent.parent
STUDENT = {"model": "toy:qwen2", "chat_template": "distill/templates/qwen2.jinja", "max_length": 256,
           "training": {"learning_rate": 1e-3, "max_steps": 1, "per_device_train_batch_size": 4, "logging_steps": 1, "save_steps": 1}}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A whole run through the CLI: additions and programs, a distilled student and its answer-only baseline
    (one optimizer step each), both evaluated with transformers on a few held-out additions."""
    tmp = tmp_path_factory.mktemp("traces")
    cfg = {
        "name": "traces",
        "run_dir": str(tmp / "run"),
        "prompts": {"sources": [
            {"source": "toy", "name": "toy-arith", "domain": "math", "toy": {"n": 8, "seed": 1, "digits": 2}},
            {"source": "toy", "name": "toy-code", "domain": "code", "toy": {"task": "code", "n": 4, "seed": 1}},
        ], "rows_per_shard": 50},
        "generate": {"backend": "toy", "samples_per_prompt": 1, "sampling": {"max_tokens": 160}},
        "filter": {"select": {"policy": "first"}},
        "sft": {"parallel": 1, "students": [{"name": "student", **STUDENT}, {"name": "student-ao", **STUDENT, "data_format": "answer_only"}]},
        "eval": {
            "benchmarks": ["toy_arith"], "overrides": {"toy_arith": {"limit": 2, "k": 1}}, "max_tokens": 8, "bootstrap_resamples": 100,
            "models": [{"name": "student", "model": "sft:student", "baseline": "student-ao"},
                       {"name": "student-ao", "model": "sft:student-ao", "baseline_of": "student"}],
        },
    }
    path = tmp / "traces.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "distill.cli", "run", str(path), "--workers", "1"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "run"


def trace_data(run: Path, element: str = "trace-data"):
    page = (run / "report" / "index.html").read_text()
    return json.loads(re.search(rf'<script type="application/json" id="{element}">(.*?)</script>', page, re.S).group(1))


def tokenizer(run: Path, student: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(run / "04_sft" / student / "model")


@pytest.mark.slow
def test_eval_samples_carry_the_prompt_as_the_model_saw_it(run):
    rows = [r for r in trace_data(run) if r["group"] == "student"]
    assert rows
    tok = tokenizer(run, "student")
    for r in rows:
        # written out independently of the report's code: the model's template, the turn opened, <think> forced
        want = tok.apply_chat_template([{"role": "user", "content": f"{r['prompt']}\n{MATH_INSTRUCTION}"}],
                                       tokenize=False, add_generation_prompt=True) + "<think>\n"
        assert r["templated"] and r["rendered"] == want
        assert r["rendered"].startswith("<|im_start|>user\n") and r["rendered"].endswith("<|im_start|>assistant\n<think>\n")


@pytest.mark.slow
def test_sft_rows_show_the_student_template_and_its_loss_mask(run):
    rows = trace_data(run)
    for student, fmt in (("student", "reasoning"), ("student-ao", "answer_only")):
        mine = [r for r in rows if r["group"] == f"sft: {student}"]
        assert {r["benchmark"] for r in mine} == {"math", "code"}
        for r in mine:
            supervised = "".join(t for t, on in r["segments"] if on)
            unsupervised = "".join(t for t, on in r["segments"] if not on)
            assert "<|im_start|>user\n" + r["prompt"] in unsupervised and r["prompt"] not in supervised
            assert supervised.endswith("<|im_end|>")  # the stop token is learned
            if fmt == "reasoning":
                assert supervised.startswith("<think>\n") and len(supervised.split("</think>")[0]) > 20
            else:
                assert supervised.startswith("<think>\n\n</think>\n\n")  # the answer-only view: an empty think block
            assert r["reason"].startswith(fmt)


@pytest.mark.slow
def test_kept_code_traces_search_and_links_to_every_sample(run):
    rows = trace_data(run)
    assert any(r["group"] == "curation" and r["verdict"] == "kept" and r["benchmark"] == "code" and "```python" in r["completion"] for r in rows)
    files = trace_data(run, "trace-files")
    assert set(files) == {"curation", "sft: student", "sft: student-ao", "student", "student-ao"}
    for group, paths in files.items():
        assert paths and all((run / "report" / p).resolve().is_file() and p.endswith(".parquet") for p in paths), group
    assert "../05_eval/student/part-00000.parquet" in files["student"]
    page = (run / "report" / "index.html").read_text()
    assert 'id="tb-search"' in page


@pytest.mark.slow
def test_lineage_names_the_command_line_and_the_machine_and_no_empty_paper_section(run):
    page = (run / "report" / "index.html").read_text()
    lineage = page[page.index('id="lineage"'):]
    assert "table-lineage-commands" in lineage
    assert re.search(r"<td[^>]*>cli\.py run \S*traces\.yaml --workers 1</td>", lineage)
    assert html.escape(cpu_model()) in lineage and "Python " in lineage and "kernels" in lineage
    times = json.loads((run / "logs" / "times.json").read_text())
    # a tiny stage (prompts here) can round to 0.0 s on an idle machine; training cannot
    assert all(t["cpu_seconds"] >= 0 for t in times.values()) and times["sft"]["cpu_seconds"] > 0
    md = (run / "report" / "report.md").read_text()
    assert 'id="reference"' not in page and "DeepSeek-R1 paper" not in md  # no model names a paper row


CHROMIUM = next((p for p in ("/usr/bin/chromium",) if Path(p).exists()), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--force-device-scale-factor=1", "--hide-scrollbars"]

# After load: the smallest rendered plot text, how many lines the name and CI cells take, and what the trace
# browser shows for an eval sample, a training row and a search.
PROBE_JS = """<script>window.addEventListener('load', () => {
  const out = {};
  const heights = [...document.querySelectorAll('figure svg text')].map((t) => t.getBoundingClientRect().height).filter((h) => h > 0);
  out.minTextPx = Math.min(...heights);
  out.textCount = heights.length;
  const lines = (td) => { const r = document.createRange(); r.selectNodeContents(td);
    return new Set([...r.getClientRects()].map((b) => Math.round(b.top))).size; };
  out.cellLines = {};
  for (const [table, cols] of [['table-results', [0, 5]], ['table-comparison', [0, 1, 5, 7]]])
    for (const tr of document.querySelectorAll(`#${table} tbody tr`))
      for (const c of cols) out.cellLines[`${table}:${tr.children[c].textContent}`] = lines(tr.children[c]);
  const set = (id, v, ev) => { const s = document.getElementById(id); s.value = v; s.dispatchEvent(new Event(ev || 'change')); };
  const visible = () => [...document.querySelectorAll('#tb-list details.trace')].filter((d) => !d.hidden);
  set('tb-group', 'student');
  const card = visible()[0]; card.open = true;
  const pre = card.querySelector('pre.tb-rendered');
  out.evalCard = {heading: pre.previousElementSibling.textContent, text: pre.textContent, height: pre.getBoundingClientRect().height};
  out.files = [...document.querySelectorAll('#tb-files a')].map((a) => a.getAttribute('href'));
  set('tb-group', 'sft: student');
  const row = visible()[0]; row.open = true;
  const style = (sel) => { const e = row.querySelector(sel); return [getComputedStyle(e).backgroundColor, getComputedStyle(e).color, e.getBoundingClientRect().height]; };
  out.mask = {sup: style('pre .sup'), unsup: style('pre .unsup'), spans: row.querySelectorAll('pre .sup, pre .unsup').length};
  set('tb-group', 'curation');
  out.searchAll = visible().length;
  set('tb-search', 'print(n +', 'input');
  out.searchCode = visible().map((d) => d.dataset.benchmark);
  const p = document.createElement('pre'); p.id = 'probe'; p.textContent = JSON.stringify(out); p.hidden = true; document.body.appendChild(p);
});</script>"""


def probe(run: Path, tmp_path: Path, width: int) -> dict:
    page = tmp_path / f"page-{width}.html"
    page.write_text((run / "report" / "index.html").read_text().replace("</body>", PROBE_JS + "</body>"))
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / f'profile-{width}'}", f"--window-size={width},3000", "--dump-dom", page.as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=True).stdout
    return json.loads(html.unescape(re.search(r'<pre id="probe"[^>]*>(.*?)</pre>', dom, re.S).group(1)))


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/install_system_deps.sh installs it)")
def test_chromium_shows_the_rendered_prompt_the_mask_readable_plots_and_one_line_cells(run, tmp_path):
    wide, phone = probe(run, tmp_path, 1280), probe(run, tmp_path, 480)
    for p in (wide, phone):
        card = p["evalCard"]
        assert card["heading"].startswith("Prompt as the model saw it") and card["height"] > 20
        assert card["text"].startswith("<|im_start|>user\n") and card["text"].endswith("<|im_start|>assistant\n<think>\n")
        assert p["files"] and all(f.startswith("../05_eval/student/") for f in p["files"])
        sup, unsup = p["mask"]["sup"], p["mask"]["unsup"]
        assert p["mask"]["spans"] >= 2 and sup[2] > 0 and unsup[2] > 0
        assert (sup[0], sup[1]) != (unsup[0], unsup[1]), "supervised and unsupervised tokens look the same"
        assert p["searchAll"] > len(p["searchCode"]) > 0 and set(p["searchCode"]) == {"code"}
    assert phone["textCount"] > 20 and phone["minTextPx"] >= 8, phone["minTextPx"]  # ~9 px and up: readable on a phone
    assert wide["cellLines"] and all(n == 1 for n in wide["cellLines"].values()), wide["cellLines"]


@pytest.mark.slow
def test_demo_numbers_tabulates_the_run_its_machine_and_the_spread_over_seeds(run, tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    import demo_numbers

    demo_numbers.run_seed(run.parent / "traces.yaml", run, 1, workers=1)
    seeded = demo_numbers.seed_dir(run, 1)
    assert os.stat(seeded / "03_curated" / "part-00000.parquet").st_nlink > 1  # the main run's data, linked
    base = [(d / "04_sft" / "student" / "base" / "model.safetensors").read_bytes() for d in (run, seeded)]
    assert base[0] != base[1], "another training seed starts from another initialisation"
    start, end = demo_numbers.markers(demo_numbers.summary_run(run))  # the block is named by the run
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{start}\nold numbers\n{end}\ntail\n")
    result = subprocess.run([sys.executable, "scripts/demo_numbers.py", "--reuse", "--seeds", "2", "--run-dir", str(run), "--readme", str(readme)],
                            cwd=ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    text = readme.read_text()
    assert text.startswith(f"intro\n{start}\n") and text.endswith(f"{end}\ntail\n") and "old numbers" not in text
    assert f"on {cpu_model()}, " in text and "torch 2." in text and "kernels" in text and "torch thread(s) each" in text
    assert "training seeds 0, 1" in text and "CPU s" in text
    (row,) = [line for line in text.splitlines() if line.startswith("| student | student-ao | toy_arith | ") and " / " in line]
    assert row.count("(range ") == 3
    closed = json.loads((run / "report" / "summary.json").read_text())["closed_thought"]["student"]["toy_arith"]
    assert f"closed their thought with `</think>` (strict grading scores no other): student {100 * closed:.1f}% (toy_arith)" in text
    # --block: another machine's run in its own block beside this one, which stays as it is
    other_start, other_end = demo_numbers.markers("other-cpu")
    readme.write_text(text + f"{other_start}\n{other_end}\n")
    result = subprocess.run([sys.executable, "scripts/demo_numbers.py", "--reuse", "--run-dir", str(run), "--readme", str(readme), "--block", "other-cpu"],
                            cwd=ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    both = readme.read_text()
    assert both.startswith(text) and both.count(f"on {cpu_model()}, ") == 2


def test_a_fresh_clone_s_block_states_make_demo_with_its_install(tmp_path):
    """`--fresh-clone`: the time a newcomer waits is the install and the pipeline; an existing directory is refused."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import demo_numbers

    times = {"sft": {"seconds": 500.0, "cpu_seconds": 990.0}}
    run = {"seconds": 540.0, "cpu_seconds": 1000.0, "load": 0.2, "lines": 30}
    line = demo_numbers.timing_line({**run, "install_seconds": 60.0}, times)
    assert line.startswith("From a fresh clone, `make demo` took 10.0 min: the install (`make venv`) 60 s, then the pipeline. The run took 9.0 min")
    assert demo_numbers.timing_line({**run, "install_seconds": None}, times).startswith("The run took 9.0 min")
    with pytest.raises(SystemExit, match="exists"):
        demo_numbers.install_clone(tmp_path)


@pytest.mark.parametrize("ref, stage", [("sft:student", "04_sft/student"), ("kd:student-kd", "04_kd/student-kd")])
def test_the_browser_renders_eval_prompts_with_a_trained_model_s_saved_tokenizer(ref, stage, tmp_path):
    """`sft:` and `kd:` models (a kd run and its SFT control) are read from the run, not looked up on the hub."""
    from distill.report.traces import _eval_tokenizer
    from tests.real_students import real_tokenizer

    real_tokenizer("qwen2.5").save_pretrained(tmp_path / stage / "model")
    assert _eval_tokenizer(tmp_path, {"model": ref}) is not None
    assert _eval_tokenizer(tmp_path / "elsewhere", {"model": ref}) is None  # not trained in that run: logged, not raised
