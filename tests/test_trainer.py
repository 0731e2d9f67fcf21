"""Nursery's trainer on the tiny model: adapter files, events, loss going down, stop flag, length grouping,
and the LM-head-on-labels-only loss equal to the plain full-logits loss."""
from __future__ import annotations

import json

import pytest

from nursery_core.training import rendering, trainer
from nursery_core.training.config import TrainConfig
from training_helpers import examples


def job_dir_with(tmp_path, exs, evals=()):
    d = tmp_path / "job"
    (d / "data").mkdir(parents=True)
    (d / "data" / "train.jsonl").write_text("".join(json.dumps(e) + "\n" for e in exs))
    (d / "data" / "eval.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals))
    return d


def cfg(model_dir, **kw):
    base = dict(base_model=str(model_dir), base_model_dir=str(model_dir), batch_size=4, max_length=512)
    return TrainConfig(**{**base, **kw})


def test_training_writes_adapter_tokenizer_config_metrics_and_events(tiny_model_dir, tmp_path):
    d = job_dir_with(tmp_path, examples(8), examples(2))
    events = []
    metrics = trainer.train(cfg(tiny_model_dir, max_steps=3), d, events.append)
    out = d / "output"
    for f in ("adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json",
              "training_config.json", "metrics.json"):
        assert (out / f).exists(), f
    assert rendering.NURSERY_MARKER in (out / "chat_template.jinja").read_text()
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_model_dir)
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "start" and kinds.count("progress") == 3 and kinds[-1] == "eval"
    prog = [e for e in events if e["kind"] == "progress"]
    assert [p["step"] for p in prog] == [1, 2, 3] and all(p["total_steps"] == 3 for p in prog)
    assert all(p["tokens_per_s"] > 0 and p["lr"] > 0 and p["eta_s"] >= 0 for p in prog)
    assert metrics["steps"] == 3 and metrics["eval_loss"] is not None and not metrics["stopped"]
    assert metrics["real_tokens"] > 0


def test_loss_decreases_on_a_repeated_example(tiny_model_dir, tmp_path):
    d = job_dir_with(tmp_path, examples(8, repeat=True))
    m = trainer.train(cfg(tiny_model_dir, max_steps=16, learning_rate=5e-3, eval_fraction=0.0,
                          warmup_ratio=0.0, dropout=0.0), d)
    losses = [h["loss"] for h in m["history"]]
    assert losses[-1] < losses[0] - 0.5, losses


def test_stop_flag_halts_and_saves_the_adapter_so_far(tiny_model_dir, tmp_path):
    d = job_dir_with(tmp_path, examples(8))
    events = []
    stop = lambda: sum(e["kind"] == "progress" for e in events) >= 2  # noqa: E731
    m = trainer.train(cfg(tiny_model_dir, max_steps=50, batch_size=2), d, events.append, stop)
    assert m["stopped"] and m["steps"] == 2
    assert (d / "output" / "adapter_model.safetensors").exists()


def test_length_grouping_batches_similar_lengths_and_covers_every_example():
    lengths = [5, 300, 7, 290, 6, 310, 8, 305]
    batches = trainer.batch_order(lengths, 2, seed=1, epoch=0, group_by_length=True)
    assert sorted(i for b in batches for i in b) == list(range(8))
    for b in batches:
        assert max(lengths[i] for i in b) - min(lengths[i] for i in b) < 50
    assert trainer.batch_order(lengths, 2, 1, 0, True) == batches


