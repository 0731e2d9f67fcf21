"""Estimate maths on known numbers, the GPU table (fits / does not fit), token counting, and past-estimate error."""
from __future__ import annotations

import pytest

from nursery_core import estimate
from nursery_core.base_models import REGISTRY
from nursery_core.errors import InvalidConfig
from nursery_core.training.config import TrainConfig
from training_helpers import store_dataset


def test_lora_flops_formula_on_known_numbers():
    f = estimate.training_flops(params=1_000_000, tokens=1000, n_layers=2, hidden=10, seq_len=100)
    attn_fwd = 2 * 2 * 100 * 10 * 1000
    assert f["lora_total"] == 4 * 1_000_000 * 1000 + 2 * attn_fwd
    assert f["full_total"] == 6 * 1_000_000 * 1000 + 3 * attn_fwd
    assert f["full_total"] > f["lora_total"]


def test_memory_parts_add_up_and_scale_with_batch():
    spec = REGISTRY["smollm2-135m"]
    m1 = estimate.memory_gb(spec, 49152, batch=1, seq_len=256, r=16)
    m8 = estimate.memory_gb(spec, 49152, batch=8, seq_len=256, r=16)
    assert m1["weights_gb"] == pytest.approx(spec.params * 2 / 1024 ** 3)
    parts = m1["weights_gb"] + m1["lora_optimizer_gb"] + m1["activations_gb"] + m1["overhead_gb"]
    assert m1["total_gb"] == pytest.approx(parts)
    assert m8["activations_gb"] == pytest.approx(8 * m1["activations_gb"])


def test_gpu_table_has_every_tier_and_fit_follows_memory():
    rows = estimate.gpu_table(flops=1e15, mem_total_gb=20.0, params=int(1e9))
    names = [r["gpu"] for r in rows]
    assert names == ["RTX 3080 Ti", "RTX 4090", "RTX 5090", "A100 40GB", "A100 80GB", "H100 80GB"]
    fits = {r["gpu"]: r["fits"] for r in rows}
    assert fits["RTX 3080 Ti"] is False and fits["RTX 4090"] is True and fits["H100 80GB"] is True
    h100 = rows[-1]
    assert h100["seconds"] == pytest.approx(1e15 / (989e12 * estimate.mfu(int(1e9))) + estimate.GPU_STARTUP_S,
                                            rel=1e-3)
    assert h100["usd"][0] == pytest.approx(h100["seconds"] / 3600 * 1.5, rel=1e-2)
    assert rows[0]["seconds"] > rows[-1]["seconds"]


def test_n_gpus_split_the_compute_not_the_startup_and_cost_n_times_per_hour():
    one = {r["gpu"]: r for r in estimate.gpu_table(flops=1e17, mem_total_gb=20.0, params=int(1e9))}
    four = {r["gpu"]: r for r in estimate.gpu_table(flops=1e17, mem_total_gb=20.0, params=int(1e9), num_gpus=4)}
    speedup = 1 + 3 * estimate.DDP_EFFICIENCY
    for gpu, r in one.items():
        compute = r["seconds"] - estimate.GPU_STARTUP_S
        assert four[gpu]["seconds"] == pytest.approx(compute / speedup + estimate.GPU_STARTUP_S, abs=0.1)
        assert four[gpu]["usd_per_hour"] == [4 * p for p in r["usd_per_hour"]] and four[gpu]["num_gpus"] == 4
        assert four[gpu]["fits"] == r["fits"]  # DDP keeps a whole model copy on every GPU
        # faster but not cheaper: the scaling loss and the start-up are paid on every GPU
        assert four[gpu]["seconds"] < r["seconds"] and four[gpu]["usd"][0] > r["usd"][0]
    with pytest.raises(InvalidConfig, match="num_gpus"):
        estimate.gpu_table(1e15, 1.0, int(1e9), num_gpus=0)


def test_a_13b_model_does_not_fit_a_12gb_card():
    spec = REGISTRY["llama-2-13b"]
    mem = estimate.memory_gb(spec, 32000, batch=8, seq_len=512, r=16)
    rows = estimate.gpu_table(1e15, mem["total_gb"], spec.params)
    assert not rows[0]["fits"] and rows[-1]["fits"]


def test_mfu_grows_with_size_within_bounds():
    assert 0.05 <= estimate.mfu(135_000_000) < estimate.mfu(1_000_000_000) < estimate.mfu(7_000_000_000) <= 0.40


