"""RunContext: what a backend may do to its job (record events, update columns, check for cancel/shutdown)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..rows import JobRow
from ..store import Store, now
from .events import LOG, Event


@dataclass
class RunContext:
    """One job's handle for a backend; the runner owns the state transitions, the backend only reports."""

    job_id: str
    job_dir: Path
    store: Store
    shutdown_event: threading.Event = field(default_factory=threading.Event)

    def emit(self, event: Event | dict) -> None:
        """Records a worker event into job_events and the job's live columns."""
        self.store.record_event(self.job_id, event)

    def should_stop(self) -> bool:
        """True once a cancel was requested (from the UI, the CLI or another process)."""
        return bool(self.store.get_job(self.job_id).get("cancel_requested"))

    def detached(self) -> bool:
        """True when the runner is shutting down: a backend returns (raising Detached), its run goes on."""
        return self.shutdown_event.is_set()

    def update(self, **job_columns: Any) -> JobRow:
        return self.store.update_job(self.job_id, **job_columns)

    def heartbeat(self) -> None:
        self.store.update_job(self.job_id, heartbeat_at=now())

    def log(self, message: str) -> None:
        self.emit({"kind": LOG, "message": message})

    def job(self) -> JobRow:
        return self.store.get_job(self.job_id)
