"""bench/vs_trl.py's pieces that decide fairness: the golden import and the recipe handed to TRL."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from nursery_core.evaluation.api import load_eval_examples
from nursery_core.training.config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("vs_trl", ROOT / "bench" / "vs_trl.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_golden_rows_import_as_an_eval_only_dataset(bench, tmp_path):
    rows = [{"request": "Weather in Lisbon?", "tools": ["get_weather", "calculator"],
             "calls": [{"name": "get_weather", "arguments": {"city": "Lisbon"}}]},
            {"request": "Store 'milk' and 'eggs'.", "tools": ["memory_store"],
             "calls": [{"name": "memory_store", "arguments": {"content": "milk"}},
                       {"name": "memory_store", "arguments": {"content": "eggs"}}]},
            {"request": "Tell me a joke.", "tools": ["calculator"], "calls": []}]
    src = tmp_path / "golden.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))

    name = bench.import_golden(src, tmp_path)

    examples = load_eval_examples(name, "all")
    assert [e["meta"]["category"] for e in examples] == ["call", "parallel", "no_call"]
    assert [t["function"]["name"] for t in examples[0]["tools"]] == ["get_weather", "calculator"]
    assert examples[1]["messages"][1]["tool_calls"][1]["function"]["arguments"] == {"content": "eggs"}
    assert bench.import_golden(tmp_path / "missing.jsonl", tmp_path) is None


def test_trl_gets_the_recipe_and_only_the_listed_overrides(bench):
    import torch

    recipe = TrainConfig(learning_rate=1e-3, epochs=3, batch_size=4, grad_accum=2, warmup_ratio=0.1,
                         scheduler="linear", max_length=900, seed=7)
    kw = bench.trl_settings(recipe, torch.device("cpu"), None, n_examples=40, overrides={"logging_steps": 5})

    # 40 examples / batch 4 / accumulation 2 = 5 steps per epoch, 15 in all, 10 % warm-up = 2 steps (rounded)
    assert bench.total_steps(recipe, 40) == 15 and kw["warmup_steps"] == 2
    assert kw["learning_rate"] == 1e-3 and kw["num_train_epochs"] == 3 and kw["max_steps"] == -1
    assert kw["per_device_train_batch_size"] == 4 and kw["gradient_accumulation_steps"] == 2
    assert kw["lr_scheduler_type"] == "linear" and kw["max_length"] == 900 and kw["seed"] == 7
    assert kw["train_sampling_strategy"] == "group_by_length"
    assert kw["bf16"] is False and kw["fp16"] is False and kw["use_cpu"] is True
    assert "gradient_checkpointing" not in kw  # TRL's own default (True) stays, as the issue asks
    assert kw["logging_steps"] == 5  # --trl-set wins
