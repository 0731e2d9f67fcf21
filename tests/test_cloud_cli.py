"""Cloud CLI commands and UI panel against the emulator (no SSH): offers, reaper, providers, validation."""
from __future__ import annotations

import json
import time

import pytest

from nursery_core.cli import main
from nursery_core.emulators.vast import VastEmulator

KEY = "cli-test-key-77aa"


@pytest.fixture
def emu(monkeypatch, tmp_path):
    e = VastEmulator(KEY).start()
    monkeypatch.setenv("VAST_API_KEY", KEY)
    monkeypatch.setenv("VAST_API_URL", e.url)
    monkeypatch.setenv("NURSERY_SECRETS_FILE", str(tmp_path / "secrets.toml"))
    monkeypatch.setenv("NURSERY_VAST_RETRY_WAIT", "0.01")
    monkeypatch.setenv("NURSERY_VAST_POLL_S", "0.01")
    yield e
    e.stop()


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def rent(emu, label):
    import httpx

    r = httpx.put(f"{emu.url}/api/v0/asks/{next(o for o in emu.offers.values() if o['rentable'])['id']}/",
                  json={"image": "img", "disk": 20, "label": label}, headers={"Authorization": f"Bearer {KEY}"})
    return r.json()["new_contract"]


def test_list_offers_json(emu, capsys):
    code, out, _ = run(capsys, "list-offers", "--max-dph", "0.5", "--min-gpu-ram", "20", "--json")
    rows = json.loads(out)
    assert code == 0 and rows
    assert all(r["dph_total"] <= 0.5 and r["gpu_ram_gb"] >= 20 for r in rows)
    assert set(rows[0]) >= {"id", "gpu_name", "gpu_ram_gb", "dph_total", "reliability"}
    code, out, _ = run(capsys, "list-offers", "--gpu", "H100_SXM")
    assert code == 0 and "H100 SXM" in out


def test_reap_instances_dry_run_then_destroy(emu, capsys, store):
    from nursery_core.status import JobStatus

    live_job = store.create_job({"kind": "vast", "dataset": "d", "base_model": "b", "output_name": "o",
                                 "status": JobStatus.QUEUED.value})
    done_job = store.create_job({"kind": "vast", "dataset": "d", "base_model": "b", "output_name": "o2",
                                 "status": JobStatus.SUCCEEDED.value})
    keep = rent(emu, f"nursery-{live_job['id']}")
    orphan1 = rent(emu, f"nursery-{done_job['id']}")
    orphan2 = rent(emu, "nursery-jdoesnotexist")
    other = rent(emu, "someone-elses-box")
    code, out, _ = run(capsys, "reap-instances", "--dry-run", "--json")
    res = json.loads(out)
    assert code == 0 and res["dry_run"] is True and res["destroyed"] == []
    assert sorted(o["instance_id"] for o in res["orphans"]) == sorted([orphan1, orphan2])
    assert [k["instance_id"] for k in res["kept"]] == [keep]
    assert len(emu.live_instances()) == 4
    code, out, _ = run(capsys, "reap-instances")
    assert code == 0 and "destroyed 2" in out
    assert sorted(i["id"] for i in emu.live_instances()) == sorted([keep, other])


def test_providers_table_shows_only_whether_keys_are_set(emu, capsys, tmp_path):
    (tmp_path / "secrets.toml").write_text(
        'TOGETHER_API_KEY = "tg-secret-value"\n[ssh_servers.box]\nhost = "10.0.0.5"\nport = 2200\nuser = "ml"\n')
    code, out, _ = run(capsys, "cloud-providers", "--json")
    rows = {r["id"]: r for r in json.loads(out)}
    assert code == 0
    assert rows["vast"]["supported"] and rows["ssh"]["supported"]
    assert rows["vast"]["key"] == {"set": True, "source": "env", "name": "VAST_API_KEY"}
    assert rows["together"]["key"]["set"] and rows["together"]["key"]["source"] == "secrets.toml"
    assert not rows["runpod"]["key"]["set"] and rows["runpod"]["supported"]
    assert "RUNPOD_API_KEY" in rows["runpod"]["needs"]
    # all five providers (and the own server) are supported; each lists its key's name
    assert all(r["supported"] for r in rows.values()) and set(rows) == {"vast", "ssh", "runpod", "together",
                                                                         "replicate", "modal"}
    assert rows["ssh"]["servers"][0]["host"] == "10.0.0.5" and rows["ssh"]["servers"][0]["port"] == 2200
    assert KEY not in out and "tg-secret-value" not in out


def test_train_cloud_validates_before_queueing(emu, capsys, monkeypatch, store):
    from training_helpers import store_dataset

    ds = store_dataset("lockers", n=6)
    code, _, err = run(capsys, "train-cloud", ds, "--provider", "ssh", "--json")
    assert code == 2 and "which SSH server" in err
    code, _, err = run(capsys, "train-cloud", ds, "--provider", "ssh", "--host", "127.0.0.1",
                       "--key-path", "/nonexistent/key")
    assert code == 2 and "does not exist" in err
    code, _, err = run(capsys, "train-cloud", ds, "--max-dph", "-1")
    assert code == 2 and "max_dph" in err
    monkeypatch.delenv("VAST_API_KEY")
    code, _, err = run(capsys, "train-cloud", ds)
    assert code == 2 and "VAST_API_KEY" in err and err.count("\n") == 1
    assert store.list_jobs() == []


