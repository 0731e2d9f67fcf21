"""The "training" of the managed-training emulators: a real PEFT LoRA adapter for the requested base,
built fast and without base weights (the model is built on the meta device; only the LoRA tensors are
made), packed the way the provider ships it.

Shapes: `SHAPES` knows the embedded SmolLM2-135M's architecture (its config.json); an emulator may also be
given local HF directories (e.g. the tiny test model), whose config.json is used. The adapter's
`base_model_name_or_path` is the requested model name. The LoRA B matrices are small non-zero values so the
adapter changes the base's output (a zero B would be an untrained adapter).
"""
from __future__ import annotations

import io
import json
import tarfile
import threading
import zipfile
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Callable, Mapping

# HuggingFaceTB/SmolLM2-135M-Instruct's config.json (the embedded default's architecture).
SMOLLM2_135M = {"model_type": "llama", "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
                "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "tie_word_embeddings": True,
                "rope_theta": 100000.0}
# meta-llama/Llama-2-7b-hf's config.json: the base of Replicate's LLM trainers (which Nursery may refuse).
LLAMA2_7B = {"model_type": "llama", "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,
             "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
             "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "tie_word_embeddings": False}
SHAPES: dict[str, dict] = {"HuggingFaceTB/SmolLM2-135M-Instruct": SMOLLM2_135M,
                           "HuggingFaceTB/SmolLM2-135M": SMOLLM2_135M,
                           "meta-llama/Llama-2-7b-hf": LLAMA2_7B}


class UnknownBase(ValueError):
    """The emulator knows no architecture for this model name."""


def base_config(model: str, local_bases: Mapping[str, Path | str] | None = None) -> dict:
    """The config dict of `model`: a local HF directory's config.json, else SHAPES; raises UnknownBase."""
    if local_bases and model in local_bases:
        return json.loads((Path(local_bases[model]) / "config.json").read_text())
    if model in SHAPES:
        return dict(SHAPES[model])
    raise UnknownBase(f"model {model!r} is not available for fine-tuning")


def _target_modules(modules: Any) -> Any:
    if modules in (None, "", "all-linear"):
        return "all-linear"
    if isinstance(modules, str):
        return [m.strip() for m in modules.split(",") if m.strip()]
    return list(modules)


def build_adapter(out_dir: Path | str, model: str, config: dict, *, r: int = 8, alpha: float = 16.0,
                  dropout: float = 0.0, target_modules: Any = "all-linear", seed: int = 0) -> Path:
    """Writes adapter_config.json + adapter_model.safetensors for `model` (architecture `config`) into
    `out_dir`; returns it. Raises ValueError when a target module does not exist in the architecture."""
    import torch
    from accelerate import init_empty_weights
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = dict(config)
    model_type = cfg.pop("model_type", "llama")
    hf_config = AutoConfig.for_model(model_type, **{k: v for k, v in cfg.items()
                                                    if not k.startswith("_") and k != "architectures"})
    with init_empty_weights():
        base = AutoModelForCausalLM.from_config(hf_config)
    lora = LoraConfig(r=int(r), lora_alpha=float(alpha),  # type: ignore[arg-type]  # peft annotates int; providers send float alphas and scaling is alpha/r either way
                      lora_dropout=float(dropout),
                      target_modules=_target_modules(target_modules), task_type="CAUSAL_LM")
    peft_model = get_peft_model(base, lora)
    gen = torch.Generator().manual_seed(int(seed))
    tensors = {}
    for name, meta in get_peft_model_state_dict(peft_model).items():
        scale = 0.02 if "lora_B" in name else 1.0 / max(1, meta.shape[-1]) ** 0.5
        tensors[name] = (torch.randn(tuple(meta.shape), generator=gen) * scale).contiguous()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    pc = peft_model.peft_config["default"]
    pc.base_model_name_or_path = model
    pc.inference_mode = True
    pc.save_pretrained(str(out))
    return out


def pack_tar(src: Path | str, compression: str = "zst") -> bytes:
    """The files of `src` as a tar archive at its root, zstd-compressed ("zst", Together's default) or
    gzip-compressed ("gz")."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for f in sorted(Path(src).iterdir()):
            tar.add(f, arcname=f.name)
    raw = buf.getvalue()
    if compression == "gz":
        import gzip
        return gzip.compress(raw, mtime=0)
    import zstandard
    return zstandard.ZstdCompressor().compress(raw)


def pack_zip(src: Path | str) -> bytes:
    """The files of `src` as a zip at its root (what Replicate's LoRA trainers return as weights)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(Path(src).iterdir()):
            zf.write(f, arcname=f.name)
    return buf.getvalue()


def build_in_background(record: dict, lock: AbstractContextManager, result_key: str, build: Callable[[], Any],
                        thread_name: str) -> None:
    """Runs `build()` on a daemon thread kept in `record["_builder"]` (an emulator's "training"): its return
    value lands in `record[result_key]`, an exception as "Type: message" in `record["_build_error"]` (reported
    as the run's error, like a real crash); both written under `lock`."""

    def run() -> None:
        try:
            result = build()
        except Exception as e:  # noqa: BLE001 - any crash becomes the emulated run's error
            with lock:
                record["_build_error"] = f"{type(e).__name__}: {e}"
            return
        with lock:
            record[result_key] = result

    th = threading.Thread(target=run, name=thread_name, daemon=True)
    record["_builder"] = th
    th.start()
