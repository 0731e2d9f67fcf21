"""The Replicate emulator answers the official `replicate` SDK (pointed at it by base_url) for every call
Nursery makes, and Nursery's client (nursery_core.cloud.replicate) works against it: files upload, destination
model, training on a trainer version, poll, logs, cancel, weights that PEFT loads; auth, 429, 5xx, billing."""
from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time

import pytest

from nursery_core.cloud.http_api import ProviderAPIError, ProviderAuthError, unpack_archive
from nursery_core.cloud.replicate import ReplicateClient
from nursery_core.emulators.replicate import DEFAULT_TRAINER, ReplicateEmulator

import replicate  # a test requirement (requirements.txt, test-only block)
from replicate.exceptions import ReplicateError

KEY = "r8_test_token_0123456789"
TINY = "nursery/tiny-llama"
OWNER = "nursery-user"


@pytest.fixture
def emu(tiny_model_dir, tmp_path):
    e = ReplicateEmulator(KEY, owner=OWNER, local_bases={TINY: tiny_model_dir}, work_dir=tmp_path / "emu").start()
    yield e
    e.stop()


@pytest.fixture
def trainer(emu):
    name = next(k for k, v in emu.trainers().items() if v["base"] == TINY)
    return name, emu.trainers()[name]["version"]


@pytest.fixture
def text_file(tmp_path):
    f = tmp_path / "train.jsonl"
    f.write_text("".join(json.dumps({"text": f"<|im_start|>user\nRemember {i}<|im_end|>\n"}) + "\n"
                         for i in range(10)))
    return f


def sdk(emu, key=KEY):
    return replicate.Client(api_token=key, base_url=emu.url)


def client(emu, key=KEY):
    return ReplicateClient(key, emu.url, wait=0.01, max_wait=0.05, attempts=4)


def poll(emu, get, tid, limit=30):
    seen = []
    for _ in range(limit):
        t = get(tid)
        status = t["status"] if isinstance(t, dict) else t.status
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == "processing":
            emu.wait_built(tid)
        if status in ("succeeded", "failed", "canceled"):
            return seen, t
    raise AssertionError(f"never finished: {seen}")


def test_sdk_uploads_trains_polls_logs_and_fetches_weights_peft_loads(emu, trainer, text_file, tmp_path):
    c = sdk(emu)
    dest = c.models.create(owner=OWNER, name="tiny-tools", visibility="private", hardware="cpu")
    assert dest.owner == OWNER and dest.name == "tiny-tools"
    up = c.files.create(text_file)
    assert up.size == text_file.stat().st_size and up.urls["get"].endswith(f"/v1/files/{up.id}")
    name, version = trainer
    t = c.trainings.create(model=name, version=version, destination=f"{OWNER}/tiny-tools",
                           input={"train_data": up.urls["get"], "lora_rank": 4, "lora_alpha": 8,
                                  "num_train_epochs": 1, "learning_rate": 1e-4})
    assert t.status == "starting" and t.urls["cancel"].endswith(f"/v1/trainings/{t.id}/cancel")
    seen, done = poll(emu, lambda i: c.trainings.get(i), t.id)
    assert seen == ["starting", "processing", "succeeded"]
    assert done.destination == f"{OWNER}/tiny-tools"   # the SDK derives it from output.version
    assert "'loss'" in done.logs and "Training complete" in done.logs
    assert done.started_at and done.completed_at
    assert t.id in [x.id for x in c.trainings.list().results]

    import httpx
    blob = httpx.get(done.output["weights"]).content   # a signed delivery URL: no key needed
    names = unpack_archive(blob, tmp_path / "adapter")
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(names)
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    base = AutoModelForCausalLM.from_pretrained(emu.local_bases[TINY])
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        before = base(ids).logits
        after = PeftModel.from_pretrained(base, str(tmp_path / "adapter"))(ids).logits
    assert not torch.allclose(before, after)


def test_sdk_uploads_a_path_input_itself_and_a_messages_file_fails_the_training(emu, trainer, tmp_path):
    c = sdk(emu)
    c.models.create(owner=OWNER, name="m2", visibility="private", hardware="cpu")
    bad = tmp_path / "chat.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    name, version = trainer
    # a Path as input makes the SDK upload it through the files API (no public URL needed)
    t = c.trainings.create(model=name, version=version, destination=f"{OWNER}/m2", input={"train_data": bad})
    assert t.input["train_data"].startswith(f"{emu.url}/v1/files/")
    seen, done = poll(emu, lambda i: c.trainings.get(i), t.id)
    assert seen[-1] == "failed" and "line 1" in done.error and "'text'" in done.error
    assert emu.billing()[0]["cost"] >= 0 and emu.live_trainings() == []


