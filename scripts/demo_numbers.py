"""Run the toy demo from scratch and write its measured numbers into README.md, so they cannot go stale.

    python scripts/demo_numbers.py                  # fresh run of pipelines/toy.yaml, then rewrite the README block
    python scripts/demo_numbers.py --seeds 3        # also trains and evaluates the students with seeds 1 and 2: the spread
    python scripts/demo_numbers.py --repro          # also a second fresh run, compared sample by sample
    python scripts/demo_numbers.py --reuse          # no run: tabulate the run directory (and seed runs) as they are
    python scripts/demo_numbers.py --pipeline pipelines/toy_kd.yaml --run-dir runs/toy_kd   # the KD comparison's block
    python scripts/demo_numbers.py --seeds 3 --run-dir runs/toy-xeon --block toy-xeon       # another machine's block
    python scripts/demo_numbers.py --fresh-clone /tmp/demo --seeds 3      # `make demo` as a newcomer runs it, timed

Everything in the block comes from the run's own files: report/summary.json (pass@1 with CIs, the
paired difference, the funnel), logs/times.json (wall and CPU time per stage), logs/invocations.jsonl
(the machine: CPU, the vector instructions that change float results, Python, torch), the students'
summary.json (torch threads) and the eval parts (the sample-by-sample comparison). A seed run
(`<run-dir>-seed<N>`) reuses the main run's prompts, traces and curated data (hard links) and trains
every student with `training.seed: N`, which draws a toy student's initialisation and the Trainer's
data order. `--fresh-clone DIR` clones this commit into DIR and runs the demo there as `make demo` does
(`make venv`, its install timed, then the pipeline in that venv): the time a newcomer waits. The block
sits between the two marker lines below in README.md; the rest of the README is left alone. Works for
any number of students, models and benchmarks.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's distill, whichever one the environment installed

from scripts.readme_block import replace_block  # noqa: E402


def markers(pipeline: str) -> tuple[str, str]:
    """The README's marker lines of a pipeline's block (toy.yaml's are the plain ones)."""
    tag = "" if pipeline == "toy" else f":{pipeline}"
    return f"<!-- demo-numbers{tag}:start (scripts/demo_numbers.py writes this block) -->", f"<!-- demo-numbers{tag}:end -->"


DATA_STAGES = ("01_prompts", "02_traces", "03_curated")


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_demo(pipeline: Path, run_dir: Path, workers: int, fresh: bool = True, root: Path = ROOT, python: str = sys.executable) -> dict:
    """One `distill run` (from scratch unless `fresh` is False) of the checkout at `root` with its `python`; returns
    its wall and CPU seconds, the load average when it started (a shared machine stretches the wall time, not the
    CPU time) and the lines it printed."""
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [python, "-m", "distill.cli", "run", str(pipeline), "--workers", str(workers), "--set", f"run_dir={run_dir}"]
    load, cpu, start = os.getloadavg()[0], _children_cpu(), time.time()
    result = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    seconds, cpu = time.time() - start, _children_cpu() - cpu
    sys.stderr.write(result.stderr)
    sys.stdout.write(result.stdout)
    if result.returncode != 0:
        raise SystemExit(f"distill run failed ({result.returncode})")
    return {"seconds": seconds, "cpu_seconds": cpu, "load": load, "lines": len((result.stdout + result.stderr).splitlines())}


def install_clone(dest: Path) -> float:
    """Clone this commit into `dest` and build its venv as `make demo` does (`make venv`); returns the install's
    seconds. The demo then runs with `dest/.venv/bin/python`, as `make demo` runs `.venv/bin/distill`."""
    if dest.exists():
        raise SystemExit(f"--fresh-clone {dest}: exists; give a new directory")
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True)
    start = time.time()
    subprocess.run(["make", "venv"], cwd=dest, check=True, stdout=subprocess.DEVNULL)
    return time.time() - start


def seed_dir(run_dir: Path, seed: int) -> Path:
    return run_dir.with_name(f"{run_dir.name}-seed{seed}")


def run_seed(pipeline: Path, run_dir: Path, seed: int, workers: int, root: Path = ROOT, python: str = sys.executable) -> dict:
    """The students trained and evaluated again with training seed `seed`, on the main run's data (linked, not
    regenerated: the data stages are seeded apart and would be identical)."""
    from distill.pipeline import read_pipeline

    out = seed_dir(run_dir, seed)
    if out.exists():
        shutil.rmtree(out)
    for stage in DATA_STAGES:
        shutil.copytree(run_dir / stage, out / stage, copy_function=os.link)
    data = read_pipeline(pipeline)
    for student in data["sft"]["students"]:
        student.setdefault("training", {})["seed"] = seed
    seeded = out / f"pipeline-seed{seed}.yaml"
    seeded.write_text(yaml.safe_dump(data, sort_keys=False))
    return run_demo(seeded, out, workers, fresh=False, root=root, python=python)


