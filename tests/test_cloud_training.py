"""Cloud training end to end: the Vast.ai emulator + a real sshd + the real worker on a tiny model.

Every test ends with zero live instances in the emulator; every fault ends with the job failed or cancelled
with a clear reason. The faults RunPod shares with Vast (SSH dropped, remote crash, cancel mid-upload, runner
killed) run the scenarios in tests/fault_scenarios.py, as test_runpod_training.py does.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import fault_scenarios
from cloud_helpers import cloud_env, make_emulator, queue, runner, vast, wait, wait_until  # noqa: F401

pytestmark = [pytest.mark.ssh, pytest.mark.slow]


def _cloud(emu) -> fault_scenarios.Cloud:
    return fault_scenarios.Cloud("vast", emu.live_instances)


def test_full_vast_run_with_api_faults_produces_a_listed_model(vast, runner, tiny_model_dir, cloud_env):
    # a rent whose reply is lost in a 500 although it happened, then a destroy that fails twice
    vast.add_fault("rent", 500, apply=True)
    vast.add_fault("destroy", 503, count=2)
    job = queue(tiny_model_dir, max_dph=0.5, max_hours=1)
    st = wait(job["id"])
    assert st["status"] == "succeeded", st["error"]
    from nursery_core import nursery_list_models

    names = [m["name"] for m in nursery_list_models()]
    assert "cloud-adapter" in names
    model_dir = Path(os.environ["NURSERY_HOME"]) / "models" / "cloud-adapter"
    assert (model_dir / "adapter_config.json").exists()
    assert st["loss_history"] and st["step"] == 3
    # actual GPU, $/h, duration and cost recorded against the job
    actual = st["actual"]
    assert actual["gpu_name"] == "RTX 3060" and actual["dph_total"] <= 0.5
    assert actual["cost_usd"] > 0 and actual["seconds_billed"] > 0
    from nursery_core.store import get_store

    job_row = get_store().get_job(job["id"])
    assert job_row["cost_usd"] == pytest.approx(actual["cost_usd"])
    inst = get_store().list_instances(job_id=job["id"])
    assert len(inst) == 1 and inst[0]["destroyed_at"] and inst[0]["label"] == f"nursery-{job['id']}"
    destroys = [r["status"] for r in vast.requests if r["endpoint"] == "destroy"]
    assert destroys[:3] == [503, 503, 200]
    assert vast.live_instances() == []
    # no per-job SSH key left behind
    assert not (Path(st["job_dir"]) / "ssh").exists()


def test_persistent_5xx_during_rent_fails_cleanly(vast, runner, tiny_model_dir):
    vast.add_fault("rent", 503, count=100)
    st = wait(queue(tiny_model_dir)["id"])
    assert st["status"] == "failed" and "renting offer" in st["error"] and "503" in st["error"]
    assert vast.live_instances() == []


def test_persistent_5xx_at_destroy_names_the_instance(vast, runner, tiny_model_dir, monkeypatch):
    fault_scenarios.delete_5xx_then_reaper(_cloud(vast), vast, tiny_model_dir, monkeypatch, endpoint="destroy",
                                           retry_env="NURSERY_VAST_RETRY_ATTEMPTS", what="destroy Vast.ai instance")


def test_ssh_dropped_mid_run(sshd_factory, cloud_env, monkeypatch, runner, tiny_model_dir):
    server = sshd_factory()
    emu = make_emulator(server, monkeypatch)
    try:
        fault_scenarios.ssh_dropped(_cloud(emu), server, tiny_model_dir, cloud_env)
    finally:
        emu.stop()


def test_remote_training_crash_reports_its_log(vast, runner, tiny_model_dir, tmp_path):
    fault_scenarios.remote_crash(_cloud(vast), tiny_model_dir, tmp_path)


def test_cancel_during_upload(vast, runner, tiny_model_dir, monkeypatch):
    fault_scenarios.cancel_during_upload(_cloud(vast), tiny_model_dir, monkeypatch)


def test_budget_cap_stops_the_run_and_destroys(vast, runner, tiny_model_dir):
    # $0.0001 at ~$0.16/h is about two seconds: reached by the time training starts
    st = wait(queue(tiny_model_dir, max_cost=0.0001, max_steps=400)["id"])
    assert st["status"] == "failed"
    assert "budget cap reached" in st["error"] and "max $0.0001" in st["error"]
    assert vast.live_instances() == []
    bill = vast.billing()
    assert len(bill) == 1 and bill[0]["destroyed"]


def test_price_above_cap_after_rent_is_destroyed_at_once(vast, runner, tiny_model_dir, monkeypatch):
    # the offer looked cheap, but the instance reports a higher dph_total (as a mis-priced catalogue can)
    original = vast._new_instance

    def pricier(offer, body):
        inst = original(offer, body)
        inst["dph_total"] = 9.99
        return inst

    monkeypatch.setattr(vast, "_new_instance", pricier)
    st = wait(queue(tiny_model_dir, max_dph=0.5)["id"])
    assert st["status"] == "failed" and "above your cap" in st["error"]
    assert vast.live_instances() == []


def test_dashboard_killed_mid_run_reaper_cleans_up(vast, tiny_model_dir, cloud_env, nursery_home, monkeypatch):
    fault_scenarios.runner_killed_reaper_cleans_up(_cloud(vast), tiny_model_dir, cloud_env, monkeypatch)


def test_ssh_provider_full_run(sshd, cloud_env, runner, tiny_model_dir, tmp_path):
    st = wait(queue(tiny_model_dir, provider="ssh", output="own-server-adapter", host=sshd.host, port=sshd.port,
                    user=sshd.user, key_path=str(sshd.user_key), python=sys.executable,
                    remote_root=str(tmp_path / "server-root"))["id"])
    assert st["status"] == "succeeded", st["error"]
    assert (Path(os.environ["NURSERY_HOME"]) / "models" / "own-server-adapter" / "adapter_config.json").exists()
    assert st["actual"]["provider"] == "ssh"
    # the remote job dir is cleaned; the base model stays cached for the next run
    assert list((tmp_path / "server-root").iterdir()) == [tmp_path / "server-root" / "base_models"]


def test_ssh_run_outlives_a_runner_shutdown_and_the_next_runner_reattaches(sshd, cloud_env, tiny_model_dir,
                                                                          tmp_path):
    # our own server: a dashboard that shuts down leaves the training running; the next runner adopts it
    from nursery_core.jobs.runner import JobRunner
    from nursery_core.store import get_store

    first = JobRunner(kinds=["ssh"], poll_s=0.1).start()
    try:
        job = queue(tiny_model_dir, provider="ssh", output="reattached-adapter", host=sshd.host, port=sshd.port,
                    user=sshd.user, key_path=str(sshd.user_key), python=sys.executable,
                    remote_root=str(tmp_path / "server-root"), max_steps=30)
        wait_until(lambda: get_store().job_events(job["id"], kinds=["progress"]), what="remote progress")
    finally:
        first.shutdown(timeout=30)
    assert get_store().get_job(job["id"])["status"] == "running"
    second = JobRunner(kinds=["ssh"], poll_s=0.1).start()
    try:
        st = wait(job["id"])
    finally:
        second.shutdown(timeout=30)
    assert st["status"] == "succeeded", st["error"]
    logs = [e["message"] or "" for e in get_store().job_events(job["id"], kinds=["log"])]
    assert any("re-attached to the remote training" in m for m in logs)
    assert (Path(os.environ["NURSERY_HOME"]) / "models" / "reattached-adapter" / "adapter_config.json").exists()


def test_gpu_err_at_start_is_replaced_by_another_instance(vast, runner, tiny_model_dir, tmp_path):
    from gpu_helpers import ERR_ROW, HEALTHY_2, FakeBox
    from nursery_core.store import get_store

    FakeBox.existing(tmp_path / "cloud-gpubox").smi_sequence([ERR_ROW, HEALTHY_2])  # first machine: GPU 1 ERR!
    job = queue(tiny_model_dir, max_dph=0.5)
    st = wait(job["id"])
    assert st["status"] == "succeeded", st["error"]
    logs = [e.get("message") or "" for e in get_store().job_events(job["id"], kinds=["log"])]
    fault = [m for m in logs if m.startswith("GPU fault on instance")]
    assert len(fault) == 1 and "ERR!" in fault[0] and "renting another (2/3)" in fault[0]
    insts = get_store().list_instances(job_id=job["id"])
    assert len(insts) == 2 and all(i["destroyed_at"] for i in insts)
    assert vast.live_instances() == []
    # the faulty machine was destroyed (billing stopped) before the next was rented, and never rented again
    rents = [i for i, m in enumerate(logs) if m.startswith("rented instance")]
    assert len(rents) == 2 and rents[0] < logs.index(fault[0]) < rents[1]
    assert all(b["destroyed"] for b in vast.billing())
    faulty = get_store().get_job(job["id"])["provider_state"]["gpu_faults"][0]["instance_id"]
    machines = {i["id"]: i["machine_id"] for i in vast.state()["instances"]}
    assert len(set(machines.values())) == 2 and faulty in machines
    assert st["actual"]["cost_usd"] > 0


def test_gpu_fault_on_every_instance_fails_after_three(vast, runner, tiny_model_dir, tmp_path):
    from gpu_helpers import ERR_ROW, FakeBox

    FakeBox.existing(tmp_path / "cloud-gpubox").smi(ERR_ROW)
    st = wait(queue(tiny_model_dir, max_dph=0.5)["id"])
    assert st["status"] == "failed"
    assert "every instance rented had a GPU fault (3 tries" in st["error"] and "ERR!" in st["error"]
    assert len(vast.state()["instances"]) == 3 and vast.live_instances() == []