def test_sdk_auth_errors_and_problem_json(emu, trainer):
    with pytest.raises(ReplicateError) as ei:
        sdk(emu, key="wrong").trainings.list()
    assert ei.value.status == 401
    # Replicate's docs also show "Authorization: Token ..."
    import httpx
    r = httpx.get(f"{emu.url}/v1/trainings", headers={"Authorization": f"Token {KEY}"})
    assert r.status_code == 200
    name, version = trainer
    with pytest.raises(ReplicateError, match="destination does not exist") as ei:
        sdk(emu).trainings.create(model=name, version=version, destination=f"{OWNER}/nope",
                                  input={"train_data": "x"})
    assert ei.value.status == 404
    r = httpx.get(f"{emu.url}/v1/trainings/zzz", headers={"Authorization": f"Bearer {KEY}"})
    assert r.headers["content-type"] == "application/problem+json" and r.json()["status"] == 404


def test_sdk_retries_429_on_get_and_a_5xx_at_create_is_reported(emu, trainer, text_file):
    c = sdk(emu)
    c.models.create(owner=OWNER, name="m3", visibility="private", hardware="cpu")
    up = c.files.create(text_file)
    name, version = trainer
    emu.add_fault("create", 500)
    with pytest.raises(ReplicateError) as ei:   # the SDK never retries a POST
        c.trainings.create(model=name, version=version, destination=f"{OWNER}/m3",
                           input={"train_data": up.urls["get"]})
    assert ei.value.status == 500 and emu.trainings == {}
    t = c.trainings.create(model=name, version=version, destination=f"{OWNER}/m3",
                           input={"train_data": up.urls["get"]})
    emu.add_fault("get", 429, count=2)
    assert c.trainings.get(t.id).id == t.id     # the SDK's RetryTransport retries GETs on 429
    assert [r["status"] for r in emu.calls("get")] == [429, 429, 200]


def test_sdk_cancel_and_billing_runs_only_while_processing(emu, trainer, text_file):
    c = sdk(emu)
    c.models.create(owner=OWNER, name="m4", visibility="private", hardware="cpu")
    up = c.files.create(text_file)
    name, version = trainer
    t = c.trainings.create(model=name, version=version, destination=f"{OWNER}/m4",
                           input={"train_data": up.urls["get"]})
    assert c.trainings.get(t.id).status == "starting"
    time.sleep(0.05)
    assert emu.billing()[0]["seconds"] == 0.0         # nothing billed while starting
    assert c.trainings.get(t.id).status == "processing"
    time.sleep(0.05)
    assert emu.billing()[0]["seconds"] > 0
    c.trainings.cancel(t.id)
    assert c.trainings.get(t.id).status == "canceled"
    billed = emu.billing()[0]["cost"]
    time.sleep(0.05)
    assert emu.billing()[0]["cost"] == billed > 0      # billing stopped at the cancel
    assert emu.live_trainings() == []
    assert "canceled by the user" in c.trainings.get(t.id).logs
    emu.wait_built(t.id)


