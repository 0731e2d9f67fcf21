"""Where training runs: a registry of backends by job kind (local now; the cloud area adds vast and ssh)."""
from __future__ import annotations

from typing import Protocol

from ...errors import NotFound
from ..context import RunContext


class Backend(Protocol):
    kind: str

    def run(self, job: dict, ctx: RunContext) -> dict: ...

    def recover(self, job: dict, ctx: RunContext) -> dict | None: ...


# kind -> "module:Class" (imported on first use so the registry costs nothing at import time) or a class
BACKENDS: dict[str, object] = {
    "local": "nursery_core.jobs.backends.local:LocalBackend",
    "vast": "nursery_core.jobs.backends.vast:VastBackend", "ssh": "nursery_core.jobs.backends.ssh:SSHBackend",
}


def get_backend(kind: str) -> Backend:
    import importlib

    target = BACKENDS.get(kind)
    if target is None:
        raise NotFound(f"no training backend {kind!r} (known: {', '.join(sorted(BACKENDS))})")
    if isinstance(target, str):
        mod, cls = target.split(":")
        target = getattr(importlib.import_module(mod), cls)
    return target() if isinstance(target, type) else target  # type: ignore[return-value]
