"""What a training run will cost: tokens, FLOPs, memory, time and dollars per GPU tier, and this machine's CPU
time from a short measured probe (cached per machine and model), plus how good past estimates were.

Formulas (N = parameters, T = real training tokens = tokens per epoch × epochs, L = layers, d = hidden size,
s = sequence length):
- LoRA training FLOPs ≈ 4·N·T + 4·L·s·d·T: forward 2·N·T, backward through the activations 2·N·T; frozen
  weights get no weight gradient (full fine-tuning adds that: 6·N·T), the LoRA matrices are < 1 % of N.
  Attention scores and values add 2·L·s·d per token forward (Kaplan et al. 2020), doubled for backward.
- Memory ≈ weights (2 bytes/param in bf16 on GPU, 4 on CPU) + LoRA params × 16 bytes (fp32 weight, grad,
  two AdamW moments) + activations ≈ 34·L·b·s·d bytes (Korthikanti et al. 2022, bf16, SDPA attention, no
  recomputation) + logits b·s·V·6 bytes + 1 GB of CUDA context.
- GPU time = FLOPs / (peak dense bf16 TFLOP/s × MFU) + start-up; MFU (model FLOP utilisation) grows with model
  size: small models cannot fill a GPU (≈10 % at 135M, 20 % at 1B, 30 % at 7B, at most 40 %).
- N GPUs of one box (DDP, training/distributed.py): each holds the whole model and its own micro-batch, so the
  memory per GPU is unchanged; the compute splits N ways at an assumed 90 % scaling efficiency per extra GPU
  (an assumption: LoRA gradients are < 1 % of the weights, so the all-reduce traffic is small, but small models
  are launch-bound); start-up does not shrink, and the box costs N times the per-GPU price.
- $/hour: typical Vast.ai on-demand market ranges (low = cheap interruptible/community hosts, high = verified
  datacenter hosts), checked by hand; prices move, so the table shows a range.
- Characters per token when no tokenizer is local: 3.6 for tool-calling JSON-heavy chat (measured on
  SmolLM2's tokenizer over generated tool datasets: 3.4–3.9).
"""
from __future__ import annotations

import json
import math
import platform
import socket
import statistics
import time
from pathlib import Path
from typing import Any

from . import paths
from .errors import InvalidConfig
from .status import JobStatus
from .store import get_store

CHARS_PER_TOKEN = 3.6
TOKEN_SAMPLE = 2000          # examples tokenised exactly; the rest are extrapolated
GPU_STARTUP_S = 60.0         # image pull cached, base download excluded: load + compile-free start
DDP_EFFICIENCY = 0.9         # assumed throughput per extra GPU of one box under DDP (see the module docstring)
CPU_FALLBACK_FLOPS = 15e9    # effective FLOP/s of LoRA training on a 2-core CPU when nothing was measured

# name, memory GB, peak dense bf16 tensor TFLOP/s (fp32 accumulate, vendor sheets), typical Vast.ai $/h range
GPU_TIERS: list[dict[str, Any]] = [
    {"gpu": "RTX 3080 Ti", "memory_gb": 12, "tflops": 68.0, "usd_per_hour": (0.10, 0.25)},
    {"gpu": "RTX 4090", "memory_gb": 24, "tflops": 165.0, "usd_per_hour": (0.30, 0.60)},
    {"gpu": "RTX 5090", "memory_gb": 32, "tflops": 210.0, "usd_per_hour": (0.45, 0.90)},
    {"gpu": "A100 40GB", "memory_gb": 40, "tflops": 312.0, "usd_per_hour": (0.50, 1.10)},
    {"gpu": "A100 80GB", "memory_gb": 80, "tflops": 312.0, "usd_per_hour": (0.80, 1.60)},
    {"gpu": "H100 80GB", "memory_gb": 80, "tflops": 989.0, "usd_per_hour": (1.50, 2.80)},
]
VOCAB = {"smollm2-135m": 49152, "qwen2.5-0.5b": 151936, "qwen2.5-1.5b": 151936, "qwen2.5-7b": 152064,
         "tinyllama-1.1b": 32000, "llama-3.2-1b": 128256, "llama-3.2-3b": 128256, "llama-2-13b": 32000}


