"""The local backend: the worker as a child process in its own session, supervised by tailing events.jsonl.

The child survives the dashboard (start_new_session=True, output to files, not pipes), so a restarted
runner can re-attach to it; its identity is the pid plus its kernel start time, so a recycled pid is not
mistaken for it. Cancel = STOP file, then SIGTERM, then SIGKILL, so it completes within 10 seconds.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ... import paths
from ...errors import BackendError
from ..context import RunContext
from ..errors import Cancelled, Detached
from ..events import decode_events

WORKER_MODULE = "nursery_core.training.worker"
TERM_AFTER_S = 3.0     # after the STOP file, SIGTERM
KILL_AFTER_S = 7.0     # after the STOP file, SIGKILL (cancel completes within 10 s)
POLL_S = 0.25
HEARTBEAT_S = 5.0
FINAL_KINDS = ("done", "cancelled", "error")


# ---------------------------------------------------------------------------------- process identity
def proc_start_time(pid: int) -> str | None:
    """The kernel start time of pid (clock ticks since boot, /proc/<pid>/stat field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = stat.rsplit(")", 1)[-1].split()
    return rest[19] if len(rest) > 19 else None


def proc_alive(pid: int | None, start_time: str | None = None, needle: str | None = None) -> bool:
    """True if pid is a live (non-zombie) process with that start time and a cmdline containing needle."""
    if not pid:
        return False
    stat_file = Path(f"/proc/{pid}/stat")
    if not Path("/proc/self/stat").exists():  # no procfs: signal 0 is the best available check
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False
    try:
        rest = stat_file.read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return False
    if rest and rest[0] in ("Z", "X"):
        return False
    if start_time is not None and (len(rest) <= 19 or rest[19] != str(start_time)):
        return False
    if needle:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
        if needle not in cmd:
            return False
    return True


def tail_lines(path: Path, n: int = 20) -> str:
    """The last n lines of a text file ('' when missing)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64_000))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [ln for ln in data.replace("\r", "\n").splitlines() if ln.strip()]
    return "\n".join(lines[-n:])


def log_tail(job_dir: Path, n: int = 20) -> str:
    """train.log's last lines, with stderr.log's when the worker died before logging (import errors...)."""
    text = tail_lines(job_dir / "train.log", n)
    err = tail_lines(job_dir / "stderr.log", n)
    if err and ("Traceback" in err or "Error" in err) and err not in text:
        text = (text + "\n" + err).strip()
    return "\n".join(text.splitlines()[-n:])


class EventTail:
    """Reads new complete lines of events.jsonl, skipping events with seq <= after_seq."""

    def __init__(self, path: Path, after_seq: int = 0):
        self.path, self.after_seq, self.offset, self.buf = path, after_seq, 0, b""

    def read(self) -> list[dict]:
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


def last_recorded_seq(ctx: RunContext) -> int:
    seqs = [(e.get("data") or {}).get("seq") for e in ctx.store.job_events(ctx.job_id)]
    return max([int(s) for s in seqs if s is not None], default=0)


def result_from_output(job_dir: Path, final: dict, started: float | None) -> dict:
    """The backend result for a finished run: where the adapter is and its metrics."""
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


# ------------------------------------------------------------------------------------------ backend
class LocalBackend:
    """Runs the worker on this machine as a detached child process."""

    kind = "local"

    def command(self, job_dir: Path) -> list[str]:
        return [sys.executable, "-m", WORKER_MODULE, str(job_dir), "--no-stdout"]

    def run(self, job: dict, ctx: RunContext) -> dict:
        job_dir = ctx.job_dir
        if not (job_dir / "config.json").exists():
            raise BackendError(f"job directory {job_dir} is incomplete (no config.json)")
        (job_dir / "STOP").unlink(missing_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(paths.PROJECT_ROOT), env.get("PYTHONPATH")]))
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        env["NURSERY_HOME"] = str(paths.home())
        with open(job_dir / "stderr.log", "ab") as err:
            proc = subprocess.Popen(self.command(job_dir), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=err, cwd=str(paths.PROJECT_ROOT), env=env, start_new_session=True)
        started = time.time()
        state = {"pid": proc.pid, "start_time": proc_start_time(proc.pid), "started": started}
        ctx.update(pid=proc.pid, provider_state=state)
        return self._supervise(ctx, proc.pid, state["start_time"], proc, after_seq=0, started=started)

    def recover(self, job: dict, ctx: RunContext) -> dict | None:
        """Re-attaches to a live child; finishes a run that ended while nobody watched; else None."""
        state = job.get("provider_state") or {}
        pid = state.get("pid") or job.get("pid")
        after = last_recorded_seq(ctx)
        if proc_alive(pid, state.get("start_time"), str(ctx.job_dir)):
            ctx.log(f"re-attached to the training process (pid {pid})")
            return self._supervise(ctx, pid, state.get("start_time"), None, after_seq=after,
                                   started=state.get("started"))
        tail = EventTail(ctx.job_dir / "events.jsonl", after)
        final = None
        for ev in tail.read():
            ctx.emit(ev)
            if ev.get("kind") in FINAL_KINDS:
                final = ev
        if final is None:
            return None
        return self._outcome(ctx, final, None, state.get("started"))

    # ------------------------------------------------------------------------------ supervision
    def _supervise(self, ctx: RunContext, pid: int, start_time: str | None, proc: subprocess.Popen | None,
                   after_seq: int, started: float | None) -> dict:
        tail = EventTail(ctx.job_dir / "events.jsonl", after_seq)
        final: dict | None = None
        cancel_at: float | None = None
        beat = time.monotonic()
        signalled = set()
        while True:
            for ev in tail.read():
                ctx.emit(ev)
                if ev.get("kind") in FINAL_KINDS:
                    final = ev
            alive = proc.poll() is None if proc is not None else proc_alive(pid, start_time)
            if not alive:
                for ev in tail.read():
                    ctx.emit(ev)
                    if ev.get("kind") in FINAL_KINDS:
                        final = ev
                break
            if cancel_at is None and ctx.should_stop():
                cancel_at = time.monotonic()
                (ctx.job_dir / "STOP").touch()
                ctx.log("cancel requested: asking the training process to stop")
            if cancel_at is not None:
                waited = time.monotonic() - cancel_at
                for sig, after in ((signal.SIGTERM, TERM_AFTER_S), (signal.SIGKILL, KILL_AFTER_S)):
                    if waited >= after and sig not in signalled:
                        signalled.add(sig)
                        self._signal(pid, start_time, sig)
            if ctx.detached():
                raise Detached()
            if time.monotonic() - beat > HEARTBEAT_S:
                ctx.heartbeat()
                beat = time.monotonic()
            time.sleep(POLL_S)
        rc = proc.returncode if proc is not None else None
        return self._outcome(ctx, final, rc, started)

    @staticmethod
    def _signal(pid: int, start_time: str | None, sig: int) -> None:
        if not proc_alive(pid, start_time):
            return
        try:
            os.killpg(pid, sig)  # the worker leads its own session/group
        except OSError:
            try:
                os.kill(pid, sig)
            except OSError:
                pass

    def cancel_now(self, job: dict) -> None:
        """Best-effort immediate stop of a job's process (used when no runner supervises it)."""
        state = job.get("provider_state") or {}
        job_dir = paths.job_dir(job["id"])
        (job_dir / "STOP").touch()
        self._signal(state.get("pid") or job.get("pid"), state.get("start_time"), signal.SIGTERM)

    def _outcome(self, ctx: RunContext, final: dict | None, rc: int | None, started: float | None) -> dict:
        kind = (final or {}).get("kind")
        if kind == "done":
            return result_from_output(ctx.job_dir, final, started)
        step = ctx.job().get("step")
        if kind == "cancelled" or ctx.should_stop():
            raise Cancelled(f"cancelled at step {step or 0}", step=step)
        tail = log_tail(ctx.job_dir, 15)
        if kind == "error":
            msg = final.get("message") or "training failed"
        else:
            msg = f"the training process exited (code {rc}) without finishing"
        raise BackendError(msg + (f"\n--- last lines of train.log ---\n{tail}" if tail else ""))
