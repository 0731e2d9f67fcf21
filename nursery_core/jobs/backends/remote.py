"""The remote run shared by the `vast` and `ssh` backends: upload, install, train, stream, stop, download.

The remote side is the same worker as a local run (`python -m nursery_core.training.worker`), started
detached (nohup + setsid) so a dropped connection does not kill it. `RemoteRun` is the SSH `WorkerHandle` of
the shared supervision loop (`jobs/supervise.py`): its events.jsonl is tailed over SFTP, its exit code read
from EXIT_CODE, a dropped connection re-established. Remote layout under `<remote_root>/<job_id>/`: `code/`
(Nursery's package), `job/` (config.json, data/, then events.jsonl, train.log, output/), `HEARTBEAT`; base
models are cached in `<remote_root>/base_models/`.
"""
from __future__ import annotations

import logging
import os
import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ... import paths
from ...cloud.remote import REMOTE_PACKAGES, RemoteTarget, code_tarball, dir_fingerprint, remote_requirements
from ...cloud.ssh import SSHDropped, SSHError, SSHSession, q
from ...errors import BackendError
from ...training.launch import launch_command
from ..errors import Cancelled
from ..events import CANCELLED, DONE, ERROR, STOP_FILE, Event, decode_events
from ..supervise import Outcome, StopReason, Supervision, result_from_output

log = logging.getLogger(__name__)

# Never uploaded from the local job dir: per-job SSH material, local run products.
LOCAL_ONLY = {"ssh", "output", "events.jsonl", "train.log", "stderr.log", STOP_FILE, "known_hosts", "remote"}


@dataclass
class Limits:
    """Timing knobs; the env var NURSERY_REMOTE_POLL_S etc. shorten them for tests."""

    poll_s: float = 1.0
    heartbeat_s: float = 30.0
    term_after_s: float = 5.0
    kill_after_s: float = 15.0
    reconnect_attempts: int = 3
    reconnect_wait_s: float = 5.0
    connect_attempts: int = 10
    connect_wait_s: float = 3.0
    max_seconds: float | None = None         # wall-clock cap (budget), measured from `clock_start`
    clock_start: float = field(default_factory=time.time)
    budget_reason: str = ""

    @classmethod
    def from_env(cls, **kw: Any) -> Limits:
        lim = cls(**kw)
        for name in ("poll_s", "heartbeat_s", "term_after_s", "kill_after_s", "reconnect_wait_s",
                     "connect_wait_s"):
            v = os.environ.get(f"NURSERY_REMOTE_{name.upper()}")
            if v:
                setattr(lim, name, float(v))
        for name in ("reconnect_attempts", "connect_attempts"):
            v = os.environ.get(f"NURSERY_REMOTE_{name.upper()}")
            if v:
                setattr(lim, name, int(v))
        return lim

    def supervision(self, on_shutdown: Literal["detach", "stop"]) -> Supervision:
        """The shared loop's policy for a remote worker: alive checks every 10 polls (each is a round trip)."""
        return Supervision(poll_s=self.poll_s, heartbeat_s=self.heartbeat_s, term_after_s=self.term_after_s,
                           kill_after_s=self.kill_after_s, alive_check_s=10 * self.poll_s,
                           max_seconds=self.max_seconds, clock_start=self.clock_start,
                           budget_reason=self.budget_reason, on_shutdown=on_shutdown)


class BudgetReached(BackendError):
    """A budget cap stopped the run."""


