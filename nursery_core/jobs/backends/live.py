"""Machines this process rented and has not released yet, so that atexit and the CLI's interrupt path can
release them (the reaper and, on Vast.ai, the on-machine watchdog catch whatever this misses)."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from typing import Any

log = logging.getLogger("nursery.cloud")


class LiveMachines:
    """id -> how to release it (destroy, terminate), thread-safe; `what` names a machine in log lines."""

    def __init__(self, what: str):
        self.what = what
        self._items: dict[Hashable, Callable[[], Any]] = {}
        self._lock = threading.Lock()

    def add(self, machine_id: Hashable, release: Callable[[], Any]) -> None:
        with self._lock:
            self._items[machine_id] = release

    def discard(self, machine_id: Hashable) -> None:
        with self._lock:
            self._items.pop(machine_id, None)

    def release_all(self, reason: str = "shutdown") -> list:
        """Releases every machine still held (best effort, each failure logged); returns the ids released."""
        with self._lock:
            items = list(self._items.items())
        done = []
        for mid, release in items:
            try:
                release()
                done.append(mid)
                self.discard(mid)
                log.warning("released %s %s (%s)", self.what, mid, reason)
            except Exception as e:  # noqa: BLE001 — best effort at exit; the reaper remains
                log.error("could not release %s %s at %s: %s", self.what, mid, reason, e)
        return done
