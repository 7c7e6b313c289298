"""What a run ran on, for its lineage: a CPU's vector instructions pick torch's kernels and so the order of
float sums, which is why the same seed gives other numbers on another CPU.

`describe()` names the CPU, the instruction sets that change float results, the core count, Python and
torch (with the kernel level torch dispatches to); `record_invocation` appends it with the command line
to `<run>/logs/invocations.jsonl`, which the report's lineage reads.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import sys
from pathlib import Path

# CPU flags (as /proc/cpuinfo spells them) that select different matmul/reduction kernels in torch's
# CPU backends (oneDNN, MKL, its own vectorized ops): two CPUs that differ in one may round differently.
FLOAT_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_bf16", "amx_fp16", "amx_tile")
INVOCATIONS = Path("logs") / "invocations.jsonl"


def cpu_model() -> str:
    """The CPU's marketing name ("AMD EPYC 7B13"), or the architecture where the OS does not say."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def float_flags() -> list[str]:
    """The FLOAT_FLAGS this CPU has, in FLOAT_FLAGS order ([] where /proc/cpuinfo is not readable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    line = next((l for l in text.splitlines() if l.startswith("flags")), "")
    have = set(line.split(":", 1)[-1].split())
    return [f for f in FLOAT_FLAGS if f in have]


def describe() -> dict:
    """The machine and the software numbers depend on, torch's kernel level and thread count included."""
    out = {
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "float_flags": float_flags(),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }
    try:
        import torch
    except ImportError:  # an install without torch (a generate-only host): nothing of it to record
        return out
    return {**out, "torch": torch.__version__, "torch_cpu_kernels": torch.backends.cpu.get_cpu_capability(),
            "torch_threads": torch.get_num_threads()}


def summary(m: dict) -> str:
    """One line: 'AMD EPYC, x86_64, 2 cores, avx avx2 fma f16c; Python 3.11.2; torch 2.13.0+cpu (AVX2 kernels, 2 threads)'."""
    flags = " ".join(m.get("float_flags") or []) or "no vector flags read"
    line = f"{m['cpu']}, {m['arch']}, {m['cores']} cores, {flags}; Python {m['python']}"
    if "torch" in m:
        line += f"; torch {m['torch']} ({m['torch_cpu_kernels']} kernels, {m['torch_threads']} threads)"
    return line


def command_line(argv: list[str]) -> str:
    """A recorded argv as a shell line, the program by its file name (`distill run ...`, `cli.py run ...`)."""
    return shlex.join([Path(argv[0]).name, *argv[1:]]) if argv else ""


def record_invocation(run_dir: Path, argv: list[str] | None = None) -> None:
    """Append this command line, the time and the machine to the run's invocations log (one JSON line a run)."""
    path = Path(run_dir) / INVOCATIONS
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
             "argv": list(sys.argv if argv is None else argv), "cwd": os.getcwd(), "machine": describe()}
    cut = path.exists() and not path.read_bytes().endswith(b"\n") and path.stat().st_size > 0  # a line a kill cut short
    with path.open("a", encoding="utf-8") as f:  # one short line per start: an append is its own record
        f.write(("\n" if cut else "") + json.dumps(entry) + "\n")


def invocations(run_dir: Path) -> list[dict]:
    """The run's recorded starts, oldest first; a line cut by a kill is skipped."""
    path = Path(run_dir) / INVOCATIONS
    out = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
