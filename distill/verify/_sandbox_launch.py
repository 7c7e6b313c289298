"""Trusted launcher of a sandboxed program (run by distill.verify.code_sandbox, never imported).

Runs inside fresh namespaces when the host allows them, as root of those namespaces: hides the
host's world-writable directories, sets resource limits, drops to an unprivileged user, then
replaces itself with the untrusted program. Any setup failure exits 125 (fail closed).

argv[1] is a JSON object: workdir, python, memory_mb (or null), file_mb, tmp_mb, nproc, cpu_s, uid, gid, mount_ns.
"""

import ctypes
import json
import os
import resource
import sys

MS_REC, MS_PRIVATE = 16384, 1 << 18


def _mount(libc, source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    if libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        raise OSError(ctypes.get_errno(), f"mount {source} on {target}")


def main() -> None:
    cfg = json.loads(sys.argv[1])
    work = cfg["workdir"]
    if cfg["mount_ns"]:
        with open(os.path.join(work, "prog.py"), "rb") as f:
            program = f.read()
        libc = ctypes.CDLL(None, use_errno=True)
        _mount(libc, "none", "/", None, MS_REC | MS_PRIVATE, None)
        # A small tmpfs is the program's only writable place: disk use is capped, the host's /tmp hidden.
        _mount(libc, "tmpfs", "/tmp", "tmpfs", 0, f"size={cfg['tmp_mb']}m,mode=755")
        for d in ("/var/tmp", "/dev/shm", "/run/lock"):
            if os.path.isdir(d):
                _mount(libc, "tmpfs", d, "tmpfs", 0, "size=64k,mode=755")
        work = "/tmp"
        with open("/tmp/prog.py", "wb") as f:
            f.write(program)
        if cfg["uid"] is not None:
            os.chown("/tmp", cfg["uid"], cfg["gid"])
    os.chdir(work)
    limits = {
        resource.RLIMIT_FSIZE: cfg["file_mb"] << 20,
        resource.RLIMIT_NPROC: cfg["nproc"],
        resource.RLIMIT_CPU: cfg["cpu_s"],
        resource.RLIMIT_NOFILE: 64,
        resource.RLIMIT_CORE: 0,
    }
    if cfg["memory_mb"] is not None:  # None: no address-space cap (the eval, as LiveCodeBench's grader)
        limits[resource.RLIMIT_AS] = cfg["memory_mb"] << 20
    for res, value in limits.items():
        resource.setrlimit(res, (value, value))
    if cfg["uid"] is not None:
        os.setgroups([])
        os.setgid(cfg["gid"])
        os.setuid(cfg["uid"])
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": work, "PYTHONDONTWRITEBYTECODE": "1"}
    os.execve(cfg["python"], [cfg["python"], "-I", "prog.py"], env)


if __name__ == "__main__":
    try:
        main()
    except OSError as e:
        print(f"sandbox setup failed: {e}", file=sys.stderr)
        sys.exit(125)