def samples(run_dir: Path) -> dict[tuple, str]:
    """(model, benchmark, problem, sample index) -> completion, over every eval part of the run."""
    import pyarrow.parquet as pq

    out = {}
    for part in sorted((run_dir / "05_eval").glob("*/part-*.parquet")):
        t = pq.read_table(part, columns=["benchmark", "problem_id", "sample_idx", "completion"])
        for b, p, i, c in zip(*(t[col].to_pylist() for col in t.column_names)):
            out[(part.parent.name, b, p, i)] = c
    return out


def closed_thoughts(summary: dict) -> str:
    """One sentence: per model and benchmark, the share of samples that wrote `</think>` (strict grading
    scores no other), from the report's summary."""
    shares = []
    for model, benches in sorted((summary.get("closed_thought") or {}).items()):
        known = {b: v for b, v in sorted(benches.items()) if v is not None}
        if known:
            shares.append(f"{model} " + ", ".join(f"{pct(v)} ({b})" for b, v in known.items()))
    return f"Samples that closed their thought with `</think>` (strict grading scores no other): {'; '.join(shares)}." if shares else ""


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


def machine_line(run_dir: Path) -> str:
    """Where the run ran, from its own record (logs/invocations.jsonl) and its students' torch threads."""
    from distill.machine import describe, invocations, summary

    recorded = invocations(run_dir)
    where = summary(recorded[-1]["machine"]) if recorded else summary(describe()) + " (this machine: the run recorded none)"
    threads = sorted({json.loads(f.read_text()).get("torch_threads") for f in (run_dir / "04_sft").glob("*/summary.json")} - {None})
    return where + (f"; students trained with {', '.join(map(str, threads))} torch thread(s) each" if threads else "")


def seed_spread(run_dir: Path, seeds: list[int]) -> list[str]:
    """pass@1 of each pair per training seed, with the range, from each seed run's report/summary.json."""
    runs = {0: run_dir, **{s: seed_dir(run_dir, s) for s in seeds if s}}
    pairs: dict[tuple, dict[int, dict]] = {}
    for seed, d in runs.items():
        for p in json.loads((d / "report" / "summary.json").read_text())["pairs"]:
            pairs.setdefault((p["distilled"], p["baseline"], p["benchmark"]), {})[seed] = p

    def cells(by_seed: dict[int, dict], key: str, signed: bool = False) -> str:
        v = [100 * by_seed[s][key] for s in sorted(by_seed)]
        fmt = "{:+.1f}" if signed else "{:.1f}"
        return " / ".join(fmt.format(x) for x in v) + f" (range {fmt.format(min(v))} to {fmt.format(max(v))})"

    names = ", ".join(map(str, sorted(runs)))
    out = [f"The spread over training seeds {names} (each student's initialisation and data order; the same curated traces;"
           " pass@1 in %, seeds in that order):", "",
           "| distilled | baseline | benchmark | distilled pass@1 | baseline pass@1 | difference, points |", "|---|---|---|---|---|---|"]
    for (d, b, bench), by_seed in pairs.items():
        out.append(f"| {d} | {b} | {bench} | {cells(by_seed, 'distilled_pass1')} | {cells(by_seed, 'baseline_pass1')} "
                   f"| {cells(by_seed, 'diff', signed=True)} |")
    return out + [""]


def timing_line(run: dict | None, times: dict) -> str:
    """Wall and CPU time of the run (or, tabulating an earlier run, of its stages), with the load it met."""
    stage_times = ", ".join(f"{k} {v['seconds']:.0f} s" + (f" / {v['cpu_seconds']:.0f} CPU s" if "cpu_seconds" in v else "")
                            for k, v in times.items())
    if run is None:  # --reuse: the stages' own record (a resumed stage's times add up over its attempts)
        if not times:
            return ""
        cpu = (f" and {sum(v['cpu_seconds'] for v in times.values()):,.0f} CPU-seconds" if all("cpu_seconds" in v for v in times.values()) else "")
        return f"Its stages took {sum(v['seconds'] for v in times.values()) / 60:.1f} min wall{cpu} (per stage, wall / CPU: {stage_times})."
    install = run.get("install_seconds")  # --fresh-clone: the newcomer's `make demo`, install included
    make = (f"From a fresh clone, `make demo` took {(install + run['seconds']) / 60:.1f} min: the install (`make venv`) {install:.0f} s, "
            "then the pipeline. " if install else "")
    return (f"{make}The run took {run['seconds'] / 60:.1f} min wall and {run['cpu_seconds']:,.0f} CPU-seconds, with a load average of "
            f"{run['load']:.1f} on {os.cpu_count()} cores when it started (a busy machine stretches the wall time, hardly the CPU "
            f"time; per stage, wall / CPU: {stage_times}), and printed {run['lines']} lines.")