def test_label_only_head_loss_equals_full_logits_loss(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nursery_core.training.rendering import prepare_tokenizer

    tok = prepare_tokenizer(AutoTokenizer.from_pretrained(str(tiny_model_dir)), "chatml")
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    peft_model, _ = trainer.add_lora(model, TrainConfig(r=4))
    enc, _ = trainer.encode_all(tok, examples(3), 512)
    ids, mask, labels = trainer.collate(enc, tok.pad_token_id, torch.device("cpu"))
    peft_model.eval()
    with torch.no_grad():
        s, n = trainer.LossFn(peft_model)(ids, mask, labels)
        ref = peft_model(input_ids=ids, attention_mask=mask, labels=labels).loss
    assert trainer.LossFn(peft_model).fast
    assert float(s / n) == pytest.approx(float(ref), rel=1e-4)


def test_lora_layers_adapts_only_the_top_layers_and_trains(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    n_layers = model.config.num_hidden_layers
    peft_model, _ = trainer.add_lora(model, TrainConfig(r=4, lora_layers=1))
    adapted = {int(n.split(".layers.")[1].split(".")[0]) for n, p in peft_model.named_parameters()
               if p.requires_grad}
    assert adapted == {n_layers - 1}
    everything, _ = trainer.add_lora(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)), TrainConfig(r=4))
    assert {int(n.split(".layers.")[1].split(".")[0]) for n, p in everything.named_parameters()
            if p.requires_grad} == set(range(n_layers))

    d = job_dir_with(tmp_path, examples(4))
    m = trainer.train(cfg(tiny_model_dir, max_steps=2, lora_layers=1, eval_fraction=0.0), d)
    saved = json.loads((d / "output" / "adapter_config.json").read_text())
    assert saved["layers_to_transform"] == [n_layers - 1] and m["steps"] == 2


def test_trunk_cache_gives_the_same_loss_and_gradients_as_the_whole_model(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nursery_core.training.rendering import prepare_tokenizer
    from nursery_core.training.trunk_cache import TrunkCache

    tok = prepare_tokenizer(AutoTokenizer.from_pretrained(str(tiny_model_dir)), "chatml")
    peft_model, _ = trainer.add_lora(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)),
                                     TrainConfig(r=4, lora_layers=1, dropout=0.0))
    for name, p in peft_model.named_parameters():  # LoRA B starts at zero; make the adapter matter
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    cache = TrunkCache.build(peft_model, 1, torch.device("cpu"))
    assert cache is not None and cache.split == peft_model.config.num_hidden_layers - 1
    enc, _ = trainer.encode_all(tok, examples(3), 512)
    ids, mask, labels = trainer.collate(enc, tok.pad_token_id, torch.device("cpu"))
    keys = ["a", "b", "c"]

    def loss_and_grads(fn):
        peft_model.zero_grad()
        s, n = fn(ids, mask, labels, keys)
        (s / n).backward()
        return float((s / n).detach()), {k: p.grad.clone() for k, p in peft_model.named_parameters()
                                         if p.requires_grad}

    plain, plain_g = loss_and_grads(trainer.LossFn(peft_model))
    cached = trainer.LossFn(peft_model, cache)
    first, first_g = loss_and_grads(cached)          # computes and stores the trunk
    assert cache.misses == 3 and set(cache.store) == set(keys) and cache.used > 0
    again, again_g = loss_and_grads(cached)          # reads it back
    assert cache.hits == 3
    assert first == pytest.approx(plain, rel=1e-5) and again == pytest.approx(plain, rel=1e-5)
    for k in plain_g:
        assert torch.allclose(first_g[k], plain_g[k], atol=1e-6) and torch.allclose(again_g[k], plain_g[k], atol=1e-6)
    # the model is whole again afterwards (the adapter saves with every layer)
    assert len(peft_model.get_base_model().get_decoder().layers) == peft_model.config.num_hidden_layers


def test_multi_epoch_top_layer_training_reuses_the_trunk_and_matches_uncached_training(tiny_model_dir, tmp_path,
                                                                                        monkeypatch):
    from nursery_core.training import trunk_cache

    run = dict(epochs=3, lora_layers=1, eval_fraction=0.0, batch_size=2, grad_accum=1)
    m = trainer.train(cfg(tiny_model_dir, **run), job_dir_with(tmp_path / "a", examples(6), examples(2)))
    tc = m["trunk_cache"]
    # the 6 training examples offer one tool: with share_prefix they pack into 3 rows of 2 (batch_size 2)
    assert tc["cached_rows"] == 3 + 2 and tc["hits"] > tc["misses"] > 0
    monkeypatch.setattr(trunk_cache.TrunkCache, "build", classmethod(lambda *a, **k: None))
    ref = trainer.train(cfg(tiny_model_dir, **run), job_dir_with(tmp_path / "b", examples(6), examples(2)))
    assert ref["trunk_cache"] is None
    assert [h["loss"] for h in m["history"]] == pytest.approx([h["loss"] for h in ref["history"]], rel=1e-4)
    assert m["eval_loss"] == pytest.approx(ref["eval_loss"], rel=1e-4)


