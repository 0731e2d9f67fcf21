"""Control-flow exceptions between backends and the runner (not user errors)."""
from __future__ import annotations


class Cancelled(Exception):
    """A backend stopped a run because cancellation was requested; `step` is where it stopped."""

    def __init__(self, message: str = "cancelled", step: int | None = None):
        super().__init__(message)
        self.step = step


class Detached(Exception):
    """The runner is shutting down while the run goes on (its child lives); the next runner re-attaches."""
