"""Shared-prefix packing (training/packing.py): examples offering the same tools train in one row that runs
their common prompt once, with the same loss and gradients as the unpacked batch."""
from __future__ import annotations

import json

import pytest

from nursery_core.training import packing, trainer
from nursery_core.training.config import TrainConfig
from training_helpers import MEMORY_TOOL, examples

OTHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "city name"}},
                   "required": ["city"]}}}


def weather(n: int) -> list[dict]:
    return [{"id": f"w{i}", "tools": [OTHER_TOOL], "meta": {"source": "test", "category": "call"},
             "messages": [{"role": "user", "content": f"Weather in town number {i}?"},
                          {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {
                              "name": "get_weather", "arguments": {"city": f"town {i}"}}}]}]} for i in range(n)]


def no_call(n: int) -> list[dict]:
    return [{"id": f"n{i}", "tools": [MEMORY_TOOL], "meta": {"source": "test", "category": "no_call"},
             "messages": [{"role": "user", "content": f"Say hello {i} times."},
                          {"role": "assistant", "content": "Hello! " * (i + 1)}]} for i in range(n)]


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    from nursery_core.training.rendering import prepare_tokenizer
    return prepare_tokenizer(AutoTokenizer.from_pretrained(str(tiny_model_dir)), "chatml")


def test_units_keep_examples_with_the_same_tools_together_and_cover_each_example_once(tok):
    exs = examples(5) + weather(4) + no_call(3)
    enc, _ = trainer.encode_all(tok, exs, 512)
    units = packing.make_units(enc, 4, seed=0)
    assert sorted(i for u in units for i in u) == list(range(len(exs)))
    assert all(len(u) <= 4 for u in units)
    groups = packing.prefix_groups(enc)
    # memory_store examples (calls and no-calls) share the system turn; the weather ones another
    assert sorted(sorted(g) for g in groups) == [list(range(5)) + list(range(9, 12)), list(range(5, 9))]
    for u in units:
        rows = packing.pack_unit(enc, u)
        assert sorted(m for r in rows for m in r.members) == sorted(u)
        for r in rows:
            assert len({exs[m]["tools"][0]["function"]["name"] for m in r.members}) == 1
            assert len(r.input_ids) == len(r.labels) == len(r.position_ids)
    row = packing.pack_unit(enc, units[0])[0]
    assert row.prefix >= packing.MIN_PREFIX and len(row.segments) == len(units[0])
    # the prefix is all prompt: no trained token in it, and each tail starts untrained
    assert all(t == -100 for t in row.labels[:row.prefix])
    assert all(row.labels[s] == -100 for s, _ in row.segments)
    # each tail's positions continue from the prefix, as when the example runs alone
    s, e = row.segments[1]
    assert row.position_ids[s:e] == list(range(row.prefix, row.prefix + e - s))
    assert sum(len(r.input_ids) for r in packing.pack_unit(enc, units[0])) < sum(
        len(enc[i]["input_ids"]) for i in units[0])


def test_a_packed_batch_has_the_loss_and_gradients_of_the_same_examples_unpacked(tiny_model_dir, tok):
    import torch
    from transformers import AutoModelForCausalLM

    from nursery_core.training.trunk_cache import TrunkCache

    peft_model, _ = trainer.add_lora(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)),
                                     TrainConfig(r=4, lora_layers=1, dropout=0.0))
    for name, p in peft_model.named_parameters():  # LoRA B starts at zero; make the adapter matter
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    exs = examples(3) + no_call(2) + weather(2)
    enc, _ = trainer.encode_all(tok, exs, 512)
    for e in enc:  # exercise the decision-token weights' positions too
        assert e["decisions"]
    cpu = torch.device("cpu")
    unit = list(range(len(exs)))
    rows = packing.pack_unit(enc, unit)
    assert len(rows) == 2 and sorted(len(r.members) for r in rows) == [2, 5]
    ids, mask, labels, pos, weights = packing.collate_rows(rows, tok.pad_token_id, cpu, decision_weight=3.0)
    assert mask.shape == (2, 1, ids.shape[1], ids.shape[1])
    p_ids, p_mask, p_labels = trainer.collate(enc, tok.pad_token_id, cpu)
    p_weights = trainer.decision_weights(enc, p_ids.shape[1], 3.0, cpu)

    def loss_and_grads(fn, *args):
        peft_model.zero_grad()
        s, n = fn(*args)
        (s / n).backward()
        return float((s / n).detach()), n, {k: p.grad.clone() for k, p in peft_model.named_parameters()
                                            if p.requires_grad}

    plain, n_plain, plain_g = loss_and_grads(trainer.LossFn(peft_model), p_ids, p_mask, p_labels, None, p_weights)
    packed, n_packed, packed_g = loss_and_grads(trainer.LossFn(peft_model), ids, mask, labels, None, weights, pos,
                                                [len(r.input_ids) for r in rows])
    assert n_packed == n_plain
    assert packed == pytest.approx(plain, rel=1e-5)
    for k in plain_g:
        assert torch.allclose(packed_g[k], plain_g[k], atol=1e-6), k
    # through the frozen-trunk cache: computed once, read back, same numbers
    cache = TrunkCache.build(peft_model, 1, cpu)
    cached = trainer.LossFn(peft_model, cache)
    keys, lengths = ["r0", "r1"], [len(r.input_ids) for r in rows]
    first, _, first_g = loss_and_grads(cached, ids, mask, labels, keys, weights, pos, lengths)
    again, _, again_g = loss_and_grads(cached, ids, mask, labels, keys, weights, pos, lengths)
    assert cache.misses == 2 and cache.hits == 2
    assert first == pytest.approx(plain, rel=1e-5) and again == pytest.approx(plain, rel=1e-5)
    for k in plain_g:
        assert torch.allclose(again_g[k], plain_g[k], atol=1e-6), k


def test_training_with_shared_prefixes_runs_fewer_tokens_and_learns(tiny_model_dir, tmp_path):
    d = tmp_path / "job"
    (d / "data").mkdir(parents=True)
    (d / "data" / "train.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples(12) + weather(4)))
    (d / "data" / "eval.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples(2)))
    config = TrainConfig(base_model=str(tiny_model_dir), base_model_dir=str(tiny_model_dir), batch_size=4,
                         max_length=512, epochs=3, learning_rate=5e-3, lora_layers=1)
    assert config.share_prefix
    m = trainer.train(config, d)
    assert m["steps"] == 12  # 16 examples in micro-batches of 4, three epochs
    assert m["computed_tokens"] < 0.8 * m["real_tokens"]
    assert m["history"][-1]["loss"] < m["history"][0]["loss"]
    assert m["trunk_cache"]["hits"] > 0
    plain = trainer.train(config.with_overrides(share_prefix=False), tmp_path / "job")
    assert plain["computed_tokens"] == plain["real_tokens"] == m["real_tokens"]
