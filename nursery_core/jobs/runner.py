"""JobRunner: the per-process supervisor that claims queued jobs from the DB, runs them through their backend,
and owns every state transition; at start-up (and periodically) it re-attaches or interrupts orphans.

A runner id is "host:pid:token". A `running` job belongs to a live runner when that runner is active in this
process, or runs in another live process on this host with a fresh heartbeat, or (another host) has a fresh
heartbeat. Anything else is an orphan: its backend may re-attach to the still-live child, else the job is
marked `interrupted` at its last step. So no job stays `running` forever.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from datetime import UTC, datetime
from pathlib import Path

from .. import paths
from ..errors import NurseryError
from ..rows import JobRow
from ..status import JobStatus
from ..store import Store, get_store, now
from .backends import BACKENDS, LOCAL_KIND, get_backend
from .context import RunContext
from .errors import Cancelled, Detached
from .register import register_trained_model
from .supervise import log_tail

log = logging.getLogger("nursery.jobs")

STALE_S = 60.0         # a heartbeat older than this means the owning runner is gone
SWEEP_EVERY_S = 20.0   # how often a runner looks for orphans
_ACTIVE_RUNNERS: set[str] = set()
_RUNNERS: list[JobRunner] = []
_REG_LOCK = threading.Lock()


def max_running(kind: str) -> int:
    """Concurrent runs per kind: NURSERY_MAX_LOCAL_RUNS (default 1), NURSERY_MAX_<KIND>_RUNS (default 4)."""
    default = 1 if kind == LOCAL_KIND else 4
    try:
        return max(1, int(os.environ.get(f"NURSERY_MAX_{kind.upper()}_RUNS", default)))
    except ValueError:
        return default


def notify_all() -> None:
    """Wakes this process's runners (a job was just queued or cancelled)."""
    with _REG_LOCK:
        for r in _RUNNERS:
            r.wake.set()


def _age_s(ts: str | None) -> float:
    if not ts:
        return float("inf")
    try:
        t = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return float("inf")
    return (datetime.now(UTC) - t).total_seconds()


def runner_alive(runner_id: str | None, heartbeat_at: str | None) -> bool:
    """Whether the runner that claimed a job still supervises it."""
    if not runner_id:
        return False
    parts = runner_id.split(":")
    if len(parts) != 3:
        return _age_s(heartbeat_at) < STALE_S
    host, pid, _token = parts
    if host == socket.gethostname():
        if pid == str(os.getpid()):
            return runner_id in _ACTIVE_RUNNERS
        try:
            os.kill(int(pid), 0)
        except (OSError, ValueError):
            return False
    return _age_s(heartbeat_at) < STALE_S