def test_nursery_client_flow_retries_adopts_and_never_logs_the_key(emu, trainer, text_file, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    name, _ = trainer
    with client(emu) as rc:
        dest = rc.ensure_model(OWNER, "tiny-tools")
        assert rc.ensure_model(OWNER, "tiny-tools")["name"] == dest["name"]   # exists: reused
        emu.add_fault("files_create", 503)
        f = rc.upload_file(text_file)
        version = rc.trainer_version(name)
        assert version == trainer[1]
        emu.add_fault("create", 502, apply=True)   # created, but the answer was lost
        t = rc.create_training(name, version, destination=f"{OWNER}/tiny-tools",
                               input={"train_data": f["urls"]["get"], "lora_rank": 4})
        assert list(emu.trainings) == [t["id"]]     # adopted, not created twice
        emu.add_fault("get", 500, count=2)
        seen, done = poll(emu, rc.get_training, t["id"])
        assert seen[-1] == "succeeded"
        lines, n = rc.new_log_lines(done, 0)
        assert n == len(lines) and "Training complete" in lines[-1]
        assert rc.new_log_lines(done, n) == ([], n)
        names = rc.download_weights(done, tmp_path / "models" / "r1")
        assert "adapter_config.json" in names
        cfg = json.loads((tmp_path / "models" / "r1" / "adapter_config.json").read_text())
        assert cfg["r"] == 4 and cfg["base_model_name_or_path"] == TINY
        assert rc.cancel_training(t["id"])["status"] == "succeeded"   # harmless after the end
        assert rc.delete_file(f["id"]) is True and rc.delete_file(f["id"]) is False
        assert emu.files == {}
        with pytest.raises(ProviderAPIError, match="unknown/x does not exist|could not be found"):
            rc.trainer_version("unknown/x")
    with pytest.raises(ProviderAuthError, match="REPLICATE_API_TOKEN") as ei:
        ReplicateClient("r8_bad_secret_777", emu.url, wait=0.01).list_trainings()
    assert "r8_bad_secret_777" not in str(ei.value)
    assert KEY not in caplog.text and "r8_bad_secret_777" not in caplog.text
    assert "retrying" in caplog.text


def test_nursery_client_cancel_mid_run_and_failed_weights(emu, trainer, text_file, tmp_path):
    name, version = trainer
    with client(emu) as rc:
        rc.ensure_model(OWNER, "m5")
        f = rc.upload_file(text_file)
        t = rc.create_training(name, version, destination=f"{OWNER}/m5", input={"train_data": f["urls"]["get"]})
        assert rc.get_training(t["id"])["status"] == "starting"
        assert rc.get_training(t["id"])["status"] == "processing"
        assert rc.cancel_training(t["id"])["status"] == "canceled"
        with pytest.raises(ProviderAPIError, match="is canceled: it has no weights"):
            rc.download_weights(rc.get_training(t["id"]), tmp_path / "w")
        emu.wait_built(t["id"])
    assert emu.live_trainings() == []


def test_a_crash_mid_training_fails_it_and_stops_billing(emu, trainer, text_file):
    import httpx
    name, version = trainer
    with client(emu) as rc:
        rc.ensure_model(OWNER, "m6")
        f = rc.upload_file(text_file)
        t = rc.create_training(name, version, destination=f"{OWNER}/m6", input={"train_data": f["urls"]["get"]})
        rc.get_training(t["id"])
        assert rc.get_training(t["id"])["status"] == "processing"
        assert httpx.post(f"{emu.url}/_emulator/trainings/{t['id']}/fail",
                          json={"error": "CUDA out of memory"}).status_code == 200
        done = rc.get_training(t["id"])
        assert done["status"] == "failed" and done["error"] == "CUDA out of memory"
        billed = emu.billing()[0]["cost"]
        time.sleep(0.05)
        assert emu.billing()[0]["cost"] == billed and emu.live_trainings() == []
        emu.wait_built(t["id"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_emulator_starts_standalone_and_answers_the_sdk():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "nursery_core.emulators.replicate", "--port", str(port),
                             "--api-key", KEY], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line and DEFAULT_TRAINER in line
        c = replicate.Client(api_token=KEY, base_url=f"http://127.0.0.1:{port}")
        deadline = time.time() + 20
        while True:
            try:
                model = c.models.get(DEFAULT_TRAINER)
                break
            except Exception:  # noqa: BLE001 - not listening yet
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        assert model.latest_version.id
        import httpx
        base = f"http://127.0.0.1:{port}"
        httpx.post(f"{base}/_emulator/faults", json=[{"endpoint": "list", "status": 500}])
        with pytest.raises(ReplicateError) as ei:
            c.trainings.list()
        assert ei.value.status == 500
        state = httpx.get(f"{base}/_emulator/state").json()
        assert state["live"] == [] and state["faults"] == [] and DEFAULT_TRAINER in state["trainers"]
        with pytest.raises(ReplicateError):
            replicate.Client(api_token="nope", base_url=f"http://127.0.0.1:{port}").trainings.list()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_clients_read_keys_and_base_urls_from_env_or_secrets_and_never_show_them(emu, tmp_path, monkeypatch):
    from nursery_core.cloud.together import TogetherClient
    from nursery_core.errors import InvalidConfig

    for var in ("REPLICATE_API_TOKEN", "TOGETHER_API_KEY", "REPLICATE_BASE_URL", "TOGETHER_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NURSERY_SECRETS_FILE", str(tmp_path / "absent.toml"))
    with pytest.raises(InvalidConfig, match="REPLICATE_API_TOKEN"):
        ReplicateClient()
    with pytest.raises(InvalidConfig, match="TOGETHER_API_KEY"):
        TogetherClient()
    secrets_toml = tmp_path / "secrets.toml"
    secrets_toml.write_text(f'[replicate]\napi_token = "{KEY}"\n')
    monkeypatch.setenv("NURSERY_SECRETS_FILE", str(secrets_toml))
    monkeypatch.setenv("REPLICATE_BASE_URL", emu.url)   # the SDK's own override, honoured too
    with ReplicateClient(wait=0.01) as rc:
        assert rc.list_trainings() == [] and KEY not in repr(rc) and emu.url in repr(rc)
    monkeypatch.setenv("REPLICATE_API_TOKEN", "from-env-wins")
    with pytest.raises(ProviderAuthError):
        ReplicateClient(wait=0.01).list_trainings()
    assert TogetherClient("k").base_url == "https://api.together.ai"


def test_the_llama2_trainer_is_offered_and_gives_a_llama2_shaped_adapter(emu, text_file, tmp_path):
    from nursery_core.emulators.replicate import LLAMA2_TRAINER

    assert emu.trainers()[LLAMA2_TRAINER]["base"] == "meta-llama/Llama-2-7b-hf"
    with client(emu) as rc:
        rc.ensure_model(OWNER, "l2")
        f = rc.upload_file(text_file)
        t = rc.create_training(LLAMA2_TRAINER, rc.trainer_version(LLAMA2_TRAINER), destination=f"{OWNER}/l2",
                               input={"train_data": f["urls"]["get"], "lora_rank": 2})
        _, done = poll(emu, rc.get_training, t["id"])
        rc.download_weights(done, tmp_path / "l2")
    cfg = json.loads((tmp_path / "l2" / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == "meta-llama/Llama-2-7b-hf"
    assert sorted(cfg["target_modules"]) == ["q_proj", "v_proj"]   # the cog trainer's default
