"""Function masking and the training-data recipe: names consistent between tools and calls, schema-valid
examples, masking and mixing applied to the training split only, deterministically per seed."""
from __future__ import annotations

import json
import random
import re

import pytest

from nursery_core import paths
from nursery_core.data.generator import generate_examples, nursery_generate_data
from nursery_core.data.masking import mask_example, random_identifier
from nursery_core.data.recipe import apply_recipe
from nursery_core.errors import InvalidConfig, InvalidInput, NotFound
from nursery_core.jobs import api
from nursery_core.records import normalise_example, tools_by_name
from nursery_core.training.config import TrainConfig


def _calls(ex):
    return [c["function"] for m in ex["messages"] for c in m.get("tool_calls") or ()]


def test_masked_names_are_consistent_and_examples_stay_valid():
    exs, _ = generate_examples(["get_weather", "send_email", "run_sql", "memory_store"], 120, "medium", seed=3)
    rng = random.Random(0)
    for ex in exs:
        before = json.dumps(ex, sort_keys=True)
        masked = mask_example(ex, rng)
        assert json.dumps(ex, sort_keys=True) == before               # the input is left alone
        normalise_example(masked)                                       # calls validate against renamed schemas
        old_tools, new_tools = tools_by_name(ex["tools"]), tools_by_name(masked["tools"])
        assert not set(old_tools) & set(new_tools) and len(new_tools) == len(old_tools)
        for name in new_tools:
            assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name)
        assert sorted(t["function"]["description"] for t in masked["tools"]) == \
            sorted(t["function"]["description"] for t in ex["tools"])  # descriptions kept
        for old, new in zip(_calls(ex), _calls(masked)):
            tool = new_tools[new["name"]]["function"]
            assert old_tools[old["name"]]["function"]["description"] == tool["description"]
            assert set(new["arguments"]) <= set(tool["parameters"]["properties"])
            assert sorted(map(str, new["arguments"].values())) == sorted(map(str, old["arguments"].values()))
        replies = [m for m in masked["messages"] if m["role"] == "tool"]
        assert all(m["name"] in new_tools for m in replies)
        assert [m["content"] for m in masked["messages"] if m["role"] == "user"] == \
            [m["content"] for m in ex["messages"] if m["role"] == "user"]
        assert masked["meta"]["masked"] is True


def test_masking_shuffles_tool_order_and_is_deterministic():
    exs, _ = generate_examples(["get_weather", "send_email", "run_sql", "calculator"], 60, "low", seed=1)
    orders = set()
    for i, ex in enumerate(exs):
        a, b = mask_example(ex, random.Random(i)), mask_example(ex, random.Random(i))
        assert a == b
        descs = [t["function"]["description"] for t in a["tools"]]
        orders.add(tuple(descs) == tuple(t["function"]["description"] for t in ex["tools"]))
    assert orders == {True, False}
    taken = set()
    names = [random_identifier(random.Random(i), taken) for i in range(200)]
    assert len(set(names)) == 200


def test_recipe_masks_a_share_and_mixes_without_eval_overlap():
    own, _ = generate_examples(["get_weather"], 80, "low", seed=0)
    other, _ = generate_examples(["calculator", "read_file"], 60, "low", seed=1)
    evals = own[:10]
    train = own[10:]
    other.append(evals[0])  # an eval request must never be trained on through the mix
    out, rep = apply_recipe(train, evals, seed=4, function_masking=0.5, mix=other, mix_fraction=0.5, mix_name="gen")
    assert rep["mixed"] == 35 and rep["mix_dropped_eval_overlap"] == 1 and len(out) == 70 + 35
    assert rep["masked"] == round(0.5 * len(out)) == sum(1 for e in out if e["meta"].get("masked"))
    assert all(e in other or e in train or e["meta"].get("masked") for e in out)
    again, rep2 = apply_recipe(train, evals, seed=4, function_masking=0.5, mix=other, mix_fraction=0.5)
    assert json.dumps(again, sort_keys=True) == json.dumps(out, sort_keys=True)
    assert apply_recipe(train, evals, seed=5, function_masking=0.5)[0] != apply_recipe(train, evals, seed=4,
                                                                                         function_masking=0.5)[0]
    few, rep3 = apply_recipe(train, evals, seed=0, mix=other[:5], mix_fraction=2.0)
    assert rep3["mixed"] == 5 and len(few) == 75  # at most all of the mix dataset
    with pytest.raises(InvalidConfig):
        apply_recipe(train, evals, function_masking=1.5)


def test_jobs_apply_the_recipe_to_the_training_split_only(store):
    nursery_generate_data(["get_weather", "send_email"], 60, "low", seed=0, name="own", eval_fraction=0.2)
    nursery_generate_data(["calculator"], 40, "low", seed=1, name="general")
    cfg = TrainConfig(function_masking=0.5, mix_dataset="general", mix_fraction=0.5, max_steps=1,
                      practice_fraction=0.0)
    job = api.create_job("local", "own", "smollm2-135m", "masked-model", cfg)
    data = paths.job_dir(job["id"]) / "data"
    train = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    evals = [json.loads(line) for line in (data / "eval.jsonl").read_text().splitlines()]
    recipe = json.loads((data / "recipe.json").read_text())
    assert len(evals) == 12 and not any(e["meta"].get("masked") for e in evals)
    assert recipe["mixed"] == 24 and len(train) == 48 + 24 and recipe["masked"] == 36
    assert sum(1 for e in train if e["meta"].get("masked")) == 36
    saved = TrainConfig.load(paths.job_dir(job["id"]) / "config.json")
    assert saved.function_masking == 0.5 and saved.mix_dataset == "general"
    with pytest.raises(NotFound, match="mix_dataset 'nope'"):
        api.create_job("local", "own", "smollm2-135m", "x", TrainConfig(mix_dataset="nope", mix_fraction=0.5))
    with pytest.raises(InvalidConfig, match="being trained"):
        api.create_job("local", "own", "smollm2-135m", "x", TrainConfig(mix_dataset="own", mix_fraction=0.5))
    from nursery_core.golden import nursery_golden_add
    nursery_golden_add("gold", "Work out 17 * 23 for me", ["calculator"],
                       [{"name": "calculator", "arguments": {"expression": "17 * 23"}}])
    with pytest.raises(InvalidInput, match="golden set"):  # evaluation data is never mixed into training
        api.create_job("local", "own", "smollm2-135m", "x", TrainConfig(mix_dataset="gold", mix_fraction=0.5))
    plain = api.create_job("local", "own", "smollm2-135m", "plain", TrainConfig(max_steps=1, practice_fraction=0.0))
    assert not (paths.job_dir(plain["id"]) / "data" / "recipe.json").exists()
