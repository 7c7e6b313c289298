"""What a model is, for the eval's config hash: its content, not where it lies, so a moved or symlinked
run directory resumes instead of being refused.

A student trained in the run is its SFT stage's config hash; another local checkpoint is a fingerprint
of its files (names, sizes and sampled content); a hub id or a served model name is itself.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

# Files up to this size are hashed whole; larger ones (weight shards of GBs) by BLOCKS evenly spaced
# blocks: two checkpoints of one architecture have equal sizes but differ in every block.
WHOLE_FILE_BYTES = 64 << 20
BLOCKS, BLOCK_BYTES = 16, 1 << 20


def _sampled_hash(path: Path) -> str:
    h = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as f:
        if size <= WHOLE_FILE_BYTES:
            h.update(f.read())
        else:
            for i in range(BLOCKS):
                f.seek((size - BLOCK_BYTES) * i // (BLOCKS - 1))
                h.update(f.read(BLOCK_BYTES))
    return h.hexdigest()


def fingerprint(path: Path) -> str:
    """Content identity of a checkpoint directory (or file): every non-hidden file's relative name, size
    and sampled hash. The same files anywhere give the same fingerprint."""
    path = Path(path).resolve()
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    h = hashlib.sha256()
    for f in files:
        rel = f.name if f == path else f.relative_to(path).as_posix()
        h.update(f"{rel}\0{f.stat().st_size}\0{_sampled_hash(f)}\n".encode())
    return h.hexdigest()[:16]


def _sft_student(path: Path) -> str | None:
    """The SFT config hash of a finished student directory's `model/`, else None."""
    stage = path.parent
    if path.name != "model" or not (stage / "done").exists() or not (stage / "config.json").exists():
        return None
    try:
        return json.loads((stage / "config.json").read_text()).get("hash")
    except (json.JSONDecodeError, AttributeError):
        return None


def model_identity(model: str) -> str:
    """`sft:<hash>`, `files:<fingerprint>` or the id as given (the stage has checked it: distill.hub.require_model)."""
    path = Path(model).expanduser()
    if path.exists():
        sft = _sft_student(path.resolve())
        return f"sft:{sft}" if sft else f"files:{fingerprint(path)}"
    return model
