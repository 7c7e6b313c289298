"""Is a model named by a local path or a Hugging Face hub id loadable here? Asked by each stage before it
writes anything, so an offline machine with a mistyped or uncached id gets one line, not the libraries'
chained tracebacks after a half-made output directory."""

from __future__ import annotations

from pathlib import Path

from distill.errors import DistillError


def require_model(name: str, role: str = "model") -> None:
    """DistillError naming the id, the hub cache and HF_HUB_OFFLINE when `name` is neither a local
    path nor (offline) in the cache. Online, the libraries download it and name an unknown id themselves.
    A `fetch:<name>` model passes when catalogued: it is converted on first use (distill.models)."""
    from distill.models import PREFIX, catalogued

    if name.startswith(PREFIX):
        catalogued(name.removeprefix(PREFIX))
        return
    if Path(name).expanduser().exists():
        return
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        cached = try_to_load_from_cache(name, "config.json", cache_dir=constants.HF_HUB_CACHE)
    except HFValidationError:
        raise DistillError(f"{name} ({role}): no such local path, and not a hub id of the form org/name") from None
    if isinstance(cached, str) or not constants.HF_HUB_OFFLINE:
        return
    raise DistillError(
        f"{name} ({role}): no such local path, and not in the Hugging Face cache {constants.HF_HUB_CACHE}, which is all "
        f"HF_HUB_OFFLINE=1 allows: check the id, or download it first where the hub is reachable (`hf download {name}`)"
    )
