"""The SSH providers' fault matrix as scenarios shared by the Vast.ai and RunPod test modules: each scenario
runs one fault against a `Cloud` (the provider's kind and its emulator's count of live machines) and asserts
the job's reason and zero live machines in the emulator's state. test_cloud_training.py and
test_runpod_training.py call them with their own fixtures, so both providers pass the same checks."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cloud_helpers import ROOT, queue, stop_remote_workers, wait, wait_until


@dataclass
class Cloud:
    """One SSH provider under test: `provider` (job kind), `live()` (the emulator's live machines) and the
    environment keys of the other providers to unset before reaping (their emulators are not running)."""

    provider: str
    live: Callable[[], list]
    other_keys: tuple[str, ...] = ()


def _progress(job_id: str):
    from nursery_core.store import get_store

    return wait_until(lambda: get_store().job_events(job_id, kinds=["progress"]), what="training progress")


def ssh_dropped(cloud: Cloud, server, tiny_model_dir, remote_root: Path) -> None:
    """`server` (the machine's sshd) dies mid-run: the job fails naming the drop, the machine is released."""
    try:
        job = queue(tiny_model_dir, provider=cloud.provider, max_steps=400)
        _progress(job["id"])
        server.kill()
        st = wait(job["id"])
        assert st["status"] == "failed"
        assert "dropped" in st["error"] and "could not be re-established" in st["error"]
        assert cloud.live() == []
    finally:
        stop_remote_workers(remote_root)


def remote_crash(cloud: Cloud, tiny_model_dir, tmp_path: Path) -> None:
    """Training crashes on the machine (a model it cannot load): the error quotes train.log; released."""
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    st = wait(queue(broken, provider=cloud.provider)["id"])
    assert st["status"] == "failed"
    assert "remote training" in st["error"] and "failed" in st["error"]
    assert "train.log" in st["error"]
    assert cloud.live() == []


def cancel_during_upload(cloud: Cloud, tiny_model_dir, monkeypatch) -> None:
    """A cancel arrives while the first file goes up: nothing more is sent, the job is cancelled, released."""
    from nursery_core.cloud import ssh as ssh_mod
    from nursery_core.store import get_store

    original = ssh_mod.SSHSession.put_file
    calls = []

    def put_and_cancel(self, local, remote):
        if not calls:
            for j in get_store().list_jobs(status="running"):
                get_store().request_cancel(j["id"])
        calls.append(remote)
        return original(self, local, remote)

    monkeypatch.setattr(ssh_mod.SSHSession, "put_file", put_and_cancel)
    job = queue(tiny_model_dir, provider=cloud.provider)
    st = wait(job["id"])
    assert st["status"] == "cancelled" and "upload" in st["error"]
    assert len(calls) == 1  # nothing more was sent after the cancel
    assert not get_store().job_events(job["id"], kinds=["start", "progress"])
    assert cloud.live() == []


def runner_killed_reaper_cleans_up(cloud: Cloud, tiny_model_dir, remote_root: Path, monkeypatch) -> None:
    """The process running the job is SIGKILLed mid-run (no finally, no atexit): the machine stays; the reaper
    (dry run first) releases it, and the next runner marks the job interrupted."""
    from nursery_core import nursery_reap_instances
    from nursery_core.jobs.runner import JobRunner

    job = queue(tiny_model_dir, provider=cloud.provider, max_steps=400)
    code = ("import time; from nursery_core.jobs.runner import JobRunner; "
            f"JobRunner(kinds=[{cloud.provider!r}], poll_s=0.1).start(); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _progress(job["id"])
        assert len(cloud.live()) == 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert len(cloud.live()) == 1
        for key in cloud.other_keys:
            monkeypatch.delenv(key, raising=False)
        dry = nursery_reap_instances(dry_run=True)
        assert [(o["provider"], o["job_id"]) for o in dry["orphans"]] == [(cloud.provider, job["id"])]
        assert dry["destroyed"] == [] and len(cloud.live()) == 1
        reaped = nursery_reap_instances()
        assert reaped["destroyed"] == [dry["orphans"][0]["instance_id"]] and reaped["errors"] == []
        assert cloud.live() == []
        r = JobRunner(kinds=[cloud.provider], poll_s=0.1).start()
        try:
            st = wait(job["id"], timeout=60)
        finally:
            r.shutdown()
        assert st["status"] == "interrupted"
        assert cloud.live() == []
    finally:
        if proc.poll() is None:
            proc.kill()
        stop_remote_workers(remote_root)
