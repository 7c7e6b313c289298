"""The student's model card: hub metadata (base_model, datasets, after eval its pass@1 as model-index) and
no local absolute path."""

import yaml

from distill.sft.card import add_eval_results, model_card
from distill.sft.config import StudentConfig

SUMMARY = {"rows_in": 10, "rows_train": 9, "rows_too_long": 1, "steps": 3, "train_loss": 0.5, "final_loss": 0.4, "tokens_seen": 1000}
CHECK = {"tokens_mean": 100, "tokens_max": 200, "max_length": 256}


def test_model_card_metadata_and_no_local_paths(tmp_path):
    curated = tmp_path / "runs" / "demo" / "03_curated"
    curated.mkdir(parents=True)
    cfg = StudentConfig(name="s", model="Qwen/Qwen2.5-Math-1.5B", chat_template="distill/templates/qwen2.jinja", max_length=256)
    card = tmp_path / "README.md"
    card.write_text(model_card(cfg, curated, "Qwen/Qwen2.5-Math-1.5B", SUMMARY, CHECK))
    text = card.read_text()
    assert str(tmp_path) not in text
    front = yaml.safe_load(text.split("---")[1])
    assert front["base_model"] == "Qwen/Qwen2.5-Math-1.5B" and front["datasets"] == ["demo-traces"]

    scores = {"benchmarks": {"math500": {"pass@1": 0.4321, "k": 4, "n_problems": 500}}}
    add_eval_results(card, "distilled-1.5b", scores)
    text = card.read_text()
    front = yaml.safe_load(text.split("---")[1])
    (result,) = front["model-index"][0]["results"]
    assert front["model-index"][0]["name"] == "distilled-1.5b" and result["dataset"]["name"] == "math500"
    assert result["metrics"][0]["value"] == 43.21 and front["base_model"] == "Qwen/Qwen2.5-Math-1.5B"
    assert "# s" in text  # the body is kept