class RemoteRun:
    """One job's remote life: connect (TOFU-pinned), prepare, start, download, clean up; between start and
    finish it is the supervision loop's WorkerHandle (poll_events, exit_code, alive, request_stop, signal,
    heartbeat, reconnect)."""

    transient_errors: tuple[type[BaseException], ...] = (SSHDropped,)

    def __init__(self, ctx: Any, target: RemoteTarget, limits: Limits | None = None, *,
                 on_phase: Callable[[str], None] | None = None):
        self.ctx, self.target = ctx, target
        self.limits = limits or Limits.from_env()
        self.on_phase = on_phase or (lambda phase: None)
        self.session: SSHSession | None = None
        self.root = ""             # absolute remote <remote_root>/<job_id>
        self.job = ""              # remote job dir
        self.pid: int | None = None
        self.events_offset = 0
        self.after_seq = 0

    # ------------------------------------------------------------------------------- connection
    def _new_session(self) -> SSHSession:
        t = self.target
        return SSHSession(t.host, t.port, t.user, t.key_path, t.known_hosts, timeout=20.0)

    def connect(self) -> None:
        self.on_phase("connecting")
        self.session = self._new_session().connect_retrying(
            self.limits.connect_attempts, self.limits.connect_wait_s, should_stop=self.ctx.should_stop)
        self.ctx.log(f"connected to {self.target.address}")

    def attach(self, remote_dir: str, pid: int, after_seq: int) -> bool:
        """Re-attaches to a worker started earlier (another runner): connects, points at its remote dir and
        pid, skips events already recorded. False when the remote job never started (no events.jsonl)."""
        self.session = self._new_session().connect()
        self.root = remote_dir
        self.job = posixpath.join(remote_dir, "job")
        self.pid = int(pid)
        self.after_seq = after_seq
        return self.s.exists(posixpath.join(self.job, "events.jsonl"))

    def reconnect(self, why: BaseException) -> None:
        """After a drop: a few new connections (same pinned host key), else a clear failure."""
        if self.session is not None:
            self.session.close()
        last: BaseException = why
        for _ in range(max(1, self.limits.reconnect_attempts)):
            time.sleep(self.limits.reconnect_wait_s)
            try:
                self.session = self._new_session().connect()
                self.ctx.log(f"SSH connection dropped ({why}); reconnected")
                return
            except SSHError as e:
                last = e
        raise BackendError(f"the SSH connection to {self.target.address} dropped during the run and could not be "
                           f"re-established after {self.limits.reconnect_attempts} attempts: {last}")

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    @property
    def s(self) -> SSHSession:
        if self.session is None:
            raise BackendError("not connected")
        return self.session

    # ---------------------------------------------------------------------------------- prepare
    def resolve_root(self) -> None:
        rel = posixpath.join(self.target.remote_root, self.ctx.job_id)
        _, out = self.s.run(f"mkdir -p {q(rel)} && cd {q(rel)} && pwd")
        self.root = out.strip().splitlines()[-1]
        self.job = posixpath.join(self.root, "job")

    def prepare(self, base_model_dir: str) -> str:
        """Uploads code, job and base model; installs missing packages. Returns the remote base model."""
        self.resolve_root()
        self.on_phase("uploading")
        stop = self.ctx.should_stop
        # the job directory first (small), then the code, then the base model (possibly large)
        self.s.put_dir(self.ctx.job_dir, self.job, exclude=LOCAL_ONLY, should_stop=stop)
        self._check_stop()
        tar = self.ctx.job_dir / "ssh" / "nursery_code.tar.gz"
        tar.parent.mkdir(parents=True, exist_ok=True)
        tar.write_bytes(code_tarball())
        remote_tar = posixpath.join(self.root, "nursery_code.tar.gz")
        self.s.put_file(tar, remote_tar)
        tar.unlink()
        code = posixpath.join(self.root, "code")
        self.s.run(f"mkdir -p {q(code)} && tar -xzf {q(remote_tar)} -C {q(code)} && rm -f {q(remote_tar)}")
        self._check_stop()
        remote_model = base_model_dir
        local = Path(base_model_dir) if base_model_dir else None
        if local is not None and local.is_dir():
            remote_model = self._upload_model(local)
        self._check_stop()
        self.on_phase("installing")
        self.ensure_packages()
        return remote_model

    def _upload_model(self, local: Path) -> str:
        cache_root = posixpath.join(posixpath.dirname(self.root), "base_models")
        name = paths.slugify(local.name) or "model"
        dest = posixpath.join(cache_root, f"{name}-{dir_fingerprint(local)}")
        if self.s.exists(posixpath.join(dest, ".complete")):
            self.ctx.log(f"base model already on the server ({dest})")
            return dest
        self.ctx.log(f"uploading base model {local.name}")
        sent = self.s.put_dir(local, dest, should_stop=self.ctx.should_stop)
        self.s.run(f"touch {q(posixpath.join(dest, '.complete'))}")
        self.ctx.log(f"uploaded base model ({sent / 1e6:.1f} MB)")
        return dest

    def ensure_packages(self) -> None:
        py = self.target.python
        # find_spec instead of importing: importing torch + transformers + peft costs many seconds
        probe = f"import importlib.util as u; print(' '.join(p for p in {REMOTE_PACKAGES!r} if u.find_spec(p) is None))"
        code, out = self.s.run(q(py, "-c", probe), check=False)
        if code != 0:
            raise BackendError(f"no usable Python on {self.target.address} ({py}): {out.strip()[-300:]}")
        missing = set(out.split())
        if not missing:
            return
        # the image's own torch (built for its CUDA) is kept; only what is missing is installed
        reqs = [r for r, name in zip(remote_requirements(), REMOTE_PACKAGES, strict=True) if name in missing]
        self.ctx.log("installing " + ", ".join(reqs) + " on the server")
        code, out = self.s.run(q(py, "-m", "pip", "install", "-q", "--disable-pip-version-check", *reqs),
                               check=False, timeout=3600)
        if code != 0:
            tail = "\n".join(out.splitlines()[-10:])
            raise BackendError(f"installing the training packages on {self.target.address} failed "
                               f"(exit {code}):\n{tail}")

    def _check_stop(self) -> None:
        if self.ctx.should_stop():
            raise Cancelled("cancelled during upload")

    # ------------------------------------------------------------------------------------ start
    def start(self, remote_model: str, nproc: int = 1) -> int:
        """Starts the worker detached on `nproc` processes (one per GPU; more than one runs torchrun + DDP
        through `training.launch`); returns its pid."""
        self.on_phase("training")
        j = self.job
        worker = launch_command(j, nproc, python=self.target.python, worker_args=["--no-stdout"] + (
            ["--base-model-dir", remote_model] if remote_model else []))
        inner = (f"{q(*worker)} > {q(j + '/stdout.log')} 2> {q(j + '/stderr.log')} < /dev/null; "
                 f"echo $? > {q(j + '/EXIT_CODE')}")
        env = (f"PYTHONPATH={q(posixpath.join(self.root, 'code'))} "
               f"NURSERY_HOME={q(posixpath.join(self.root, 'home'))} TOKENIZERS_PARALLELISM=false")
        # only the nohup command goes to the background, with every stream off the channel, so this exec
        # returns at once and $! is the worker's session leader (setsid does not fork in a background job)
        cmd = (f"cd {q(j)} && rm -f {STOP_FILE} EXIT_CODE && {{ {env} nohup setsid sh -c {q(inner)} "
               f"> /dev/null 2>&1 < /dev/null & echo $! > {q(j + '/worker.pid')}; }} && cat {q(j + '/worker.pid')}")
        _, out = self.s.run(cmd)
        self.pid = int(out.strip().splitlines()[-1])
        self.ctx.log(f"remote training started (pid {self.pid})")
        return self.pid

    # -------------------------------------------------------------------------------- supervise
    def touch(self, name: str) -> None:
        self.s.run(f"touch {q(posixpath.join(self.root if name == 'HEARTBEAT' else self.job, name))}")

    def poll_events(self) -> list[Event]:
        path = posixpath.join(self.job, "events.jsonl")
        try:
            sftp = self.s.sftp()
            with sftp.open(path, "rb") as fh:
                fh.seek(self.events_offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        except (OSError, EOFError) as e:
            raise SSHDropped(f"reading events failed: {e}") from None
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.events_offset += end + 1
        out, self.after_seq = decode_events(data[: end + 1].split(b"\n"), self.after_seq)
        return out

    def exit_code(self) -> int | None:
        txt = self.s.read_text(posixpath.join(self.job, "EXIT_CODE")).strip()
        return int(txt) if txt.lstrip("-").isdigit() else None

    def alive(self) -> bool:
        if not self.pid:
            return False
        code, _ = self.s.run(f"kill -0 {int(self.pid)}", check=False)
        return code == 0

    def signal(self, sig: Literal["TERM", "KILL"]) -> None:
        if self.pid:
            self.s.run(f"kill -{sig} -- -{int(self.pid)} 2>/dev/null || kill -{sig} {int(self.pid)} 2>/dev/null",
                       check=False)

    def request_stop(self) -> None:
        try:
            self.touch(STOP_FILE)
        except SSHError as e:  # the connection is down: SIGTERM/SIGKILL follow on the loop's clock
            log.warning("could not write the remote STOP file: %s", e)

    def heartbeat(self) -> None:
        self.touch("HEARTBEAT")

    # ------------------------------------------------------------------------------- outcome
    def download_output(self) -> Path | None:
        """Copies the remote output/ into the local job dir's output/; None when there is none."""
        remote = posixpath.join(self.job, "output")
        if not self.s.exists(remote):
            return None
        self.on_phase("downloading")
        local = self.ctx.job_dir / "output"
        n = self.s.get_dir(remote, local)
        self.ctx.log(f"downloaded {n} output files")
        return local

    def remote_log_tail(self, n: int = 15) -> str:
        parts = []
        for name in ("train.log", "stderr.log"):
            try:
                text = self.s.read_text(posixpath.join(self.job, name), 20000)
            except SSHError:
                continue
            lines = [ln for ln in text.splitlines() if ln.strip()]
            if lines and (name == "train.log" or "Error" in text or "Traceback" in text):
                parts.append("\n".join(lines[-n:]))
        return "\n".join(parts)

    def finish(self, outcome: Outcome, started: float) -> dict[str, Any]:
        """Downloads what there is and turns the outcome into a result or a clear exception."""
        final, kind, stop_reason = outcome.final, outcome.kind, outcome.stop_reason
        out = None
        if kind in (DONE, CANCELLED) or stop_reason:
            try:
                out = self.download_output()
            except SSHError as e:
                self.ctx.log(f"could not download the output: {e}")
        if final is not None and kind == DONE and out is not None:
            return result_from_output(self.ctx.job_dir, {**final, "output_dir": str(out)}, started)
        step = self.ctx.job().get("step") if hasattr(self.ctx, "job") else None
        saved = (f"; the checkpoint at step {step or 0} was saved in {out}" if out is not None
                 and (out / "adapter_config.json").exists() else "")
        if stop_reason is StopReason.BUDGET:
            raise BudgetReached(f"budget cap reached ({self.limits.budget_reason}): training stopped at step "
                                f"{step or 0}{saved}")
        if stop_reason is StopReason.CANCEL or self.ctx.should_stop():
            raise Cancelled(f"cancelled at step {step or 0}{saved}", step=step)
        if stop_reason is StopReason.SHUTDOWN:
            raise BackendError(f"stopped at step {step or 0} because the dashboard shut down{saved}")
        if kind == DONE:
            raise BackendError("the remote training finished but its output/ could not be downloaded")
        tail = self.remote_log_tail()
        msg = final.get("message") if final is not None and kind == ERROR else (
            f"the remote training process exited (code {outcome.exit_code}) without finishing")
        raise BackendError(f"remote training on {self.target.address} failed: {msg}"
                           + (f"\n--- last lines of the remote train.log ---\n{tail}" if tail else ""))

    def cleanup_remote(self) -> None:
        """Removes the remote job dir (own servers keep only the base-model cache)."""
        if self.root:
            self.s.run(f"rm -rf {q(self.root)}", check=False)
