"""The Vast.ai emulator speaks the API's real shapes: content type, status progression, 410, auth, pages, faults."""
from __future__ import annotations

import base64
import json
import subprocess
import sys
import time

import httpx
import pytest

from nursery_core.emulators.vast import VastEmulator

KEY = "emu-test-key-1234"


@pytest.fixture
def emu(tmp_path):
    ak = tmp_path / "authorized_keys"
    ak.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBASEKEYBASEKEYBASEKEYBASEKEYBASEKEYBASEKEY base\n")
    e = VastEmulator(KEY, ssh_port=2222, authorized_keys=ak).start()
    yield e
    e.stop()


def http(emu, key=KEY):
    return httpx.Client(base_url=emu.url, headers={"Authorization": f"Bearer {key}"} if key else {})


def rent(c, offer_id=4101003, **extra):
    body = {"client_id": "me", "image": "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime", "disk": 20.0,
            "label": "nursery-jtest", "env": {"FOO": "bar", "-p 8080:8080": "1"}, "runtype": "ssh",
            "onstart": "touch ~/.no_auto_tmux", **extra}
    return c.put(f"/api/v0/asks/{offer_id}/", json=body)


def test_search_replies_exact_json_content_type_and_filters_like_the_cli(emu):
    with http(emu) as c:
        # the exact body the official CLI 1.9.1 sends: numbers as strings, gpu_ram scaled to MB
        q = {"verified": {"eq": True}, "external": {"eq": False}, "rentable": {"eq": True},
             "reliability": {"gt": "0.95"}, "dph_total": {"lt": "1.0"}, "num_gpus": {"eq": "1"},
             "gpu_ram": {"gte": 20000.0}, "order": [["dph_total", "asc"]], "type": "on-demand", "limit": 5,
             "allocated_storage": 5.0}
        r = c.post("/api/v0/bundles/", json=q)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    offers = r.json()["offers"]
    assert offers and len(offers) <= 5
    prices = [o["dph_total"] for o in offers]
    assert prices == sorted(prices)
    for o in offers:
        assert o["verification"] == "verified" and o["reliability"] > 0.95 and o["dph_total"] < 1.0
        assert o["gpu_ram"] >= 20000 and o["num_gpus"] == 1 and isinstance(o["gpu_ram"], int)
    # the unverified 4090 and the unreliable A5000 are filtered out, the 12 GB 3060 too
    ids = {o["id"] for o in offers}
    assert 4101005 not in ids and 4101004 not in ids and 4101001 not in ids


def test_search_gpu_name_underscore_in_operator_and_storage_pricing(emu):
    with http(emu) as c:
        r1 = c.post("/api/v0/bundles/", json={"gpu_name": {"eq": "RTX_4090"}, "allocated_storage": 5.0})
        r2 = c.post("/api/v0/bundles/", json={"gpu_name": {"in": ["RTX_3090", "H100 SXM"]},
                                              "allocated_storage": 100.0, "order": [["dph_total", "asc"]]})
        legacy = c.get("/api/v0/bundles", params={"q": json.dumps({"gpu_name": {"eq": "RTX 4090"}})})
    assert {o["gpu_name"] for o in r1.json()["offers"]} == {"RTX 4090"}
    names = {o["gpu_name"] for o in r2.json()["offers"]}
    assert names == {"RTX 3090", "H100 SXM"}
    o = r2.json()["offers"][0]
    assert o["dph_total"] == pytest.approx(o["dph_base"] + o["storage_cost"] * 100.0 / 720.0)
    assert {x["id"] for x in legacy.json()["offers"]} == {x["id"] for x in r1.json()["offers"]}


def test_instance_status_progresses_null_loading_running_with_the_fields_the_cli_reads(emu):
    with http(emu) as c:
        r = rent(c)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        body = r.json()
        assert body["success"] is True and isinstance(body["new_contract"], int)
        assert body["instance_api_key"]
        iid = body["new_contract"]
        seen = []
        for _ in range(5):
            inst = c.get(f"/api/v0/instances/{iid}/", params={"owner": "me"}).json()["instances"]
            seen.append(inst["actual_status"])
        # the official client does exactly this with every row
        inst["duration"] = time.time() - inst["start_date"]
        inst["extra_env"] = {k: v for k, v in inst["extra_env"]}
    assert seen[:4] == [None, "loading", "loading", "running"]
    assert inst["extra_env"] == {"FOO": "bar", "-p 8080:8080": "1"}
    assert inst["ports"]["22/tcp"][0]["HostPort"] == "2222"
    assert inst["public_ipaddr"] == "127.0.0.1" and inst["ssh_port"] == 2222
    assert inst["label"] == "nursery-jtest" and inst["intended_status"] == "running"
    for field in ("cur_state", "status_msg", "dph_total", "image_uuid", "image_runtype", "machine_id",
                  "gpu_name", "num_gpus", "disk_space", "ssh_host"):
        assert field in inst
    assert isinstance(inst["dph_total"], float) and inst["disk_space"] == 20.0