def block(run_dir: Path, run: dict | None, repro: str | None, seeds: list[int], commit: str, name: str | None = None) -> str:
    """The README block of a run; `name` picks its markers (default: the pipeline's name)."""
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    start, end = markers(name or summary["run"])
    times_file = run_dir / "logs" / "times.json"
    times = json.loads(times_file.read_text()) if times_file.exists() else {}
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
    lines_out = [
        start,
        (f"Measured by `scripts/demo_numbers.py` at {commit}" if run is not None else
         f"Tabulated by `scripts/demo_numbers.py --reuse` at {commit} from a run made earlier")
        + f" on {machine_line(run_dir)}; from the run's own `report/summary.json` (pass@1 over k samples per problem at T=0.6,"
        " top-p 0.95; 95% CIs over problems: Wilson for a pass@1, MOVER for the paired difference):",
        "",
        *(rows + [""] if summary["pairs"] else []),  # a KD-only run pairs no distilled student with a baseline
        *kd_rows(summary, run_dir),
        *(seed_spread(run_dir, seeds) if len(seeds) > 1 else []),
    ]
    if f:
        apart = f" {f['not_selected']:,} more passed but another sample of their problem was kept." if f.get("not_selected") else ""
        lines_out.append(f"The filter kept {f['rows_out']:,} of {f['rows_in']:,} traces; rejected: {reasons}.{apart}")
    closed = closed_thoughts(summary)
    if closed:
        lines_out.append(closed)
    timing = timing_line(run, times)
    if timing:
        lines_out.append(timing)
    if repro:
        lines_out.append(repro)
    lines_out.append(end)
    return "\n".join(lines_out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipeline", type=Path, default=ROOT / "pipelines" / "toy.yaml")
    ap.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "toy")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=1, help="training seeds 0..N-1: seed 0 is the main run, each other one "
                    "trains and evaluates the students again on its data; the block shows the spread")
    ap.add_argument("--reuse", action="store_true", help="tabulate the run directory (and its seed runs) as they are, without running")
    ap.add_argument("--repro", action="store_true", help="run a second time from scratch and compare every eval sample")
    ap.add_argument("--fresh-clone", type=Path, metavar="DIR", help="clone this commit into DIR (new) and run the demo there as "
                    "`make demo` does, install timed; its run directory is DIR/runs/<pipeline's name> (not --run-dir)")
    ap.add_argument("--block", help="write the README block with this name's markers instead of the pipeline's, e.g. the "
                    "same demo on another machine beside the main block (the screenshots are then left alone)")
    args = ap.parse_args()
    # Read before the runs: a commit made while they train is not the code that produced the numbers.
    commit = "commit `" + subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True).stdout.strip() + "`"
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
    if dirty and not args.fresh_clone:  # a clone holds the commit only
        commit += " with uncommitted changes"  # the numbers are not that commit's
    run = repro = None
    seeds = list(range(args.seeds))
    root, python, install = ROOT, sys.executable, None
    if args.fresh_clone:
        if args.reuse:
            raise SystemExit("--fresh-clone runs the demo; --reuse runs nothing")
        root = args.fresh_clone.resolve()
        install = install_clone(root)
        python = str(root / ".venv" / "bin" / "python")
        args.pipeline = root / args.pipeline.resolve().relative_to(ROOT)
        args.run_dir = root / "runs" / yaml.safe_load(args.pipeline.read_text())["name"]
    if not args.reuse:
        run = {**run_demo(args.pipeline, args.run_dir, args.workers, root=root, python=python), "install_seconds": install}
        for seed in seeds[1:]:
            run_seed(args.pipeline, args.run_dir, seed, args.workers, root=root, python=python)
    if args.repro:
        second = args.run_dir.with_name(args.run_dir.name + "-repro")
        run_demo(args.pipeline, second, args.workers, root=root, python=python)
        a, b = samples(args.run_dir), samples(second)
        same = sum(a[k] == b.get(k) for k in a)
        repro = (f"A second run from scratch gave identical eval samples: {same:,} of {len(a):,}." if same == len(a) == len(b)
                 else f"A second run from scratch differed: {same:,} of {len(a):,} eval samples identical ({len(b):,} in the second run).")
        shutil.rmtree(second)
    text = block(args.run_dir, run, repro, seeds, commit, args.block)
    start, end = text.splitlines()[0], text.splitlines()[-1]
    replace_block(args.readme, start, end, text[len(start):-len(end)])
    print(text)
    if args.readme.resolve() == (ROOT / "README.md").resolve() and summary_run(args.run_dir) == "toy" and not args.block:
        screenshots(args.run_dir)


def summary_run(run_dir: Path) -> str:
    return json.loads((run_dir / "report" / "summary.json").read_text())["run"]


def screenshots(run_dir: Path) -> None:
    """The README's screenshots (docs/report-*.png), of the run just tabulated; skipped, said, without Chromium."""
    from report_screenshots import shoot_run

    if not (shutil.which("chromium") or Path("/usr/bin/chromium").exists()):
        print("chromium not installed (scripts/install_system_deps.sh): docs/report-*.png left as they are", file=sys.stderr)
        return
    for out in shoot_run(run_dir):
        print(f"{out.relative_to(ROOT)}: screenshot of {run_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
