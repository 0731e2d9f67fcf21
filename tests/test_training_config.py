"""TrainConfig: validation messages, JSON round-trip, overrides, help metadata for the form and CLI."""
from __future__ import annotations

import pytest

from nursery_core.errors import InvalidConfig
from nursery_core.training.config import HYPER_FIELDS, TrainConfig, field_help


def test_defaults_are_valid_and_round_trip(tmp_path):
    cfg = TrainConfig().validate()
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    cfg.save(tmp_path / "c.json")
    assert TrainConfig.load(tmp_path / "c.json") == cfg
    assert cfg.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.mark.parametrize("bad, message", [
    ({"learning_rate": -1e-4}, "learning_rate must be > 0"),
    ({"learning_rate": 0}, "learning_rate must be > 0"),
    ({"r": 0}, "r must be >= 1"),
    ({"epochs": 0}, "epochs must be > 0"),
    ({"batch_size": 0}, "batch_size must be >= 1"),
    ({"batch_size": 2.5}, "batch_size must be a whole number"),
    ({"dropout": 1.5}, "dropout must be <= 0.9"),
    ({"max_length": 4}, "max_length must be >= 16"),
    ({"learning_rate": float("nan")}, "finite"),
    ({"scheduler": "exotic"}, "scheduler must be one of cosine, linear, constant"),
    ({"target_modules": []}, "target_modules must be a non-empty list"),
    ({"device": "cpu", "dtype": "float16"}, "needs a GPU"),
    ({"r": "eight"}, "r must be a number"),
])
def test_absurd_values_are_refused_with_the_field_named(bad, message):
    with pytest.raises(InvalidConfig, match=message):
        TrainConfig(**bad).validate()


def test_unknown_settings_are_an_error_not_ignored():
    with pytest.raises(InvalidConfig, match="unknown training setting.*lerning_rate"):
        TrainConfig.from_dict({"lerning_rate": 1e-3})
    with pytest.raises(InvalidConfig, match="unknown"):
        TrainConfig().with_overrides(lora_rank=8)


def test_overrides_ignore_none_and_accept_comma_lists():
    cfg = TrainConfig().with_overrides(r=8, learning_rate=None, target_modules="q_proj, v_proj")
    assert cfg.r == 8 and cfg.learning_rate == TrainConfig().learning_rate
    assert cfg.target_modules == ["q_proj", "v_proj"]


def test_every_field_has_help_and_hyper_fields_exclude_paths():
    helps = field_help()
    assert all(h["help"] for h in helps.values())
    assert helps["r"]["min"] == 1 and helps["scheduler"]["choices"] == ("cosine", "linear", "constant")
    assert "learning_rate" in HYPER_FIELDS and "dataset_file" not in HYPER_FIELDS


def test_data_recipe_fields_carry_metadata_and_validate():
    helps = field_help()
    for name in ("function_masking", "mix_dataset", "mix_fraction"):
        assert helps[name]["group"] == "data" and helps[name]["help"] and name in HYPER_FIELDS
    assert helps["function_masking"]["min"] == 0.0 and helps["function_masking"]["max"] == 1.0
    cfg = TrainConfig().validate()
    assert cfg.function_masking == 0.0 and cfg.mix_dataset == "" and cfg.mix_fraction == 0.0
    cfg = TrainConfig().with_overrides(function_masking=0.33, mix_dataset="xlam", mix_fraction=0.5).validate()
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(InvalidConfig, match="function_masking must be <= 1"):
        TrainConfig(function_masking=1.5).validate()
    with pytest.raises(InvalidConfig, match="mix_dataset is empty"):
        TrainConfig(mix_fraction=0.5).validate()
    with pytest.raises(InvalidConfig, match="mix_dataset must be a dataset name"):
        TrainConfig(mix_dataset=3).validate()