def test_rented_offer_leaves_search_and_returns_after_destroy(emu):
    with http(emu) as c:
        iid = rent(c).json()["new_contract"]
        ids = {o["id"] for o in c.post("/api/v0/bundles/", json={"rentable": {"eq": True}}).json()["offers"]}
        assert 4101003 not in ids
        again = rent(c)
        assert again.status_code == 404 and "no_such_ask" in again.json()["msg"]
        assert c.request("DELETE", f"/api/v0/instances/{iid}/", json={}).json() == {"success": True}
        assert c.get(f"/api/v0/instances/{iid}/").json() == {"instances": None}
        assert c.request("DELETE", f"/api/v0/instances/{iid}/", json={}).status_code == 404
        ids = {o["id"] for o in c.post("/api/v0/bundles/", json={"rentable": {"eq": True}}).json()["offers"]}
        assert 4101003 in ids
    bill = [b for b in emu.billing() if b["id"] == iid][0]
    assert bill["destroyed"] and bill["cost"] == pytest.approx(bill["seconds"] * bill["dph_total"] / 3600)


def test_rent_validation_errors(emu):
    with http(emu) as c:
        small = rent(c, disk=4)
        unknown = rent(c, offer_id=1)
    assert small.status_code == 400 and small.json()["error"] == "invalid_args"
    assert unknown.status_code == 404 and unknown.json()["error"] == "invalid_args"


def test_v0_instance_list_is_gone_with_410(emu):
    with http(emu) as c:
        r = c.get("/api/v0/instances/", params={"owner": "me"})
    assert r.status_code == 410
    assert r.json() == {"success": False, "error": "deprecated_endpoint",
                        "msg": "/api/v0/instances/ is deprecated. Use /api/v1/instances/ instead."}


@pytest.mark.parametrize("status", [401, 404])
def test_bad_key_is_an_auth_error_and_query_key_is_accepted(tmp_path, status):
    with VastEmulator(KEY, auth_error_status=status) as e:
        with http(e, key="wrong") as c:
            bad = c.post("/api/v0/bundles/", json={})
        with http(e, key=None) as c:
            missing = c.get("/api/v1/instances/")
            by_query = c.get("/api/v1/instances/", params={"api_key": KEY})
            no_auth_needed = c.get("/api/v0/gpu_names/unique/")
    assert bad.status_code == status and missing.status_code == status
    assert bad.json() == {"success": False, "error": "auth_error", "msg": "Invalid user key"}
    assert by_query.status_code == 200 and by_query.json()["success"] is True
    assert "RTX 4090" in no_auth_needed.json()["gpu_names"]
    # the request log never keeps the query string (where a legacy key would be)
    assert all("?" not in r["path"] for r in e.requests)


def test_container_key_only_controls_its_own_instance(emu):
    with http(emu) as c:
        a = rent(c).json()
        b = rent(c, offer_id=4101002).json()
        users = c.get("/api/v0/users/current").json()
    assert users["host_agreement_accepted"] is False and "credit" in users
    with http(emu, key=a["instance_api_key"]) as c:
        assert c.get(f"/api/v0/instances/{b['new_contract']}/").status_code == 401
        assert c.post("/api/v0/bundles/", json={}).status_code == 401
        assert c.request("DELETE", f"/api/v0/instances/{a['new_contract']}/", json={}).json()["success"] is True
    billing = {x["id"]: x for x in emu.billing()}
    assert billing[a["new_contract"]]["destroyed_by"] == "container"
    assert [i["id"] for i in emu.live_instances()] == [b["new_contract"]]


def test_v1_list_paginates_with_next_token_and_filters(emu):
    emu.offers.update({9000 + i: dict(emu.offers[4101002], id=9000 + i, machine_id=60000 + i) for i in range(30)})
    with http(emu) as c:
        made = [rent(c, offer_id=9000 + i, label=f"nursery-j{i}" if i % 2 else "other").json()["new_contract"]
                for i in range(30)]
        params = {"select_filters": "{}", "order_by": json.dumps([{"col": "id", "dir": "asc"}]), "limit": 25}
        p1 = c.get("/api/v1/instances/", params=params).json()
        assert len(p1["instances"]) == 25 and p1["next_token"]
        assert json.loads(base64.b64decode(p1["next_token"]))["values"]["id"] == made[24]
        p2 = c.get("/api/v1/instances/", params={**params, "after_token": p1["next_token"]}).json()
        assert [i["id"] for i in p1["instances"] + p2["instances"]] == made and p2["next_token"] is None
        assert p1["total_instances"] == 30 and p1["label_counts"]["other"] == 15
        f = c.get("/api/v1/instances/", params={**params, "select_filters": json.dumps(
            {"label": {"eq": "nursery-j3"}})}).json()
        assert [i["label"] for i in f["instances"]] == ["nursery-j3"] and f["instances_found"] == 1
        computed = c.get("/api/v1/instances/", params={"select_filters": json.dumps({"dph_total": {"lt": 1}})})
        assert computed.status_code == 400


