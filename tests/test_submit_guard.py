"""Submitting is idempotent: a run whose output an active or queued run already writes is refused at submit time
with the other run named — training jobs (local and racing threads), evaluations and deployments alike."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from nursery_core.errors import DuplicateRun
from nursery_core.jobs import api
from nursery_core.jobs.inflight import exclusive_run, run_key
from nursery_core.store import get_store
from nursery_core.training.config import TrainConfig
from training_helpers import store_dataset


def test_a_second_run_with_the_same_output_name_is_refused_naming_the_first(tiny_model_dir):
    store_dataset("lockers", n=8)
    first = api.nursery_train_local("lockers", str(tiny_model_dir), "same-name", created_by="ada", max_steps=2)
    with pytest.raises(DuplicateRun) as e:
        api.nursery_train_local("lockers", str(tiny_model_dir), "same-name", created_by="grace", max_steps=2)
    assert e.value.other["id"] == first["id"]
    assert first["id"] in str(e.value) and "ada" in str(e.value) and "--" not in str(e.value)
    assert [j["output_name"] for j in get_store().list_jobs()] == ["same-name"]
    # once the first one is over, the name is free again (it did not produce a model)
    api.nursery_cancel_job(first["id"])
    again = api.nursery_train_local("lockers", str(tiny_model_dir), "same-name", max_steps=2)
    assert again["id"] != first["id"]


def test_the_default_output_name_is_deterministic_so_a_repeated_submit_is_a_duplicate(tiny_model_dir):
    store_dataset("lockers", n=8)
    first = api.nursery_train_local("lockers", str(tiny_model_dir), max_steps=2)
    assert first["output_name"].startswith("lockers-")
    with pytest.raises(DuplicateRun):
        api.nursery_train_local("lockers", str(tiny_model_dir), max_steps=2)
    assert get_store().count_jobs() == 1


def test_racing_submits_from_threads_make_exactly_one_job():
    store_dataset("lockers", n=6)
    results, barrier = [], threading.Barrier(6)

    def submit():
        barrier.wait()
        try:
            results.append(api.create_job("local", "lockers", "smollm2-135m", "raced", TrainConfig(max_steps=1))["id"])
        except DuplicateRun as e:
            results.append(e)

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    made = [r for r in results if isinstance(r, str)]
    assert len(made) == 1 and all(r.other["id"] == made[0] for r in results if not isinstance(r, str))
    assert get_store().count_jobs() == 1
    # the refused submits left no job directory behind
    from nursery_core import paths
    assert sorted(p.name for p in paths.jobs_dir().iterdir()) == made


def test_a_submit_from_another_process_is_refused_too(nursery_home):
    store_dataset("lockers", n=6)
    job = api.create_job("local", "lockers", "smollm2-135m", "cross", TrainConfig(max_steps=1))
    code = ("from nursery_core.jobs import api; from nursery_core.training.config import TrainConfig\n"
            "from nursery_core.errors import DuplicateRun\n"
            "try:\n    api.create_job('local', 'lockers', 'smollm2-135m', 'cross', TrainConfig(max_steps=1))\n"
            "except DuplicateRun as e:\n    print('refused', e.other['id'])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "NURSERY_HOME": str(nursery_home)})
    assert out.stdout.strip() == f"refused {job['id']}", out.stderr


def test_an_inflight_run_refuses_its_twin_and_frees_its_key_when_done(nursery_home):
    key = run_key("deploy", "my-model")
    with exclusive_run("deploy", key, "the deployment of x as my-model", created_by="ada"):
        with pytest.raises(DuplicateRun) as e:
            # another thread of the same process (a second browser tab) is refused
            box = []
            t = threading.Thread(target=lambda: box.append(_try_claim(key)))
            t.start()
            t.join()
            raise box[0]
        assert "the deployment of x as my-model is already running" in str(e.value)
        assert "ada" in str(e.value)
        with exclusive_run("deploy", key, "nested"):  # the holder itself may re-enter (suite → single run)
            pass
    assert get_store().list_inflight() == []
    with exclusive_run("deploy", key, "again"):
        assert [r["key"] for r in get_store().list_inflight()] == [key]


def _try_claim(key):
    try:
        with exclusive_run("deploy", key, "twin"):
            return AssertionError("the twin was not refused")
    except DuplicateRun as e:
        return e


def test_a_holder_whose_process_died_does_not_block(nursery_home):
    import socket

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    get_store().claim_inflight({"key": "evaluate:m:d:eval", "kind": "evaluate", "label": "a dead run",
                                "owner": "x", "pid": proc.pid, "pid_start": "1", "host": socket.gethostname()},
                               is_stale=lambda row: False)
    with exclusive_run("evaluate", "evaluate:m:d:eval", "a new run") as row:
        assert row["label"] == "a new run"


def test_an_evaluation_already_running_is_refused(nursery_home):
    from nursery_core.evaluation.api import nursery_evaluate

    store_dataset("lockers", n=8)
    _held_elsewhere(run_key("evaluate", "some-model", "lockers", "eval"), "the evaluation of x")
    with pytest.raises(DuplicateRun, match="the evaluation of x is already running"):
        nursery_evaluate("some-model", "lockers", split="eval")


def _held_elsewhere(key: str, label: str) -> None:
    """The key held by a live run that is not this thread's (another tab of this dashboard)."""
    import socket

    from nursery_core.jobs.backends.local import proc_start_time

    get_store().claim_inflight({"key": key, "kind": key.split(":")[0], "label": label, "owner": "other-tab",
                                "pid": os.getpid(), "pid_start": proc_start_time(os.getpid()),
                                "host": socket.gethostname()}, is_stale=lambda row: False)


def test_a_deployment_already_running_under_that_name_is_refused(nursery_home, monkeypatch, tiny_model_dir, tmp_path):
    from export_helpers import make_adapter
    from nursery_core import paths
    from nursery_core.export import gguf, verify

    adapter = make_adapter(tiny_model_dir, paths.model_dir("dep-twin"))
    get_store().add_model({"name": "dep-twin", "kind": "adapter", "path": str(adapter),
                           "base_model": str(tiny_model_dir)})
    monkeypatch.setattr(gguf, "require_converter", lambda: None)
    monkeypatch.setattr(verify, "bindings_available", lambda: True)
    from nursery_core.export.deploy import nursery_deploy_ollama

    _held_elsewhere(run_key("deploy", "dep-twin"), "the deployment of dep-twin as dep-twin")
    with pytest.raises(DuplicateRun, match="already running"):
        nursery_deploy_ollama("dep-twin", skip_register=True)
    assert get_store().list_deployments(model="dep-twin") == []  # refused before anything was recorded
