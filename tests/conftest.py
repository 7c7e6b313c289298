import os

# No hub on this machine or in CI: every from_pretrained must resolve locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
