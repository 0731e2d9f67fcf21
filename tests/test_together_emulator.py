"""The Together.ai emulator answers the official `together` SDK (pointed at it by base_url) for every call
Nursery makes, and Nursery's own client (nursery_core.cloud.together) works against it: upload, create,
poll, events, cancel, adapter download that PEFT loads; auth errors, 429 retries, 5xx at create, billing."""
from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time

import pytest

from nursery_core.cloud.http_api import ProviderAPIError, ProviderAuthError, unpack_archive
from nursery_core.cloud.together import TogetherClient
from nursery_core.emulators.together import TogetherEmulator

import together  # a test requirement (requirements.txt, test-only block)

KEY = "tg-test-key-0123456789"
TINY = "nursery/tiny-llama"
SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture
def emu(tiny_model_dir, tmp_path):
    e = TogetherEmulator(KEY, local_bases={TINY: tiny_model_dir}, work_dir=tmp_path / "emu").start()
    yield e
    e.stop()


@pytest.fixture
def train_file(tmp_path):
    tool = {"type": "function", "function": {"name": "memory_store", "description": "Store a fact",
                                             "parameters": {"type": "object",
                                                            "properties": {"content": {"type": "string"}},
                                                            "required": ["content"]}}}
    rows = []
    for i in range(12):
        call = {"id": f"call_{i}", "type": "function",
                "function": {"name": "memory_store", "arguments": json.dumps({"content": f"code {i}"})}}
        rows.append({"messages": [{"role": "user", "content": f"Remember code {i}."},
                                  {"role": "assistant", "tool_calls": [call]}], "tools": [tool]})
    f = tmp_path / "train.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f


def sdk(emu, key=KEY, **kw):
    return together.Together(api_key=key, base_url=emu.url, **kw)


def client(emu, key=KEY):
    return TogetherClient(key, emu.url, wait=0.01, max_wait=0.05, attempts=4)


def poll_until(emu, get, job_id, stop_at, limit=30):
    seen = []
    for _ in range(limit):
        job = get(job_id)
        status = job["status"] if isinstance(job, dict) else job.status
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == "compressing":
            emu.wait_built(job_id)
        if status in stop_at:
            return seen
    raise AssertionError(f"never reached {stop_at}: {seen}")


def test_sdk_uploads_creates_polls_lists_events_and_downloads_a_loadable_adapter(emu, train_file, tmp_path):
    c = sdk(emu)
    up = c.files.upload(train_file, purpose="fine-tune")
    assert up.id.startswith("file-") and up.bytes == train_file.stat().st_size
    assert up.processing_status == "COMPLETED"
    info = c.files.retrieve(up.id)
    assert info.validation_report.valid and info.validation_report.dataset_format == "CONVERSATION"
    assert info.validation_report.dataset_has_tools and info.validation_report.nlines == 12

    job = c.fine_tuning.create(training_file=up.id, model=TINY, lora=True, lora_r=4, lora_alpha=8,
                               n_epochs=2, batch_size=4, learning_rate=1e-4, suffix="nursery-t1")
    # create() asks for the model's limits and a price estimate first, then posts the job
    assert [r["endpoint"] for r in emu.requests][-3:] == ["limits", "estimate", "create"]
    assert job.status == "pending" and job.training_type.lora_r == 4
    seen = poll_until(emu, lambda i: c.fine_tuning.retrieve(i), job.id, {"completed"})
    assert seen == ["pending", "queued", "running", "compressing", "uploading", "completed"]
    done = c.fine_tuning.retrieve(job.id)
    assert done.steps_completed == done.total_steps == 6 and done.x_model_output_name

    types = [e.type for e in c.fine_tuning.list_events(job.id).data]
    for t in ("JOB_PENDING", "JOB_START", "TRAINING_START", "EPOCH_COMPLETE", "TRAINING_COMPLETE",
              "COMPRESSING_MODEL", "MODEL_UPLOAD_COMPLETE", "JOB_COMPLETE"):
        assert t in types
    assert c.fine_tuning.list_checkpoints(job.id).data[0].step == 6
    assert job.id in [j.id for j in c.fine_tuning.list().data]

    blob = c.fine_tuning.content(ft_id=job.id, checkpoint="adapter").read()
    assert blob[:4] == b"\x28\xb5\x2f\xfd"  # zstd, as Together ships it
    names = unpack_archive(blob, tmp_path / "adapter")
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(names)
    # the SDK's own downloader (the CLI's): a 2-byte Range request for the size, then the body
    from together.lib.resources.files import DownloadManager
    path, size = DownloadManager(c).download(f"/v1/finetune/download?ft_id={job.id}&checkpoint=adapter",
                                             output=tmp_path / "dl.tar.zst", fetch_metadata=True)
    assert size == len(blob) and (tmp_path / "dl.tar.zst").read_bytes() == blob
    assert [r["status"] for r in emu.calls("download")][-2:] == [206, 200]

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    cfg = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == TINY and cfg["r"] == 4 and cfg["lora_alpha"] == 8
    base = AutoModelForCausalLM.from_pretrained(emu.local_bases[TINY])
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        before = base(ids).logits
        tuned = PeftModel.from_pretrained(base, str(tmp_path / "adapter"))
        after = tuned(ids).logits
    assert not torch.allclose(before, after)  # a trained (non-zero) adapter, not an empty one


