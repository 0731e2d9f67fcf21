"""The remote run shared by the `vast` and `ssh` backends: upload, install, train, stream, stop, download.

The remote side is the same worker as a local run (`python -m nursery_core.training.worker`), started
detached (nohup + setsid) so a dropped connection does not kill it; its events.jsonl is tailed over SFTP and
every event goes to `ctx.emit`. Remote layout under `<remote_root>/<job_id>/`: `code/` (Nursery's package),
`job/` (config.json, data/, then events.jsonl, train.log, output/), `HEARTBEAT`; base models are cached in
`<remote_root>/base_models/`.
"""
from __future__ import annotations

import hashlib
import io
import logging
import posixpath
import re
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import paths
from ..errors import BackendError
from ..jobs.events import decode_events
from .ssh import SSHDropped, SSHError, SSHSession, q

log = logging.getLogger(__name__)

WORKER_MODULE = "nursery_core.training.worker"
FINAL_KINDS = ("done", "cancelled", "error")
# What the worker needs on the remote side; the versions come from requirements.txt.
REMOTE_PACKAGES = ("torch", "transformers", "peft", "accelerate", "safetensors", "tokenizers")
# Never uploaded from the local job dir: per-job SSH material, local run products.
LOCAL_ONLY = {"ssh", "output", "events.jsonl", "train.log", "stderr.log", "STOP", "known_hosts", "remote"}


@dataclass
class RemoteTarget:
    """Where to run: an SSH endpoint plus the remote python and working root."""

    host: str
    port: int
    user: str
    key_path: str
    known_hosts: str
    python: str = "python3"
    remote_root: str = "nursery-jobs"
    name: str = ""

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


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
    def from_env(cls, **kw: Any) -> "Limits":
        import os

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


class BudgetReached(BackendError):
    """A budget cap stopped the run."""


def remote_requirements() -> list[str]:
    """The pinned specs for REMOTE_PACKAGES from requirements.txt (torch only if the image lacks it)."""
    specs = {}
    req = paths.PROJECT_ROOT / "requirements.txt"
    for line in req.read_text().splitlines() if req.exists() else []:
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^([A-Za-z0-9_.-]+)", line)
        if m and m.group(1).lower() in REMOTE_PACKAGES:
            specs[m.group(1).lower()] = line
    return [specs.get(p, p) for p in REMOTE_PACKAGES]


def code_tarball() -> bytes:
    """Nursery's package source as a .tar.gz (no caches, no UI): what the remote worker imports."""
    pkg = paths.PROJECT_ROOT / "nursery_core"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for p in sorted(pkg.rglob("*")):
            rel = p.relative_to(paths.PROJECT_ROOT)
            if "__pycache__" in rel.parts or "webui" in rel.parts or not p.is_file():
                continue
            if p.suffix in (".pyc", ".pyo"):
                continue
            tar.add(str(p), arcname=str(rel))
    return buf.getvalue()


def _dir_fingerprint(d: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(d.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(d)}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:12]


