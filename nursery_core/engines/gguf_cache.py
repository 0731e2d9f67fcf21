"""GGUF copies of pooled models for llama.cpp, built once and kept under NURSERY_HOME/gguf_cache/: a base model
converted as it is, an adapter merged into its base first (export/merge.py) and then converted (export/gguf.py).

Each file is named by a key of what it was built from (the base's weight files' size and mtime, the adapter's
weights and config by content, the GGUF type), so a retrained adapter gets a new file and the stale one of that
model is deleted. Builds are serialised per file by a lock file; a half-written GGUF never has the final name.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from .. import paths
from ..errors import BackendError, InvalidConfig

# f16 halves f32's memory traffic (decode on a CPU is bound by it) and makes the same greedy choices as torch's
# float32 on the bench's prompts; q8_0 is faster still but rounds more. NURSERY_LLAMACPP_TYPE overrides.
DEFAULT_OUTTYPE = "f16"
OUTTYPES = ("f32", "f16", "q8_0")
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def outtype() -> str:
    t = os.environ.get("NURSERY_LLAMACPP_TYPE", DEFAULT_OUTTYPE).strip() or DEFAULT_OUTTYPE
    if t not in OUTTYPES:
        raise InvalidConfig(f"NURSERY_LLAMACPP_TYPE must be one of {', '.join(OUTTYPES)}, not {t!r}")
    return t


def _digest(parts: list[bytes]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.hexdigest()[:16]


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
    kind = outtype()
    prefix = f"base-{paths.slugify(base_dir.name) or 'base'}-{kind}-"
    return paths.gguf_cache_dir() / f"{prefix}{base_key(base_dir, kind)}.gguf", prefix


def adapter_target(model_name: str, adapter_dir: Path | str, base_dir: Path | str) -> tuple[Path, str]:
    """(the GGUF path an adapter's current files over this base get, the prefix its other versions share)."""
    kind = outtype()
    prefix = f"adapter-{paths.slugify(model_name) or 'model'}-{kind}-"
    return paths.gguf_cache_dir() / f"{prefix}{adapter_key(Path(adapter_dir), Path(base_dir), kind)}.gguf", prefix


def _convert(model_dir: Path, tmp: Path, eot_id: int | None) -> str:
    """HF directory → GGUF in `tmp`, with `eot_id` recorded as its end-of-turn token when given
    (export.gguf.set_end_of_turn)."""
    from ..export.gguf import convert, set_end_of_turn

    raw = convert(model_dir, tmp / "raw.gguf", outtype())["path"]
    return raw if eot_id is None else set_end_of_turn(raw, tmp / "model.gguf", eot_id)["path"]


def base_gguf(base_dir: Path | str, eot_id: int | None = None) -> dict:
    """{"path", "built", "seconds"}: the GGUF of a base model directory, converted now unless cached (`eot_id`:
    the family's end-of-turn token id, recorded in the GGUF).
    Raises BackendError when the converter is missing or fails (an architecture llama.cpp does not know)."""
    target, prefix = base_target(base_dir)
    result = _build(target, lambda tmp: _convert(Path(base_dir), tmp, eot_id))
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