# --------------------------------------------------------------------------------------------- maths
def mfu(params: int) -> float:
    """Assumed model FLOP utilisation on a GPU for LoRA training of a model this size."""
    return max(0.05, min(0.40, 0.10 + 0.10 * math.log10(max(params, 1e7) / 1.35e8) / math.log10(1e9 / 1.35e8)))


def lora_params(spec, r: int, n_targets: int = 7) -> int:
    """LoRA parameters for r on all linear layers (q,k,v,o,gate,up,down) — fewer targets scale it down."""
    d, L = spec.hidden_size, spec.n_layers
    inter = max(2 * d, (spec.params / max(L, 1) - 4 * d * d) / (3 * d)) if d else 0
    per_layer = r * (4 * 2 * d + 3 * (d + inter))
    return int(L * per_layer * min(n_targets, 7) / 7)


def training_flops(params: int, tokens: int, n_layers: int, hidden: int, seq_len: int) -> dict:
    """LoRA and full fine-tuning FLOPs for `tokens` real training tokens (see the module docstring)."""
    attn = 2 * n_layers * seq_len * hidden * tokens
    return {"lora_total": 4 * params * tokens + 2 * attn, "full_total": 6 * params * tokens + 3 * attn,
            "attention": 2 * attn}


def memory_gb(spec, vocab: int, batch: int, seq_len: int, r: int, bytes_per_param: int = 2,
              cuda_overhead_gb: float = 1.0) -> dict:
    weights = spec.params * bytes_per_param
    lora = lora_params(spec, r) * 16
    acts = 34 * spec.n_layers * batch * seq_len * spec.hidden_size
    logits = batch * seq_len * vocab * 6
    total = weights + lora + acts + logits
    gb = 1024 ** 3
    return {"weights_gb": weights / gb, "lora_optimizer_gb": lora / gb, "activations_gb": (acts + logits) / gb,
            "overhead_gb": cuda_overhead_gb, "total_gb": total / gb + cuda_overhead_gb,
            "batch_size": batch, "seq_len": seq_len}


def ddp_speedup(num_gpus: int) -> float:
    """How many single-GPU equivalents N GPUs of one box give under DDP: 1 + (N - 1) × DDP_EFFICIENCY."""
    if int(num_gpus) < 1:
        raise InvalidConfig(f"num_gpus must be at least 1, got {num_gpus}")
    return 1.0 + (int(num_gpus) - 1) * DDP_EFFICIENCY


def gpu_table(flops: float, mem_total_gb: float, params: int, num_gpus: int = 1) -> list[dict]:
    """Per GPU tier, for a box of `num_gpus` of them: fits (memory per GPU, GB), seconds, $/hour of the box
    and the run's $ range. Raises InvalidConfig for num_gpus < 1."""
    rows = []
    u = mfu(params)
    speedup = ddp_speedup(num_gpus)
    n = int(num_gpus)
    for g in GPU_TIERS:
        secs = flops / (g["tflops"] * 1e12 * u * speedup) + GPU_STARTUP_S
        lo, hi = g["usd_per_hour"][0] * n, g["usd_per_hour"][1] * n
        rows.append({"gpu": g["gpu"], "num_gpus": n, "memory_gb": g["memory_gb"],
                     "fits": mem_total_gb <= 0.9 * g["memory_gb"], "seconds": round(secs, 1),
                     "usd_per_hour": [lo, hi], "usd": [round(secs / 3600 * lo, 4), round(secs / 3600 * hi, 4)],
                     "assumed_tflops": g["tflops"], "assumed_mfu": round(u, 3)})
    return rows


# --------------------------------------------------------------------------------------------- tokens
def _tokenizer_for(base_model: str):
    """The base's tokenizer (prepared with the tool template) when it is on this machine, else None."""
    from .base_models import family_of_template, load_embedded_tokenizer, resolve

    spec = resolve(base_model)
    try:
        from transformers import AutoTokenizer

        from .training.rendering import prepare_tokenizer

        if spec.embedded:
            local = paths.base_models_dir() / spec.alias
            tok = AutoTokenizer.from_pretrained(str(local)) if (local / "tokenizer_config.json").exists() \
                else load_embedded_tokenizer()
        else:
            local = Path(spec.local_dir) if spec.local_dir else paths.base_models_dir() / spec.alias
            if not (local / "tokenizer_config.json").exists():
                return None
            tok = AutoTokenizer.from_pretrained(str(local))
        family = spec.family if not spec.local_dir else family_of_template(tok.chat_template)
        return prepare_tokenizer(tok, family)
    except Exception:  # noqa: BLE001 — an unreadable tokenizer only costs precision: tokens are then estimated
        return None


