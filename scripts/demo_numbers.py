"""Run the toy demo from scratch and write its measured numbers into README.md, so they cannot go stale.

    python scripts/demo_numbers.py                  # fresh run of pipelines/toy.yaml, then rewrite the README block
    python scripts/demo_numbers.py --repro          # also a second fresh run, compared sample by sample
    python scripts/demo_numbers.py --reuse          # no run: tabulate the run directory as it is
    python scripts/demo_numbers.py --pipeline pipelines/toy_kd.yaml --run-dir runs/toy_kd   # the KD comparison's block

Everything in the block comes from the run's own files: report/summary.json (pass@1 with CIs, the
paired difference, the funnel), logs/times.json (wall time per stage) and the eval parts (the
sample-by-sample comparison). The block sits between the two marker lines below in README.md;
the rest of the README is left alone. Works for any number of students, models and benchmarks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def markers(pipeline: str) -> tuple[str, str]:
    """The README's marker lines of a pipeline's block (toy.yaml's are the plain ones)."""
    tag = "" if pipeline == "toy" else f":{pipeline}"
    return f"<!-- demo-numbers{tag}:start (scripts/demo_numbers.py writes this block) -->", f"<!-- demo-numbers{tag}:end -->"


def run_demo(pipeline: Path, run_dir: Path, workers: int) -> tuple[float, int]:
    """One fresh `distill run`; returns (seconds, lines printed on stdout and stderr together)."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "distill.cli", "run", str(pipeline), "--workers", str(workers), "--set", f"run_dir={run_dir}"]
    start = time.time()
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.time() - start
    sys.stderr.write(result.stderr)
    sys.stdout.write(result.stdout)
    if result.returncode != 0:
        raise SystemExit(f"distill run failed ({result.returncode})")
    return seconds, len((result.stdout + result.stderr).splitlines())


def samples(run_dir: Path) -> dict[tuple, str]:
    """(model, benchmark, problem, sample index) -> completion, over every eval part of the run."""
    import pyarrow.parquet as pq

    out = {}
    for part in sorted((run_dir / "05_eval").glob("*/part-*.parquet")):
        t = pq.read_table(part, columns=["benchmark", "problem_id", "sample_idx", "completion"])
        for b, p, i, c in zip(*(t[col].to_pylist() for col in t.column_names)):
            out[(part.parent.name, b, p, i)] = c
    return out


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def kd_rows(summary: dict, run_dir: Path) -> list[str]:
    """The report's KD table (baseline -> SFT -> SFT+KD and the same-time SFT control, paired CIs, compute), and
    each KD run's held-out KL to the teacher before and after, from its summary.json."""
    kd = summary.get("kd")
    if not kd:
        return []
    out = ["| " + " | ".join(kd["head"]) + " |", "|" + "---|" * len(kd["head"]), *("| " + " | ".join(r) + " |" for r in kd["rows"]), ""]
    for f in sorted((run_dir / "04_kd").glob("*/summary.json")):
        s = json.loads(f.read_text())
        start, end = s.get("heldout_start") or {}, s.get("heldout_end") or {}
        if "kl_to_teacher" in start and "kl_to_teacher" in end:
            acc = (f"; accuracy of its own samples {pct(start['heldout_accuracy'])} -> {pct(end['heldout_accuracy'])}"
                   if "heldout_accuracy" in start and "heldout_accuracy" in end else "")
            out.append(f"{s['name']}: {s['steps']} steps, reverse KL to the teacher on {s['heldout']} held-out prompts "
                       f"{start['kl_to_teacher']:.3f} -> {end['kl_to_teacher']:.3f} per token{acc}.")
    return out + [""]


def block(run_dir: Path, seconds: float | None, lines: int | None, repro: str | None) -> str:
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    start, end = markers(summary["run"])
    times_file = run_dir / "logs" / "times.json"
    times = json.loads(times_file.read_text()) if times_file.exists() else {}
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True).stdout.strip()
    rows = [
        "| distilled | baseline | benchmark | distilled pass@1 [95% CI] | baseline pass@1 [95% CI] | difference, points [95% CI] |",
        "|---|---|---|---|---|---|",
    ]
    for p in summary["pairs"]:
        rows.append(
            f"| {p['distilled']} | {p['baseline']} | {p['benchmark']} ({p['n_problems']} problems x {p['k']}) "
            f"| {pct(p['distilled_pass1'])} [{100 * p['distilled_ci'][0]:.1f}, {100 * p['distilled_ci'][1]:.1f}] "
            f"| {pct(p['baseline_pass1'])} [{100 * p['baseline_ci'][0]:.1f}, {100 * p['baseline_ci'][1]:.1f}] "
            f"| {100 * p['diff']:+.1f} [{100 * p['diff_ci'][0]:+.1f}, {100 * p['diff_ci'][1]:+.1f}] |"
        )
    f = summary.get("funnel") or {}
    reasons = ", ".join(f"{r} {n:,}" for r, n in sorted((f.get("rejected") or {}).items(), key=lambda kv: -kv[1]))
    stage_times = ", ".join(f"{k} {v['seconds']:.0f} s" for k, v in times.items())
    lines_out = [
        start,
        (f"Measured by `scripts/demo_numbers.py` at commit `{commit}`" if seconds is not None else
         f"Tabulated by `scripts/demo_numbers.py --reuse` at commit `{commit}` from a run made earlier")
        + f" on {os.cpu_count()} CPU cores ({platform.machine()}),"
        " from the run's own `report/summary.json` (pass@1 over k samples per problem at T=0.6, top-p 0.95;"
        " 95% CIs by bootstrap over problems, the difference's paired):",
        "",
        *rows,
        "",
        *kd_rows(summary, run_dir),
    ]
    if f:
        lines_out.append(f"The filter kept {f['rows_out']:,} of {f['rows_in']:,} traces; the rest went for: {reasons}.")
    if seconds is not None:
        lines_out.append(f"The run took {seconds / 60:.1f} min ({stage_times}) and printed {lines} lines.")
    elif times:  # --reuse: the stages' own times (a resumed stage's add up over its attempts)
        lines_out.append(f"Its stages took {sum(v['seconds'] for v in times.values()) / 60:.1f} min ({stage_times}).")
    if repro:
        lines_out.append(repro)
    lines_out.append(end)
    return "\n".join(lines_out)