def test_faults_429_5xx_drop_and_control_endpoint(emu):
    with http(emu) as c:
        r = c.post("/_emulator/faults", json={"endpoint": "search", "status": 429, "count": 1})
        assert r.json()["success"] is True
        emu.add_fault("search", 503, count=1)
        emu.add_fault("search", 0, count=1)
        limited = c.post("/api/v0/bundles/", json={})
        unavailable = c.post("/api/v0/bundles/", json={})
        with pytest.raises(httpx.TransportError):
            c.post("/api/v0/bundles/", json={})
    with http(emu) as c:
        ok = c.post("/api/v0/bundles/", json={})
        state = c.get("/_emulator/state").json()
    assert limited.status_code == 429 and "too frequent" in limited.text
    assert unavailable.status_code == 503 and "<html>" in unavailable.text
    assert ok.status_code == 200
    assert [x["status"] for x in state["requests"] if x["endpoint"] == "search"] == [429, 503, 0, 200]


def test_fault_with_apply_rents_although_the_reply_is_500(emu):
    emu.add_fault("rent", 500, apply=True)
    with http(emu) as c:
        r = rent(c)
    assert r.status_code == 500
    assert [i["label"] for i in emu.live_instances()] == ["nursery-jtest"]


def test_forced_terminal_state_and_ssh_key_attach_writes_authorized_keys(emu):
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJOBKEYJOBKEYJOBKEYJOBKEYJOBKEYJOBKEYJOBKEY nursery-j1"
    with http(emu) as c:
        iid = rent(c).json()["new_contract"]
        assert c.post(f"/api/v0/instances/{iid}/ssh/", json={"ssh_key": key}).json()["success"] is True
        assert key in emu.authorized_keys.read_text()
        keys = json.loads(c.get(f"/api/v0/instances/{iid}/ssh/").json()["ssh_keys"])
        assert [k["public_key"] for k in keys] == [key]
        c.post(f"/_emulator/instances/{iid}/status", json={"actual_status": "exited"})
        assert c.get(f"/api/v0/instances/{iid}/").json()["instances"]["actual_status"] == "exited"
        assert c.put(f"/api/v0/instances/{iid}/", json={"label": "renamed"}).json() == {"success": True}
        c.request("DELETE", f"/api/v0/instances/{iid}/", json={})
    text = emu.authorized_keys.read_text()
    assert key not in text and "base" in text


def test_onstart_runs_with_container_identity_and_can_destroy_itself(tmp_path):
    marker = tmp_path / "onstart.out"
    onstart = (f'echo "$CONTAINER_ID" > {marker}; '
               'curl -s -X DELETE -H "Authorization: Bearer $CONTAINER_API_KEY" '
               '"$EMU_URL/api/v0/instances/$CONTAINER_ID/" >/dev/null')
    with VastEmulator(KEY, run_onstart=True, boot_polls=(0, 0)) as e:
        with http(e) as c:
            iid = rent(c, onstart=onstart, env={"EMU_URL": e.url}).json()["new_contract"]
            assert c.get(f"/api/v0/instances/{iid}/").json()["instances"]["actual_status"] == "running"
            for _ in range(100):
                if not e.live_instances():
                    break
                time.sleep(0.05)
        assert marker.read_text().strip() == str(iid)
        assert e.live_instances() == []
        assert e.billing()[0]["destroyed_by"] == "container"


def test_scheduled_self_destroy(emu):
    with http(emu) as c:
        iid = rent(c).json()["new_contract"]
        c.post(f"/_emulator/instances/{iid}/schedule_destroy", json={"after_s": 0.05})
    for _ in range(100):
        if not emu.live_instances():
            break
        time.sleep(0.02)
    assert emu.live_instances() == [] and emu.billing()[0]["destroyed_by"] == "scheduled"


def test_standalone_module_serves(tmp_path):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen([sys.executable, "-m", "nursery_core.emulators.vast", "--port", str(port),
                             "--api-key", KEY], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"127.0.0.1:{port}" in line
        r = httpx.post(f"http://127.0.0.1:{port}/api/v0/bundles/", json={"limit": 1},
                       headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 200 and len(r.json()["offers"]) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
