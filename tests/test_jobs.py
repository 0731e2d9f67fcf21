"""Job runner and local backend: queueing, cancel, restart recovery (re-attach / interrupted), failure reporting.

Most cases run the torch-free fake worker (same contract as the real one) so they take seconds; the failure
case runs the real worker on a corrupted base model."""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from nursery_core import paths
from nursery_core.jobs import api
from nursery_core.jobs.backends import local
from nursery_core.jobs.runner import JobRunner
from nursery_core.training.config import TrainConfig
from training_helpers import store_dataset


@pytest.fixture
def fake_worker(monkeypatch):
    monkeypatch.setattr(local, "WORKER_MODULE", "nursery_core.jobs.fake_worker")


@pytest.fixture
def runners():
    made = []
    yield made
    for r in made:
        r.shutdown()


def new_job(output: str, steps: int = 5, step_s: float = 0.1, **fake) -> dict:
    if not api.get_store().has_dataset("lockers"):
        store_dataset("lockers", n=6)
    job = api.create_job("local", "lockers", "smollm2-135m", output, TrainConfig(max_steps=steps))
    (paths.job_dir(job["id"]) / "fake.json").write_text(json.dumps({"steps": steps, "step_s": step_s, **fake}))
    return job


def wait_until(pred, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def status(job_id):
    return api.get_store().get_job(job_id)["status"]


def test_second_job_waits_queued_while_first_runs_then_both_succeed(fake_worker, runners):
    a = new_job("model-a", steps=15, step_s=0.1)
    b = new_job("model-b", steps=2, step_s=0.05)
    runners.append(JobRunner(poll_s=0.2).start())
    wait_until(lambda: status(a["id"]) == "running", what="first job running")
    assert status(b["id"]) == "queued"
    final_a = api.wait_for_job(a["id"], timeout=60)
    final_b = api.wait_for_job(b["id"], timeout=60)
    assert final_a["status"] == final_b["status"] == "succeeded"
    assert final_b["started_at"] >= final_a["finished_at"]
    models = {m["name"]: m for m in api.get_store().list_models()}
    assert models["model-a"]["job_id"] == a["id"] and models["model-a"]["dataset"] == "lockers"
    assert (paths.model_dir("model-a") / "adapter_config.json").exists()
    assert [p["step"] for p in final_a["loss_history"]] == list(range(1, 16))


def test_cancel_stops_a_running_job_within_ten_seconds(fake_worker, runners):
    job = new_job("never", steps=1000, step_s=0.1)
    runners.append(JobRunner(poll_s=0.2).start())
    wait_until(lambda: api.get_store().get_job(job["id"])["step"], what="first step")
    t0 = time.monotonic()
    api.nursery_cancel_job(job["id"])
    final = api.wait_for_job(job["id"], timeout=15)
    assert final["status"] == "cancelled"
    assert time.monotonic() - t0 < 10
    assert not api.get_store().has_model("never")


def test_cancel_escalates_to_kill_for_a_worker_that_ignores_stop(fake_worker, runners):
    job = new_job("stubborn", steps=1000, step_s=0.1, ignore_stop=True)
    runners.append(JobRunner(poll_s=0.2).start())
    wait_until(lambda: api.get_store().get_job(job["id"])["step"], what="first step")
    t0 = time.monotonic()
    api.nursery_cancel_job(job["id"])
    assert api.wait_for_job(job["id"], timeout=15)["status"] == "cancelled"
    assert time.monotonic() - t0 < 10


def test_cancel_of_a_queued_job_is_immediate_and_a_finished_job_cannot_be_cancelled(fake_worker, runners):
    job = new_job("queued-only")
    assert api.nursery_cancel_job(job["id"])["status"] == "cancelled"
    with pytest.raises(api.InvalidInput, match="already finished"):
        api.nursery_cancel_job(job["id"])


def test_restarted_runner_reattaches_to_a_live_child_and_finishes(fake_worker, runners):
    job = new_job("survivor", steps=25, step_s=0.1)
    first = JobRunner(poll_s=0.2).start()
    wait_until(lambda: (api.get_store().get_job(job["id"])["step"] or 0) >= 2, what="a few steps")
    first.shutdown()  # the dashboard goes away; the child keeps training
    pid = api.get_store().get_job(job["id"])["pid"]
    assert local.proc_alive(pid)
    second = JobRunner(poll_s=0.2)
    runners.append(second.start())
    final = api.wait_for_job(job["id"], timeout=60)
    assert final["status"] == "succeeded"
    steps = [p["step"] for p in final["loss_history"]]
    assert steps == list(range(1, 26))  # nothing lost, nothing recorded twice
    events = api.get_store().job_events(job["id"])
    assert any("re-attached" in (e["message"] or "") for e in events)


def test_restarted_runner_marks_a_job_whose_child_died_interrupted(fake_worker, runners):
    job = new_job("orphan", steps=1000, step_s=0.1)
    first = JobRunner(poll_s=0.2).start()
    wait_until(lambda: (api.get_store().get_job(job["id"])["step"] or 0) >= 2, what="a few steps")
    first.shutdown()
    row = api.get_store().get_job(job["id"])
    os.killpg(row["pid"], signal.SIGKILL)
    wait_until(lambda: not local.proc_alive(row["pid"]), what="child gone")
    runners.append(JobRunner(poll_s=0.2).start())
    final = api.wait_for_job(job["id"], timeout=20)
    assert final["status"] == "interrupted"
    assert f"step {final['step']}" in final["error"] and final["step"] >= 2


def test_a_recycled_pid_is_not_mistaken_for_the_child():
    me = os.getpid()
    assert local.proc_alive(me)
    assert not local.proc_alive(me, start_time="1")
    assert not local.proc_alive(me, needle="nursery_core.training.worker-not-here")


def test_fake_failure_ends_failed_with_log_lines_and_the_next_job_still_runs(fake_worker, runners):
    bad = new_job("bad", steps=5, step_s=0.05, fail_at=2)
    good = new_job("good", steps=2, step_s=0.05)
    runners.append(JobRunner(poll_s=0.2).start())
    final = api.wait_for_job(bad["id"], timeout=30)
    assert final["status"] == "failed"
    assert "fake failure at step 2" in final["error"] and "last lines of train.log" in final["error"]
    assert api.wait_for_job(good["id"], timeout=30)["status"] == "succeeded"


def test_real_worker_on_a_corrupted_base_model_fails_with_the_error(tiny_model_dir, tmp_path, runners):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    store_dataset("lockers", n=6)
    job = api.create_job("local", "lockers", str(broken), "broken-model",
                         TrainConfig(base_model=str(broken), max_steps=2), base_model_dir=str(broken))
    runners.append(JobRunner(poll_s=0.2).start())
    final = api.wait_for_job(job["id"], timeout=120)
    assert final["status"] == "failed"
    assert "train.log" in final["error"] and "Error" in final["error"]
    assert "Traceback" in final["log_tail"]
    assert not api.get_store().has_model("broken-model")