def rewrite(readme: Path, text: str) -> None:
    old = readme.read_text()
    start, end = text.splitlines()[0], text.splitlines()[-1]
    if start not in old or end not in old:
        raise SystemExit(f"{readme}: the marker lines are missing; add\n{start}\n{end}\nwhere the numbers belong")
    head, rest = old.split(start, 1)
    tail = rest.split(end, 1)[1]
    readme.write_text(head + text + tail)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipeline", type=Path, default=ROOT / "pipelines" / "toy.yaml")
    ap.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "toy")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reuse", action="store_true", help="tabulate the run directory as it is, without running")
    ap.add_argument("--repro", action="store_true", help="run a second time from scratch and compare every eval sample")
    args = ap.parse_args()
    seconds = lines = repro = None
    if not args.reuse:
        seconds, lines = run_demo(args.pipeline, args.run_dir, args.workers)
    if args.repro:
        second = args.run_dir.with_name(args.run_dir.name + "-repro")
        run_demo(args.pipeline, second, args.workers)
        a, b = samples(args.run_dir), samples(second)
        same = sum(a[k] == b.get(k) for k in a)
        repro = (f"A second run from scratch gave identical eval samples: {same:,} of {len(a):,}." if same == len(a) == len(b)
                 else f"A second run from scratch differed: {same:,} of {len(a):,} eval samples identical ({len(b):,} in the second run).")
        shutil.rmtree(second)
    text = block(args.run_dir, seconds, lines, repro)
    rewrite(args.readme, text)
    print(text)


if __name__ == "__main__":
    main()