class RemoteRun:
    """One job's remote life: connect (TOFU-pinned), prepare, start, supervise, download, stop."""

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
        self.stop_reason: str | None = None   # 'cancel' | 'budget' | 'shutdown'

    # ------------------------------------------------------------------------------- connection
    def _new_session(self) -> SSHSession:
        t = self.target
        return SSHSession(t.host, t.port, t.user, t.key_path, t.known_hosts, timeout=20.0)

    def connect(self) -> None:
        self.on_phase("connecting")
        self.session = self._new_session().connect_retrying(
            self.limits.connect_attempts, self.limits.connect_wait_s, should_stop=self.ctx.should_stop)
        self.ctx.log(f"connected to {self.target.address}")

    def reconnect(self, why: Exception) -> None:
        """After a drop: a few new connections (same pinned host key), else a clear failure."""
        if self.session is not None:
            self.session.close()
        last: Exception = why
        for i in range(max(1, self.limits.reconnect_attempts)):
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
        dest = posixpath.join(cache_root, f"{name}-{_dir_fingerprint(local)}")
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
        probe = ("import importlib.util as u; print(' '.join(p for p in %r if u.find_spec(p) is None))"
                 % (REMOTE_PACKAGES,))
        code, out = self.s.run(q(py, "-c", probe), check=False)
        if code != 0:
            raise BackendError(f"no usable Python on {self.target.address} ({py}): {out.strip()[-300:]}")
        missing = set(out.split())
        if not missing:
            return
        # the image's own torch (built for its CUDA) is kept; only what is missing is installed
        reqs = [r for r, name in zip(remote_requirements(), REMOTE_PACKAGES) if name in missing]
        self.ctx.log("installing " + ", ".join(reqs) + " on the server")
        code, out = self.s.run(q(py, "-m", "pip", "install", "-q", "--disable-pip-version-check", *reqs),
                               check=False, timeout=3600)
        if code != 0:
            tail = "\n".join(out.splitlines()[-10:])
            raise BackendError(f"installing the training packages on {self.target.address} failed "
                               f"(exit {code}):\n{tail}")

    def _check_stop(self) -> None:
        if self.ctx.should_stop():
            from ..jobs.errors import Cancelled
            raise Cancelled("cancelled during upload")

    # ------------------------------------------------------------------------------------ start
    def start(self, remote_model: str) -> int:
        self.on_phase("training")
        j = self.job
        worker = [self.target.python, "-m", WORKER_MODULE, j, "--no-stdout"]
        if remote_model:
            worker += ["--base-model-dir", remote_model]
        inner = (f"{q(*worker)} > {q(j + '/stdout.log')} 2> {q(j + '/stderr.log')} < /dev/null; "
                 f"echo $? > {q(j + '/EXIT_CODE')}")
        env = (f"PYTHONPATH={q(posixpath.join(self.root, 'code'))} "
               f"NURSERY_HOME={q(posixpath.join(self.root, 'home'))} TOKENIZERS_PARALLELISM=false")
        # only the nohup command goes to the background, with every stream off the channel, so this exec
        # returns at once and $! is the worker's session leader (setsid does not fork in a background job)
        cmd = (f"cd {q(j)} && rm -f STOP EXIT_CODE && {{ {env} nohup setsid sh -c {q(inner)} "
               f"> /dev/null 2>&1 < /dev/null & echo $! > {q(j + '/worker.pid')}; }} && cat {q(j + '/worker.pid')}")
        _, out = self.s.run(cmd)
        self.pid = int(out.strip().splitlines()[-1])
        self.ctx.log(f"remote training started (pid {self.pid})")
        return self.pid

    # -------------------------------------------------------------------------------- supervise
    def touch(self, name: str) -> None:
        self.s.run(f"touch {q(posixpath.join(self.root if name == 'HEARTBEAT' else self.job, name))}")

    def _read_events(self) -> list[dict]:
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

    def _exit_code(self) -> int | None:
        txt = self.s.read_text(posixpath.join(self.job, "EXIT_CODE")).strip()
        return int(txt) if txt.lstrip("-").isdigit() else None

    def _alive(self) -> bool:
        if not self.pid:
            return False
        code, _ = self.s.run(f"kill -0 {int(self.pid)}", check=False)
        return code == 0

    def _signal(self, sig: str) -> None:
        if self.pid:
            self.s.run(f"kill -{sig} -- -{int(self.pid)} 2>/dev/null || kill -{sig} {int(self.pid)} 2>/dev/null",
                       check=False)

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            self._stop_at = time.monotonic()
            try:
                self.touch("STOP")
            except SSHError:
                pass

    def supervise(self, *, on_tick: Callable[[], None] | None = None) -> tuple[dict | None, int | None]:
        """Streams events until the worker exits; handles cancel, budget, shutdown and drops.
        Returns (final event, exit code)."""
        lim = self.limits
        final: dict | None = None
        last_beat = 0.0
        last_alive_check = time.monotonic()
        signalled: set[str] = set()
        while True:
            try:
                for ev in self._read_events():
                    self.ctx.emit(ev)
                    if ev.get("kind") in FINAL_KINDS:
                        final = ev
                rc = self._exit_code()
                if rc is not None:
                    for ev in self._read_events():
                        self.ctx.emit(ev)
                        if ev.get("kind") in FINAL_KINDS:
                            final = ev
                    return final, rc
                now = time.monotonic()
                if now - last_beat >= lim.heartbeat_s:
                    self.touch("HEARTBEAT")
                    if hasattr(self.ctx, "heartbeat"):
                        self.ctx.heartbeat()
                    last_beat = now
                if self.stop_reason is None:
                    if self.ctx.should_stop():
                        self.request_stop("cancel")
                        self.ctx.log("cancel requested: stopping the remote training")
                    elif lim.max_seconds is not None and time.time() - lim.clock_start >= lim.max_seconds:
                        self.request_stop("budget")
                        self.ctx.log(f"budget cap reached ({lim.budget_reason}): stopping the remote training "
                                     "and saving its checkpoint")
                    elif getattr(self.ctx, "detached", lambda: False)():
                        # the process is going away: no time to wait for a checkpoint, the machine must go
                        self.request_stop("shutdown")
                        self.ctx.log("the dashboard is shutting down: stopping the remote training")
                        return final, None
                if self.stop_reason is not None:
                    waited = time.monotonic() - self._stop_at
                    for sig, after in (("TERM", lim.term_after_s), ("KILL", lim.kill_after_s)):
                        if waited >= after and sig not in signalled:
                            signalled.add(sig)
                            self._signal(sig)
                    if "KILL" in signalled and waited >= lim.kill_after_s + 5 and not self._alive():
                        return final, None
                if now - last_alive_check >= 10 * lim.poll_s:
                    last_alive_check = now
                    if not self._alive() and self._exit_code() is None:
                        for ev in self._read_events():
                            self.ctx.emit(ev)
                            if ev.get("kind") in FINAL_KINDS:
                                final = ev
                        return final, None
                if on_tick is not None:
                    on_tick()
            except SSHDropped as e:
                self.reconnect(e)
                continue
            time.sleep(lim.poll_s)

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

    def finish(self, final: dict | None, rc: int | None, started: float) -> dict:
        """Downloads what there is and turns the outcome into a result or a clear exception."""
        kind = (final or {}).get("kind")
        out = None
        if kind in ("done", "cancelled") or self.stop_reason:
            try:
                out = self.download_output()
            except SSHError as e:
                self.ctx.log(f"could not download the output: {e}")
        if kind == "done" and out is not None:
            from ..jobs.backends.local import result_from_output
            res = result_from_output(self.ctx.job_dir, {**final, "output_dir": str(out)}, started)
            return res
        step = self.ctx.job().get("step") if hasattr(self.ctx, "job") else None
        saved = (f"; the checkpoint at step {step or 0} was saved in {out}" if out is not None
                 and (out / "adapter_config.json").exists() else "")
        if self.stop_reason == "budget":
            raise BudgetReached(f"budget cap reached ({self.limits.budget_reason}): training stopped at step "
                                f"{step or 0}{saved}")
        if self.stop_reason == "cancel" or self.ctx.should_stop():
            from ..jobs.errors import Cancelled
            raise Cancelled(f"cancelled at step {step or 0}{saved}", step=step)
        if self.stop_reason == "shutdown":
            raise BackendError(f"stopped at step {step or 0} because the dashboard shut down{saved}")
        if kind == "done":
            raise BackendError("the remote training finished but its output/ could not be downloaded")
        tail = self.remote_log_tail()
        msg = final.get("message") if kind == "error" else (
            f"the remote training process exited (code {rc}) without finishing")
        raise BackendError(f"remote training on {self.target.address} failed: {msg}"
                           + (f"\n--- last lines of the remote train.log ---\n{tail}" if tail else ""))

    def cleanup_remote(self) -> None:
        """Removes the remote job dir (own servers keep only the base-model cache)."""
        if self.root:
            self.s.run(f"rm -rf {q(self.root)}", check=False)
