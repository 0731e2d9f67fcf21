"""Shared use of one dashboard: many threads and a second process hitting the store through the public API
never see "database is locked"; two runners (two dashboards) share one queue without running two local jobs
at once; who created what (created_by) is stored on datasets, jobs, models and deployments."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nursery_core import nursery_generate_data, nursery_list_datasets, nursery_list_models
from nursery_core import paths
from nursery_core.jobs import api
from nursery_core.jobs.backends import local
from nursery_core.jobs.runner import JobRunner
from nursery_core.status import ACTIVE
from nursery_core.store import Store, get_store
from nursery_core.training.config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent

# One unit of "someone using the dashboard": generate a dataset, queue a job on it, stream events into it,
# finish it, register a model, and read every list the pages read. `prefix` keeps names apart.
WORKLOAD = r'''
def workload(prefix, rounds, errors, store=None):
    from nursery_core import nursery_generate_data, nursery_list_datasets, nursery_list_models
    from nursery_core.jobs import api
    from nursery_core.jobs.context import RunContext
    from nursery_core.store import get_store
    from nursery_core.training.config import TrainConfig
    from nursery_core import paths
    store = store or get_store()
    for i in range(rounds):
        try:
            ds = nursery_generate_data("calculator", 4, "low", seed=i, name=f"{prefix}-ds-{i}", created_by=prefix)
            job = api.create_job("local", ds["name"], "smollm2-135m", f"{prefix}-m-{i}", TrainConfig(max_steps=3),
                                 created_by=prefix)
            ctx = RunContext(job_id=job["id"], job_dir=paths.job_dir(job["id"]), store=store)
            store.update_job(job["id"], status="running", runner_id="test")
            for step in range(1, 13):
                ctx.emit({"kind": "progress", "step": step, "total_steps": 12, "loss": 1.0 / step, "lr": 1e-4})
                ctx.should_stop()
            store.add_model({"name": f"{prefix}-m-{i}", "path": "models/x", "base_model": "smollm2-135m",
                             "dataset": ds["name"], "job_id": job["id"], "created_by": prefix})
            store.finish_job(job["id"], "succeeded", model_name=f"{prefix}-m-{i}")
            api.nursery_job_status(job["id"])
            api.nursery_list_jobs(limit=20)
            nursery_list_datasets(limit=20)
            nursery_list_models(limit=20)
            store.overview_counts()
            store.spend_by_person()
        except Exception as e:  # collected: the test shows every failure, not just the first
            errors.append(f"{prefix} round {i}: {type(e).__name__}: {e}")
'''
exec(WORKLOAD)  # the same code runs in this process's threads and in the second process


def test_threads_and_a_second_process_hammering_the_public_api_never_hit_database_is_locked(nursery_home):
    """Six threads (three on the dashboard's shared store, three on their own connections, as a CLI would
    have) and a separate Python process do full dataset → job → events → model cycles at once."""
    get_store()  # migrations applied before the other process opens the file
    rounds = 6
    other = subprocess.Popen(
        [sys.executable, "-c", WORKLOAD + "\nimport json\nimport nursery_core.jobs.api, nursery_core.data.generator\n"
         "errors = []\nprint('ready', flush=True)\n"
         f"workload('proc', {rounds}, errors)\nprint(json.dumps(errors))"],
        cwd=ROOT, env={**os.environ, "NURSERY_HOME": str(nursery_home)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    errors: list[str] = []
    own = [Store(paths.db_path()) for _ in range(3)]
    try:
        assert other.stdout.readline().strip() == "ready", other.stderr.read()[-3000:]
        threads = [threading.Thread(target=workload, args=  # noqa: F821 (defined by exec(WORKLOAD))
                                    (f"t{i}", rounds, errors, own[i - 3] if i >= 3 else None))
                   for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        out, err = other.communicate(timeout=120)
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()
        for s in own:
            s.close()
    assert other.returncode == 0, err[-3000:]
    errors += json.loads(out.strip().splitlines()[-1])
    assert errors == [], "\n".join(errors)  # "database is locked" among them, before BEGIN IMMEDIATE
    store = get_store()
    prefixes = [f"t{i}" for i in range(6)] + ["proc"]
    assert store.count_datasets() == store.count_jobs() == store.count_models() == rounds * len(prefixes)
    assert store.count_jobs(status="succeeded") == rounds * len(prefixes)
    # every progress event landed and folded into its job
    job = api.nursery_list_jobs(limit=1)[0]
    status = api.nursery_job_status(job["id"])
    assert [p["step"] for p in status["loss_history"]] == list(range(1, 13))
    assert status["progress"] == 1.0
    by = {d["name"]: d["created_by"] for d in nursery_list_datasets()}
    assert by["proc-ds-0"] == "proc" and by["t5-ds-5"] == "t5"


@pytest.fixture
def fake_worker(monkeypatch):
    monkeypatch.setattr(local, "WORKER_MODULE", "nursery_core.jobs.fake_worker")


def _queue(output: str, steps: int, created_by: str) -> dict:
    from training_helpers import store_dataset

    if not get_store().has_dataset("lockers"):
        store_dataset("lockers", n=6)
    job = api.create_job("local", "lockers", "smollm2-135m", output, TrainConfig(max_steps=steps),
                         created_by=created_by)
    (paths.job_dir(job["id"]) / "fake.json").write_text(json.dumps({"steps": steps, "step_s": 0.05}))
    return job


def test_two_dashboards_claiming_from_one_queue_never_run_two_local_jobs_at_once(fake_worker):
    """Two runners, each with its own database connection like two dashboard processes, share the queue:
    at every moment at most one local job runs, and every job ends succeeded exactly once."""
    jobs = [_queue(f"shared-{i}", steps=6, created_by=["ada", "grace"][i % 2]) for i in range(5)]
    stores = [Store(paths.db_path()), Store(paths.db_path())]
    runners = [JobRunner(store=s, kinds=["local"], poll_s=0.05).start() for s in stores]
    observer = get_store()
    most_running = 0
    seen_running: set[str] = set()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            running = observer.list_jobs(status="running", kind="local")
            most_running = max(most_running, len(running))
            seen_running.update(j["runner_id"] for j in running)
            if observer.count_jobs(status=ACTIVE) == 0:
                break
            time.sleep(0.02)
    finally:
        for r in runners:
            r.shutdown()
        for s in stores:
            s.close()
    final = [observer.get_job(j["id"]) for j in jobs]
    assert [j["status"] for j in final] == ["succeeded"] * 5, [(j["status"], j["error"]) for j in final]
    assert most_running == 1
    spans = sorted((j["started_at"], j["finished_at"]) for j in final)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans  # no two runs overlapped
    assert {m["name"] for m in observer.list_models()} == {f"shared-{i}" for i in range(5)}
    assert seen_running <= {r.id for r in runners}


@pytest.fixture
def weightless_base(tmp_path) -> Path:
    """A local base-model directory the fake worker never loads (a config and an empty weights file)."""
    d = tmp_path / "weightless-base"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
                                               "vocab_size": 1000, "intermediate_size": 128}))
    (d / "model.safetensors").write_bytes(b"")
    return d


def test_created_by_is_stored_on_datasets_jobs_models_and_deployments(fake_worker, weightless_base):
    """The display name given in the browser travels through the public API into every row it creates,
    and the overview's spend per person adds up cloud costs by that name."""
    ds = nursery_generate_data(["calculator"], 12, "low", name="calc", created_by="ada")
    assert get_store().get_dataset("calc")["created_by"] == "ada" == ds["created_by"]
    assert nursery_list_datasets()[0]["created_by"] == "ada"

    runner = JobRunner(kinds=["local"], poll_s=0.05).start()
    try:
        job = api.nursery_train_local("calc", str(weightless_base), "calc-tiny", created_by="grace", max_steps=2)
        (Path(job["job_dir"]) / "fake.json").write_text(json.dumps({"steps": 2, "step_s": 0.01}))
        done = api.wait_for_job(job["id"], timeout=60)
    finally:
        runner.shutdown()
    assert done["status"] == "succeeded", done["error"]
    assert done["created_by"] == "grace"
    assert api.nursery_list_jobs()[0]["created_by"] == "grace"
    assert get_store().get_model("calc-tiny")["created_by"] == "grace"
    adapters = {m["name"]: m for m in nursery_list_models() if m.get("kind") == "adapter"}
    assert adapters["calc-tiny"]["created_by"] == "grace"

    dep = get_store().add_deployment({"model": "calc-tiny", "status": "exported", "created_by": "linus"})
    assert get_store().list_deployments(model="calc-tiny")[0]["created_by"] == "linus" == dep["created_by"]

    store = get_store()
    for who, cost in (("ada", 1.25), ("ada", 0.5), ("grace", 2.0), (None, 0.25)):
        store.create_job({"kind": "vast", "dataset": "calc", "base_model": "smollm2-135m", "output_name": "x",
                          "created_by": who, "cost_usd": cost, "status": "succeeded"})
    spend = {r["person"]: (r["jobs"], round(r["cost_usd"], 2)) for r in store.spend_by_person()}
    assert spend == {"grace": (1, 2.0), "ada": (2, 1.75), "": (1, 0.25)}


def test_a_model_trained_through_the_queue_is_tested_with_its_training_tools(fake_worker, weightless_base):
    """The hand-over between the Training Forge and the Model Cradle: a freshly registered adapter's tools
    resolve to full JSON schemas (what the Cradle's Test and Compare panels render the prompt with)."""
    from nursery_core.inference import resolve_tools

    nursery_generate_data(["calculator", "get_weather"], 12, "low", name="two-tools")
    runner = JobRunner(kinds=["local"], poll_s=0.05).start()
    try:
        job = api.nursery_train_local("two-tools", str(weightless_base), "two-tools-tiny", max_steps=2)
        (Path(job["job_dir"]) / "fake.json").write_text(json.dumps({"steps": 2, "step_s": 0.01}))
        assert api.wait_for_job(job["id"], timeout=60)["status"] == "succeeded"
    finally:
        runner.shutdown()
    tools, where = resolve_tools("two-tools-tiny")
    names = sorted(t["function"]["name"] for t in tools)
    assert {"calculator", "get_weather"} <= set(names), (names, where)
    assert all(t["function"]["parameters"]["type"] == "object" for t in tools)
