"""RunPod training end to end: the RunPod emulator + a real sshd + the real worker on a tiny model, with a fake
`nvidia-smi` on the pod for the GPU health check.

Every test ends with zero live pods in the emulator (terminated, never stopped) and, for every fault, the job
failed with a clear reason. The faults RunPod shares with Vast (SSH dropped, remote crash, cancel mid-upload,
runner killed -> reaper) run the same scenarios as the Vast tests (tests/fault_scenarios.py).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import fault_scenarios
from cloud_helpers import cloud_env, queue, wait  # noqa: F401
from gpu_helpers import ERR_ROW, HEALTHY_2
from provider_fixtures import RP_KEY, box, logs, runner_fixture, runpod, start_runpod  # noqa: F401

pytestmark = [pytest.mark.ssh, pytest.mark.slow]

runner = runner_fixture("runpod")


def _cloud(emu) -> fault_scenarios.Cloud:
    return fault_scenarios.Cloud("runpod", emu.live_pods, other_keys=("VAST_API_KEY",))


def test_full_runpod_run_with_api_faults_produces_a_listed_model(runpod, runner, tiny_model_dir):
    # a create whose reply is lost in a 500 although the pod was made, then a terminate that fails twice
    runpod.add_fault("podFindAndDeployOnDemand", 500, apply=True)
    runpod.add_fault("podTerminate", 503, count=2)
    job = queue(tiny_model_dir, provider="runpod", max_dph=0.5, max_hours=1)
    st = wait(job["id"])
    assert st["status"] == "succeeded", st["error"]
    from nursery_core import nursery_list_models
    from nursery_core.store import get_store

    assert "cloud-adapter" in [m["name"] for m in nursery_list_models()]
    assert (Path(os.environ["NURSERY_HOME"]) / "models" / "cloud-adapter" / "adapter_config.json").exists()
    assert st["step"] == 3 and st["loss_history"]
    actual = st["actual"]
    assert actual["provider"] == "runpod" and actual["gpu_name"] == "RTX A5000" and actual["gpu_count"] == 1
    assert actual["cost_usd"] > 0 and actual["seconds_billed"] > 0 and actual["pods"] == 1
    inst = get_store().list_instances(job_id=job["id"])
    assert len(inst) == 1 and inst[0]["destroyed_at"] and inst[0]["label"] == f"nursery-{job['id']}"
    assert inst[0]["provider"] == "runpod"
    assert any("recovered after an API error" in m for m in logs(job["id"]))
    assert any("GPU check on pod" in m and "healthy" in m for m in logs(job["id"]))
    # terminated (not stopped): nothing bills any more
    assert runpod.live_pods() == []
    bill = runpod.billing()
    assert len(bill) == 1 and bill[0]["status"] == "TERMINATED" and not bill[0]["billing"]
    assert not (Path(st["job_dir"]) / "ssh").exists()


def test_persistent_5xx_at_create_fails_cleanly(runpod, runner, tiny_model_dir):
    runpod.add_fault("podFindAndDeployOnDemand", 503, count=100)
    st = wait(queue(tiny_model_dir, provider="runpod")["id"])
    assert st["status"] == "failed"
    assert "creating pod" in st["error"] and "503" in st["error"]
    assert runpod.live_pods() == []


def test_persistent_5xx_at_terminate_names_the_pod(runpod, runner, tiny_model_dir, monkeypatch):
    fault_scenarios.delete_5xx_then_reaper(_cloud(runpod), runpod, tiny_model_dir, monkeypatch,
                                           endpoint="podTerminate", retry_env="NURSERY_RUNPOD_RETRY_ATTEMPTS",
                                           what="terminate RunPod pod")


def test_ssh_dropped_mid_run(sshd_factory, cloud_env, monkeypatch, runner, tiny_model_dir):
    server = sshd_factory()
    emu = start_runpod(server, cloud_env, monkeypatch)
    try:
        fault_scenarios.ssh_dropped(_cloud(emu), server, tiny_model_dir, cloud_env)
    finally:
        emu.stop()


def test_remote_training_crash_reports_its_log(runpod, runner, tiny_model_dir, tmp_path):
    fault_scenarios.remote_crash(_cloud(runpod), tiny_model_dir, tmp_path)


def test_cancel_during_upload(runpod, runner, tiny_model_dir, monkeypatch):
    fault_scenarios.cancel_during_upload(_cloud(runpod), tiny_model_dir, monkeypatch)


def test_runner_killed_mid_run_reaper_terminates_the_pod(runpod, tiny_model_dir, cloud_env, nursery_home,
                                                          monkeypatch):
    fault_scenarios.runner_killed_reaper_cleans_up(_cloud(runpod), tiny_model_dir, cloud_env, monkeypatch)


def test_budget_cap_stops_the_run_and_terminates(runpod, runner, tiny_model_dir):
    st = wait(queue(tiny_model_dir, provider="runpod", max_cost=0.0001, max_steps=400)["id"])
    assert st["status"] == "failed"
    assert "budget cap reached" in st["error"] and "max $0.0001" in st["error"]
    assert runpod.live_pods() == []
    bill = runpod.billing()
    assert len(bill) == 1 and not bill[0]["billing"]


def test_price_above_cap_finds_no_pod(runpod, runner, tiny_model_dir):
    st = wait(queue(tiny_model_dir, provider="runpod", max_dph=0.05)["id"])
    assert st["status"] == "failed" and "no RunPod GPU type" in st["error"] and "$0.05" in st["error"]
    assert runpod.state()["pods"] == []


def test_gpu_err_at_start_is_replaced_by_a_new_pod(runpod, runner, tiny_model_dir, box):
    box.smi_sequence([ERR_ROW, HEALTHY_2])  # the first pod's GPU 1 reports ERR!, the next pod is healthy
    job = queue(tiny_model_dir, provider="runpod")
    st = wait(job["id"])
    assert st["status"] == "succeeded", st["error"]
    pods = runpod.state()["pods"]
    assert len(pods) == 2 and runpod.live_pods() == []
    lines = logs(job["id"])
    fault = [m for m in lines if m.startswith("GPU fault on pod")]
    assert len(fault) == 1 and "ERR!" in fault[0] and "renting another (2/3)" in fault[0]
    # the faulty pod was terminated before the next one was created: nothing billed for it after the fault
    faulty = next(p for p in pods if p["id"] in fault[0])
    other = next(p for p in pods if p["id"] != faulty["id"])
    created_other = next(p for p in runpod.pods.values() if p["id"] == other["id"])["_started"]
    assert faulty["terminated_at"] <= created_other
    assert st["actual"]["pods"] == 2
    from nursery_core.store import get_store

    assert get_store().get_job(job["id"])["provider_state"]["gpu_faults"][0]["pod_id"] == faulty["id"]
    assert all(b["status"] == "TERMINATED" and not b["billing"] for b in runpod.billing())


def test_gpu_fault_on_every_pod_fails_after_three(runpod, runner, tiny_model_dir, box):
    box.smi(ERR_ROW)
    st = wait(queue(tiny_model_dir, provider="runpod")["id"])
    assert st["status"] == "failed"
    assert "every pod rented had a GPU fault (3 tries" in st["error"] and "ERR!" in st["error"]
    assert len(runpod.state()["pods"]) == 3 and runpod.live_pods() == []


def test_reaper_terminates_orphaned_pods(runpod, nursery_home, monkeypatch):
    monkeypatch.delenv("VAST_API_KEY")  # RunPod only (a provider that cannot be reached is reported, not fatal)
    from nursery_core import nursery_reap_instances
    from nursery_core.cloud.runpod import RunPodClient

    with RunPodClient(RP_KEY, runpod.url) as c:
        c.create_pod(name="nursery-no-such-job", image="img", gpu_type_id="NVIDIA RTX A5000")
        c.create_pod(name="someone-elses-pod", image="img", gpu_type_id="NVIDIA RTX A5000")
    dry = nursery_reap_instances(dry_run=True)
    assert [(o["provider"], o["job_state"]) for o in dry["orphans"]] == [("runpod", "no such job")]
    assert len(runpod.live_pods()) == 2
    reaped = nursery_reap_instances()
    assert reaped["destroyed"] == [dry["orphans"][0]["instance_id"]]
    assert [p["name"] for p in runpod.live_pods()] == ["someone-elses-pod"]


def test_request_validation(runpod, nursery_home, monkeypatch):
    from nursery_core.errors import InvalidConfig, InvalidInput
    from nursery_core.jobs.backends import get_provider

    p = get_provider("runpod")
    assert p.request({"gpu": "RTX 4090", "gpu_count": "2"}, {"gpu_ram_gb": 9}) == {
        "gpu": "RTX 4090", "gpu_count": 2, "min_gpu_ram_gb": 9}
    with pytest.raises(InvalidInput, match="gpu_count"):
        p.request({"gpu_count": 0}, None)
    with pytest.raises(InvalidInput, match="offer_id"):
        p.request({"offer_id": 5}, None)
    monkeypatch.delenv("RUNPOD_API_KEY")
    with pytest.raises(InvalidConfig, match="RUNPOD_API_KEY"):
        p.request({}, None)


def test_a_two_gpu_pod_trains_on_both_with_ddp(runpod, runner, tiny_model_dir):
    # the pod's 2 GPUs (fake nvidia-smi and torch probe report 2) -> torchrun with 2 processes (gloo on this CPU)
    job = queue(tiny_model_dir, provider="runpod", gpu_count=2)
    st = wait(job["id"], timeout=400)
    assert st["status"] == "succeeded", st["error"]
    from nursery_core.store import get_store

    assert st["actual"]["gpu_count"] == 2
    start = get_store().job_events(job["id"], kinds=["start"])
    assert start and start[0]["data"]["world_size"] == 2
    assert get_store().get_model("cloud-adapter")["metrics"]["world_size"] == 2
    pod = runpod.state()["pods"][0]
    assert pod["gpuCount"] == 2 and runpod.live_pods() == []