def test_settings_panel_and_reaper_panel_render(emu, tmp_path):
    from streamlit.testing.v1 import AppTest

    def app():
        from nursery_core.webui.cloud_panel import render_provider_settings, render_reaper_panel
        render_provider_settings()
        render_reaper_panel()

    at = AppTest.from_function(app, default_timeout=30).run()
    assert not at.exception
    text = " ".join(e.value.to_csv() for e in at.dataframe)
    assert "Vast.ai" in text and "RunPod" in text and "Modal" in text and "key set (env)" in text
    assert "key not set" in text and "not yet supported" not in text
    assert KEY not in text and KEY not in "".join(str(c.value) for c in at.caption)
    at.button(key="reaper_dry").click().run()
    assert not at.exception
    assert any("No orphaned instances" in s.value for s in at.success)


def test_onstart_watchdog_destroys_the_instance_without_heartbeat(tmp_path):
    import httpx

    from nursery_core.cloud.watchdog import watchdog_onstart

    hb = tmp_path / "remote dir" / "j1" / "HEARTBEAT"
    with VastEmulator(KEY, run_onstart=True, boot_polls=(0, 0)) as e:
        script = watchdog_onstart(e.url, str(hb), grace_s=1, max_s=3600, check_s=0.2)
        c = httpx.Client(base_url=e.url, headers={"Authorization": f"Bearer {KEY}"})
        iid = c.put("/api/v0/asks/4101002/", json={"image": "img", "disk": 20, "label": "nursery-j1",
                                                   "onstart": script}).json()["new_contract"]
        assert c.get(f"/api/v0/instances/{iid}/").json()["instances"]["actual_status"] == "running"
        deadline = time.monotonic() + 30
        while e.live_instances() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert hb.exists()  # onstart created the heartbeat file the backend touches over SSH
        assert e.live_instances() == [] and e.billing()[0]["destroyed_by"] == "container"
        assert KEY not in script


def test_onstart_watchdog_enforces_max_hours_despite_heartbeats(tmp_path):
    import threading

    import httpx

    from nursery_core.cloud.watchdog import watchdog_onstart

    hb = tmp_path / "j2" / "HEARTBEAT"
    stop = threading.Event()

    def beat():
        while not stop.is_set():
            if hb.exists():
                hb.touch()
            time.sleep(0.1)

    t = threading.Thread(target=beat, daemon=True)
    t.start()
    try:
        with VastEmulator(KEY, run_onstart=True, boot_polls=(0, 0)) as e:
            script = watchdog_onstart(e.url, str(hb), grace_s=3600, max_s=1, check_s=0.2)
            c = httpx.Client(base_url=e.url, headers={"Authorization": f"Bearer {KEY}"})
            iid = c.put("/api/v0/asks/4101002/", json={"image": "img", "disk": 20, "onstart": script}).json()
            c.get(f"/api/v0/instances/{iid['new_contract']}/")
            deadline = time.monotonic() + 30
            while e.live_instances() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert e.live_instances() == [] and e.billing()[0]["destroyed_by"] == "container"
    finally:
        stop.set()


def test_train_cloud_wait_runs_the_job_and_reports_a_clean_failure(emu, capsys, tiny_model_dir):
    from training_helpers import store_dataset

    ds = store_dataset("lockers", n=6)
    emu.add_fault("rent", 503, count=100)
    code, out, err = run(capsys, "train-cloud", ds, "--base-model", str(tiny_model_dir), "--output", "m1",
                         "--max-dph", "0.5", "--max-steps", "2", "--wait", "--json")
    st = json.loads(out)
    assert code == 1 and st["status"] == "failed" and "renting offer" in st["error"]
    assert "queued on vast" in err and "chose offer" in err
    assert emu.live_instances() == [] and KEY not in out + err


def test_the_reaper_knows_every_provider():
    # a provider added without a way to find what a dead dashboard left (or a reason why nothing is left) fails
    from nursery_core.jobs.backends import cloud_providers
    from nursery_core.jobs.reaper import LISTERS, NOTHING_TO_REAP

    assert set(LISTERS) | set(NOTHING_TO_REAP) == set(cloud_providers())
    assert not set(LISTERS) & set(NOTHING_TO_REAP)
    assert all(len(why) > 40 for why in NOTHING_TO_REAP.values())


def test_job_panel_shows_togethers_estimate_beside_nurserys():
    from streamlit.testing.v1 import AppTest

    def app():
        from nursery_core.webui.cloud_panel import render_instance_state
        render_instance_state({"kind": "together", "cost_usd": 0.0012, "provider_state": {
            "phase": "running", "fine_tune_id": "ft-1", "together_estimate_usd": 0.0014,
            "nursery_estimate_usd": 0.0016, "nursery_estimate_how": "3,000 tokens processed at $0.48/M tokens"}})

    at = AppTest.from_function(app, default_timeout=30).run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Together's estimate"] == "$0.0014" and metrics["Nursery's estimate"] == "$0.0016"
