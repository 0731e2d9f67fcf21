"""One run at a time per output for the runs that execute in the caller's process (deployments, evaluations):
`exclusive_run` records the run under a key naming what it writes and refuses a second run with the same key
while the first one's process lives (DuplicateRun naming it). Queued training jobs get the same guarantee from
`Store.create_job`."""
from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from ..store import get_store, new_id
from .procs import proc_alive, proc_start_time

FOREIGN_HOST_TTL = timedelta(hours=12)  # a holder on another machine cannot be probed: trusted this long
_held = threading.local()  # keys this thread holds: an evaluation suite's inner runs re-enter its key


def _stale(row: dict) -> bool:
    """A holder is stale when its process is gone (same machine) or it is older than FOREIGN_HOST_TTL."""
    if row.get("host") == socket.gethostname():
        return not proc_alive(row.get("pid"), row.get("pid_start"))
    try:
        started = datetime.fromisoformat(str(row.get("started_at")).replace("Z", "+00:00"))
    except ValueError:
        return True
    return datetime.now(UTC) - started > FOREIGN_HOST_TTL


def run_key(kind: str, *parts: object) -> str:
    return ":".join([kind, *(str(p) for p in parts)])


@contextmanager
def exclusive_run(kind: str, key: str, label: str, created_by: str | None = None) -> Iterator[dict]:
    """Holds `key` for the duration of the block; raises DuplicateRun when a live run holds it already.
    Two threads of one process (two browser tabs on one dashboard) are told apart by their owner id; the
    thread that holds a key may enter it again (nested runs)."""
    held = _held.__dict__.setdefault("keys", set())
    if key in held:
        yield {"key": key, "nested": True}
        return
    owner = f"{os.getpid()}-{threading.get_ident()}-{new_id()}"
    pid = os.getpid()
    row = get_store().claim_inflight({"key": key, "kind": kind, "label": label, "owner": owner, "pid": pid,
                                      "pid_start": proc_start_time(pid), "host": socket.gethostname(),
                                      "created_by": created_by}, is_stale=_stale)
    held.add(key)
    try:
        yield row
    finally:
        held.discard(key)
        get_store().release_inflight(key, owner)
