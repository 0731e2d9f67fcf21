"""GGUF copies of pooled models for llama.cpp, built once and kept under NURSERY_HOME/gguf_cache/.

- A base model: converted from its HF directory (f16 by default), or with NURSERY_LLAMACPP_TYPE=packaged the
  packaged GGUF it was materialised from when it has one (the embedded SmolLM2's Q4_1: the very weights torch
  runs, since the HF copy is that file dequantized to float32, at a third of f16's memory traffic per decoded
  token; but its matrix products round the activations to 8 bits, so it makes fewer of torch's greedy choices:
  bench/llamacpp_fidelity.py).
- An adapter (adapter_mode): merged into its base and converted whole over a converted base (the default: no
  per-token LoRA work, and a merge into f16 keeps torch's calls, 171 of 174 requests); over a packaged base, a
  LoRA GGUF of its A and B matrices (export.gguf.convert_lora) that llama.cpp applies at run time, unmerged, as
  PEFT computes it (a merge would have to requantize the packaged weights), unless llama.cpp cannot apply it so
  (lora_refusal: DoRA, saved modules, not a LoRA). NURSERY_LLAMACPP_ADAPTERS=lora|merged chooses for every base.

Each file is named by a key of what it was built from (the base's weight files' size and mtime, the adapter's
weights and config by content, the GGUF type), so a retrained adapter gets a new file and the stale one of that
model is deleted. Builds are serialised per file by a lock file; a half-written GGUF never has the final name.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from .. import paths
from ..errors import BackendError, InvalidConfig, NurseryError

# f16 halves f32's memory traffic (decode on a CPU is bound by it) and makes torch's float32 greedy calls on 171 of
# 174 requests of a trained adapter (bench/llamacpp_fidelity.py); a packaged Q4_1 decodes faster but rounds the
# activations to 8 bits in its products (160 of 174), and q8_0 rounds them the same way (not measured).
# NURSERY_LLAMACPP_TYPE overrides: "packaged" serves a base's packaged GGUF when it has one (else f16).
DEFAULT_OUTTYPE = "f16"
OUTTYPES = ("f32", "f16", "q8_0", "packaged")
LORA_OUTTYPE = "f32"  # a LoRA's matrices are megabytes: kept exact
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def outtype() -> str:
    t = os.environ.get("NURSERY_LLAMACPP_TYPE", DEFAULT_OUTTYPE).strip() or DEFAULT_OUTTYPE
    if t not in OUTTYPES:
        raise InvalidConfig(f"NURSERY_LLAMACPP_TYPE must be one of {', '.join(OUTTYPES)}, not {t!r}")
    return t


def packaged_gguf(base_dir: Path | str) -> Path | None:
    """With NURSERY_LLAMACPP_TYPE=packaged, the packaged GGUF a base directory was materialised from (its
    nursery_base.json names the package and file: the embedded SmolLM2), when it is installed; else None."""
    if outtype() != "packaged":
        return None
    try:
        source = str(json.loads((Path(base_dir) / "nursery_base.json").read_text()).get("source") or "")
    except (OSError, ValueError, AttributeError):
        return None
    from ..base_models import EMBEDDED_PACKAGE, embedded_gguf

    package, _, name = source.partition(":")
    if package != EMBEDDED_PACKAGE:
        return None
    try:
        gguf = embedded_gguf()
    except NurseryError:
        return None
    return gguf if gguf.name == name and gguf.is_file() else None


def served_type(base_dir: Path | str) -> str:
    """The GGUF type llama.cpp runs a base in: "Q4_1 as packaged" for a packaged GGUF, else the converted type."""
    gguf = packaged_gguf(base_dir)
    if gguf is None:
        return converted_type()
    stem = gguf.stem.rsplit(".", 1)
    return f"{stem[-1] if len(stem) == 2 else 'GGUF'} as packaged"


ADAPTER_MODES = ("auto", "merged", "lora")


def adapter_mode() -> str:
    """NURSERY_LLAMACPP_ADAPTERS: "auto" (the default: LoRA GGUF over a packaged base, merged over a converted
    one), "merged" or "lora". Raises InvalidConfig on another value."""
    m = os.environ.get("NURSERY_LLAMACPP_ADAPTERS", "auto").strip() or "auto"
    if m not in ADAPTER_MODES:
        raise InvalidConfig(f"NURSERY_LLAMACPP_ADAPTERS must be one of {', '.join(ADAPTER_MODES)}, not {m!r}")
    return m


def serves_unmerged(adapter_dir: Path | str, base_dir: Path | str) -> bool:
    """Whether an adapter is served as a LoRA GGUF over its base's GGUF (else merged into one GGUF)."""
    mode = adapter_mode()
    wanted = mode == "lora" or (mode == "auto" and packaged_gguf(base_dir) is not None)
    return wanted and lora_refusal(adapter_dir) is None


