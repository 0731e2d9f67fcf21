"""Prompt KV kept on disk across llama.cpp server restarts (a dashboard restart, a server evicted from the pool):
a server that has computed a long prompt prefix (the system turn with the tools) saves that slot's KV, and a
server of the same GGUF that meets a prompt sharing it later loads the file (milliseconds) instead of computing
it again (about 10 ms of CPU per token for SmolLM2-135M on one thread: 3.6 s for the 376 tokens of four tools).

Layout: NURSERY_HOME/gguf_cache/prompt_kv/<model key>/<ids digest>-<server slots>.bin (llama-server's slot file, written by its
/slots/{id}?action=save, github.com/ggml-org/llama.cpp tools/server/README.md) and .json beside it (the token ids
it holds, the file's sha256, the GGUF it belongs to). The model key is the GGUF's resolved path, size and mtime and
the llama.cpp bindings' version, so a rebuilt model or another llama.cpp never loads an old KV; for an adapter
served unmerged it is its LoRA GGUF's (whose name covers the base GGUF's, gguf_cache.lora_target). Both files are
written under a temporary name and renamed (two dashboard processes can share the folder); an entry exists once
its .json does. The folder is bounded (max_bytes(), least recently used entries go first). A restore that fails
(a corrupt file, a checksum that does not match, llama.cpp refusing it) deletes the entry and the caller computes
the prefix as if nothing was stored: never an error to the user.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import InvalidConfig, NurseryError
from .llamacpp_server import common_prefix

log = logging.getLogger(__name__)

# The store's size bound: NURSERY_PROMPT_KV_MB overrides it (0 turns the store off). A SmolLM2-135M entry costs
# about 23 KB of f16 KV per token (30 layers x K and V x 3 heads x 64), so 256 MB keeps some thirty system turns of
# four tools (~376 tokens, ~9 MB each) and their answers.
MAX_MB = 256
# Tokens a server must have computed for a prefix before it is saved. A user turn is usually shorter and a system
# turn with even one tool longer (~120 tokens), so the store fills with tool lists, not with every prompt typed
# (which would evict the tool lists), and what is saved took at least ~0.6 CPU-s to compute against a few ms to
# save and load.
MIN_SAVE = 64
# Stored tokens a restore must add over what the slot already holds (as engines/llamacpp.MIN_COPY: a restore
# costs about as much as a slot copy, ~10 ms)
MIN_GAIN = 16


def max_bytes() -> int:
    """The store's size bound in bytes: NURSERY_PROMPT_KV_MB (a whole number of MB, 0 = no store), else MAX_MB.
    Raises InvalidConfig on a bad value."""
    env = os.environ.get("NURSERY_PROMPT_KV_MB", "").strip()
    if not env:
        return MAX_MB * 2**20
    try:
        mb = int(env)
    except ValueError:
        raise InvalidConfig(f"NURSERY_PROMPT_KV_MB must be a whole number of megabytes, not {env!r}") from None
    if mb < 0:
        raise InvalidConfig(f"NURSERY_PROMPT_KV_MB must be 0 or more, not {mb}")
    return mb * 2**20


def root() -> Path:
    """The store's folder (created on demand)."""
    p = paths.gguf_cache_dir() / "prompt_kv"
    p.mkdir(parents=True, exist_ok=True)
    return p


@functools.lru_cache(maxsize=1)
def _llamacpp_version() -> str:
    try:
        from importlib.metadata import version

        return version("xllamacpp")
    except Exception:  # noqa: BLE001 (no bindings: no server either; any stable text will do)
        return "unknown"


def model_key(gguf_path: Path | str) -> str:
    """Key of a GGUF as it is now: its resolved path, size and mtime, and the llama.cpp bindings' version.
    Raises OSError when the file is gone."""
    p = Path(gguf_path).resolve()
    st = p.stat()
    text = f"{p}\0{st.st_size}\0{st.st_mtime_ns}\0{_llamacpp_version()}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _ids_digest(ids: list[int]) -> str:
    return hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:24]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Entry:
    """One stored KV: `kv` (llama-server's slot file), `meta` (its .json), the token ids it holds, its sha256,
    and the slot count of the server that saved it (llama-server restores a slot file only into a server with as
    many slots: a 4-slot server's file is refused by a 2-slot one; None for entries older than that record)."""

    kv: Path
    meta: Path
    ids: tuple[int, ...]
    sha256: str
    gguf: str
    slots: int | None = None


# parsed .json files of this process: path -> (mtime_ns, size, entry); re-read when the file changes
_INDEX: dict[Path, tuple[int, int, Entry]] = {}
_INDEX_LOCK = threading.Lock()


def _read(meta: Path) -> Entry | None:
    try:
        st = meta.stat()
    except OSError:
        return None
    with _INDEX_LOCK:
        hit = _INDEX.get(meta)
    if hit is not None and hit[:2] == (st.st_mtime_ns, st.st_size):
        return hit[2]
    try:
        d = json.loads(meta.read_text())
        entry = Entry(meta.with_suffix(".bin"), meta, tuple(int(t) for t in d["ids"]), str(d["sha256"]),
                      str(d.get("gguf", "")), int(d["slots"]) if d.get("slots") is not None else None)
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("prompt KV store: dropping unreadable %s (%s)", meta, e)
        _drop_files(meta)
        return None
    with _INDEX_LOCK:
        _INDEX[meta] = (st.st_mtime_ns, st.st_size, entry)
    return entry


