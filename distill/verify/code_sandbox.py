"""Run untrusted programs against a problem's tests, in a sandbox: the code is the teacher's, and
the teacher can write `os.system("rm -rf ~")` or a fork bomb as easily as a solution.

What contains the program (checked once per process by `isolation()`):
- kernel: fresh PID, network and mount namespaces via util-linux `unshare` (no network: the new
  namespace has only a down loopback; /proc shows only the program's own processes; killing the
  namespace's first process kills every process it started, even ones that called setsid); the
  host's /tmp, /var/tmp, /dev/shm and /run/lock hidden under small private tmpfs mounts (the
  program's only writable places, so it cannot fill the host's disk); a fresh unprivileged uid
  per run when the parent is root; rlimits on address space, file size, process count, CPU
  seconds and open files; a wall-clock timeout that SIGKILLs the whole namespace.
- environment: the program gets a fixed 4-variable environment, never the parent's.
- when namespaces are not available (unprivileged without user namespaces): rlimits, new session
  and timeout still apply, and network is blocked only by a Python-level guard (bypassable by
  determined code: `isolation()` reports "rlimits" so callers and logs can tell).

Tests are a JSON list of {"input": stdin text, "output": expected stdout}; outputs are judged as
LiveCodeBench's grader does (lcb_runner/evaluation/testing_util.py, `grade_stdio`): both stripped,
split into lines, each line stripped; the line counts must match, and a line that differs as text
still passes when both read as the same list of Decimals ("0.5" == "0.50"). A LeetCode-style
(LiveCodeBench "functional") test adds "testtype": "functional" and "fn_name": its input is one JSON
value per line (the arguments), its output the JSON of the return value; the program is loaded as a
module (its `__main__` block does not run, LeetCode's usual imports are in scope),
`Solution().<fn_name>(*args)` is called and its return compared with `==` to the decoded output in
the program's process, a tuple taken as a list (`grade_call_based`), so a `numpy.int64` that equals
the number passes.
"""

from __future__ import annotations

import functools
import json
import secrets
import logging
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import psutil

from distill.verify import CORRECT, INCORRECT, UNFINISHED, UNVERIFIABLE, Verdict, answer_text, check_grading, is_unfinished

log = logging.getLogger(__name__)

LAUNCHER = Path(__file__).with_name("_sandbox_launch.py")
UNSHARE = ["unshare", "--fork", "--pid", "--kill-child", "--net", "--mount-proc"]
SANDBOX_UID_BASE, SANDBOX_UID_SPAN = 200_000, 100_000  # uids with no account, one per run
MAX_OUTPUT_BYTES = 1 << 20  # stdout/stderr kept per run; the file-size rlimit stops a program past file_mb

_NET_GUARD = (
    "import socket as _s\n"
    "def _no_network(*a, **k):\n"
    "    raise OSError('network disabled by the distill sandbox')\n"
    "_s.socket = _s.create_connection = _s.socketpair = _no_network\n"
    "del _s\n"
)


@dataclass(frozen=True)
class RunResult:
    status: str  # ok | error | timeout | memory | output_limit | setup_failed
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float


