"""Background tasks of one server process: long core calls that are not training jobs (evaluation, deploy)
run on a thread and are followed by id like jobs. Their results land in the store as usual (evaluations,
deployments); the task record itself lives as long as the process."""
from __future__ import annotations

import threading
import time
import traceback
import uuid
from typing import Any, Callable

from ..errors import NurseryError
from ..status import JobStatus
from ..store import now

TASK_PREFIX = "task-"
KEEP = 200  # finished tasks remembered per process


class Tasks:
    """Starts core calls on threads; `status(id)` has the shape of nursery_job_status's common keys."""

    def __init__(self):
        self._lock = threading.Lock()
        self._tasks: dict[str, dict] = {}

    @staticmethod
    def owns(job_id: str) -> bool:
        return isinstance(job_id, str) and job_id.startswith(TASK_PREFIX)

    def start(self, kind: str, label: str, fn: Callable[..., Any], kwargs: dict,
              progress_kw: str | None = "progress") -> dict:
        """Runs fn(**kwargs) on a thread (its progress callback, when it takes one, updates the task);
        returns the task's status at once."""
        task_id = TASK_PREFIX + uuid.uuid4().hex[:12]
        task = {"id": task_id, "kind": kind, "label": label, "status": JobStatus.RUNNING.value,
                "created_at": now(), "started_at": now(), "finished_at": None, "step": 0, "total_steps": None,
                "progress": None, "message": None, "error": None, "result": None, "_t0": time.monotonic()}
        with self._lock:
            self._tasks[task_id] = task
            self._trim()
        if progress_kw:
            kwargs = {**kwargs, progress_kw: lambda *a: self._progress(task_id, *a)}
        started = self.status(task_id)
        assert started is not None  # registered above, under the lock; _trim never drops an active task
        threading.Thread(target=self._run, args=(task_id, fn, kwargs), name=f"nursery-{task_id}",
                         daemon=True).start()
        return started

    def _progress(self, task_id: str, *args: Any) -> None:
        with self._lock:
            t = self._tasks[task_id]
            if len(args) == 2 and all(isinstance(a, int) for a in args):  # (done, total): evaluation
                t["step"], t["total_steps"] = args
                t["progress"] = round(args[0] / args[1], 4) if args[1] else None
            elif len(args) == 3:  # (label, done, total): an evaluation suite
                t["message"], t["step"], t["total_steps"] = args
                t["progress"] = round(args[1] / args[2], 4) if args[2] else None
            elif args and isinstance(args[0], dict):  # a deploy event {step, state, message}
                ev = args[0]
                t["message"] = ev.get("message") or f"{ev.get('step')}: {ev.get('state')}"
                if ev.get("state") == "done":
                    t["step"] += 1

    def _run(self, task_id: str, fn: Callable[..., Any], kwargs: dict) -> None:
        try:
            result, status, error = fn(**kwargs), JobStatus.SUCCEEDED, None
        except NurseryError as e:
            result, status, error = None, JobStatus.FAILED, str(e)
        except Exception as e:  # noqa: BLE001 — unexpected: logged with its traceback, the task records type and message
            traceback.print_exc()
            result, status, error = None, JobStatus.FAILED, f"internal {type(e).__name__}: {e}"
        with self._lock:
            t = self._tasks[task_id]
            t.update(status=status.value, result=result, error=error, finished_at=now())
            if status is JobStatus.SUCCEEDED:
                t["progress"] = 1.0

    def _trim(self) -> None:
        done = [k for k, t in self._tasks.items() if t["finished_at"]]
        for k in done[:max(0, len(done) - KEEP)]:
            del self._tasks[k]

    def status(self, task_id: str) -> dict | None:
        """{id, kind, label, status, step, total_steps, progress (0..1), message, error, result, elapsed_s,
        active}; None for an unknown id."""
        with self._lock:
            t = self._tasks.get(task_id)
            if t is None:
                return None
            out = {k: v for k, v in t.items() if not k.startswith("_")}
            out["elapsed_s"] = round(time.monotonic() - t["_t0"], 1) if not t["finished_at"] else None
        out["active"] = JobStatus(out["status"]).is_active
        return out

    def list(self) -> list[dict]:
        with self._lock:
            ids = list(self._tasks)
        return [s for s in (self.status(i) for i in reversed(ids)) if s is not None]
