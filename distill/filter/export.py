"""`distill export`: the publishable copy of a curated stage, the directory to upload as a Hugging Face
dataset. Only the card and the data go (README.md, part-*.parquet, rejected/part-*.parquet); the
bookkeeping that makes the stage resumable (done/, claims/, stats/, plan.json, config.json, chunks/)
stays behind."""

from __future__ import annotations

import shutil
from pathlib import Path

from distill.errors import DistillError
from distill.filter.card import write_dataset_card
from distill.layout import PROMPTS
from distill.stage import StageDir

PUBLISHED = ("README.md", "part-*.parquet", "rejected/part-*.parquet")


def export(curated: Path, out: Path) -> list[Path]:
    """Copy the publishable files of finished curated stage `curated` into `out`; return the copies."""
    curated, out = Path(curated), Path(out)
    StageDir(curated).require_complete("filter")
    if not (curated / "README.md").exists():  # `distill run` writes it; a standalone `distill filter` does not
        prompts = curated.parent / PROMPTS
        write_dataset_card(curated, prompts if prompts.is_dir() else None)
    if out.exists() and any(out.iterdir()):
        raise DistillError(f"{out}: exists and is not empty; export into a new directory")
    copied = []
    for pattern in PUBLISHED:
        for f in sorted(curated.glob(pattern)):
            target = out / f.relative_to(curated)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)
            copied.append(target)
    return copied
