"""The cloud fault matrix: scenarios shared by the provider test modules. Each runs one fault against a
`Cloud` (the provider's kind and its emulator's live machines / runs) and asserts the job's reason and zero
live instances, pods or runs in the emulator's state afterwards.

Where each fault is tested (module::test), and why it does not apply where it does not:

| fault              | vast (test_cloud_training)                 | runpod (test_runpod_training)                   |
|--------------------|--------------------------------------------|-------------------------------------------------|
| SSH dropped        | test_ssh_dropped_mid_run                   | test_ssh_dropped_mid_run                        |
| remote crash       | test_remote_training_crash_reports_its_log | test_remote_training_crash_reports_its_log      |
| 5xx at create      | test_persistent_5xx_during_rent_fails_...  | test_persistent_5xx_at_create_fails_cleanly     |
| 5xx at delete      | test_persistent_5xx_at_destroy_names_...   | test_persistent_5xx_at_terminate_names_the_pod  |
| cancel mid-upload  | test_cancel_during_upload                  | test_cancel_during_upload                       |
| budget cap         | test_budget_cap_stops_the_run_and_destroys | test_budget_cap_stops_the_run_and_terminates    |
| price above cap    | test_price_above_cap_after_rent_is_...     | test_price_above_cap_finds_no_pod               |
| runner killed      | test_dashboard_killed_mid_run_reaper_...   | test_runner_killed_mid_run_reaper_terminates_...|

| fault              | together (test_together_training)          | replicate (test_replicate_training)             |
|--------------------|--------------------------------------------|-------------------------------------------------|
| SSH dropped        | n/a: a managed API, no SSH                 | n/a: a managed API, no SSH                      |
| remote crash       | test_crash_fails_with_the_reason           | test_crash_fails_with_the_reason                |
| 5xx at create      | test_persistent_5xx_at_create_fails_...    | test_persistent_5xx_at_create_fails_cleanly     |
| 5xx at delete      | test_persistent_5xx_at_cancel_... (cancel) | test_persistent_5xx_at_cancel_... (cancel)      |
| cancel mid-upload  | test_cancel_during_upload_sends_nothing_...| test_cancel_during_upload_creates_no_training   |
| budget cap         | test_budget_cap_cancels_the_fine_tune      | test_budget_cap_cancels_the_training            |
| price above cap    | test_price_above_cap_starts_nothing        | test_price_above_cap_starts_nothing             |
| runner killed      | test_reaper_cancels_a_fine_tune_whose_...  | test_reaper_cancels_a_training_whose_job_is_... |

Modal (test_modal_training, through the fake at the launcher seam): remote crash
test_an_exception_in_the_function_fails_with_the_reason and test_a_failing_worker_reports_its_error; cancel
test_cancel_cancels_the_function_call (a call still in Modal's queue). Not applicable: SSH (none), 5xx at
create/delete (Modal speaks gRPC; the SDK raises and the call is cancelled in `finally`), cancel mid-upload
(the code and job travel as arguments of the one spawn call), price above cap and max_cost (refused with the
reason: test_max_cost_and_bad_options_are_refused), runner killed (the ephemeral app ends with the process that
spawned it: jobs/reaper.py NOTHING_TO_REAP, tested by test_cloud_cli::test_the_reaper_knows_every_provider).
"""
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


def cancel_5xx_then_reaper(cloud: Cloud, emu, tiny_model_dir, monkeypatch, *, poll_env: str, id_key: str,
                           what: str, settle: Callable[[str], object] = lambda run_id: None, **queue_kw) -> None:
    """A managed run (Together, Replicate) whose cancel endpoint answers 503 forever: the cancelled job fails
    naming the run still billing and reap-instances; once the API heals the reaper cancels it (`settle` polls
    what the emulator needs to finish the cancel)."""
    from nursery_core import nursery_reap_instances
    from nursery_core.store import get_store

    monkeypatch.setenv("NURSERY_CLOUD_RETRY_ATTEMPTS", "2")
    monkeypatch.setenv(poll_env, "0.5")  # the run's steps outlast the cancel
    emu.add_fault("cancel", 503, count=1000)
    job = queue(tiny_model_dir, provider=cloud.provider, **queue_kw)
    run_id = wait_until(lambda: (get_store().get_job(job["id"]).get("provider_state") or {}).get(id_key),
                        what=id_key)
    _progress(job["id"])
    get_store().request_cancel(job["id"])
    st = wait(job["id"])
    assert st["status"] == "failed"
    assert f"could not confirm {what} {run_id} stopped" in st["error"] and "503" in st["error"]
    assert "reap-instances" in st["error"] and cloud.live() == [run_id]
    assert get_store().list_instances(job_id=job["id"])[0]["state"] == "destroy_failed"
    emu.clear_faults()
    reaped = nursery_reap_instances()
    assert reaped["destroyed"] == [run_id] and reaped["errors"] == []
    settle(run_id)
    assert cloud.live() == [] and get_store().list_instances(live_only=True) == []


def delete_5xx_then_reaper(cloud: Cloud, emu, tiny_model_dir, monkeypatch, *, endpoint: str, retry_env: str,
                           what: str) -> None:
    """An SSH provider whose destroy/terminate endpoint answers 503 forever: the job fails naming the machine
    still billing and reap-instances, the instance is recorded destroy_failed; once the API heals the reaper
    releases it."""
    from nursery_core import nursery_reap_instances
    from nursery_core.store import get_store

    monkeypatch.setenv(retry_env, "2")
    emu.add_fault(endpoint, 503, count=1000)
    job = queue(tiny_model_dir, provider=cloud.provider)
    st = wait(job["id"])
    assert st["status"] == "failed"
    inst = get_store().list_instances(job_id=job["id"])
    assert len(inst) == 1 and inst[0]["state"] == "destroy_failed"
    assert f"could not {what} {inst[0]['id']}" in st["error"] and "reap-instances" in st["error"]
    assert [str(m["id"]) for m in cloud.live()] == [inst[0]["id"]]
    emu.clear_faults()
    for key in cloud.other_keys:
        monkeypatch.delenv(key, raising=False)
    reaped = nursery_reap_instances()
    assert [str(i) for i in reaped["destroyed"]] == [inst[0]["id"]] and reaped["errors"] == []
    assert cloud.live() == []