def lora_refusal(adapter_dir: Path | str) -> str | None:
    """Why llama.cpp cannot apply this adapter unmerged (None when it can): its runtime LoRA is plain LoRA on
    linear layers (llama.cpp's convert_lora_to_gguf.py refuses DoRA and trained, saved modules)."""
    try:
        cfg = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())
    except (OSError, ValueError):
        return "its adapter_config.json cannot be read"
    if str(cfg.get("peft_type", "LORA")).upper() != "LORA":
        return f"it is a {cfg.get('peft_type')} adapter, not LoRA"
    if cfg.get("use_dora"):
        return "it is a DoRA adapter"
    if cfg.get("modules_to_save"):
        return f"it trains whole modules ({', '.join(map(str, cfg['modules_to_save']))})"
    from ..export.gguf import lora_converter_available

    if not lora_converter_available():
        return "llama.cpp's LoRA converter is not installed (run `make setup`)"
    return None


def _digest(parts: list[bytes]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.hexdigest()[:16]


def converted_type() -> str:
    """The type a base is converted to: outtype(), f16 for "packaged" (a base without a packaged GGUF)."""
    t = outtype()
    return DEFAULT_OUTTYPE if t == "packaged" else t


def base_key(base_dir: Path, kind: str) -> str:
    """Key of a base directory: its resolved path and its weight and config files' names, sizes and mtimes
    (hashing gigabytes of weights on every call would cost more than the conversion saves)."""
    base_dir = Path(base_dir).resolve()
    parts = [str(base_dir).encode(), kind.encode()]
    for f in sorted(base_dir.iterdir()):
        if f.suffix in _WEIGHT_SUFFIXES or f.name == "config.json":
            st = f.stat()
            parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return _digest(parts)


def adapter_key(adapter_dir: Path, base_dir: Path, kind: str) -> str:
    """Key of an adapter over a base: the adapter's weights and config by content (they are megabytes), and
    the base's key."""
    adapter_dir = Path(adapter_dir)
    parts = [base_key(base_dir, kind).encode()]
    for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
        f = adapter_dir / name
        if f.is_file():
            parts += [name.encode(), f.read_bytes()]
    return _digest(parts)


def _lock(path: Path):
    from ..base_models import _file_lock

    return _file_lock(path.with_name(f".{path.name}.lock"))


def _build(target: Path, make) -> dict:
    """Runs make(tmp_gguf_path) unless `target` exists; the result lands under its final name only when whole."""
    with _lock(target):
        if target.is_file():
            return {"path": str(target), "built": False, "seconds": 0.0}
        start = time.monotonic()
        tmp_dir = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
        try:
            out = make(tmp_dir)
            Path(out).replace(target)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        return {"path": str(target), "built": True, "seconds": round(time.monotonic() - start, 1)}


def _stale(prefix: str, keep: Path) -> None:
    for old in keep.parent.glob(f"{prefix}*.gguf"):
        if old != keep:
            old.unlink(missing_ok=True)


def base_target(base_dir: Path | str) -> tuple[Path, str]:
    """(the GGUF path a base directory's current files get, the prefix its other versions share)."""
    base_dir = Path(base_dir)
    packaged = packaged_gguf(base_dir)
    kind = "packaged" if packaged is not None else converted_type()
    key = base_key(base_dir, kind)
    if packaged is not None:
        st = packaged.stat()
        key = _digest([key.encode(), f"{packaged.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()])
    prefix = f"base-{paths.slugify(base_dir.name) or 'base'}-{kind}-"
    return paths.gguf_cache_dir() / f"{prefix}{key}.gguf", prefix


def lora_target(model_name: str, adapter_dir: Path | str, base_dir: Path | str) -> tuple[Path, str]:
    """(the LoRA GGUF path an adapter's current files over this base's GGUF get, the prefix its other versions
    share). The key covers the base's GGUF name, so a KV computed with it never meets another base file."""
    base_file = base_target(base_dir)[0].name
    prefix = f"lora-{paths.slugify(model_name) or 'model'}-"
    key = _digest([adapter_key(Path(adapter_dir), Path(base_dir), LORA_OUTTYPE).encode(), base_file.encode()])
    return paths.gguf_cache_dir() / f"{prefix}{key}.gguf", prefix


def adapter_target(model_name: str, adapter_dir: Path | str, base_dir: Path | str) -> tuple[Path, str]:
    """(the GGUF path an adapter's current files over this base get, the prefix its other versions share)."""
    kind = converted_type()
    prefix = f"adapter-{paths.slugify(model_name) or 'model'}-{kind}-"
    return paths.gguf_cache_dir() / f"{prefix}{adapter_key(Path(adapter_dir), Path(base_dir), kind)}.gguf", prefix


def _convert(model_dir: Path, tmp: Path, eot_id: int | None) -> str:
    """HF directory → GGUF in `tmp`, with `eot_id` recorded as its end-of-turn token when given
    (export.gguf.set_end_of_turn)."""
    from ..export.gguf import convert, set_end_of_turn

    raw = convert(model_dir, tmp / "raw.gguf", converted_type())["path"]
    return raw if eot_id is None else set_end_of_turn(raw, tmp / "model.gguf", eot_id)["path"]


def _from_packaged(packaged: Path, tmp: Path, eot_id: int | None) -> str:
    """The packaged GGUF copied into the cache (the package's file is never written), with `eot_id` recorded."""
    from ..export.gguf import set_end_of_turn

    if eot_id is not None:
        return set_end_of_turn(packaged, tmp / "model.gguf", eot_id)["path"]
    shutil.copyfile(packaged, tmp / "model.gguf")
    return str(tmp / "model.gguf")


def base_gguf(base_dir: Path | str, eot_id: int | None = None) -> dict:
    """{"path", "built", "seconds"}: the GGUF of a base model directory, its packaged GGUF or converted now,
    unless cached (`eot_id`: the family's end-of-turn token id, recorded in the GGUF).
    Raises BackendError when the converter is missing or fails (an architecture llama.cpp does not know)."""
    target, prefix = base_target(base_dir)
    packaged = packaged_gguf(base_dir)
    if packaged is not None:
        result = _build(target, lambda tmp: _from_packaged(packaged, tmp, eot_id))
    else:
        result = _build(target, lambda tmp: _convert(Path(base_dir), tmp, eot_id))
    if result["built"]:
        _stale(prefix, target)
    return result


def lora_gguf(model_name: str, adapter_dir: Path | str, base_dir: Path | str) -> dict:
    """{"path", "built", "seconds"}: the LoRA GGUF of an adapter (f32, applied by llama.cpp over its base's GGUF),
    converted now unless cached for these exact adapter files; a stale one of the same model is deleted.
    Raises BackendError when the converter refuses it (see lora_refusal)."""
    from ..export.gguf import convert_lora

    target, prefix = lora_target(model_name, adapter_dir, base_dir)

    def make(tmp: Path) -> str:
        return convert_lora(adapter_dir, base_dir, tmp / "lora.gguf", LORA_OUTTYPE)["path"]

    try:
        result = _build(target, make)
    except BackendError:
        raise
    except NurseryError as e:
        raise BackendError(f"could not convert the adapter {model_name} for llama.cpp: {e}") from e
    if result["built"]:
        _stale(prefix, target)
    return result


def adapter_gguf(model_name: str, adapter_dir: Path | str, base_dir: Path | str,
                 eot_id: int | None = None) -> dict:
    """{"path", "built", "seconds"}: the GGUF of an adapter merged into its base, built now unless cached for
    these exact adapter files; a stale GGUF of the same model is deleted. Raises BackendError on failure."""
    from ..export.merge import merge_adapter

    adapter_dir, base_dir = Path(adapter_dir), Path(base_dir)
    target, prefix = adapter_target(model_name, adapter_dir, base_dir)

    def make(tmp: Path) -> str:
        merged = tmp / "merged"
        merge_adapter(adapter_dir, merged, base_model=str(base_dir), dtype="float32")
        return _convert(merged, tmp, eot_id)

    try:
        result = _build(target, make)
    except BackendError:
        raise
    except Exception as e:  # merge refusing the adapter (InvalidInput) is as final as a converter failure
        raise BackendError(f"could not build a llama.cpp copy of {model_name}: {e}") from e
    if result["built"]:
        _stale(prefix, target)
    return result
