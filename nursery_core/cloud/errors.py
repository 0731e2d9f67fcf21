"""The transport's own control-flow exception: the caller asked it to stop (it knows nothing of jobs)."""
from __future__ import annotations


class StopRequested(Exception):
    """The caller's `should_stop()` callback returned True between two safe points of a transfer or a wait;
    the message says where ('cancelled during upload'). Callers that run jobs turn it into their own
    cancellation (nursery_core.jobs.supervise.stop_as_cancel)."""
