"""The one supervision loop every backend runs its worker through, over a small worker-handle interface.

A backend starts the training worker somewhere (a child process here, a detached process on a GPU server)
and hands `supervise` a `WorkerHandle` for it. The loop drains the worker's events into the job, watches for
its exit, beats the heartbeat, and stops it when asked: cancel (the job's flag), a budget cap (wall-clock
seconds), or the runner shutting down (detach: the run goes on and the next runner re-attaches; or stop, for
a rented machine that must not outlive its dashboard). Stopping escalates STOP file -> SIGTERM -> SIGKILL on
the policy's clock. Transient transport errors (a dropped SSH connection) go to the handle's `reconnect`.

The worker-side contract is the same everywhere: `python -m nursery_core.training.worker <job_dir>` writes
`events.jsonl` (see `events.py`), `train.log`, `stderr.log`, and `output/` with `metrics.json`.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Protocol

from ..cloud.errors import StopRequested
from .context import RunContext
from .errors import Cancelled, Detached
from .events import Event, is_final

WORKER_MODULE = "nursery_core.training.worker"


class StopReason(StrEnum):
    """Why the loop stopped a worker (stored nowhere; it picks the backend's final message)."""

    CANCEL = "cancel"
    BUDGET = "budget"
    SHUTDOWN = "shutdown"


class WorkerHandle(Protocol):
    """One running worker, wherever it runs. `transient_errors` are the exceptions `reconnect` can heal."""

    transient_errors: tuple[type[BaseException], ...]

    def poll_events(self) -> list[Event]:
        """The events the worker wrote since the last call, each once."""
        ...

    def exit_code(self) -> int | None:
        """The worker's exit status once it has exited and the status is known; else None."""
        ...

    def alive(self) -> bool:
        """Whether the worker process still runs."""
        ...

    def request_stop(self) -> None:
        """Asks the worker to stop at its next step (the STOP file); never raises for a gone worker."""
        ...

    def signal(self, sig: Literal["TERM", "KILL"]) -> None:
        """Sends SIGTERM / SIGKILL to the worker's process group."""
        ...

    def heartbeat(self) -> None:
        """Tells the worker's machine that its supervisor lives (a remote watchdog reads it); may do nothing."""
        ...

    def reconnect(self, error: BaseException) -> None:
        """Heals one of `transient_errors`, or raises a NurseryError saying why it cannot."""
        ...


@dataclass
class Supervision:
    """The loop's clock and caps. Seconds throughout; `max_seconds` counts from `clock_start` (Unix time)."""

    poll_s: float = 0.25
    heartbeat_s: float = 5.0
    term_after_s: float = 3.0      # after the STOP file, SIGTERM
    kill_after_s: float = 7.0      # after the STOP file, SIGKILL (a local cancel completes within 10 s)
    give_up_after_kill_s: float = 5.0
    alive_check_s: float = 0.0     # how often `alive()` is asked (0 = every poll; remote checks cost a round trip)
    max_seconds: float | None = None
    clock_start: float = field(default_factory=time.time)
    budget_reason: str = ""
    on_shutdown: Literal["detach", "stop"] = "detach"


@dataclass
class Outcome:
    """How a supervised run ended: the worker's final event (None when it wrote none), its exit code when
    known, and why the loop stopped it (None when it ended by itself)."""

    final: Event | None
    exit_code: int | None
    stop_reason: StopReason | None

    @property
    def kind(self) -> str | None:
        return (self.final or {}).get("kind")


def supervise(handle: WorkerHandle, ctx: RunContext, policy: Supervision) -> Outcome:
    """Runs the loop until the worker exits (or is given up on after SIGKILL); raises Detached when the runner
    shuts down under `on_shutdown="detach"`, and whatever `handle.reconnect` raises."""
    final: Event | None = None
    stop: StopReason | None = None
    stop_at = 0.0
    signalled: set[str] = set()
    last_beat = 0.0
    last_alive = time.monotonic()

    def drain() -> None:
        nonlocal final
        for ev in handle.poll_events():
            ctx.emit(ev)
            if is_final(ev):
                final = ev

    while True:
        try:
            drain()
            rc = handle.exit_code()
            if rc is not None:
                drain()
                return Outcome(final, rc, stop)
            now = time.monotonic()
            if now - last_alive >= policy.alive_check_s:
                last_alive = now
                if not handle.alive():
                    drain()
                    return Outcome(final, handle.exit_code(), stop)
            if now - last_beat >= policy.heartbeat_s:
                handle.heartbeat()
                ctx.heartbeat()
                last_beat = now
            if stop is None:
                stop = _stop_reason(ctx, policy)
                if stop is not None:
                    stop_at = now
                    handle.request_stop()
                    if stop is StopReason.SHUTDOWN:
                        # the process is going away: no time to wait for a checkpoint, the machine must go
                        return Outcome(final, None, stop)
            elif policy.on_shutdown == "detach" and ctx.detached():
                raise Detached()
            if stop is not None:
                waited = now - stop_at
                for sig, after in (("TERM", policy.term_after_s), ("KILL", policy.kill_after_s)):
                    if waited >= after and sig not in signalled:
                        signalled.add(sig)
                        handle.signal(sig)  # type: ignore[arg-type]  # the two literals above
                if "KILL" in signalled and waited >= policy.kill_after_s + policy.give_up_after_kill_s \
                        and not handle.alive():
                    drain()
                    return Outcome(final, handle.exit_code(), stop)
        except handle.transient_errors as e:
            handle.reconnect(e)
            continue
        time.sleep(policy.poll_s)


def _stop_reason(ctx: RunContext, policy: Supervision) -> StopReason | None:
    if ctx.should_stop():
        ctx.log("cancel requested: asking the training process to stop")
        return StopReason.CANCEL
    if policy.max_seconds is not None and time.time() - policy.clock_start >= policy.max_seconds:
        ctx.log(f"budget cap reached ({policy.budget_reason}): stopping the training and saving its checkpoint")
        return StopReason.BUDGET
    if ctx.detached():
        if policy.on_shutdown == "detach":
            raise Detached()
        ctx.log("the dashboard is shutting down: stopping the training")
        return StopReason.SHUTDOWN
    return None


@contextmanager
def stop_as_cancel() -> Iterator[None]:
    """Turns the transport's StopRequested (a should_stop callback fired mid-transfer) into the runner's
    Cancelled, keeping its message ('cancelled during upload')."""
    try:
        yield
    except StopRequested as e:
        raise Cancelled(str(e) or "cancelled") from None


# ------------------------------------------------------------------------------------- outcomes
TRACEBACK_HEADER = "Traceback (most recent call last):"


def tail_lines(path: Path, n: int = 20) -> str:
    """The last n non-blank lines of a text file ('' when missing). When they end inside a Python traceback
    whose header is further up, the header and an ellipsis take the first two lines, so the tail still says
    it is a traceback."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64_000))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return _last_lines([ln for ln in data.replace("\r", "\n").splitlines() if ln.strip()], n)


def _last_lines(lines: list[str], n: int) -> str:
    if len(lines) > n > 2:
        header = max((i for i, ln in enumerate(lines) if ln.startswith(TRACEBACK_HEADER)), default=-1)
        if 0 <= header < len(lines) - n:
            return "\n".join([lines[header], "  ..."] + lines[-(n - 2):])
    return "\n".join(lines[-n:])


def log_tail(job_dir: Path, n: int = 20) -> str:
    """train.log's last lines, with stderr.log's when the worker died before logging (import errors...)."""
    text = tail_lines(job_dir / "train.log", n)
    err = tail_lines(job_dir / "stderr.log", n)
    if err and ("Traceback" in err or "Error" in err) and err not in text:
        text = (text + "\n" + err).strip()
    return _last_lines(text.splitlines(), n)


def last_recorded_seq(ctx: RunContext) -> int:
    """The highest worker `seq` already stored for the job (a re-attached reader starts after it)."""
    seqs = [(e.get("data") or {}).get("seq") for e in ctx.store.job_events(ctx.job_id)]
    return max([int(s) for s in seqs if s is not None], default=0)


def result_from_output(job_dir: Path, final: Event | dict, started: float | None) -> dict[str, Any]:
    """The backend result for a finished run: {output_dir, metrics (the worker's metrics.json, else the final
    event's losses), actual: {train_seconds, tokens_per_s, steps, device, wall_seconds (s since started)}}."""
    out = Path(final.get("output_dir") or job_dir / "output")
    if not out.is_absolute() or not out.exists():
        out = job_dir / "output"
    try:
        metrics = json.loads((out / "metrics.json").read_text())
    except (OSError, ValueError):
        metrics = {k: final.get(k) for k in ("final_loss", "eval_loss", "train_seconds")}
    actual = {"train_seconds": metrics.get("train_seconds"), "tokens_per_s": metrics.get("tokens_per_s"),
              "steps": metrics.get("steps"), "device": metrics.get("device")}
    if started is not None:
        actual["wall_seconds"] = round(time.time() - started, 2)
    return {"output_dir": str(out), "metrics": metrics, "actual": actual}
