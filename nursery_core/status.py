"""Job states (a str Enum, rq-style): stored as plain strings, compared as members."""
from __future__ import annotations

from enum import Enum


class JobStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def is_active(self) -> bool:
        return self in (JobStatus.QUEUED, JobStatus.RUNNING)

    @property
    def is_final(self) -> bool:
        return not self.is_active

    def __str__(self) -> str:  # so f-strings and JSON show "running", not "JobStatus.RUNNING"
        return self.value


ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
