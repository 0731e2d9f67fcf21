"""The GPU health check runs nvidia-smi and a torch.cuda probe on the machine and returns ok or a fault with its
reason. A fake `nvidia-smi` (and a fake `python` for the torch probe, since no GPU is here) on PATH plays a
healthy box, one whose GPU shows ERR!, one where nvidia-smi prints nothing, and so on; locally and over SSH."""
from __future__ import annotations

import os
import shutil
import sys

import pytest

from gpu_helpers import ERR_ROW, HEALTHY_2, FakeBox
from nursery_core.gpu_check import QUERY_FIELDS, check_gpus, parse_probe, probe_script

class Box(FakeBox):
    def check(self, **kw):
        kw.setdefault("expected_gpus", 2)
        kw.setdefault("min_memory_mb", 24000)
        return check_gpus(python=self.python, extra_path=str(self.path), **kw)


@pytest.fixture
def box(tmp_path):
    return Box(tmp_path)


def test_healthy_box_is_ok_and_nvidia_smi_gets_the_csv_query(box):
    v = box.check()
    assert v.ok and v.status == "ok" and v.torch_count == 2, v.reason
    assert [(g.index, g.name, g.memory_total_mb) for g in v.gpus] == [(0, "NVIDIA GeForce RTX 3090", 24576),
                                                                    (1, "NVIDIA GeForce RTX 3090", 24576)]
    assert box.args() == [[f"--query-gpu={','.join(QUERY_FIELDS)}", "--format=csv,noheader,nounits"]]
    assert v.to_dict()["status"] == "ok" and "24576 MiB" in v.reason


def test_err_in_a_field_is_a_hardware_fault(box):
    box.smi(ERR_ROW)
    v = box.check()
    assert not v.ok and v.status == "fault"
    assert v.reason == "GPU 1 (NVIDIA GeForce RTX 3090) reports ERR! in memory.total: a hardware fault"


@pytest.mark.parametrize("out,code,reason", [
    ("", 0, "nvidia-smi found no GPU (exit 0)"),
    ("No devices were found\n", 6, "nvidia-smi found no usable GPU (exit 6): No devices were found"),
    ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n", 9,
     "nvidia-smi found no usable GPU (exit 9): NVIDIA-SMI has failed"),
    ("0, NVIDIA A100-SXM4-80GB, 81920, 0, 30, 0, 3\n1, NVIDIA A100-SXM4-80GB, 81920, 0, 30, 0, 0\n", 0,
     "GPU 0 (NVIDIA A100-SXM4-80GB) has 3 uncorrected ECC error(s)"),
    ("0, NVIDIA GeForce RTX 3090, 24576, 1, 31, 0, [GPU requires reset]\n", 0, "reports [GPU requires reset]"),
])
def test_no_gpu_or_broken_gpu_outputs_are_faults(box, out, code, reason):
    box.smi(out, code)
    v = box.check()
    assert not v.ok and reason in v.reason, v.reason


def test_fewer_gpus_or_less_memory_than_promised(box):
    box.smi(HEALTHY_2)
    v = box.check(expected_gpus=4)
    assert not v.ok and v.reason == "nvidia-smi sees 2 GPU(s); the offer promised 4"
    v = box.check(min_memory_mb=49140)
    assert not v.ok and "has 24576 MiB; the offer promised 49140 MiB" in v.reason
    # N/A fields of consumer cards (no ECC) are not faults, and 5 % under the nominal size is accepted
    box.smi("0, NVIDIA GeForce RTX 4090, 23400, 1, 31, 0, [N/A]\n1, NVIDIA GeForce RTX 4090, 23400, 1, 31, 0, "
            "[N/A]\n")
    assert box.check(min_memory_mb=24564).ok


def test_torch_probe_must_see_and_use_every_gpu(box):
    box.torch(count=1)
    v = box.check()
    assert not v.ok and v.reason == ("torch.cuda sees 1 GPU(s); nvidia-smi sees 2 and the offer promised 2")
    assert v.torch_count == 1
    box.torch(count=2, errors=["cuda:1: RuntimeError: CUDA error: uncorrectable ECC error encountered"])
    assert "torch cannot use a GPU: cuda:1: RuntimeError" in box.check().reason
    box.torch(raw="Traceback (most recent call last):\nModuleNotFoundError: No module named 'torch'", code=1)
    v = box.check()
    assert not v.ok and "torch.cuda probe failed" in v.reason and "No module named 'torch'" in v.reason
    v = box.check(require_torch=False)
    assert v.ok and v.torch_count is None and "torch not installed yet" in v.reason