def count_base_tokens(examples: list[dict], base_model: str) -> dict:
    """count_tokens with the base's own tokenizer when it is on this machine (else the character estimate)."""
    return count_tokens(examples, _tokenizer_for(base_model))


def count_tokens(examples: list[dict], tokenizer=None) -> dict:
    """Real tokens per epoch of the rendered examples: exact with a tokenizer (on a sample, extrapolated),
    else characters / CHARS_PER_TOKEN of the JSON."""
    if not examples:
        return {"total": 0, "per_example_mean": 0, "max": 0, "p95": 0, "method": "empty"}
    sample = examples[:TOKEN_SAMPLE]
    if tokenizer is not None:
        from .training.rendering import render_conversation

        lens = [len(tokenizer(render_conversation(tokenizer, ex), add_special_tokens=False)["input_ids"])
                for ex in sample]
        method = "tokenizer"
    else:
        lens = [int(len(json.dumps(ex, ensure_ascii=False)) / CHARS_PER_TOKEN) for ex in sample]
        method = f"estimated at {CHARS_PER_TOKEN} characters per token"
    mean = sum(lens) / len(lens)
    lens_sorted = sorted(lens)
    return {"total": int(round(mean * len(examples))), "per_example_mean": round(mean, 1),
            "max": lens_sorted[-1], "p95": lens_sorted[int(0.95 * (len(lens_sorted) - 1))],
            "examples": len(examples), "method": method}


# ---------------------------------------------------------------------------------------- CPU probe
PROBE_STEPS = 2          # timed LoRA steps, after one warm-up step
PROBE_BATCH = 2          # examples per step
PROBE_MAX_TOKENS = 256   # each example cut to this many tokens: a probe takes seconds, not minutes


def machine_key() -> str:
    """This machine as the probe cache knows it: host, CPU model and the threads training uses."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from .training.trainer import cpu_count

    return f"{socket.gethostname()}|{cpu}|{cpu_count()} threads"


def probe_description(base_model: str, steps: int = PROBE_STEPS, batch_size: int = PROBE_BATCH,
                      max_tokens: int = PROBE_MAX_TOKENS) -> str:
    """What the probe measures, in words (shown before it runs and with its result)."""
    from .training.config import TrainConfig
    from .training.trainer import cpu_count, resolve_device

    amp = resolve_device(TrainConfig(base_model=base_model, device="cpu"))[1]
    precision = "bf16 autocast" if amp is not None else "fp32"
    return (f"times {steps} LoRA training steps of {base_model} on this CPU ({cpu_count()} threads, {precision} as "
            f"training uses here), after one "
            f"warm-up step: {batch_size} of the dataset's examples per step, each cut to {max_tokens} tokens; "
            "the result (training tokens per second) is kept for this machine and model until re-measured")


def _probe_cache() -> Path:
    d = paths.home() / "cache"
    d.mkdir(exist_ok=True)
    return d / "cpu_probe.json"


def cached_probe(base_model: str) -> dict | None:
    """The kept probe result of this machine (machine_key) and base model, or None."""
    try:
        data = json.loads(_probe_cache().read_text())
    except (OSError, ValueError):
        return None
    return data.get(f"{machine_key()}|{base_model}")


def measure_cpu_probe(base_model: str, examples: list[dict], steps: int = PROBE_STEPS,
                      batch_size: int = PROBE_BATCH, max_tokens: int = PROBE_MAX_TOKENS) -> dict:
    """Times a few real LoRA forward/backward steps of the base on this CPU (after one warm-up step) on the
    dataset's examples cut to `max_tokens`; keeps {"tokens_per_s", "tokens", "seconds", "measured_at",
    "machine", "what"} per machine and model in NURSERY_HOME/cache/cpu_probe.json (replacing an older one)."""
    import torch

    from .training import trainer
    from .training.config import TrainConfig

    cfg = TrainConfig(base_model=base_model, device="cpu")
    torch.set_num_threads(trainer.cpu_count())
    _, amp_dtype, load_dtype = trainer.resolve_device(cfg)  # the precision training will use on this CPU
    model, tok, _ = trainer.load_model_and_tokenizer(cfg, load_dtype)
    model, _ = trainer.add_lora(model, cfg)
    model.train()
    enc, _ = trainer.encode_all(tok, examples[: batch_size * (steps + 1)], min(cfg.max_length, max_tokens))
    if not enc:
        raise InvalidConfig("no example to probe with")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    loss_fn = trainer.LossFn(model)
    tokens, elapsed = 0, 0.0
    for i in range(steps + 1):
        b = [enc[(i * batch_size + k) % len(enc)] for k in range(batch_size)]
        ids, mask, labels = trainer.collate(b, tok.pad_token_id or 0, torch.device("cpu"))
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
            s, n = loss_fn(ids, mask, labels)
        (s / max(n, 1)).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:  # the first step warms up allocators and kernels
            elapsed += time.perf_counter() - t0
            tokens += int(mask.sum())
    result = {"tokens_per_s": round(tokens / max(elapsed, 1e-9), 2), "tokens": tokens, "seconds": round(elapsed, 3),
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine_key(),
              "what": probe_description(base_model, steps, batch_size, max_tokens)}
    cache = _probe_cache()
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        data = {}
    data[f"{machine_key()}|{base_model}"] = result
    cache.write_text(json.dumps(data, indent=2))
    return result


def past_cpu_tokens_per_s(base_model: str) -> float | None:
    """Median real tokens/s of this base's finished local runs (the best calibration there is)."""
    rates = []
    for j in get_store().list_jobs(status=JobStatus.SUCCEEDED.value, kind="local", limit=50):
        a = j.get("actual") or {}
        if j.get("base_model") == base_model and a.get("tokens_per_s"):
            rates.append(float(a["tokens_per_s"]))
    return statistics.median(rates) if rates else None