def _drop_files(meta: Path) -> None:
    """Deletes an entry: its .json first (so no reader finds a .json without its KV), then the KV."""
    meta.unlink(missing_ok=True)
    meta.with_suffix(".bin").unlink(missing_ok=True)
    with _INDEX_LOCK:
        _INDEX.pop(meta, None)


def entries(gguf_path: Path | str) -> list[Entry]:
    """The stored entries of a GGUF as it is now (none once it was rebuilt)."""
    try:
        folder = root() / model_key(gguf_path)
    except OSError:
        return []
    found = [_read(m) for m in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return [e for e in found if e is not None]


def best(gguf_path: Path | str, ids: list[int], slots: int | None = None) -> tuple[Entry | None, int]:
    """(the stored entry sharing the longest prefix with `ids`, that prefix's length); (None, 0) when none.
    With `slots`, only entries a server of that many slots can restore."""
    top: tuple[Entry | None, int] = (None, 0)
    for e in entries(gguf_path):
        if slots is not None and e.slots not in (None, slots):
            continue
        n = common_prefix(list(e.ids), ids)
        if n > top[1]:
            top = (e, n)
    return top


def enabled() -> bool:
    try:
        return max_bytes() > 0
    except NurseryError:
        return False


def restore(runner: Any, slot: int, ids: list[int], have: int) -> int:
    """Before `slot` of `runner` (a GGUFRunner) computes `ids`, of which it holds `have` leading tokens: loads
    the stored entry sharing the longest prefix with `ids` when that beats `have` by MIN_GAIN tokens or more.
    Returns how many leading tokens of `ids` the slot holds afterwards (`have` when nothing was loaded, 0 when a
    load failed: the entry is deleted and the slot is empty). Never raises for the store's sake."""
    if not enabled() or len(ids) - have < MIN_GAIN:
        return have
    try:
        entry, n = best(runner.identity, ids, runner.slots)
    except OSError as e:
        log.warning("prompt KV store unreadable (%s)", e)
        return have
    if entry is None or n - have < MIN_GAIN:
        return have
    try:
        if _sha256(entry.kv) != entry.sha256:
            raise ValueError("its checksum does not match")
        runner.restore_slot(slot, entry.kv, list(entry.ids))
    except (OSError, ValueError, NurseryError) as e:
        log.warning("prompt KV store: %s could not be restored (%s); deleted, the prompt is computed instead",
                    entry.kv.name, e)
        _drop_files(entry.meta)
        return 0 if runner.cached[slot] == [] else have
    _touch(entry.kv)
    return n


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass


def save(runner: Any, slot: int, ids: list[int]) -> Entry | None:
    """Stores the KV `slot` of `runner` holds for `ids` (which it has just computed), unless `ids` is shorter
    than MIN_SAVE or already stored; then keeps the store under max_bytes(). Returns the entry (None when
    nothing was stored). A failure is logged, never raised: the store is a cache."""
    if not enabled() or len(ids) < MIN_SAVE:
        return None
    try:
        folder = root() / model_key(runner.identity)
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{_ids_digest(ids)}-{runner.slots}"  # one entry per slot count: see Entry.slots
        meta, kv = folder / f"{stem}.json", folder / f"{stem}.bin"
        old = _read(meta) if meta.is_file() else None
        if old is not None and kv.is_file():
            _touch(kv)
            return old
        runner.save_slot(slot, kv)
        entry = Entry(kv, meta, tuple(ids), _sha256(kv), str(Path(runner.identity).resolve()), runner.slots)
        tmp = meta.with_name(f".{meta.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps({"ids": list(ids), "sha256": entry.sha256, "gguf": entry.gguf, "slots": entry.slots,
                                   "llama_cpp": _llamacpp_version(), "saved_at": time.time()}))
        os.replace(tmp, meta)
    except (OSError, NurseryError) as e:
        log.warning("prompt KV store: could not save a prefix of %d tokens (%s)", len(ids), e)
        return None
    evict()
    return entry


def evict(limit: int | None = None) -> dict:
    """Keeps the store under `limit` bytes (default max_bytes()): deletes entries of GGUFs that changed or are
    gone, then the least recently used. Returns {"kept", "deleted", "bytes"}."""
    limit = max_bytes() if limit is None else limit
    base = root()
    live: list[tuple[float, int, Path]] = []
    deleted = 0
    now = time.time()
    for folder in (p for p in base.iterdir() if p.is_dir()):
        for meta in folder.glob("*.json"):
            entry = _read(meta)
            if entry is None:
                deleted += 1
                continue
            try:
                stale = not entry.gguf or model_key(entry.gguf) != folder.name
            except OSError:
                stale = True
            try:
                st = entry.kv.stat()
            except OSError:
                stale = True
            if stale:
                _drop_files(meta)
                deleted += 1
                continue
            live.append((st.st_mtime, st.st_size, meta))
        # a KV whose .json was never written, or a temporary file, left by a writer that died
        for orphan in [*folder.glob("*.bin"), *folder.glob(".*.tmp")]:
            try:
                if not orphan.with_suffix(".json").exists() and now - orphan.stat().st_mtime > 60:
                    orphan.unlink(missing_ok=True)
            except OSError:
                pass
    live.sort()
    total = sum(size for _, size, _ in live)
    while live and total > limit:
        _, size, meta = live.pop(0)
        _drop_files(meta)
        total -= size
        deleted += 1
    return {"kept": len(live), "deleted": deleted, "bytes": total}