@functools.lru_cache(maxsize=1)
def isolation() -> tuple[str, tuple[str, ...]]:
    """("namespaces", unshare prefix) when the kernel isolates us, else ("rlimits", ())."""
    prefixes = [UNSHARE] if os.geteuid() == 0 else [UNSHARE[:1] + ["--user", "--map-root-user"] + UNSHARE[1:]]
    for prefix in prefixes:
        try:
            ok = subprocess.run([*prefix, "--", "true"], capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            return "namespaces", tuple(prefix)
    log.warning("code sandbox: no namespaces available; network is blocked only by a Python-level guard")
    return "rlimits", ()


def _sandbox_user() -> tuple[int, int] | None:
    """A fresh unprivileged (uid, gid) for one run when we are root; None otherwise.

    One uid per run, not the shared `nobody`: RLIMIT_NPROC counts processes per uid, so a fork
    bomb in one sandbox cannot starve another running beside it of processes.
    """
    if os.geteuid() != 0:
        return None
    uid = SANDBOX_UID_BASE + random.randrange(SANDBOX_UID_SPAN)
    return uid, uid


def _world_executable(path: str) -> bool:
    real = Path(os.path.realpath(path))
    return all(p.stat().st_mode & stat.S_IXOTH for p in [real, *real.parents])


@functools.lru_cache(maxsize=1)
def program_python() -> str:
    """The interpreter of the program: ours if an unprivileged user can run it, else the system's
    (a pyenv or venv under /root is out of reach). Programs get the standard library only."""
    if os.geteuid() != 0 or _world_executable(sys.executable):
        return sys.executable
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(candidate) and _world_executable(candidate):
            return candidate
    raise RuntimeError("code sandbox: no Python interpreter that an unprivileged user can execute")


def _read(path: Path) -> str:
    with open(path, "rb") as f:
        return f.read(MAX_OUTPUT_BYTES).decode("utf-8", "replace")


def run_program(
    source: str,
    stdin: str = "",
    *,
    timeout_s: float = 10.0,
    memory_mb: int | None = 512,
    file_mb: int = 16,
    tmp_mb: int = 64,
    nproc: int = 32,
) -> RunResult:
    """Run a Python program in the sandbox with `stdin`; returns its status and (bounded) output.
    `memory_mb` None: no address-space cap (LiveCodeBench's grader sets none)."""
    level, prefix = isolation()
    user = _sandbox_user()
    work = Path(tempfile.mkdtemp(prefix="distill-sandbox-"))
    try:
        (work / "prog.py").write_text(source if level == "namespaces" else _NET_GUARD + source, encoding="utf-8")
        (work / "stdin.txt").write_text(stdin, encoding="utf-8")
        if user is not None:
            os.chown(work, *user)
            os.chown(work / "prog.py", *user)
        os.chmod(work, 0o700)
        limits = {
            "workdir": str(work),
            "python": program_python(),
            "memory_mb": memory_mb,
            "file_mb": file_mb,
            "tmp_mb": tmp_mb,
            # the run's own uid has no other process; an unprivileged caller's processes count against it
            "nproc": nproc if user is not None else nproc + _own_process_count(),
            "cpu_s": int(timeout_s) + 1,
            "uid": user[0] if user else None,
            "gid": user[1] if user else None,
            "mount_ns": level == "namespaces",
        }
        cmd = [*prefix, "--", sys.executable, "-I", str(LAUNCHER), json.dumps(limits)] if prefix else [
            sys.executable, "-I", str(LAUNCHER), json.dumps(limits)
        ]
        start = time.monotonic()
        with open(work / "stdin.txt", "rb") as fin, open(work / "stdout", "wb") as fout, open(work / "stderr", "wb") as ferr:
            proc = subprocess.Popen(cmd, stdin=fin, stdout=fout, stderr=ferr, start_new_session=True, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
            try:
                rc = proc.wait(timeout=timeout_s)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(proc, bool(prefix))
        seconds = time.monotonic() - start
        out, err = _read(work / "stdout"), _read(work / "stderr")
        if timed_out:
            return RunResult("timeout", None, out, err, seconds)
        return RunResult(_status(rc, err), rc, out, err, seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _own_process_count() -> int:
    me = os.getuid()
    return sum(1 for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == me)


def _kill_group(proc: subprocess.Popen, namespaced: bool) -> None:
    """SIGKILL the program and everything it started.

    In a PID namespace the program is the namespace's first process: killing it makes the kernel
    kill every other process of the namespace, and `unshare` reaps it and exits. `unshare` must not
    be killed first: its child would be left a zombie of the host's init.
    """
    if namespaced:
        try:
            for child in psutil.Process(proc.pid).children():
                child.kill()
            proc.wait(timeout=10)
        except (psutil.NoSuchProcess, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _status(rc: int, stderr: str) -> str:
    if rc == 0:
        return "ok"
    if rc == 125 and "sandbox setup failed" in stderr:
        return "setup_failed"
    if "MemoryError" in stderr or rc == -signal.SIGSEGV:
        return "memory"
    if rc in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ) or "File too large" in stderr:
        return "output_limit"
    if rc in (-signal.SIGXCPU, 128 + signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGKILL):
        return "timeout"
    return "error"


FENCE = re.compile(r"```(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL)


def extract_program(completion: str) -> str | None:
    """The last fenced code block of the answer (after `</think>`), or None."""
    blocks = FENCE.findall(answer_text(completion))
    return blocks[-1] if blocks else None


# run status -> verdict reason, so the funnel counts why code failed
_REASON = {"error": "runtime_error", "timeout": "timeout", "memory": "memory_limit", "output_limit": "output_limit"}

# What LeetCode has in scope before a solution runs (starter code uses List, Optional, ... unimported).
_FUNCTIONAL_PRELUDE = (
    "from typing import *\nfrom collections import *\nfrom functools import *\nfrom itertools import *\n"
    "from heapq import *\nfrom bisect import *\nfrom math import *\nimport math, heapq, bisect, collections, itertools, functools, string, re\n"
)


def functional_program(program: str, fn_name: str) -> str:
    """A program that loads `program` as a module, calls `Solution().fn_name(*args)` (or a top-level
    `fn_name`) and compares the return with the expected value there, as LiveCodeBench does. Its stdin
    is `functional_stdin`: a token line, read before the solution loads, then the case as JSON; its last
    stdout line is the token and PASS or FAIL."""
    return (
        "import json, sys\n"
        "_token, _case = sys.stdin.read().split('\\n', 1)\n"
        "_case = json.loads(_case)\n"
        "ns = {'__name__': 'solution'}\n"
        f"exec(compile({_FUNCTIONAL_PRELUDE!r}, 'prelude', 'exec'), ns)\n"
        f"exec(compile({program!r}, 'solution.py', 'exec'), ns)\n"
        "args = [json.loads(line) for line in _case['input'].splitlines() if line.strip()]\n"
        f"fn = getattr(ns['Solution'](), {fn_name!r}) if 'Solution' in ns else ns[{fn_name!r}]\n"
        "got = fn(*args)\n"
        "got = list(got) if isinstance(got, tuple) else got\n"
        "same = bool(got == json.loads(_case['output']))\n"
        "sys.stdout.write('\\n' + _token + (' PASS' if same else ' FAIL') + '\\n')\n"
    )


def functional_stdin(token: str, stdin: str, expected: str) -> str:
    return token + "\n" + json.dumps({"input": stdin, "output": expected})


def _passed(stdout: str, token: str) -> bool:
    lines = stdout.strip().splitlines()
    return bool(lines) and lines[-1] == f"{token} PASS"


def _stripped_lines(text: str) -> list[str]:
    """LiveCodeBench's `get_stripped_lines`."""
    return [line.strip() for line in text.strip().split("\n")]


def _decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(x) for x in line.split()]
    except InvalidOperation:
        return None


def same_output(got: str, expected: str) -> bool:
    """LiveCodeBench's stdin/stdout comparison: stripped lines equal as text, or as lists of Decimals."""
    a, b = _stripped_lines(got), _stripped_lines(expected)
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x != y:
            dx, dy = _decimals(x), _decimals(y)
            if dx is None or dy is None or dx != dy:
                return False
    return True


def _cases(tests: str | list) -> list[tuple[str, str, str | None]]:
    """(stdin, expected, fn_name or None for stdin tests) per test case; raises on a malformed list."""
    cases = json.loads(tests) if isinstance(tests, str) else tests
    out = []
    for c in cases:
        fn = c.get("fn_name") if c.get("testtype") == "functional" else None
        if c.get("testtype") == "functional" and not fn:
            raise KeyError("fn_name")
        out.append((str(c["input"]), str(c["output"]), fn))
    return out


def verify_code(completion: str, tests: str | list | None, *, timeout_s: float = 10.0, memory_mb: int | None = 512,
                grading: str = "strict", finish_reason: str | None = None, force_think: bool = False) -> Verdict:
    """Correct when the extracted program passes every test; the first failing test gives the reason.
    `timeout_s` is per test (LiveCodeBench: 6 s each); `memory_mb` None sets no address-space cap."""
    check_grading(grading)
    try:
        cases = _cases(tests)
    except (TypeError, KeyError, ValueError, AttributeError):
        return Verdict(UNVERIFIABLE, None, "bad_tests")
    if not cases:
        return Verdict(UNVERIFIABLE, None, "no_tests")
    if grading == "strict" and is_unfinished(completion, finish_reason, force_think):
        return UNFINISHED
    program = extract_program(completion)
    if program is None:
        return Verdict(INCORRECT, None, "no_answer")
    token = secrets.token_hex(8)
    for stdin, expected, fn_name in cases:
        if fn_name:
            res = run_program(functional_program(program, fn_name), functional_stdin(token, stdin, expected), timeout_s=timeout_s, memory_mb=memory_mb)
        else:
            res = run_program(program, stdin, timeout_s=timeout_s, memory_mb=memory_mb)
        if res.status == "setup_failed":
            raise RuntimeError(f"code sandbox could not start: {res.stderr.strip()[-300:]}")
        if res.status != "ok":
            return Verdict(INCORRECT, program, _REASON[res.status])
        if not (_passed(res.stdout, token) if fn_name else same_output(res.stdout, expected)):
            return Verdict(INCORRECT, program, "wrong_answer")
    return Verdict(CORRECT, program, None)
