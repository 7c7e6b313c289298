"""Write measured numbers into README.md between two marker lines, so the README's figures are the output
of the script that measured them (`scripts/demo_numbers.py`, `bench/scale.py`), never typed by hand."""

from __future__ import annotations

from pathlib import Path

from distill.io import write_text


def replace_block(readme: Path, start: str, end: str, body: str) -> None:
    """Replace what lies between the lines `start` and `end` of `readme` with `body` (markers kept)."""
    text = readme.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{readme}: the marker lines are missing; add\n{start}\n{end}\nwhere the numbers belong")
    head, rest = text.split(start, 1)
    write_text(readme, head + start + body + end + rest.split(end, 1)[1])
