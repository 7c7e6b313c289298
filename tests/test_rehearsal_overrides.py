"""Every shipped real config differs from what its CPU rehearsal runs only by distill.rehearsal's listed overrides."""

from pathlib import Path

import pytest

from distill import rehearsal
from distill.pipeline import read_pipeline
from distill.rehearsal import DROP, OVERRIDES, apply, diff, unlisted_changes
from tests import rehearsals

# What must run as shipped in every student: the settings the first GPU run depends on.
AS_SHIPPED = ("max_length", "training/padding_free", "training/packing", "training.bf16", "training/gradient_checkpointing",
              "training/model_init_kwargs/dtype", "training/per_device_train_batch_size", "chat_template", "lora")  # fmt: skip


def test_every_override_has_a_reason_and_no_key_is_listed_twice():
    for kind, overrides in OVERRIDES.items():
        keys = [o.key for o in overrides]
        assert len(keys) == len(set(keys)), kind
        assert all(len(o.reason) > 20 for o in overrides), kind


def test_a_change_outside_the_list_is_refused_and_found_by_the_diff():
    shipped = rehearsal.shipped(rehearsals.STUDENT_CONFIGS[0])
    with pytest.raises(KeyError, match="training/padding_free: not in distill.rehearsal.OVERRIDES"):
        apply(shipped, "student", {"training/padding_free": False})
    ran = {**shipped, "training": {**shipped["training"], "padding_free": False, "bf16": False}}
    assert unlisted_changes(shipped, ran, "student") == ["changed training/padding_free", "changed training/bf16"]
    ran = apply(shipped, "student", {"model": "/tmp/tiny"})
    assert diff(shipped, ran) == [("changed", "model")] and not unlisted_changes(shipped, ran, "student")


@pytest.mark.parametrize("path", rehearsals.STUDENT_CONFIGS, ids=lambda p: p.stem)
def test_student_rehearsal_changes_only_listed_keys(path):
    shipped = rehearsal.shipped(path)
    ran = rehearsal.student(path, Path("/tmp/tiny"))
    assert not unlisted_changes(shipped, ran, "student")
    changed = {p for _, p in diff(shipped, ran)}
    assert not changed & set(AS_SHIPPED)
    assert "training/model_init_kwargs/attn_implementation" in changed  # flash_attention_4 -> sdpa, the only kernel swap


@pytest.mark.parametrize("path", rehearsals.GENERATE_CONFIGS, ids=lambda p: p.stem)
def test_generate_rehearsal_changes_only_listed_keys(path):
    assert not unlisted_changes(rehearsal.shipped(path), rehearsals.generate(path, Path("/tmp/tiny")), "generate")


@pytest.mark.parametrize("path", rehearsals.ACCELERATE_CONFIGS, ids=lambda p: p.stem)
def test_accelerate_rehearsal_changes_only_listed_keys(path):
    shipped = rehearsal.shipped(path)
    ran = rehearsals.accelerate(path)
    assert not unlisted_changes(shipped, ran, "accelerate")
    assert ran.get("mixed_precision") == shipped.get("mixed_precision") and ran["distributed_type"] == shipped["distributed_type"]


@pytest.mark.slow  # builds the rehearsal's four tiny models and benchmark files (~1-3 min); the rehearsal asserts it too
def test_r1_distill_rehearsal_changes_only_listed_keys(tmp_path):
    from tests.test_r1_rehearsal import REAL, rehearsal_config

    ran = rehearsal_config(tmp_path)
    assert not unlisted_changes(read_pipeline(REAL), ran, "pipeline")
    for s in ran["sft"]["students"]:
        assert s["training"]["padding_free"] and s["training"]["bf16"] and s["training"]["gradient_checkpointing"]


def test_r1_kd_rehearsal_changes_only_listed_keys(tmp_path):
    from tests.test_rehearse_kd import REAL

    shipped = read_pipeline(REAL)
    ran = apply(shipped, "pipeline", rehearsal.kd_run_changes(shipped, tmp_path / "student", tmp_path / "teacher"))
    assert not unlisted_changes(shipped, ran, "pipeline")


def test_dropping_is_only_allowed_where_listed():
    with pytest.raises(KeyError):
        apply({"training": {"bf16": True}}, "student", {"training.bf16": DROP})
