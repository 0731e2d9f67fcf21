"""The local backend: the worker as a child process in its own session, supervised by tailing events.jsonl.

The child survives the dashboard (start_new_session=True, output to files, not pipes), so a restarted
runner can re-attach to it; its identity is the pid plus its kernel start time, so a recycled pid is not
mistaken for it. Cancel = STOP file, then SIGTERM, then SIGKILL (the shared loop in `jobs/supervise.py`),
so it completes within 10 seconds.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

from ... import paths
from ...errors import BackendError
from ...rows import JobRow
from ..context import RunContext
from ..errors import Cancelled
from ..events import CANCELLED, DONE, ERROR, STOP_FILE, Event, decode_events, is_final
from ..procs import proc_alive, proc_start_time
from ..supervise import WORKER_MODULE, Outcome, Supervision, last_recorded_seq, log_tail, result_from_output, supervise

__all__ = ["WORKER_MODULE", "LocalBackend", "LocalWorker", "proc_alive", "proc_start_time"]
LOCAL_SUPERVISION = Supervision(poll_s=0.25, heartbeat_s=5.0, term_after_s=3.0, kill_after_s=7.0)


class EventTail:
    """Reads new complete lines of events.jsonl, skipping events with seq <= after_seq."""

    def __init__(self, path: Path, after_seq: int = 0):
        self.path, self.after_seq, self.offset, self.buf = path, after_seq, 0, b""

    def read(self) -> list[Event]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return []
        self.offset += len(data)
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        out, self.after_seq = decode_events(lines, self.after_seq)
        return out


class LocalWorker:
    """The WorkerHandle of a child on this machine: `proc` when this process started it (its exit code is
    known), else only the pid and kernel start time of a re-attached one."""

    transient_errors: tuple[type[BaseException], ...] = ()

    def __init__(self, job_dir: Path, pid: int, start_time: str | None, proc: subprocess.Popen | None = None,
                 after_seq: int = 0):
        self.job_dir, self.pid, self.start_time, self.proc = job_dir, pid, start_time, proc
        self.tail = EventTail(job_dir / "events.jsonl", after_seq)

    def poll_events(self) -> list[Event]:
        return self.tail.read()

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc.poll() is None if self.proc is not None else proc_alive(self.pid, self.start_time)

    def request_stop(self) -> None:
        (self.job_dir / STOP_FILE).touch()

    def signal(self, sig: Literal["TERM", "KILL"]) -> None:
        send_signal(self.pid, self.start_time, signal.SIGTERM if sig == "TERM" else signal.SIGKILL)

    def heartbeat(self) -> None:
        """Nothing to tell: the child needs no watchdog (it is this machine's own process)."""

    def reconnect(self, error: BaseException) -> None:
        raise error


def send_signal(pid: int | None, start_time: str | None, sig: int) -> None:
    """Signals the worker's process group (it leads its own session), or the pid alone; a gone or recycled
    pid is left alone."""
    if not pid or not proc_alive(pid, start_time):
        return
    try:
        os.killpg(pid, sig)
    except OSError:
        try:
            os.kill(pid, sig)
        except OSError:
            pass  # it exited between the check and the signal: nothing left to stop


# ------------------------------------------------------------------------------------------ backend
class LocalBackend:
    """Runs the worker on this machine as a detached child process."""

    kind = "local"

    def command(self, job_dir: Path) -> list[str]:
        return [sys.executable, "-m", WORKER_MODULE, str(job_dir), "--no-stdout"]

    def run(self, job: JobRow, ctx: RunContext) -> dict:
        job_dir = ctx.job_dir
        if not (job_dir / "config.json").exists():
            raise BackendError(f"job directory {job_dir} is incomplete (no config.json)")
        (job_dir / STOP_FILE).unlink(missing_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(paths.PROJECT_ROOT), env.get("PYTHONPATH")]))
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        env["NURSERY_HOME"] = str(paths.home())
        with open(job_dir / "stderr.log", "ab") as err:
            proc = subprocess.Popen(self.command(job_dir), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=err, cwd=str(paths.PROJECT_ROOT), env=env, start_new_session=True)
        started = time.time()
        state: dict[str, Any] = {"pid": proc.pid, "start_time": proc_start_time(proc.pid), "started": started}
        ctx.update(pid=proc.pid, provider_state=state)
        worker = LocalWorker(job_dir, proc.pid, state["start_time"], proc)
        return self._outcome(ctx, supervise(worker, ctx, LOCAL_SUPERVISION), started)

    def recover(self, job: JobRow, ctx: RunContext) -> dict | None:
        """Re-attaches to a live child; finishes a run that ended while nobody watched; else None."""
        state = job.get("provider_state") or {}
        pid = state.get("pid") or job.get("pid")
        after = last_recorded_seq(ctx)
        if pid and proc_alive(pid, state.get("start_time"), str(ctx.job_dir)):
            ctx.log(f"re-attached to the training process (pid {pid})")
            worker = LocalWorker(ctx.job_dir, int(pid), state.get("start_time"), after_seq=after)
            return self._outcome(ctx, supervise(worker, ctx, LOCAL_SUPERVISION), state.get("started"))
        final = None
        for ev in EventTail(ctx.job_dir / "events.jsonl", after).read():
            ctx.emit(ev)
            if is_final(ev):
                final = ev
        if final is None:
            return None
        return self._outcome(ctx, Outcome(final, None, None), state.get("started"))

    def cancel_now(self, job: JobRow) -> None:
        """Best-effort immediate stop of a job's process (used when no runner supervises it)."""
        state = job.get("provider_state") or {}
        job_dir = paths.job_dir(job["id"])
        (job_dir / STOP_FILE).touch()
        send_signal(state.get("pid") or job.get("pid"), state.get("start_time"), signal.SIGTERM)

    def _outcome(self, ctx: RunContext, outcome: Outcome, started: float | None) -> dict[str, Any]:
        final = outcome.final
        if final is not None and outcome.kind == DONE:
            return result_from_output(ctx.job_dir, final, started)
        step = ctx.job().get("step")
        if outcome.kind == CANCELLED or ctx.should_stop():
            raise Cancelled(f"cancelled at step {step or 0}", step=step)
        tail = log_tail(ctx.job_dir, 15)
        if final is not None and outcome.kind == ERROR:
            msg = final.get("message") or "training failed"
        else:
            msg = f"the training process exited (code {outcome.exit_code}) without finishing"
        raise BackendError(msg + (f"\n--- last lines of train.log ---\n{tail}" if tail else ""))
