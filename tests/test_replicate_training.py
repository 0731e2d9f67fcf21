"""Replicate training end to end: `train-cloud --provider replicate` against the Replicate emulator through the
real runner: examples rendered with Nursery's chat template into text rows, files API upload, training on a
trainer version into a destination model, logs as progress, weights into models/; and the faults (a trainer
whose base Nursery cannot load, cancel mid-run, a crash, 5xx at create and at cancel, cancel mid-upload, budget
cap, price above cap, the reaper). No live training is left. The whole fault matrix, and what does not apply
(SSH), is the table in tests/fault_scenarios.py."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import fault_scenarios
from cloud_helpers import queue, wait, wait_until
from provider_fixtures import logs, runner_fixture, replicate, tiny_trainer  # noqa: F401

pytestmark = [pytest.mark.slow]


runner = runner_fixture("replicate")


def test_full_replicate_run_renders_text_rows_and_lands_a_model(replicate, runner, tiny_model_dir):
    replicate.add_fault("create", 500, apply=True)  # created although the answer was lost: adopted
    job = queue(tiny_model_dir, provider="replicate", trainer=tiny_trainer(replicate))
    st = wait(job["id"])
    assert st["status"] == "succeeded", st["error"]
    from nursery_core import nursery_list_models
    from nursery_core.store import get_store

    assert "cloud-adapter" in [m["name"] for m in nursery_list_models()]
    assert (Path(os.environ["NURSERY_HOME"]) / "models" / "cloud-adapter" / "adapter_config.json").exists()
    assert len(replicate.trainings) == 1 and replicate.live_trainings() == []
    assert replicate.files == {}
    t = next(iter(replicate.trainings.values()))
    assert t["destination"] == f"{replicate.owner}/nursery-cloud-adapter"
    cfg = get_store().get_job(job["id"])["config"]
    assert t["input"]["lora_rank"] == cfg["r"] and t["input"]["max_steps"] == 3
    # the uploaded rows were Nursery's rendering of each example (kept in the job dir)
    from nursery_core.base_models import load_tokenizer
    from nursery_core.training.rendering import render_conversation

    job_dir = Path(st["job_dir"])
    rows = [json.loads(x) for x in (job_dir / "replicate" / "train.jsonl").read_text().splitlines()]
    examples = [json.loads(x) for x in (job_dir / "data" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == len(examples) and all(set(r) == {"text"} for r in rows)
    assert rows[0]["text"] == render_conversation(load_tokenizer(str(tiny_model_dir)), examples[0])
    assert examples[0]["tools"][0]["function"]["name"] in rows[0]["text"]
    assert any("rendered" in m and "chat template" in m for m in logs(job["id"]))
    assert get_store().job_events(job["id"], kinds=["progress"])


def test_a_trainer_nursery_cannot_load_is_refused_before_upload(replicate, runner, tiny_model_dir):
    st = wait(queue(tiny_model_dir, provider="replicate", trainer="meta/llama-2-7b")["id"])
    assert st["status"] == "failed" and "Nursery cannot load" in st["error"] and "meta/llama-2-7b" in st["error"]
    assert replicate.trainings == {} and replicate.files == {}


def test_cancel_mid_run_cancels_the_training(replicate, runner, tiny_model_dir):
    replicate.running_polls = 100000
    from nursery_core.store import get_store

    job = queue(tiny_model_dir, provider="replicate", trainer=tiny_trainer(replicate))
    wait_until(lambda: get_store().job_events(job["id"], kinds=["progress"]), what="progress")
    get_store().request_cancel(job["id"])
    st = wait(job["id"])
    assert st["status"] == "cancelled" and "Replicate training" in st["error"]
    assert replicate.live_trainings() == []
    assert [b["status"] for b in replicate.billing()] == ["canceled"]


def test_crash_fails_with_the_reason(replicate, runner, tiny_model_dir):
    replicate.running_polls = 100000
    from nursery_core.store import get_store

    job = queue(tiny_model_dir, provider="replicate", trainer=tiny_trainer(replicate))
    wait_until(lambda: get_store().job_events(job["id"], kinds=["progress"]), what="progress")
    tid = get_store().get_job(job["id"])["provider_state"]["training_id"]
    replicate.fail_training(tid, "CUDA error: out of memory")
    st = wait(job["id"])
    assert st["status"] == "failed" and f"Replicate training {tid} failed" in st["error"]
    assert "out of memory" in st["error"] and replicate.live_trainings() == []


def test_persistent_5xx_at_create_fails_cleanly(replicate, runner, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("NURSERY_CLOUD_RETRY_ATTEMPTS", "2")
    replicate.add_fault("create", 503, count=100)
    st = wait(queue(tiny_model_dir, provider="replicate", trainer=tiny_trainer(replicate))["id"])
    assert st["status"] == "failed" and "503" in st["error"]
    assert replicate.live_trainings() == [] and replicate.files == {}


def test_cancel_during_upload_creates_no_training(replicate, runner, tiny_model_dir, monkeypatch):
    from nursery_core.cloud.replicate import ReplicateClient
    from nursery_core.store import get_store

    original = ReplicateClient.upload_file

    def upload_and_cancel(self, path, *a, **kw):
        for j in get_store().list_jobs(status="running"):
            get_store().request_cancel(j["id"])
        return original(self, path, *a, **kw)

    monkeypatch.setattr(ReplicateClient, "upload_file", upload_and_cancel)
    st = wait(queue(tiny_model_dir, provider="replicate", trainer=tiny_trainer(replicate))["id"])
    assert st["status"] == "cancelled" and "before the training was created" in st["error"]
    assert replicate.trainings == {} and replicate.files == {}  # nothing started; the upload was deleted


def test_price_above_cap_starts_nothing(replicate, runner, tiny_model_dir):
    # the LLM trainers' 8x A40 bills $0.0058/s = $20.88/h (replicate.com/pricing)
    st = wait(queue(tiny_model_dir, provider="replicate", trainer=tiny_trainer(replicate), max_dph=5)["id"])
    assert st["status"] == "failed"
    assert "$20.88/h" in st["error"] and "above your cap of max $5/h" in st["error"]
    assert replicate.trainings == {} and replicate.files == {}


def test_budget_cap_cancels_the_training(replicate, runner, tiny_model_dir, monkeypatch):
    # $0.001 at $0.0058/s is under 0.2 s of processing; polls of 0.5 s keep the 3 steps from finishing first
    monkeypatch.setenv("NURSERY_REPLICATE_POLL_S", "0.5")
    st = wait(queue(tiny_model_dir, provider="replicate", trainer=tiny_trainer(replicate), max_cost=0.001)["id"])
    assert st["status"] == "failed"
    assert "budget cap reached" in st["error"] and "Replicate training" in st["error"]
    assert replicate.live_trainings() == [] and replicate.files == {}
    assert [b["status"] for b in replicate.billing()] == ["canceled"]


def test_persistent_5xx_at_cancel_names_the_training_and_the_reaper_ends_it(replicate, runner, tiny_model_dir,
                                                                             monkeypatch):
    fault_scenarios.cancel_5xx_then_reaper(
        fault_scenarios.Cloud("replicate", replicate.live_trainings), replicate, tiny_model_dir, monkeypatch,
        poll_env="NURSERY_REPLICATE_POLL_S", id_key="training_id", what="Replicate training",
        trainer=tiny_trainer(replicate))


def test_reaper_cancels_a_training_whose_job_is_gone(replicate, tiny_model_dir, nursery_home):
    # what a killed dashboard leaves: a recorded, still running training no runner will finish
    from nursery_core import nursery_reap_instances
    from nursery_core.cloud.replicate import ReplicateClient
    from nursery_core.store import get_store

    replicate.running_polls = 100000
    trainer = tiny_trainer(replicate)
    with ReplicateClient() as c:
        version = c.trainer_version(trainer)
        c.ensure_model(replicate.owner, "orphan")
        t = c.create_training(trainer, version, destination=f"{replicate.owner}/orphan",
                              input={"train_data": "https://example.invalid/none.jsonl"})
    get_store().record_instance({"id": t["id"], "provider": "replicate", "job_id": "gone-job",
                                 "label": "nursery-gone-job", "state": "starting"})
    dry = nursery_reap_instances(dry_run=True)
    assert [(o["provider"], o["instance_id"], o["job_state"]) for o in dry["orphans"]] == [
        ("replicate", t["id"], "no such job")]
    assert replicate.live_trainings() == [t["id"]]
    reaped = nursery_reap_instances()
    assert reaped["destroyed"] == [t["id"]] and reaped["errors"] == []
    assert replicate.live_trainings() == [] and get_store().list_instances(live_only=True) == []


def test_cost_rate_per_hardware_with_the_env_override(monkeypatch):
    from nursery_core.cloud.replicate import DEFAULT_TRAINING_HARDWARE, HARDWARE_USD_PER_S, usd_per_second

    monkeypatch.delenv("NURSERY_REPLICATE_USD_PER_S", raising=False)
    assert usd_per_second() == (0.0058, "replicate.com/pricing (gpu-a40-large-8x)")
    assert DEFAULT_TRAINING_HARDWARE == "gpu-a40-large-8x"
    assert usd_per_second("gpu-h100")[0] == HARDWARE_USD_PER_S["gpu-h100"] == 0.001525
    with pytest.raises(ValueError, match="unknown Replicate hardware 'gpu-x'"):
        usd_per_second("gpu-x")
    monkeypatch.setenv("NURSERY_REPLICATE_USD_PER_S", "0.002")
    assert usd_per_second("gpu-h100") == (0.002, "NURSERY_REPLICATE_USD_PER_S")
    monkeypatch.setenv("NURSERY_REPLICATE_USD_PER_S", "cheap")
    with pytest.raises(ValueError, match="NURSERY_REPLICATE_USD_PER_S must be a number"):
        usd_per_second()


def test_request_validation(replicate, monkeypatch):
    from nursery_core.errors import InvalidConfig, InvalidInput
    from nursery_core.jobs.backends import get_provider

    p = get_provider("replicate")
    assert p.request({"trainer": "a/b"}, None) == {"trainer": "a/b", "destination": None, "hardware": None}
    assert p.request({"trainer": "a/b", "hardware": "gpu-h100"}, None)["hardware"] == "gpu-h100"
    for bad, field in (({}, "trainer"), ({"trainer": "Not Valid"}, "trainer"),
                       ({"trainer": "a/b", "destination": "x"}, "destination"),
                       ({"trainer": "a/b", "hardware": "gpu-b9000"}, "hardware"),
                       ({"trainer": "a/b", "gpu": "H100"}, "gpu")):
        with pytest.raises(InvalidInput) as e:
            p.request(bad, None)
        assert e.value.field == field
    monkeypatch.delenv("REPLICATE_OWNER")
    with pytest.raises(InvalidConfig, match="REPLICATE_OWNER"):
        p.request({"trainer": "a/b"}, None)
    monkeypatch.delenv("REPLICATE_API_TOKEN")
    with pytest.raises(InvalidConfig, match="REPLICATE_API_TOKEN"):
        p.request({"trainer": "a/b", "destination": "a/c"}, None)
