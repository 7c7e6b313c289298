"""Screenshots of a run's report at a desktop and a phone width, for docs/ and the README.

    python scripts/report_screenshots.py runs/toy           # writes docs/report-1200.png and docs/report-480.png

scripts/demo_numbers.py calls it on the run it tabulates, so the README's screenshot and numbers are of one run.

Headless Chromium (Debian's package; scripts/install_system_deps.sh installs it) renders
report/index.html; the top of the page (headline, results, plot) is kept and the colours are
reduced to a palette, so each PNG stays small enough for the repository.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--force-device-scale-factor=1", "--hide-scrollbars"]
SHOTS = {1200: 1500, 480: 1400}  # width -> height kept (px)


def shoot(page: Path, width: int, height: int, out: Path) -> None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "shot.png"
        subprocess.run([chromium, *FLAGS, f"--user-data-dir={tmp}/profile", f"--window-size={width},{height}",
                        f"--screenshot={raw}", page.resolve().as_uri()], check=True, capture_output=True, timeout=120)
        img = Image.open(raw).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
        out.parent.mkdir(parents=True, exist_ok=True)
        img.save(out, optimize=True)


def shoot_run(run_dir: Path, out_dir: Path = ROOT / "docs") -> list[Path]:
    """Both screenshots of a run's report into out_dir; returns their paths."""
    page = run_dir / "report" / "index.html"
    outs = []
    for width, height in SHOTS.items():
        out = out_dir / f"report-{width}.png"
        shoot(page, width, height, out)
        outs.append(out)
    return outs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    args = ap.parse_args()
    for out in shoot_run(args.run_dir, args.out):
        print(f"{out} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