def test_smollm2_shaped_adapter_matches_the_embedded_architecture(emu, tmp_path):
    from safetensors import safe_open

    from nursery_core.emulators import lora_artifact
    out = lora_artifact.build_adapter(tmp_path / "a", SMOL, lora_artifact.base_config(SMOL), r=8, alpha=16,
                                      target_modules="q_proj,v_proj")
    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
        q_a = f.get_tensor("base_model.model.model.layers.29.self_attn.q_proj.lora_A.weight")
        v_b = f.get_tensor("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight")
    assert len(keys) == 30 * 2 * 2
    assert tuple(q_a.shape) == (8, 576) and tuple(v_b.shape) == (192, 8)  # 3 kv heads x 64
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == SMOL


def test_sdk_auth_error_and_unknown_model(emu):
    with pytest.raises(together.AuthenticationError):
        sdk(emu, key="wrong-key").fine_tuning.list()
    with pytest.raises(together.NotFoundError, match="not available for fine-tuning"):
        sdk(emu).fine_tuning.model_limits(model_name="no/such-model")


def test_sdk_retries_a_429_and_a_5xx_at_create_reaches_it(emu, train_file):
    c = sdk(emu)
    up = c.files.upload(train_file)
    job = c.fine_tuning.create(training_file=up.id, model=TINY, lora=True, lora_r=4, batch_size=4)
    emu.add_fault("retrieve", 429)
    assert c.fine_tuning.retrieve(job.id).id == job.id  # the SDK's own retry
    assert [r["status"] for r in emu.calls("retrieve")] == [429, 200]
    emu.add_fault("create", 503, count=5)
    with pytest.raises(together.InternalServerError):
        sdk(emu, max_retries=0).fine_tuning.create(training_file=up.id, model=TINY, lora=True, lora_r=4, batch_size=4)
    assert len(emu.jobs) == 1


def test_sdk_create_rejects_bad_lora_fields_and_invalid_files(emu, tmp_path, train_file):
    c = sdk(emu)
    up = c.files.upload(train_file)
    limits = c.fine_tuning.model_limits(model_name=TINY)
    # the SDK checks the rank against the limits itself: loosen them to reach the server's own check
    loose = limits.model_copy(update={"lora_training": limits.lora_training.model_copy(update={"max_rank": 256})})
    with pytest.raises(together.BadRequestError, match="lora_r must be between 1 and 64"):
        c.fine_tuning.create(training_file=up.id, model=TINY, lora=True, lora_r=128, batch_size=4, model_limits=loose)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": [{"role": "robot"}]}\n')
    up_bad = c.files.upload(bad, check=False)
    assert up_bad.processing_status == "INVALID_FORMAT"
    assert "line 2" in c.files.retrieve(up_bad.id).validation_report.error
    with pytest.raises(together.BadRequestError, match="line 2"):
        c.fine_tuning.create(training_file=up_bad.id, model=TINY, lora=True, lora_r=4, batch_size=4)
    with pytest.raises(ProviderAPIError, match="bad.jsonl: line 2: message 0 has no valid role"):
        client(emu).upload_file(bad)


def test_sdk_cancel_and_billing_accrues_only_while_running(emu, train_file):
    c = sdk(emu)
    up = c.files.upload(train_file)
    job = c.fine_tuning.create(training_file=up.id, model=TINY, lora=True, lora_r=4, batch_size=1, n_epochs=3)
    assert [c.fine_tuning.retrieve(job.id).status for _ in range(2)] == ["pending", "queued"]
    assert emu.billing()[0]["tokens"] == 0           # nothing billed while pending/queued
    assert c.fine_tuning.retrieve(job.id).status == "running"
    c.fine_tuning.retrieve(job.id)
    billed = emu.billing()[0]["tokens"]
    assert 0 < billed < emu.jobs[job.id]["token_count"]
    cancelled = c.fine_tuning.cancel(job.id)
    assert cancelled.status == "cancel_requested"
    assert c.fine_tuning.retrieve(job.id).status == "cancelled"
    for _ in range(3):
        c.fine_tuning.retrieve(job.id)
    assert emu.billing()[0]["tokens"] == billed      # billing stopped at the cancel
    assert emu.billing()[0]["cost"] == pytest.approx(billed * 0.48 / 1e6)
    assert emu.live_jobs() == []
    assert "CANCEL_REQUESTED" in [e.type for e in c.fine_tuning.list_events(job.id).data]


