"""The RunPod emulator answers the official `runpod` SDK (1.12.0, pointed at it by RUNPOD_API_BASE_URL) and
Nursery's transport client: GPU types, create, pod polling with delayed port mappings, stop, terminate, auth
errors, injected 429/5xx faults, and billing that ends only at terminate."""
from __future__ import annotations

import json
import logging
import subprocess
import sys

import httpx
import pytest

from nursery_core.cloud.runpod import (RunPodAPIError, RunPodAuthError, RunPodClient, RunPodNotFound,
                                       gql_string)
from nursery_core.emulators.runpod import NO_INSTANCES, RunPodEmulator
from sshd_fixture import _free_port

KEY = "rp-test-key-5678-secret"
GPU = "NVIDIA GeForce RTX 4090"
PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRUNPODKEYRUNPODKEYRUNPODKEYRUNPODKEYRUNPOD nursery-j7"

def _sdk():
    from conftest import require
    try:
        import runpod as sdk
    except ImportError:
        sdk = None
    require(sdk is not None, "the official runpod SDK (pip install runpod==1.12.0)")
    return sdk


class Clock:
    """A hand-moved clock for exact billing."""

    def __init__(self, t: float = 1_800_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def emu(tmp_path):
    ak = tmp_path / "authorized_keys"
    ak.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBASEKEYBASEKEYBASEKEYBASEKEYBASEKEYBASEKEY base\n")
    e = RunPodEmulator(KEY, ssh_port=2222, authorized_keys=ak, boot_polls=2).start()
    yield e
    e.stop()


@pytest.fixture
def sdk(emu, monkeypatch):
    mod = _sdk()
    monkeypatch.setenv("RUNPOD_API_BASE_URL", emu.url)  # the SDK's own override, read on every call
    monkeypatch.setattr(mod, "api_key", KEY)
    return mod


def client(emu, key=KEY, **kw) -> RunPodClient:
    return RunPodClient(key, emu.url, wait=0.0, max_wait=0.0, poll_interval=0.0, **kw)


# ------------------------------------------------------------------------------------------- the SDK
def test_sdk_runs_every_call_nursery_makes(emu, sdk):
    gpus = sdk.get_gpus()
    assert {"id": GPU, "displayName": "RTX 4090", "memoryInGb": 24} in gpus
    detail = sdk.get_gpu(GPU, 2)
    assert detail["securePrice"] == 0.69 and detail["communityPrice"] == 0.34
    assert detail["lowestPrice"]["uninterruptablePrice"] == 0.34 and detail["maxGpuCount"] == 8

    pod = sdk.create_pod("nursery-j7", "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04", GPU,
                         cloud_type="SECURE", gpu_count=2, ports="22/tcp,8888/http", volume_in_gb=20,
                         container_disk_in_gb=30, env={"PUBLIC_KEY": PUB})
    assert set(pod) == {"id", "imageName", "env", "machineId", "machine"} and pod["machine"]["podHostId"]
    assert f"PUBLIC_KEY={PUB}" in pod["env"]

    # RUNNING at once, but the port mapping appears only after the pod has booted (boot_polls=2)
    seen = [sdk.get_pod(pod["id"]) for _ in range(3)]
    assert [p["desiredStatus"] for p in seen] == ["RUNNING"] * 3
    assert [p["runtime"] for p in seen[:2]] == [None, None]
    ports = seen[2]["runtime"]["ports"]
    assert {"ip": "127.0.0.1", "isIpPublic": True, "privatePort": 22, "publicPort": 2222, "type": "tcp"} in ports
    assert seen[2]["costPerHr"] == pytest.approx(2 * 0.69) and seen[2]["gpuCount"] == 2
    assert seen[2]["machine"] == {"gpuDisplayName": "RTX 4090"}
    assert [p["id"] for p in sdk.get_pods()] == [pod["id"]]
    assert PUB in emu.authorized_keys.read_text()  # the pod's key reaches the sshd behind it
    assert json.loads(json.dumps(emu.live_pods()))[0]["gpuTypeId"] == GPU  # plain data for tests and /_emulator

    assert sdk.stop_pod(pod["id"]) == {"id": pod["id"], "desiredStatus": "EXITED"}
    assert sdk.get_pod(pod["id"])["runtime"] is None and PUB not in emu.authorized_keys.read_text()
    assert sdk.resume_pod(pod["id"], 2)["desiredStatus"] == "RUNNING"
    sdk.terminate_pod(pod["id"])
    assert sdk.get_pod(pod["id"]) is None and sdk.get_pods() == []
    assert emu.live_pods() == [] and PUB not in emu.authorized_keys.read_text()
    assert "base" in emu.authorized_keys.read_text()


def test_sdk_sees_graphql_errors_as_the_real_api_sends_them(emu, sdk):
    with pytest.raises(ValueError, match="No GPU found"):
        sdk.create_pod("x", "img", "NVIDIA Imaginary 9090")
    emu.gpu_types["NVIDIA H100 80GB HBM3"]["stock"] = 1
    with pytest.raises(sdk.error.QueryError, match="no longer any instances available"):
        sdk.create_pod("x", "img", "NVIDIA H100 80GB HBM3", gpu_count=2)
    with pytest.raises(sdk.error.QueryError, match="not found"):
        sdk.terminate_pod("doesnotexist")
    # a request the schema does not know is a GraphQL validation error, as from any GraphQL server
    r = httpx.post(emu.url + "/graphql", json={"query": "{ pod(input: {podId: \"x\"}) { nope } }"},
                   headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200 and "nope" in r.json()["errors"][0]["message"]


def test_auth_error_for_the_sdk_and_the_client(emu, sdk, monkeypatch, caplog):
    monkeypatch.setattr(sdk, "api_key", "wrong-key")
    with pytest.raises(sdk.error.AuthenticationError):
        sdk.get_gpus()
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(RunPodAuthError) as err:
            client(emu, key="wrong-key-9999").gpu_types()
    assert err.value.status == 401 and "RUNPOD_API_KEY" in str(err.value)
    assert "wrong-key-9999" not in str(err.value) + caplog.text
    assert [r["status"] for r in emu.requests] == [401, 401]  # an auth error is never retried
    with pytest.raises(RunPodAuthError):
        RunPodClient("", emu.url)
    assert KEY not in repr(client(emu))


# ----------------------------------------------------------------------------------------- the client
def test_client_retries_429_then_succeeds_and_never_logs_the_key(emu, caplog):
    emu.add_fault("gpuTypes", 429, count=2)
    with caplog.at_level(logging.WARNING, logger="nursery_core.cloud.runpod"):
        gpus = client(emu).gpu_types(gpu_count=2)
    assert GPU in {g["id"] for g in gpus}
    assert [r["status"] for r in emu.requests] == [429, 429, 200]
    assert "retrying" in caplog.text and KEY not in caplog.text


def test_offers_filter_by_count_memory_price_and_stock_cheapest_first(emu):
    c = client(emu)
    big = c.offers(gpu_count=2, min_memory_gb=48, cloud_type="SECURE")
    assert [o["gpu_name"] for o in big] == ["L40S", "A100 PCIe", "H100 SXM"]
    assert big[0] == {"gpu_type_id": "NVIDIA L40S", "gpu_name": "L40S", "memory_gb": 48, "gpu_count": 2,
                      "usd_per_gpu_hour": 0.86, "usd_per_hour": 1.72}
    assert [o["gpu_name"] for o in c.offers(gpu_count=2, min_memory_gb=48, max_usd_per_hour=3.3)] == ["L40S",
                                                                                                     "A100 PCIe"]
    cheap = c.offers(cloud_type="ALL")
    assert cheap[0]["gpu_name"] == "RTX A5000" and cheap[0]["usd_per_hour"] == 0.16
    emu.gpu_types["NVIDIA H100 80GB HBM3"]["stock"] = 1  # one H100 free: a box of 2 is not on offer
    assert "H100 SXM" not in {o["gpu_name"] for o in c.offers(gpu_count=2)}
    assert "H100 SXM" in {o["gpu_name"] for o in c.offers(gpu_count=1)}
    with pytest.raises(ValueError, match="cloud_type"):
        c.offers(cloud_type="SPOT")


def test_client_gives_up_after_its_attempts_with_a_clear_error(emu):
    emu.add_fault("gpuTypes", 503, count=10)
    with pytest.raises(RunPodAPIError, match="503") as err:
        client(emu, attempts=3).gpu_types()
    assert err.value.transient and len(emu.requests) == 3


def test_5xx_at_create_retries_into_exactly_one_pod(emu):
    emu.add_fault("podFindAndDeployOnDemand", 502)
    c = client(emu)
    made = c.create_pod(name="nursery-j1", image="img", gpu_type_id=GPU, public_key=PUB)
    assert made["adopted"] is False and [p["id"] for p in emu.live_pods()] == [made["pod_id"]]
    host, port, pod = c.wait_ssh(made["pod_id"])
    assert (host, port) == ("127.0.0.1", 2222) and pod["desiredStatus"] == "RUNNING"


def test_5xx_at_create_after_the_pod_was_made_adopts_it(emu):
    # the create went through but the reply was lost: a blind retry would rent a second GPU
    emu.add_fault("podFindAndDeployOnDemand", 500, apply=True)
    made = client(emu).create_pod(name="nursery-j2", image="img", gpu_type_id=GPU, public_key=PUB)
    assert made["adopted"] is True and made["duplicates"] == []
    assert [p["id"] for p in emu.live_pods()] == [made["pod_id"]]
    emu.add_fault("podFindAndDeployOnDemand", 0, apply=True)  # connection dropped after the create
    again = client(emu).create_pod(name="nursery-j3", image="img", gpu_type_id=GPU)
    assert again["adopted"] is True and len(emu.live_pods()) == 2


def test_5xx_at_terminate_is_retried_until_the_pod_is_gone(emu):
    c = client(emu)
    pid = c.create_pod(name="nursery-j4", image="img", gpu_type_id=GPU)["pod_id"]
    emu.add_fault("podTerminate", 503, count=2)
    assert c.terminate_pod(pid) is True
    assert emu.live_pods() == [] and [b["billing"] for b in emu.billing()] == [False]
    # terminated although the reply was a 500: the retry finds it gone, which is success
    pid2 = c.create_pod(name="nursery-j5", image="img", gpu_type_id=GPU)["pod_id"]
    emu.add_fault("podTerminate", 500, apply=True)
    assert c.terminate_pod(pid2) is True and emu.live_pods() == []
    assert c.terminate_pod(pid2) is False  # already gone
    assert c.get_pod(pid2) is None


def test_wait_ssh_fails_clearly_when_the_pod_goes_away_or_has_no_port(emu):
    c = client(emu)
    no_port = c.create_pod(name="nursery-j6", image="img", gpu_type_id=GPU, ports="8888/http")["pod_id"]
    with pytest.raises(RunPodAPIError, match="22/tcp"):
        c.wait_ssh(no_port, timeout=0.0)
    gone = c.create_pod(name="nursery-j7", image="img", gpu_type_id=GPU)["pod_id"]
    httpx.post(f"{emu.url}/_emulator/pods/{gone}/terminate")
    with pytest.raises(RunPodNotFound, match="disappeared"):
        c.wait_ssh(gone)
    stopped = c.create_pod(name="nursery-j8", image="img", gpu_type_id=GPU)["pod_id"]
    c.stop_pod(stopped)
    with pytest.raises(RunPodAPIError, match="EXITED"):
        c.wait_ssh(stopped)


def test_names_with_quotes_and_newlines_cannot_break_the_document(emu):
    c = client(emu)
    name = 'nursery-"x"\n} mutation { podTerminate'
    made = c.create_pod(name=name, image="img", gpu_type_id=GPU, env={"NOTE": 'a "quoted"\\ value'})
    pod = c.get_pod(made["pod_id"])
    assert pod["name"] == name and 'NOTE=a "quoted"\\ value' in pod["env"]
    assert gql_string('a"b') == '"a\\"b"'
    assert [p["id"] for p in c.list_pods(name_prefix="nursery-\"x")] == [made["pod_id"]]


# ------------------------------------------------------------------------------------------- billing
def test_billing_terminate_stops_everything_stop_keeps_the_volume(tmp_path):
    clock = Clock()
    with RunPodEmulator(KEY, clock=clock) as e:
        c = client(e)
        a = c.create_pod(name="nursery-a", image="img", gpu_type_id=GPU, gpu_count=2, volume_gb=100,
                         container_disk_gb=50)["pod_id"]
        b = c.create_pod(name="nursery-b", image="img", gpu_type_id=GPU, volume_gb=100,
                         container_disk_gb=50)["pod_id"]
        clock.advance(3600)
        bill = {x["id"]: x for x in e.billing()}
        running_hour = 2 * 0.69 + 150 * 0.10 / 720  # GPUs + container disk and volume at $0.10/GB/month
        assert bill[a]["cost"] == pytest.approx(running_hour) and bill[a]["running_seconds"] == 3600
        assert bill[a]["compute_cost"] == pytest.approx(1.38)

        c.terminate_pod(a)
        c.stop_pod(b)
        before = {x["id"]: x["cost"] for x in e.billing()}
        clock.advance(7200)
        after = {x["id"]: x for x in e.billing()}
        assert after[a]["cost"] == pytest.approx(before[a]) and after[a]["billing"] is False
        # a stopped pod pays its volume at $0.20/GB/month, not its GPU nor its container disk
        assert after[b]["cost"] - before[b] == pytest.approx(2 * 100 * 0.20 / 720)
        assert after[b]["billing"] is True and after[b]["stopped_seconds"] == 7200
        assert after[b]["rate_per_hr"] == pytest.approx(100 * 0.20 / 720)
        assert [p["id"] for p in e.live_pods()] == [b]  # a stopped pod is still a live (billing) pod

        c.terminate_pod(b)
        final = {x["id"]: x["cost"] for x in e.billing()}
        clock.advance(86400)
        assert {x["id"]: x["cost"] for x in e.billing()} == final and e.live_pods() == []
        assert e.state()["stock"][GPU] == 8  # every GPU went back


# --------------------------------------------------------------------------------------------- SSH
@pytest.mark.ssh
def test_pod_is_the_local_sshd_once_mapped(sshd_factory, tmp_path):
    from nursery_core.cloud.ssh import SSHSession, generate_keypair

    server = sshd_factory()
    key_path, pub = generate_keypair(tmp_path / "keys", "nursery-job")
    with RunPodEmulator(KEY, ssh_port=server.port, authorized_keys=server.authorized_keys) as e:
        c = client(e)
        pid = c.create_pod(name="nursery-ssh", image="img", gpu_type_id=GPU, public_key=pub)["pod_id"]
        host, port, _ = c.wait_ssh(pid)
        with SSHSession(host, port, server.user, key_path, tmp_path / "known_hosts") as s:
            code, out = s.run("echo pod-$((20+1))")
        assert (code, out.strip()) == (0, "pod-21")
        c.terminate_pod(pid)
        assert pub not in server.authorized_keys.read_text() and server.user_pub in server.authorized_keys.read_text()


# ------------------------------------------------------------------------------------------ standalone
def test_standalone_module_serves(tmp_path):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "nursery_core.emulators.runpod", "--port", str(port),
                             "--api-key", KEY, "--boot-polls", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"RUNPOD_API_BASE_URL=http://127.0.0.1:{port}" in line
        c = RunPodClient(KEY, f"http://127.0.0.1:{port}", wait=0.0, poll_interval=0.0)
        pid = c.create_pod(name="nursery-standalone", image="img", gpu_type_id=GPU)["pod_id"]
        assert c.wait_ssh(pid)[:2] == ("127.0.0.1", 22)
        assert c.terminate_pod(pid) is True
        state = httpx.get(f"http://127.0.0.1:{port}/_emulator/state").json()
        assert state["live"] == [] and state["billing"][0]["billing"] is False
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_no_instances_error_is_not_retried(emu):
    emu.gpu_types[GPU]["stock"] = 0
    with pytest.raises(RunPodAPIError, match="no longer any instances") as err:
        client(emu).create_pod(name="nursery-full", image="img", gpu_type_id=GPU)
    assert not err.value.transient and len(emu.requests) == 1 and NO_INSTANCES in str(err.value)
