import os

import pytest

# No hub on this machine or in CI: every from_pretrained must resolve locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """One tiny body per real model a test names (tests/real_students.py), built on first use."""
    from tests.real_students import build_model

    root, built = tmp_path_factory.mktemp("real"), {}

    def get(name: str):
        if name not in built:
            built[name] = build_model(name, root / name)
        return built[name]

    return get