def test_nursery_client_flow_retries_adopts_and_never_logs_the_key(emu, train_file, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with client(emu) as tc:
        emu.add_fault("files_upload", 429)
        info = tc.upload_file(train_file)
        assert info["processing_status"] == "COMPLETED"
        assert tc.upload_file(train_file)["id"] == info["id"]   # 409 -> the file Together already has
        limits = tc.model_limits(TINY)
        assert limits["supports_tools"] and limits["lora_training"]["max_rank"] == 64
        est = tc.estimate_price(training_file=info["id"], model=TINY, n_epochs=1)
        assert est["estimation_available"] and est["estimated_total_price"] > 0
        body = tc.lora_request(model=TINY, training_file=info["id"], suffix="nursery-job-7", n_epochs=1,
                               learning_rate=2e-4, batch_size=4, lora_r=4, lora_alpha=8)
        emu.add_fault("create", 502, apply=True)    # created, but the answer was lost
        job = tc.create_fine_tune(body)
        assert len(emu.jobs) == 1 and job["id"] in emu.jobs   # adopted, not created twice
        emu.add_fault("retrieve", 503, count=2)
        emu.add_fault("events", 0)                  # a dropped connection: retried like a 5xx
        assert tc.events(job["id"])[0]["type"] == "JOB_PENDING"
        assert poll_until(emu, tc.retrieve, job["id"], {"completed"})[-1] == "completed"
        assert "JOB_COMPLETE" in [e["type"] for e in tc.events(job["id"])]
        names = tc.download_adapter(job["id"], tmp_path / "models" / "t1")
        assert "adapter_config.json" in names
        assert tc.cancel(job["id"])["status"] == "completed"   # cancelling a finished job is harmless
        with pytest.raises(ProviderAPIError, match="already exists"):
            tc.download_adapter(job["id"], tmp_path / "models" / "t1")
        assert tc.delete_file(info["id"]) is True and tc.delete_file(info["id"]) is False
        assert emu.files == {}
    with pytest.raises(ProviderAuthError, match="TOGETHER_API_KEY") as ei:
        TogetherClient("bad-key-secret-999", emu.url, wait=0.01).list_jobs()
    assert "bad-key-secret-999" not in str(ei.value)
    assert KEY not in caplog.text and "bad-key-secret-999" not in caplog.text
    assert "retrying" in caplog.text


def test_nursery_client_cancel_mid_run_and_gives_up_on_persistent_5xx(emu, train_file):
    with client(emu) as tc:
        fid = tc.upload_file(train_file)["id"]
        job = tc.create_fine_tune(tc.lora_request(model=TINY, training_file=fid, suffix="c", n_epochs=1,
                                                  learning_rate=1e-4, batch_size=1, lora_r=4, lora_alpha=8))
        poll_until(emu, tc.retrieve, job["id"], {"running"})
        assert tc.cancel(job["id"])["status"] == "cancel_requested"
        assert tc.retrieve(job["id"])["status"] == "cancelled"
        emu.add_fault("list", 500, count=10)
        with pytest.raises(ProviderAPIError, match="answered 500"):
            tc.list_jobs()
        assert len(emu.calls("list")) == 4  # the client's attempts, then a clear error
    assert emu.live_jobs() == []


def test_a_crash_mid_training_errors_the_job_and_stops_billing(emu, train_file):
    import httpx
    with client(emu) as tc:
        fid = tc.upload_file(train_file)["id"]
        job = tc.create_fine_tune(tc.lora_request(model=TINY, training_file=fid, suffix="crash", n_epochs=2,
                                                  learning_rate=1e-4, batch_size=1, lora_r=4, lora_alpha=8))
        poll_until(emu, tc.retrieve, job["id"], {"running"})
        tc.retrieve(job["id"])
        assert httpx.post(f"{emu.url}/_emulator/jobs/{job['id']}/fail",
                          json={"status": "error", "message": "NCCL timeout"}).status_code == 200
        billed = emu.billing()[0]["tokens"]
        assert tc.retrieve(job["id"])["status"] == "error" and billed > 0
        assert emu.billing()[0]["tokens"] == billed and emu.live_jobs() == []
        last = tc.events(job["id"])[-1]
        assert last["type"] == "JOB_ERROR" and last["message"] == "NCCL timeout" and last["level"] == "error"
        with pytest.raises(ProviderAPIError, match="is error: there is no output"):
            tc.download_adapter(job["id"], emu.work_dir / "never")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_emulator_starts_standalone_and_answers_the_sdk():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "nursery_core.emulators.together", "--port", str(port),
                             "--api-key", KEY], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line
        c = together.Together(api_key=KEY, base_url=f"http://127.0.0.1:{port}")
        deadline = time.time() + 20
        while True:
            try:
                limits = c.fine_tuning.model_limits(model_name=SMOL)
                break
            except together.APIConnectionError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        assert limits.lora_training.max_rank == 64 and limits.supports_tools
        import httpx
        base = f"http://127.0.0.1:{port}"
        httpx.post(f"{base}/_emulator/faults", json={"endpoint": "list", "status": 500, "count": 1})
        with pytest.raises(together.InternalServerError):
            together.Together(api_key=KEY, base_url=base, max_retries=0).fine_tuning.list()
        state = httpx.get(f"{base}/_emulator/state").json()
        assert state["live"] == [] and state["faults"] == [] and state["requests"][-1]["status"] == 500
        with pytest.raises(together.AuthenticationError):
            together.Together(api_key="nope", base_url=f"http://127.0.0.1:{port}").fine_tuning.list()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


