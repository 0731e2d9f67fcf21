"""Together.ai training end to end: `train-cloud --provider together` against the Together emulator, through the
real runner: upload, price check, create, follow, download into models/, and the faults (cancel mid-run, a
crash, price above the cap, 5xx at create and at cancel, cancel mid-upload, budget cap, the reaper). Every test
ends with no live fine-tune in the emulator. The whole fault matrix, and what does not apply to a managed API
(SSH), is the table in tests/fault_scenarios.py."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import fault_scenarios
from cloud_helpers import FAST, queue, wait, wait_until
from provider_fixtures import logs, runner_fixture, together  # noqa: F401

pytestmark = [pytest.mark.slow]

runner = runner_fixture("together")


def _ft_id(job_id: str) -> str:
    from nursery_core.store import get_store

    return wait_until(lambda: (get_store().get_job(job_id).get("provider_state") or {}).get("fine_tune_id"),
                      what="the fine-tune id")


def test_full_together_run_produces_a_listed_tested_model(together, runner, tiny_model_dir, monkeypatch):
    together.add_fault("create", 500, apply=True)  # created, but the answer is lost: adopted, not duplicated
    job = queue(tiny_model_dir, provider="together", max_cost=5)
    st = wait(job["id"])
    assert st["status"] == "succeeded", st["error"]
    from nursery_core import nursery_list_models
    from nursery_core.interactive import nursery_test_model
    from nursery_core.store import get_store

    assert "cloud-adapter" in [m["name"] for m in nursery_list_models()]
    model_dir = Path(os.environ["NURSERY_HOME"]) / "models" / "cloud-adapter"
    assert (model_dir / "adapter_config.json").exists()
    assert len(together.jobs) == 1 and together.live_jobs() == []
    assert together.files == {}  # the uploaded data did not stay with Together
    ft = next(iter(together.jobs.values()))
    # the run's hyper-parameters reached Together's fields
    cfg = get_store().get_job(job["id"])["config"]
    assert ft["training_type"]["lora_r"] == cfg["r"] and ft["learning_rate"] == cfg["learning_rate"]
    assert ft["batch_size"] == FAST["batch_size"] and ft["validation_file"]
    lines = logs(job["id"])
    assert any("max_steps 3 ignored" in m for m in lines)
    # both price estimates, each labelled with its source, in the job's events and state
    price = next(m for m in lines if m.startswith("price estimates: "))
    assert "Together's $" in price and "estimate-price API" in price
    assert "Nursery's $" in price and "docs.together.ai/docs/fine-tuning/pricing" in price
    assert any("messages+tools format" in m for m in lines)
    assert st["step"] == ft["total_steps"] and get_store().job_events(job["id"], kinds=["progress"])
    assert st["actual"]["provider"] == "together" and st["actual"]["fine_tune_id"] == ft["id"]
    state = get_store().get_job(job["id"])["provider_state"]
    assert state["together_estimate_usd"] > 0 and state["nursery_estimate_usd"] > 0
    # the same rate on nearly the same token counts (Nursery's tokenizer vs Together's count)
    assert 0.33 < state["nursery_estimate_usd"] / state["together_estimate_usd"] < 3
    assert st["actual"]["nursery_estimate_usd"] == state["nursery_estimate_usd"]
    r = nursery_test_model("cloud-adapter", "Remember that the garage code is 4821.", max_new_tokens=4)
    assert r["model"] == "cloud-adapter"


def test_cancel_mid_run_cancels_the_fine_tune(together, runner, tiny_model_dir):
    together.running_polls = 100000
    from nursery_core.store import get_store

    job = queue(tiny_model_dir, provider="together")
    wait_until(lambda: get_store().job_events(job["id"], kinds=["progress"]), what="progress")
    get_store().request_cancel(job["id"])
    st = wait(job["id"])
    assert st["status"] == "cancelled" and "Together fine-tune" in st["error"]
    assert together.live_jobs() == []
    assert [b["status"] for b in together.billing()] == ["cancelled"]


def test_crash_fails_with_the_reason(together, runner, tiny_model_dir):
    together.running_polls = 100000
    from nursery_core.store import get_store

    job = queue(tiny_model_dir, provider="together")
    ft_id = _ft_id(job["id"])
    wait_until(lambda: get_store().job_events(job["id"], kinds=["progress"]), what="progress")
    together.fail_job(ft_id, message="CUDA error: an illegal memory access was encountered")
    st = wait(job["id"])
    assert st["status"] == "failed"
    assert f"Together fine-tune {ft_id} ended error" in st["error"] and "illegal memory access" in st["error"]
    assert together.live_jobs() == []


def test_cancel_during_upload_sends_nothing_more(together, runner, tiny_model_dir, monkeypatch):
    from nursery_core.cloud.together import TogetherClient
    from nursery_core.store import get_store

    original, sent = TogetherClient.upload_file, []

    def upload_and_cancel(self, path, *a, **kw):
        if not sent:
            for j in get_store().list_jobs(status="running"):
                get_store().request_cancel(j["id"])
        sent.append(path)
        return original(self, path, *a, **kw)

    monkeypatch.setattr(TogetherClient, "upload_file", upload_and_cancel)
    st = wait(queue(tiny_model_dir, provider="together")["id"])
    assert st["status"] == "cancelled" and "upload" in st["error"]
    assert len(sent) == 1  # the validation file was not sent after the cancel
    assert together.jobs == {} and together.files == {}  # no fine-tune; the uploaded file was deleted


def test_price_above_cap_starts_nothing(together, runner, tiny_model_dir):
    st = wait(queue(tiny_model_dir, provider="together", max_cost=1e-9)["id"])
    assert st["status"] == "failed"
    assert "price estimate" in st["error"] and "above your cap" in st["error"]
    assert together.jobs == {} and together.files == {}


def test_persistent_5xx_at_create_fails_cleanly(together, runner, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("NURSERY_CLOUD_RETRY_ATTEMPTS", "2")
    together.add_fault("create", 503, count=100)
    st = wait(queue(tiny_model_dir, provider="together")["id"])
    assert st["status"] == "failed" and "503" in st["error"]
    assert together.live_jobs() == [] and together.files == {}


def test_budget_cap_cancels_the_fine_tune(together, runner, tiny_model_dir, monkeypatch):
    # Together bills a fine-tune as a whole (its estimate is checked against max_cost before create); the
    # running cap is max_hours: 0.0003 h is about one second, the fine-tune's 6 steps take 10 polls of 0.5 s
    monkeypatch.setenv("NURSERY_TOGETHER_POLL_S", "0.5")
    st = wait(queue(tiny_model_dir, provider="together", max_hours=0.0003)["id"])
    assert st["status"] == "failed"
    assert "budget cap reached (max 0.0003 h)" in st["error"] and "Together fine-tune" in st["error"]
    assert together.live_jobs() == [] and together.files == {}
    assert [b["status"] for b in together.billing()] == ["cancelled"]


def test_persistent_5xx_at_cancel_names_the_fine_tune_and_the_reaper_ends_it(together, runner, tiny_model_dir,
                                                                               monkeypatch):
    from nursery_core.cloud.together import TogetherClient

    def settle(ft_id):
        with TogetherClient() as c:
            c.retrieve(ft_id)  # one poll moves cancel_requested to cancelled

    fault_scenarios.cancel_5xx_then_reaper(
        fault_scenarios.Cloud("together", together.live_jobs), together, tiny_model_dir, monkeypatch,
        poll_env="NURSERY_TOGETHER_POLL_S", id_key="fine_tune_id", what="Together fine-tune", settle=settle)


def test_estimate_cost_shows_togethers_price_beside_nurserys(together, tiny_model_dir, capsys, monkeypatch):
    from nursery_core.cli import main
    from training_helpers import store_dataset

    ds = store_dataset("lockers", n=12)
    assert main(["estimate-cost", ds, "--base-model", str(tiny_model_dir), "--epochs", "2", "--provider",
                 "together", "--json"]) == 0
    quote = json.loads(capsys.readouterr().out)["price_quote"]
    assert quote["provider"] == "together" and quote["epochs"] == 2
    ours, theirs = quote["estimates"]
    assert ours["source"] == "Nursery" and ours["usd"] > 0 and "$0.48/M tokens" in ours["how"]
    assert theirs["source"] == "Together" and theirs["usd"] > 0 and "estimate-price" in theirs["how"]
    assert together.files == {} and together.jobs == {}  # priced, then deleted; nothing started
    assert main(["estimate-cost", ds, "--base-model", str(tiny_model_dir), "--provider", "together"]) == 0
    out = capsys.readouterr().out
    assert "price on together (3 epoch(s)):" in out  # the training default
    assert "Nursery's estimate: $" in out and "Together's estimate: $" in out
    # without a key Nursery's estimate still shows, and says why Together's is missing
    monkeypatch.delenv("TOGETHER_API_KEY")
    assert main(["estimate-cost", ds, "--base-model", str(tiny_model_dir), "--provider", "together"]) == 0
    out = capsys.readouterr().out
    assert "Nursery's estimate: $" in out and "Together's estimate: n/a (not asked:" in out
    # a provider that gives no price before a run is named
    assert main(["estimate-cost", ds, "--base-model", str(tiny_model_dir), "--provider", "runpod"]) != 0
    assert "RunPod gives no price before a run" in capsys.readouterr().err


def test_request_refuses_machine_options_and_a_missing_key(together, monkeypatch):
    from nursery_core.errors import InvalidConfig, InvalidInput
    from nursery_core.jobs.backends import get_provider

    p = get_provider("together")
    assert p.request({"gpu": None}, None) == {}
    with pytest.raises(InvalidInput, match="gpu"):
        p.request({"gpu": "H100"}, None)
    monkeypatch.delenv("TOGETHER_API_KEY")
    with pytest.raises(InvalidConfig, match="TOGETHER_API_KEY"):
        p.request({}, None)


def test_reaper_cancels_a_fine_tune_whose_job_is_gone(together, tiny_model_dir, tmp_path, monkeypatch):
    # what a killed dashboard leaves: a recorded, still running fine-tune whose job no runner will finish
    monkeypatch.delenv("VAST_API_KEY", raising=False)
    from nursery_core import nursery_reap_instances
    from nursery_core.cloud.together import TogetherClient, write_training_file
    from nursery_core.store import get_store
    from training_helpers import examples

    together.running_polls = 100000
    write_training_file(examples(4), tmp_path / "t.jsonl")
    with TogetherClient() as c:
        fid = c.upload_file(tmp_path / "t.jsonl")["id"]
        ft = c.create_fine_tune(c.lora_request(model=str(Path(tiny_model_dir).resolve()), training_file=fid,
                                               suffix="orphan", n_epochs=1, learning_rate=1e-4, batch_size=2,
                                               lora_r=4, lora_alpha=8))
    get_store().record_instance({"id": ft["id"], "provider": "together", "job_id": "gone-job",
                                 "label": "nursery-gone-job", "state": "starting"})
    dry = nursery_reap_instances(dry_run=True)
    assert [(o["provider"], o["instance_id"], o["job_state"]) for o in dry["orphans"]] == [
        ("together", ft["id"], "no such job")]
    assert together.live_jobs() == [ft["id"]]
    reaped = nursery_reap_instances()
    assert reaped["destroyed"] == [ft["id"]] and reaped["errors"] == []
    with TogetherClient() as c:
        c.retrieve(ft["id"])  # one poll moves cancel_requested to cancelled
    assert together.live_jobs() == []
    assert get_store().list_instances(live_only=True) == []