def cpu_estimate(base_model: str, tokens: int, flops: float, examples: list[dict] | None, probe: bool,
                 remeasure: bool = False) -> dict:
    """This machine's training time from, in order: a probe measured now (`remeasure`), past local runs (the
    best calibration), the probe kept for this machine and model, a probe measured now (`probe`, once per
    machine and model), else an assumed CPU_FALLBACK_FLOPS. `probe` in the result: what the probe measured,
    when, and whether it was `reused`."""
    measured = None
    if remeasure and examples:
        measured = {**measure_cpu_probe(base_model, examples), "reused": False}
    tps, method = (measured["tokens_per_s"], "measured probe") if measured else (None, None)
    if tps is None:
        tps, method = past_cpu_tokens_per_s(base_model), "past local runs"
    if tps is None:
        kept = cached_probe(base_model)
        if kept is not None:
            measured = {**kept, "reused": True}
        elif probe and examples:
            measured = {**measure_cpu_probe(base_model, examples), "reused": False}
        if measured is not None:
            tps, method = measured["tokens_per_s"], "measured probe"
    if tps is None:
        secs = flops / CPU_FALLBACK_FLOPS
        return {"seconds": round(secs, 1), "tokens_per_s": round(tokens / secs, 1) if secs else None,
                "method": f"assumed {CPU_FALLBACK_FLOPS / 1e9:.0f} GFLOP/s (no probe yet)", "probe": None}
    return {"seconds": round(tokens / tps, 1), "tokens_per_s": tps, "method": method, "probe": measured}


# ------------------------------------------------------------------------------------------ public
def _train_tokens(tok_info: dict, epochs: float, config) -> int:
    """Real tokens the run trains on: the dataset's per epoch, plus the practice examples a run adds to its
    training split (TrainConfig.practice_fraction, assumed as long as the dataset's own), times the epochs."""
    if config.max_steps:
        per_step = config.batch_size * config.grad_accum * tok_info["per_example_mean"]
        return int(config.max_steps * per_step)
    return int(tok_info["total"] * (1.0 + config.practice_fraction) * epochs)


def _vocab(spec) -> int:
    if spec.local_dir:
        try:
            return int(json.loads((Path(spec.local_dir) / "config.json").read_text()).get("vocab_size") or 32000)
        except (OSError, ValueError):
            return 32000
    return VOCAB.get(spec.alias, 32000)