def test_a_sequence_plays_a_box_that_breaks_between_checks(box):
    box.smi_sequence([HEALTHY_2, ERR_ROW])
    assert box.check().ok and not box.check().ok and not box.check().ok  # the last answer repeats
    assert box.calls() == 3


def test_the_real_torch_probe_runs_here_and_sees_no_gpu(box):
    # this machine's own torch (CPU build): the probe code itself runs and reports 0 GPUs
    v = check_gpus(python=sys.executable, extra_path=str(box.path), expected_gpus=2, min_memory_mb=24000)
    assert not v.ok and v.torch_count == 0 and v.reason.startswith("torch.cuda sees 0 GPU(s)"), v.reason


def test_no_driver_at_all(tmp_path, monkeypatch):
    bare = tmp_path / "bare"
    bare.mkdir()
    os.symlink(shutil.which("bash"), bare / "bash")
    monkeypatch.setenv("PATH", str(bare))
    v = check_gpus(python=sys.executable)
    assert not v.ok and v.reason == "nvidia-smi is not installed: no NVIDIA driver on this machine"


def test_garbage_output_is_a_fault_not_a_crash():
    assert "printed nothing recognisable" in parse_probe("bash: line 1: syntax error").reason
    assert parse_probe(probe_script()) .ok is False  # the script text itself is not a probe result


@pytest.mark.ssh
def test_check_over_ssh_on_the_sshd_fixture(box, sshd, tmp_path):
    from nursery_core.cloud.ssh import SSHSession

    with SSHSession(sshd.host, sshd.port, sshd.user, sshd.user_key, tmp_path / "known_hosts") as s:
        ok = box.check(runner=s)
        box.smi(ERR_ROW)
        bad = box.check(runner=s)
        box.smi("", 0)
        empty = box.check(runner=s)
    assert ok.ok and ok.torch_count == 2, ok.reason
    assert not bad.ok and "reports ERR! in memory.total" in bad.reason
    assert not empty.ok and empty.reason == "nvidia-smi found no GPU (exit 0)"


@pytest.mark.ssh
def test_runpod_pieces_compose_a_broken_gpu_pod_is_terminated_and_stops_billing(box, sshd_factory, tmp_path):
    """What the provider loop will do (the lead wires it): rent, check the GPU over SSH, terminate on a fault,
    rent again. Here the pieces alone: the faulty pod bills nothing after its terminate, the second one is ok."""
    from nursery_core.cloud.runpod import RunPodClient
    from nursery_core.cloud.ssh import SSHSession, generate_keypair
    from nursery_core.emulators.runpod import RunPodEmulator

    server = sshd_factory()
    key_path, pub = generate_keypair(tmp_path / "keys", "nursery-gpu")
    box.smi_sequence([ERR_ROW, HEALTHY_2])
    with RunPodEmulator("k", ssh_port=server.port, authorized_keys=server.authorized_keys) as emu:
        c = RunPodClient("k", emu.url, wait=0.0, poll_interval=0.0)
        verdicts = []
        for attempt in range(3):
            pid = c.create_pod(name=f"nursery-gpu-{attempt}", image="img", gpu_type_id="NVIDIA GeForce RTX 3090",
                               gpu_count=2, public_key=pub)["pod_id"]
            host, port, _ = c.wait_ssh(pid)
            with SSHSession(host, port, server.user, key_path, tmp_path / f"kh{attempt}") as s:
                v = box.check(runner=s, expected_gpus=2, min_memory_mb=24000)
            verdicts.append(v)
            if v.ok:
                break
            c.terminate_pod(pid)
        bills = {b["name"]: b for b in emu.billing()}
        assert [v.ok for v in verdicts] == [False, True] and "ERR!" in verdicts[0].reason
        assert bills["nursery-gpu-0"]["billing"] is False and bills["nursery-gpu-1"]["billing"] is True
        assert [p["name"] for p in emu.live_pods()] == ["nursery-gpu-1"]
        c.terminate_pod(pid)
        assert emu.live_pods() == []
