"""Small real models for tests and demos: a 2-layer Llama built from a config with SmolLM2's tokenizer.

No hub download: the tokenizer comes from the embedded GGUF, the weights are random (seeded), and the
result is a normal HF directory that every part of Nursery accepts as a base model.
"""
from __future__ import annotations

import json
from pathlib import Path


def make_tiny_model(target: Path | str, seed: int = 0, hidden_size: int = 64, layers: int = 2) -> Path:
    """Saves a tiny LlamaForCausalLM (chatml family) to `target`; returns the directory."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from .base_models import load_embedded_tokenizer

    target = Path(target)
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    tok = load_embedded_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id or tok.eos_token_id,
                         tie_word_embeddings=True, rms_norm_eps=1e-5)
    model = LlamaForCausalLM(config)
    model.save_pretrained(target, safe_serialization=True)
    tok.save_pretrained(target)
    (target / "nursery_base.json").write_text(json.dumps({"alias": "tiny", "source": "random init"}))
    return target


def link_embedded_base(home: Path | str, cache: Path | str) -> Path:
    """Materialises the embedded SmolLM2 once under `cache` and links it into NURSERY_HOME `home`'s
    base_models/ (benchmarks reuse one copy across throw-away homes); returns the cached directory."""
    from .base_models import EMBEDDED_ALIAS, materialise_embedded

    cached = materialise_embedded(Path(cache) / EMBEDDED_ALIAS)
    link = Path(home) / "base_models" / EMBEDDED_ALIAS
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(cached, target_is_directory=True)
    return cached


def add_bench_arguments(ap) -> None:
    """The options every benchmark shares: --base-cache (where the materialised SmolLM2 is kept between runs),
    --home (the NURSERY_HOME to use) and --json (one JSON document at the end)."""
    import os

    ap.add_argument("--base-cache", default=os.environ.get("NURSERY_BENCH_BASE",
                                                           str(Path.home() / ".cache" / "nursery-bench")),
                    help="where the materialised SmolLM2 is kept between runs")
    ap.add_argument("--home", default=None, help="NURSERY_HOME to use (default: a temporary directory)")
    ap.add_argument("--json", action="store_true", help="print one JSON document at the end")


def bench_home(home: str | None, prefix: str) -> Path:
    """Points NURSERY_HOME at `home` (or a new temporary directory named `prefix`…) with the hub offline;
    returns the home. A benchmark then links the embedded base into it with link_embedded_base."""
    import os
    import tempfile

    path = Path(home or tempfile.mkdtemp(prefix=prefix))
    os.environ["NURSERY_HOME"] = str(path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return path