@pytest.mark.slow
def test_a_smollm2_adapter_from_the_emulator_is_listed_and_tested_by_nursery(smollm2_home, train_file, tmp_path,
                                                                             monkeypatch):
    """The default base end to end: Together 'trains' SmolLM2-135M, the client unpacks the adapter into
    models/NAME/, and Nursery's own list-models and test-model work on it (the lead wires the row later)."""
    from nursery_core import inference, interactive, paths
    from nursery_core.registry import nursery_list_models
    from nursery_core.store import get_store
    from training_helpers import MEMORY_TOOL

    monkeypatch.setattr(inference, "_POOL", None)
    with TogetherEmulator(KEY, work_dir=tmp_path / "emu") as e, client(e) as tc:
        fid = tc.upload_file(train_file)["id"]
        assert tc.model_limits(SMOL)["supports_tools"]
        job = tc.create_fine_tune(tc.lora_request(model=SMOL, training_file=fid, suffix="smol", n_epochs=1,
                                                  learning_rate=2e-4, batch_size=4, lora_r=8, lora_alpha=16,
                                                  lora_trainable_modules="q_proj,v_proj,o_proj"))
        poll_until(e, tc.retrieve, job["id"], {"completed"})
        dest = paths.model_dir("tg-smol")
        tc.download_adapter(job["id"], dest)
    get_store().add_model({"name": "tg-smol", "path": str(dest), "base_model": "smollm2-135m",
                           "tools": [MEMORY_TOOL]})
    assert "tg-smol" in [m["name"] for m in nursery_list_models()]
    r = interactive.nursery_test_model("tg-smol", "Remember that the garage code is 4821.", max_new_tokens=8)
    assert r["model"] == "tg-smol" and r["tools"] == ["memory_store"] and r["completion"]
    assert r["decoding"] == "guarded" and all(c["name"] == "memory_store" for c in r["calls"])


def test_canonical_examples_become_together_tool_rows_and_raw_ones_are_refused(emu, tmp_path):
    from nursery_core.cloud.together import write_training_file
    from training_helpers import examples

    exs = examples(5)
    raw = tmp_path / "canonical.jsonl"
    raw.write_text("".join(json.dumps(e) + "\n" for e in exs))   # arguments as objects, ids, meta
    with client(emu) as tc:
        with pytest.raises(ProviderAPIError, match=r"line 1: message 1 tool_calls\[0\].function.arguments"):
            tc.upload_file(raw)
        counts = write_training_file(exs, tmp_path / "together.jsonl")
        assert counts == {"rows": 5, "arguments_encoded": 5, "tools_rows": 5}
        info = tc.upload_file(tmp_path / "together.jsonl")
    assert info["validation_report"]["dataset_has_tools"] and info["validation_report"]["nlines"] == 5
    row = json.loads((tmp_path / "together.jsonl").read_text().splitlines()[0])
    assert set(row) == {"messages", "tools"}
    call = row["messages"][1]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == exs[0]["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert exs[0]["messages"][1]["tool_calls"][0]["function"]["arguments"] == {"content": "locker 0 has code 0"}
