"""Under ZeRO-3 a partitioned embedding's data is empty: the row count comes from ds_shape (review N10), so a
Qwen2.5 student keeps its 151,936 / 152,064 rows instead of shrinking to the tokenizer's 151,667."""

import torch

from distill.sft import stage
from tests.real_students import build_model, real_tokenizer


def partitioned(model):
    """The model as deepspeed.zero.Init leaves it on a rank: weights emptied, full shapes in ds_shape."""
    for p in model.parameters():
        p.ds_shape = p.shape
        p.data = torch.empty(0)
    return model


def test_a_zero3_partitioned_student_is_not_resized_to_the_tokenizer(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, PreTrainedModel

    path = build_model("qwen2.5-math-7b", tmp_path / "m")
    tokenizer = real_tokenizer("qwen2.5")
    load = AutoModelForCausalLM.from_pretrained
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", lambda *a, **k: partitioned(load(*a, **k)))
    resized = []
    monkeypatch.setattr(PreTrainedModel, "resize_token_embeddings", lambda self, n, *a, **k: resized.append(n))
    model = stage.load_model(str(path), None, tokenizer)
    assert stage.embedding_rows(model) == 152064 > len(tokenizer)
    assert resized == []