class JobRunner:
    """Claims and supervises jobs of the registered kinds; one supervisor thread plus one thread per run."""

    def __init__(self, store: Store | None = None, kinds: list[str] | None = None, poll_s: float = 1.0):
        self.store = store or get_store()
        self._kinds = kinds
        self.poll_s = poll_s
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._runs: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._last_sweep = 0.0

    @property
    def kinds(self) -> list[str]:
        return list(self._kinds or BACKENDS)

    # ----------------------------------------------------------------------------------- lifecycle
    def start(self, recover: bool = True) -> JobRunner:
        """Starts the supervisor thread (after recovering orphaned jobs when asked)."""
        with _REG_LOCK:
            _ACTIVE_RUNNERS.add(self.id)
            _RUNNERS.append(self)
        if recover:
            self.recover()
        self._thread = threading.Thread(target=self._loop, name=f"nursery-runner-{self.id[-8:]}", daemon=True)
        self._thread.start()
        return self

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stops supervising; child processes keep running and a later runner re-attaches to them."""
        self._stop.set()
        self.wake.set()
        with _REG_LOCK:
            _ACTIVE_RUNNERS.discard(self.id)
            if self in _RUNNERS:
                _RUNNERS.remove(self)
        deadline = time.monotonic() + timeout
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        for t in list(self._runs.values()):
            t.join(max(0.0, deadline - time.monotonic()))

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def active_job_ids(self) -> list[str]:
        with self._lock:
            return [j for j, t in self._runs.items() if t.is_alive()]

    # ---------------------------------------------------------------------------------- supervisor
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception:  # the supervisor must survive a bad row or a locked DB
                log.exception("job runner tick failed")
            self.wake.wait(self.poll_s)
            self.wake.clear()

    def _tick(self) -> None:
        if time.monotonic() - self._last_sweep > SWEEP_EVERY_S:
            self.recover()
        for kind in self.kinds:
            while not self._stop.is_set():
                job = self.store.claim_next_job(kind, self.id, max_running(kind))
                if job is None:
                    break
                self._spawn(job, recovering=False)

    def _spawn(self, job: JobRow, recovering: bool) -> None:
        t = threading.Thread(target=self._run_job, args=(job, recovering), daemon=True,
                             name=f"nursery-job-{job['id']}")
        with self._lock:
            self._runs = {k: v for k, v in self._runs.items() if v.is_alive()}
            self._runs[job["id"]] = t
        t.start()

    def recover(self) -> list[str]:
        """Adopts running jobs whose runner is gone: re-attach when the backend can, else interrupted."""
        self._last_sweep = time.monotonic()
        adopted = []
        for job in self.store.list_jobs(status=JobStatus.RUNNING.value, limit=500):
            if job["kind"] not in self.kinds or job["id"] in self.active_job_ids():
                continue
            if runner_alive(job.get("runner_id"), job.get("heartbeat_at")):
                continue
            # Claim it first so two recovering runners do not both adopt it.
            self.store.update_job(job["id"], runner_id=self.id, heartbeat_at=now())
            adopted.append(job["id"])
            self._spawn(self.store.get_job(job["id"]), recovering=True)
        return adopted

    # ------------------------------------------------------------------------------------ one run
    def context(self, job: JobRow) -> RunContext:
        return RunContext(job_id=job["id"], job_dir=paths.job_dir(job["id"]), store=self.store,
                          shutdown_event=self._stop)

    def _run_job(self, job: JobRow, recovering: bool) -> None:
        ctx = self.context(job)
        try:
            backend = get_backend(job["kind"])
            if recovering:
                result = backend.recover(job, ctx)
                if result is None:
                    last = self.store.get_job(job["id"])
                    self._finish(job["id"], JobStatus.INTERRUPTED,
                                 f"interrupted at step {last.get('step') or 0}: the training process is gone "
                                 "(the machine or the dashboard restarted); start it again")
                    return
            else:
                result = backend.run(job, ctx)
        except Detached:
            return  # the run goes on; the next runner re-attaches
        except Cancelled as e:
            self._finish(job["id"], JobStatus.CANCELLED, str(e))
            return
        except NurseryError as e:
            self._finish(job["id"], JobStatus.FAILED, str(e))
            return
        except Exception as e:  # a backend bug: still a clear final state
            log.exception("job %s crashed in its backend", job["id"])
            self._finish(job["id"], JobStatus.FAILED, f"{type(e).__name__}: {e}\n{traceback.format_exc()[-2000:]}")
            return
        try:
            model = register_trained_model(self.store.get_job(job["id"]), result)
        except NurseryError as e:
            self._finish(job["id"], JobStatus.FAILED, f"training finished but the model was not registered: {e}",
                         actual=result.get("actual"))
            return
        except Exception as e:
            log.exception("registering job %s's model failed", job["id"])
            self._finish(job["id"], JobStatus.FAILED, f"training finished but registering failed: "
                                                      f"{type(e).__name__}: {e}", actual=result.get("actual"))
            return
        metrics = result.get("metrics") or {}
        self._finish(job["id"], JobStatus.SUCCEEDED, None, model_name=model["name"], actual=result.get("actual"),
                     last_loss=metrics.get("final_loss"), eval_loss=metrics.get("eval_loss"))

    def _finish(self, job_id: str, status: JobStatus, error: str | None, **values) -> None:
        job_dir = paths.job_dir(job_id)
        tail = log_tail(job_dir, 30) if Path(job_dir).exists() else ""
        if tail:
            values.setdefault("log_tail", tail)
        self.store.finish_job(job_id, status, error=error, **values)
        notify_all()
