"""Merges a trained LoRA adapter into its base and saves a self-contained HF model directory for conversion.

The merged directory carries every tokenizer file of the base (transformers 5 drops `tokenizer.model` on save,
which would make llama.cpp's converter fall back to a vocabulary with placeholder scores) and Nursery's tool
chat template, so the GGUF tokenizes and renders exactly like training did.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ..errors import BackendError, InvalidInput, NotFound, NurseryError
from ..rows import ModelRow

# Tokenizer files a base may ship; whichever the merged save lacks is copied back from the base.
TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json", "vocab.json", "merges.txt", "generation_config.json")
RUN_CONFIG_FILES = ("training_config.json", "config.json")


def adapter_info(adapter_dir: Path | str) -> dict[str, Any]:
    """What the adapter directory says about its base: alias/path, local dir when recorded, and family."""
    d = Path(adapter_dir)
    if not (d / "adapter_config.json").exists():
        raise InvalidInput(f"{d} has no adapter_config.json: not a LoRA adapter directory", file=str(d))
    acfg = json.loads((d / "adapter_config.json").read_text())
    info: dict[str, Any] = {"base_model": acfg.get("base_model_name_or_path"), "base_model_dir": None,
                            "family": None, "system": None}
    for name in RUN_CONFIG_FILES:
        p = d / name
        if not p.exists():
            continue
        try:
            run = json.loads(p.read_text())
        except ValueError:
            continue
        if "base_model" in run or "base_model_dir" in run:
            info["base_model"] = run.get("base_model") or info["base_model"]
            info["base_model_dir"] = run.get("base_model_dir") or None
            break
    metrics = d / "metrics.json"
    if metrics.exists():
        try:
            info["family"] = json.loads(metrics.read_text()).get("family")
        except ValueError:
            pass
    return info


def resolve_base_dir(info: dict[str, Any], base_model: str | None = None,
                     fallback: str | None = None) -> Path:
    """A local directory with the base weights: an explicit override, the recorded local dir, the recorded
    alias/path, then `fallback` (the model row's base_model)."""
    from ..base_models import ensure_local

    recorded_dir = info.get("base_model_dir")
    candidates = [base_model, recorded_dir, info.get("base_model"), fallback]
    errors = []
    for cand in candidates:
        if not cand:
            continue
        p = Path(cand).expanduser()
        if p.is_dir() and (p / "config.json").exists():
            return p
        if cand == recorded_dir or p.is_absolute() or cand.startswith("."):
            continue  # a directory that is gone (a job-local copy, another machine): try the next one
        try:
            return Path(ensure_local(cand))
        except NurseryError as e:
            errors.append(str(e))
    if errors:
        raise BackendError(errors[0])
    raise InvalidInput("the adapter does not say which base model it adapts (no base model found here); "
                       "pass base_model", field="base_model")


def _family(tokenizer, info: dict[str, Any]) -> str:
    from ..base_models import family_of_template
    from ..training.rendering import TEMPLATES

    fam = info.get("family") or tokenizer.init_kwargs.get("nursery_family")
    if fam in TEMPLATES:
        return fam
    try:
        from ..base_models import REGISTRY, resolve

        spec = resolve(info.get("base_model"))
        if spec.alias in REGISTRY and not spec.local_dir:
            return spec.family
    except (NurseryError, OSError, ValueError):  # unknown alias, or a local path gone/unreadable: the template decides
        pass
    return family_of_template(tokenizer.chat_template)


def merge_adapter(adapter_dir: Path | str, out_dir: Path | str, base_model: str | None = None,
                  dtype: str = "float32", fallback_base: str | None = None) -> dict[str, Any]:
    """Writes base+adapter merged (safetensors), the tokenizer with the tool template, and nursery_merge.json.

    Returns {"path", "base_dir", "family", "chat_template", "files"}; refuses to write into a non-empty dir."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..training.rendering import prepare_tokenizer

    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    info = adapter_info(adapter_dir)
    base_dir = resolve_base_dir(info, base_model, fallback_base)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InvalidInput(f"{out_dir} is not empty; refusing to overwrite a merged model", field="out_dir")
    torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    # The adapter's tokenizer is the one training used (with the Nursery template); the base's is the fallback.
    tok_src = adapter_dir if (adapter_dir / "tokenizer_config.json").exists() else base_dir
    tok = AutoTokenizer.from_pretrained(str(tok_src))
    family = _family(tok, info)
    prepare_tokenizer(tok, family, keep_installed=True)  # the rendering the adapter trained with
    try:
        base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch_dtype)
        merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise BackendError(f"could not merge adapter {adapter_dir.name} into {base_dir}: {e}") from e
    merged.config.use_cache = True
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out_dir), safe_serialization=True)
    tok.save_pretrained(str(out_dir))
    copied = []
    for name in TOKENIZER_FILES:
        if (base_dir / name).exists() and not (out_dir / name).exists():
            shutil.copy2(base_dir / name, out_dir / name)
            copied.append(name)
    # llama.cpp's converter reads chat_template.jinja (transformers 5's file); write it whatever the save did.
    (out_dir / "chat_template.jinja").write_text(tok.chat_template)
    meta = {"adapter": str(adapter_dir), "base_model": info.get("base_model"), "base_dir": str(base_dir),
            "family": family, "copied_from_base": copied, "dtype": dtype}
    (out_dir / "nursery_merge.json").write_text(json.dumps(meta, indent=2) + "\n")
    del merged, base
    return {"path": str(out_dir), "base_dir": str(base_dir), "family": family, "chat_template": tok.chat_template,
            "files": sorted(p.name for p in out_dir.iterdir())}


def model_adapter_dir(model_name: str) -> tuple[ModelRow, Path]:
    """The store row and adapter directory of a trained model (NotFound with a hint otherwise)."""
    from ..store import get_store

    row = get_store().get_model(model_name)
    path = Path(row.get("path") or "")
    if not row.get("path") or not (path / "adapter_config.json").exists():
        raise NotFound(f"model {model_name!r} has no adapter on this machine (expected adapter_config.json in "
                       f"{row.get('path')})")
    return row, path