def test_cpu_precision_is_bf16_autocast_on_amx_and_fp32_elsewhere(monkeypatch):
    """auto autocasts to bf16 on a CPU with AMX and stays fp32 without it; bfloat16 and float32 force their
    precision either way; float16 is refused on a CPU. The weights always load in fp32 there."""
    import torch

    from nursery_core.errors import InvalidConfig

    cpu = TrainConfig(dataset_file="x.jsonl", device="cpu")
    for amx, auto in ((True, torch.bfloat16), (False, None)):
        monkeypatch.setattr(trainer, "cpu_has_amx", lambda amx=amx: amx)
        assert trainer.resolve_device(cpu)[1:] == (auto, torch.float32)
        assert trainer.resolve_device(cpu.with_overrides(dtype="bfloat16"))[1:] == (torch.bfloat16, torch.float32)
        assert trainer.resolve_device(cpu.with_overrides(dtype="float32"))[1:] == (None, torch.float32)
    with pytest.raises(InvalidConfig, match="float16 needs a GPU"):
        cpu.with_overrides(dtype="float16").validate()


def test_cpu_has_amx_reads_the_flags_line(monkeypatch, tmp_path):
    """The AMX check reads the `flags` line of /proc/cpuinfo, and a machine without that file has none."""
    import builtins

    real_open = builtins.open
    for text, want in (("processor : 0\nflags : fpu avx512f amx_bf16 amx_tile\n", True),
                       ("processor : 0\nflags : fpu avx512f avx512_bf16\n", False), (None, False)):
        def fake_open(path, *a, text=text, **k):
            if path != "/proc/cpuinfo":
                return real_open(path, *a, **k)
            if text is None:
                raise FileNotFoundError(path)
            (tmp_path / "cpuinfo").write_text(text)
            return real_open(tmp_path / "cpuinfo", *a, **k)
        monkeypatch.setattr(builtins, "open", fake_open)
        trainer.cpu_has_amx.cache_clear()
        try:
            assert trainer.cpu_has_amx() is want
        finally:
            trainer.cpu_has_amx.cache_clear()


def test_decision_weight_scales_only_the_first_token_of_each_trained_answer(tiny_model_dir):
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nursery_core.training.rendering import prepare_tokenizer

    tok = prepare_tokenizer(AutoTokenizer.from_pretrained(str(tiny_model_dir)), "chatml")
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    peft_model, _ = trainer.add_lora(model, TrainConfig(r=4))
    enc, _ = trainer.encode_all(tok, examples(3), 512)
    for e in enc:  # each decision is the first label of a run of labels, and every run starts with one
        starts = [p for p, t in enumerate(e["labels"]) if t != -100 and (p == 0 or e["labels"][p - 1] == -100)]
        assert e["decisions"] == starts and starts
    ids, mask, labels = trainer.collate(enc, tok.pad_token_id, torch.device("cpu"))
    assert trainer.decision_weights(enc, ids.shape[1], 1.0, torch.device("cpu")) is None
    w = trainer.decision_weights(enc, ids.shape[1], 5.0, torch.device("cpu"))
    assert int((w == 5.0).sum()) == sum(len(e["decisions"]) for e in enc) and int((w != 1.0).sum()) == int((w == 5.0).sum())
    peft_model.eval()
    with torch.no_grad():
        plain, n = trainer.LossFn(peft_model)(ids, mask, labels)
        weighted, n2 = trainer.LossFn(peft_model)(ids, mask, labels, None, w)
        logits = peft_model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        per = F.cross_entropy(logits.transpose(1, 2), labels[:, 1:], ignore_index=-100, reduction="none")
        at_decisions = float((per * (w[:, 1:] == 5.0)).sum())
    assert n == n2
    assert float(weighted) == pytest.approx(float(plain) + 4.0 * at_decisions, rel=1e-4)


def test_decision_weight_is_a_validated_recipe_setting():
    from nursery_core.errors import InvalidConfig

    assert TrainConfig().decision_weight == 1.0  # an option: run E could not separate its share (QUALITY.md, session 6)
    with pytest.raises(InvalidConfig, match="decision_weight"):
        TrainConfig(decision_weight=-1.0).validate()