def test_estimate_for_a_dataset_counts_tokens_and_uses_past_runs_for_the_cpu(tiny_model_dir, store):
    store_dataset("lockers", n=10, eval_fraction=0.2)
    e = estimate.nursery_estimate_cost("lockers", base_model=str(tiny_model_dir), epochs=2, probe=False)
    assert e["tokens"]["method"] == "tokenizer" and e["tokens"]["examples"] == 8
    e4 = estimate.nursery_estimate_cost("lockers", base_model=str(tiny_model_dir), epochs=2, probe=False,
                                        num_gpus=4)
    assert e4["assumptions"]["num_gpus"] == 4 and all(r["num_gpus"] == 4 for r in e4["gpus"])
    assert all(a["seconds"] <= b["seconds"] for a, b in zip(e4["gpus"], e["gpus"]))  # tiny: start-up dominates
    # the default adds practice examples half as many again as the training split (TrainConfig.practice_fraction)
    assert e["tokens"]["train_total"] == pytest.approx(2 * 1.5 * e["tokens"]["total"], abs=1)
    bare = estimate.nursery_estimate_cost("lockers", base_model=str(tiny_model_dir), epochs=2, probe=False,
                                          config=TrainConfig(base_model=str(tiny_model_dir), practice_fraction=0.0))
    assert bare["tokens"]["train_total"] == pytest.approx(2 * e["tokens"]["total"], abs=1)
    assert len(e["gpus"]) == 6 and e["local_cpu"]["method"].startswith("assumed")
    # a finished local run calibrates the CPU estimate and reports its error
    job = store.create_job({"kind": "local", "dataset": "lockers", "base_model": str(tiny_model_dir),
                            "output_name": "x", "estimate": {"seconds": 12.0}, "status": "succeeded",
                            "actual": {"train_seconds": 10.0, "tokens_per_s": 500.0}})
    e2 = estimate.nursery_estimate_cost("lockers", base_model=str(tiny_model_dir), epochs=2, probe=False)
    assert e2["local_cpu"]["method"] == "past local runs"
    assert e2["local_cpu"]["seconds"] == pytest.approx(e2["tokens"]["train_total"] / 500.0, abs=0.1)
    acc = estimate.estimate_accuracy()
    assert acc["count"] == 1 and acc["jobs"][0]["id"] == job["id"] and acc["mean_abs_error_pct"] == 20.0


def test_chars_per_token_fallback_without_a_tokenizer():
    from training_helpers import examples

    info = estimate.count_tokens(examples(4), tokenizer=None)
    assert "characters per token" in info["method"] and info["total"] > 0


def test_cpu_probe_measures_and_caches(tiny_model_dir):
    from training_helpers import examples

    r = estimate.measure_cpu_probe(str(tiny_model_dir), examples(8), steps=1, batch_size=2)
    assert r["tokens_per_s"] > 0
    assert estimate.cached_probe(str(tiny_model_dir))["tokens_per_s"] == r["tokens_per_s"]


def test_machine_probe_is_short_says_what_it_measures_and_is_kept_until_remeasured(tiny_model_dir, monkeypatch):
    """'Measure this machine': a few tiny steps on sequences cut short, kept per machine (host, CPU model,
    threads) and model, reused by later estimates, measured again only when asked."""

    store_dataset("lockers", n=12)
    base = str(tiny_model_dir)
    calls = []
    real = estimate.measure_cpu_probe

    def counting(base_model, exs, **kw):
        calls.append(kw)
        return real(base_model, exs, **kw)

    monkeypatch.setattr(estimate, "measure_cpu_probe", counting)
    first = estimate.nursery_estimate_cost("lockers", base_model=base, epochs=1, probe=True)["local_cpu"]
    assert len(calls) == 1 and first["method"] == "measured probe"
    probe = first["probe"]
    assert probe["reused"] is False and probe["tokens"] > 0 and probe["tokens_per_s"] > 0
    # says what it measures: steps, batch, sequence cut, threads, and that the result is kept
    assert f"{estimate.PROBE_STEPS} LoRA training steps" in probe["what"] and "threads" in probe["what"]
    assert f"cut to {estimate.PROBE_MAX_TOKENS} tokens" in probe["what"] and "kept" in probe["what"]
    # a few tiny steps: at most (steps + 1) batches of at most PROBE_MAX_TOKENS tokens each were run
    assert probe["tokens"] <= estimate.PROBE_STEPS * estimate.PROBE_BATCH * estimate.PROBE_MAX_TOKENS
    # kept per machine: the key names the threads, and the next estimate reuses it without measuring
    assert "threads" in estimate.machine_key() and probe["machine"] == estimate.machine_key()
    again = estimate.nursery_estimate_cost("lockers", base_model=base, epochs=1, probe=True)["local_cpu"]
    assert len(calls) == 1 and again["probe"]["reused"] is True
    assert again["probe"]["measured_at"] == probe["measured_at"]
    # another machine (other thread count) does not see it
    here = estimate.machine_key
    monkeypatch.setattr(estimate, "machine_key", lambda: "elsewhere|cpu|64 threads")
    assert estimate.cached_probe(base) is None
    monkeypatch.setattr(estimate, "machine_key", here)
    # asked to re-measure: measured again and kept in place of the old one
    fresh = estimate.nursery_estimate_cost("lockers", base_model=base, epochs=1, remeasure=True)["local_cpu"]
    assert len(calls) == 2 and fresh["probe"]["reused"] is False
    assert estimate.cached_probe(base)["measured_at"] == fresh["probe"]["measured_at"]


def test_estimate_cli_offers_remeasure():
    from nursery_core.cli import build_parser

    args = build_parser().parse_args(["estimate-cost", "lockers", "--remeasure"])
    assert args.remeasure is True
