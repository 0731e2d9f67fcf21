"""Fixtures for the RunPod and Together provider tests: each emulator started and wired through the environment
(fast polls and retries), and a runner for a job kind. RunPod pods are the `sshd` fixture's server, with a fake
`nvidia-smi` (tests/gpu_helpers.py) for the GPU health check."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cloud_helpers import cloud_env, stop_remote_workers  # noqa: F401
from gpu_helpers import FakeBox
from nursery_core.emulators.runpod import RunPodEmulator
from nursery_core.emulators.together import TogetherEmulator


@pytest.fixture
def box(cloud_env, tmp_path):  # noqa: F811
    """The rented machines' fake GPUs (the one cloud_env put on the GPU check's PATH)."""
    return FakeBox.existing(tmp_path / "cloud-gpubox")


RP_KEY = "rp-e2e-key-91c2d7e4"


def start_runpod(server, remote_root: Path, monkeypatch) -> RunPodEmulator:
    """A RunPod emulator whose pods are `server` (an sshd), wired through the environment."""
    emu = RunPodEmulator(RP_KEY, ssh_port=server.port, authorized_keys=server.authorized_keys,
                         boot_polls=2).start()
    env = {"RUNPOD_API_KEY": RP_KEY, "RUNPOD_API_BASE_URL": emu.url, "NURSERY_RUNPOD_RETRY_WAIT": "0.01",
           "NURSERY_RUNPOD_RETRY_MAX_WAIT": "0.05", "NURSERY_RUNPOD_POLL_S": "0.05",
           "NURSERY_RUNPOD_REMOTE_PYTHON": sys.executable, "NURSERY_RUNPOD_REMOTE_ROOT": str(remote_root)}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return emu


@pytest.fixture
def runpod(sshd, cloud_env, monkeypatch):  # noqa: F811
    emu = start_runpod(sshd, cloud_env, monkeypatch)
    yield emu
    stop_remote_workers(cloud_env)
    emu.stop()


TG_KEY = "tg-e2e-key-4b7d19a0"


@pytest.fixture
def together(tiny_model_dir, tmp_path, monkeypatch, nursery_home):
    emu = TogetherEmulator(TG_KEY, local_bases={str(Path(tiny_model_dir).resolve()): tiny_model_dir},
                           running_polls=3, work_dir=tmp_path / "together-emu").start()
    for k, v in {"TOGETHER_API_KEY": TG_KEY, "TOGETHER_BASE_URL": emu.url, "NURSERY_TOGETHER_POLL_S": "0.05",
                 "NURSERY_TOGETHER_CANCEL_WAIT_S": "10", "NURSERY_CLOUD_RETRY_WAIT": "0.01",
                 "NURSERY_CLOUD_RETRY_MAX_WAIT": "0.05",
                 "NURSERY_SECRETS_FILE": str(tmp_path / "no-secrets.toml")}.items():
        monkeypatch.setenv(k, v)
    yield emu
    emu.stop()


def make_runner(kind: str):
    from nursery_core.jobs.runner import JobRunner

    return JobRunner(kinds=[kind], poll_s=0.1).start()


def runner_fixture(kind: str):
    """A `runner` fixture: a JobRunner for `kind`, shut down after the test."""
    @pytest.fixture
    def runner(nursery_home):
        r = make_runner(kind)
        yield r
        r.shutdown(timeout=30)
    return runner


def logs(job_id: str) -> list[str]:
    """The job's log lines (backend and worker messages), oldest first."""
    from nursery_core.store import get_store

    return [e.get("message") or "" for e in get_store().job_events(job_id, kinds=["log"])]


R8_KEY = "r8-e2e-token-55c0a9e1"


