"""Job and deployment states (str Enums, rq-style): stored as plain strings, compared as members."""
from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """A training job's state; QUEUED and RUNNING are active, the rest final (the runner owns every move)."""

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


ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


class DeploymentStatus(StrEnum):
    """A deployment's state (`nursery_deploy_ollama`): RUNNING while it exports; then VERIFIED or
    FAILED_VERIFICATION (the GGUF answered like the merged model, or not), REGISTERED or REGISTERED_UNVERIFIED
    once Ollama has it, ERROR when a step failed (the row's `error` says which)."""

    RUNNING = "running"
    VERIFIED = "verified"
    FAILED_VERIFICATION = "failed_verification"
    REGISTERED = "registered"
    REGISTERED_UNVERIFIED = "registered_unverified"
    ERROR = "error"

    @classmethod
    def after_verification(cls, passed: bool, registered: bool) -> DeploymentStatus:
        """The final state of a deployment that got as far as verifying (and maybe registering)."""
        if registered:
            return cls.REGISTERED if passed else cls.REGISTERED_UNVERIFIED
        return cls.VERIFIED if passed else cls.FAILED_VERIFICATION

    @property
    def is_final(self) -> bool:
        return self is not DeploymentStatus.RUNNING
