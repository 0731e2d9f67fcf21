"""Shared pieces of the cloud tests: fast settings, the emulator wired to an sshd, a runner, queue/wait helpers."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from nursery_core.emulators.vast import VastEmulator
from training_helpers import store_dataset

ROOT = Path(__file__).resolve().parent.parent
KEY = "vast-e2e-key-3f9c2a71"
FAST = {"max_steps": 3, "batch_size": 4, "max_length": 512, "eval_every": 1000}


@pytest.fixture
def cloud_env(monkeypatch, tmp_path):
    """Environment for fast cloud runs (short retry waits and polls; remote python = this interpreter; the GPU
    health check on a rented machine finds a fake, healthy 2-GPU `nvidia-smi`: tests/gpu_helpers.py)."""
    from gpu_helpers import FakeBox

    remote_root = tmp_path / "remote"
    box = FakeBox(tmp_path / "cloud-gpubox")
    env = {"NURSERY_GPU_CHECK_PATH": str(box.path), "NURSERY_GPU_CHECK_PYTHON": box.python,
        "VAST_API_KEY": KEY, "NURSERY_VAST_RETRY_WAIT": "0.01", "NURSERY_VAST_RETRY_MAX_WAIT": "0.05",
        "NURSERY_VAST_POLL_S": "0.05", "NURSERY_REMOTE_POLL_S": "0.2", "NURSERY_REMOTE_HEARTBEAT_S": "1",
        "NURSERY_REMOTE_TERM_AFTER_S": "2", "NURSERY_REMOTE_KILL_AFTER_S": "4",
        "NURSERY_REMOTE_RECONNECT_ATTEMPTS": "1", "NURSERY_REMOTE_RECONNECT_WAIT_S": "0.2",
        "NURSERY_REMOTE_CONNECT_WAIT_S": "0.2", "NURSERY_VAST_REMOTE_PYTHON": sys.executable,
        "NURSERY_VAST_REMOTE_ROOT": str(remote_root), "NURSERY_SECRETS_FILE": str(tmp_path / "no-secrets.toml"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return remote_root


def make_emulator(server, monkeypatch, **kw) -> VastEmulator:
    emu = VastEmulator(KEY, ssh_port=server.port, authorized_keys=server.authorized_keys, run_onstart=True,
                       **kw).start()
    monkeypatch.setenv("VAST_API_URL", emu.url)
    return emu


@pytest.fixture
def vast(sshd, cloud_env, monkeypatch):
    emu = make_emulator(sshd, monkeypatch)
    yield emu
    emu.stop()


@pytest.fixture
def runner(nursery_home):
    from nursery_core.jobs.runner import JobRunner

    r = JobRunner(kinds=["vast", "ssh"], poll_s=0.1).start()
    yield r
    r.shutdown(timeout=30)


def queue(tiny_model_dir, provider="vast", output="cloud-adapter", **kw):
    from nursery_core import nursery_train_cloud

    ds = store_dataset("lockers", n=12)
    return nursery_train_cloud(ds, str(tiny_model_dir), output, provider=provider, **{**FAST, **kw})


def wait(job_id, timeout=180):
    from nursery_core.jobs.api import wait_for_job

    return wait_for_job(job_id, poll_s=0.1, timeout=timeout)


def wait_until(pred, timeout=120, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def stop_remote_workers(remote_root: Path) -> None:
    """Ends training the tests left running on the 'remote' side (our own host)."""
    for job in remote_root.glob("*/job"):
        (job / "STOP").touch()