@pytest.fixture
def replicate(tiny_model_dir, tmp_path, monkeypatch, nursery_home):
    from nursery_core.emulators.replicate import ReplicateEmulator

    emu = ReplicateEmulator(R8_KEY, local_bases={str(Path(tiny_model_dir).resolve()): tiny_model_dir},
                            boot_polls=1, running_polls=3, work_dir=tmp_path / "replicate-emu").start()
    for k, v in {"REPLICATE_API_TOKEN": R8_KEY, "REPLICATE_BASE_URL": emu.url, "REPLICATE_OWNER": emu.owner,
                 "NURSERY_REPLICATE_POLL_S": "0.05", "NURSERY_CLOUD_RETRY_WAIT": "0.01",
                 "NURSERY_CLOUD_RETRY_MAX_WAIT": "0.05",
                 "NURSERY_SECRETS_FILE": str(tmp_path / "no-secrets.toml")}.items():
        monkeypatch.setenv(k, v)
    yield emu
    emu.stop()


def tiny_trainer(emu) -> str:
    """The emulator's trainer for the tiny test model."""
    return next(name for name, t in emu.trainers().items() if Path(t["base"]).is_absolute())


class LocalModal:
    """A fake at the Modal seam (jobs.backends.modal.ModalLauncher): `spawn` runs the generated app's function
    body with `Function.local()` in a thread, its Volume a local directory (NURSERY_MODAL_VOLUME_ROOT), its
    progress queue a local one (the app module's `progress_queue` hook: the body streams through it exactly as
    it does to a modal.Queue);
    `hold=True` makes a call that never starts (stuck in Modal's queue) until cancelled. `calls` records every
    call: spawned, finished, cancelled."""

    def __init__(self, volume_root: Path, *, hold: bool = False, raise_in_body: BaseException | None = None):
        self.volume_root, self.hold, self.raise_in_body = Path(volume_root), hold, raise_in_body
        self.calls: list = []
        self.closed = 0

    def __call__(self):  # the backend's launcher factory
        return self

    def spawn(self, app_file, code_tar, job_tar):
        import threading
        import warnings

        from nursery_core.jobs.backends.modal import load_app_module

        mod = load_app_module(Path(app_file))
        call = _FakeCall(f"fc-{len(self.calls) + 1:04d}")
        mod.progress_queue = lambda queue_id: call.queue if queue_id == call.id else None

        def body():
            try:
                if self.hold:
                    call.release.wait()
                    return
                if self.raise_in_body is not None:
                    raise self.raise_in_body
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "executing locally ... no access to the mounted Volume"
                    call.out = mod.train.local(code_tar, job_tar, call.id)
            except BaseException as e:  # noqa: BLE001 — what Modal re-raises from .get()
                call.error = e
            finally:
                call.finished = True

        call.thread = threading.Thread(target=body, daemon=True)
        call.thread.start()
        self.calls.append(call)
        return call

    def fetch(self, volume, remote_dir, dest):
        import shutil

        src = self.volume_root / remote_dir
        shutil.copytree(src, dest, dirs_exist_ok=True)
        return sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.is_file())

    def close(self):
        self.closed += 1

    def live(self) -> list[str]:
        """Calls neither finished nor cancelled (what would still run, and bill, on Modal)."""
        return [c.id for c in self.calls if not c.finished and not c.cancelled]


class _LocalQueue:
    """What the function body uses of a modal.Queue: put_many."""

    def __init__(self):
        import queue

        self.q = queue.Queue()

    def put_many(self, values):
        for v in values:
            self.q.put(v)


class _FakeCall:
    def __init__(self, call_id: str):
        import threading

        self.id, self.out, self.error = call_id, None, None
        self.finished = self.cancelled = False
        self.release = threading.Event()
        self.thread = None
        self.queue = _LocalQueue()
        self.live_events = 0  # events handed out by progress() while the function still ran

    def progress(self):
        import queue

        running, out = not self.finished, []
        while True:
            try:
                out.append(self.queue.q.get_nowait())
            except queue.Empty:
                break
        if running:
            self.live_events += len(out)
        return out

    def result(self, timeout: float):
        from nursery_core.jobs.backends.modal import ModalCallFailed

        self.thread.join(timeout)
        if not self.finished:
            return None
        if self.error is not None:
            raise ModalCallFailed(f"Modal call {self.id} failed: {type(self.error).__name__}: {self.error}")
        return self.out

    def cancel(self):
        self.cancelled = True
        self.release.set()