def nursery_estimate_cost(dataset_name: str, base_model: str = "smollm2-135m", epochs: float | None = None,
                          probe: bool = True, config=None, num_gpus: int = 1, remeasure: bool = False) -> dict:
    """Tokens, LoRA FLOPs, memory, and per-GPU-tier fit/time/$ of training a dataset on boxes of `num_gpus` GPUs
    (DDP); plus this machine's CPU time (`local_cpu`: a short measured probe kept per machine and model, see
    probe_description; `remeasure` runs it again) and the error of past estimates."""
    from .base_models import resolve
    from .datasets import load_examples
    from .training.config import TrainConfig

    spec = resolve(base_model)
    cfg = config or TrainConfig(base_model=base_model)
    epochs = float(epochs if epochs is not None else cfg.epochs)
    if epochs <= 0:
        raise InvalidConfig(f"epochs must be > 0, got {epochs}")
    examples = load_examples(dataset_name, split="train")
    tok_info = count_tokens(examples, _tokenizer_for(base_model))
    tokens = _train_tokens(tok_info, epochs, cfg)
    seq = min(cfg.max_length, max(1, tok_info["p95"]))
    flops = training_flops(spec.params, tokens, spec.n_layers, spec.hidden_size, seq)
    mem = memory_gb(spec, _vocab(spec), cfg.batch_size, min(cfg.max_length, max(1, tok_info["max"])), cfg.r)
    cpu_mem = memory_gb(spec, _vocab(spec), cfg.batch_size, min(cfg.max_length, max(1, tok_info["max"])), cfg.r,
                        bytes_per_param=4, cuda_overhead_gb=0.0)
    local = cpu_estimate(base_model, tokens, flops["lora_total"], examples, probe and spec.params < 2e9,
                         remeasure and spec.params < 2e9)
    local["memory_gb"] = round(cpu_mem["total_gb"], 2)
    return {"dataset": dataset_name, "base_model": spec.alias, "params": spec.params, "epochs": epochs,
            "tokens": {**tok_info, "train_total": tokens}, "flops": flops, "memory": mem,
            "gpus": gpu_table(flops["lora_total"], mem["total_gb"], spec.params, num_gpus), "local_cpu": local,
            "accuracy": estimate_accuracy(), "assumptions": {
                "lora_flops": "4·N·T + 4·L·s·d·T", "full_finetune_flops": "6·N·T + 6·L·s·d·T",
                "mfu": round(mfu(spec.params), 3), "chars_per_token": CHARS_PER_TOKEN,
                "gpu_startup_s": GPU_STARTUP_S, "prices": "typical Vast.ai market $/h ranges",
                "num_gpus": int(num_gpus), "ddp_efficiency": DDP_EFFICIENCY}}


def quick_local_estimate(dataset_name: str, base_model: str, config) -> dict | None:
    """The local CPU training-time estimate stored on a new job (no probe is run here)."""
    e = nursery_estimate_cost(dataset_name, base_model, epochs=config.epochs, probe=False, config=config)
    return {"seconds": e["local_cpu"]["seconds"], "method": e["local_cpu"]["method"],
            "tokens": e["tokens"]["train_total"], "gpus": {r["gpu"]: r["seconds"] for r in e["gpus"]}}


def estimate_accuracy(limit: int = 100) -> dict:
    """Estimated vs actual training seconds of finished jobs; mean absolute error in percent."""
    rows = []
    for j in get_store().list_jobs(status=JobStatus.SUCCEEDED.value, limit=limit):
        est, act = j.get("estimate") or {}, j.get("actual") or {}
        if est.get("seconds") and act.get("train_seconds"):
            err = (est["seconds"] - act["train_seconds"]) / act["train_seconds"] * 100
            rows.append({"id": j["id"], "kind": j["kind"], "base_model": j["base_model"], "method": est.get("method"),
                         "estimated_s": est["seconds"], "actual_s": act["train_seconds"], "error_pct": round(err, 1)})
    mae = round(sum(abs(r["error_pct"]) for r in rows) / len(rows), 1) if rows else None
    return {"count": len(rows), "mean_abs_error_pct": mae, "jobs": rows}

