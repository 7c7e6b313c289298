"""The code sandbox against programs that try to escape or exhaust it; the host must be unaffected."""

import json
import os
import threading
import time
import uuid

import psutil
import pytest

from distill.verify.code_sandbox import SANDBOX_UID_BASE, SANDBOX_UID_SPAN, isolation, run_program, verify_code

SOLUTION = "<think>\nreverse it\n</think>\n```python\nprint(input()[::-1])\n```"
TESTS = json.dumps([{"input": "abc\n", "output": "cba"}, {"input": "xy\n", "output": "yx\n"}])


def _sandbox_processes() -> list[psutil.Process]:
    """Processes left over from a sandbox run (they run under the sandbox's uid range)."""
    sandbox = range(SANDBOX_UID_BASE, SANDBOX_UID_BASE + SANDBOX_UID_SPAN)
    return [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real in sandbox]


def _run(source: str, **kw):
    res = run_program(source, **kw)
    assert not _sandbox_processes(), "a sandboxed process outlived its run"
    return res


def test_verify_code_verdicts():
    assert verify_code(SOLUTION, TESTS).verdict == "correct"
    wrong = SOLUTION.replace("[::-1]", "")
    assert verify_code(wrong, TESTS).reason == "wrong_answer"
    assert verify_code("<think>\nhm\n</think>\nno code", TESTS).reason == "no_answer"
    assert verify_code(SOLUTION, "not json").verdict == "unverifiable"
    crash = SOLUTION.replace("print(input()[::-1])", "raise SystemExit(3)")
    assert verify_code(crash, TESTS).reason == "runtime_error"


def test_network_is_unreachable():
    src = (
        "import socket\n"
        "for host in [('1.1.1.1', 80), ('127.0.0.1', 22), ('pypi.org', 443)]:\n"
        "    try:\n"
        "        socket.create_connection(host, timeout=2)\n"
        "        print('CONNECTED', host)\n"
        "    except OSError as e:\n"
        "        print('blocked', host, type(e).__name__)\n"
    )
    res = _run(src, timeout_s=15)
    assert "CONNECTED" not in res.stdout and res.stdout.count("blocked") == 3, res


def test_writes_outside_the_work_dir_do_not_reach_the_host(tmp_path):
    tag = uuid.uuid4().hex
    targets = [str(tmp_path / "escaped"), f"/tmp/{tag}", f"/var/tmp/{tag}", f"/dev/shm/{tag}", f"/work/{tag}"]
    src = (
        f"for t in {targets!r}:\n"
        "    try:\n"
        "        open(t, 'w').write('pwned')\n"
        "        print('wrote', t)\n"
        "    except OSError as e:\n"
        "        print('denied', t, e.errno)\n"
        "open('inside.txt', 'w').write('fine')\n"
        "print('inside ok')\n"
    )
    res = _run(src)
    assert "inside ok" in res.stdout, res
    assert not any(os.path.exists(t) for t in targets)
    if isolation()[0] == "namespaces":
        # /tmp and /var/tmp, /dev/shm are the sandbox's own: writing there lands in throwaway space
        assert f"denied {tmp_path / 'escaped'}" in res.stdout and f"denied /work/{tag}" in res.stdout


def test_fork_bomb_is_contained():
    """The bomb hits its process limit and its timeout; a sandbox beside it and the host still work."""
    src = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    bomb = {}
    start = time.monotonic()
    t = threading.Thread(target=lambda: bomb.update(res=run_program(src, timeout_s=3)))
    t.start()
    time.sleep(0.5)
    beside = run_program("print(sum(range(10)))", timeout_s=10)
    t.join()
    assert beside.status == "ok" and beside.stdout.strip() == "45"
    assert bomb["res"].status in ("timeout", "error")
    assert time.monotonic() - start < 15
    assert not _sandbox_processes()
    pid = os.fork()  # the host can still start processes
    if pid == 0:
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0


def test_daemonised_child_dies_with_the_run():
    src = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    time.sleep(60)\n"
        "print('parent exits')\n"
    )
    res = _run(src, timeout_s=5)
    assert res.status == "ok" and "parent exits" in res.stdout


def test_memory_bomb_is_reported():
    res = _run("x = []\nwhile True:\n    x.append(bytearray(50 << 20))\n", memory_mb=256, timeout_s=10)
    assert res.status == "memory", res
    assert verify_code("```python\nx = bytearray(8 << 30)\n```", TESTS, memory_mb=256).reason == "memory_limit"


def test_infinite_loop_times_out():
    res = _run("while True:\n    pass\n", timeout_s=1)
    assert res.status == "timeout" and res.seconds < 3
    assert verify_code("```python\nwhile True: pass\n```", TESTS, timeout_s=1).reason == "timeout"


def test_output_flood_is_bounded():
    res = _run("while True:\n    print('x' * 10000)\n", timeout_s=5)
    assert res.status in ("output_limit", "timeout") and len(res.stdout) <= 1 << 20


def test_parent_secrets_are_not_visible(monkeypatch):
    if isolation()[0] != "namespaces" and os.geteuid() != 0:
        pytest.skip("without namespaces or a uid to drop to, the program runs as us and can read our /proc environ")
    monkeypatch.setenv("DISTILL_TEST_SECRET", "s3cr3t-" + uuid.uuid4().hex)
    src = (
        "import os, glob\n"
        "print(dict(os.environ))\n"
        "for f in glob.glob('/proc/*/environ'):\n"
        "    try:\n"
        "        print(f, open(f, 'rb').read())\n"
        "    except OSError as e:\n"
        "        print(f, 'denied')\n"
    )
    res = _run(src)
    assert res.status == "ok" and "s3cr3t" not in res.stdout


def test_disk_filling_stops_at_the_private_tmpfs():
    src = (
        "import os\n"
        "n = 0\n"
        "try:\n"
        "    for i in range(1000):\n"
        "        with open(f'f{i}', 'wb') as f:\n"
        "            f.write(b'x' * (1 << 20))\n"
        "        n += 1\n"
        "except OSError as e:\n"
        "    print('stopped', n, e.errno)\n"
    )
    res = _run(src, tmp_mb=32)
    if isolation()[0] == "namespaces":
        assert res.stdout.startswith("stopped") and int(res.stdout.split()[1]) <= 32, res


def test_fallback_without_namespaces_still_limits(monkeypatch):
    """Where `unshare` is not allowed: rlimits, timeout and the Python-level network guard."""
    monkeypatch.setattr("distill.verify.code_sandbox.isolation", lambda: ("rlimits", ()))
    assert _run("print(input()[::-1])", stdin="abc\n").stdout == "cba\n"
    net = _run("import socket\ntry:\n    socket.create_connection(('1.1.1.1', 80), timeout=1)\n    print('CONNECTED')\nexcept OSError:\n    print('blocked')\n")
    assert net.stdout.strip() == "blocked"
    assert _run("while True:\n    pass\n", timeout_s=1).status == "timeout"
