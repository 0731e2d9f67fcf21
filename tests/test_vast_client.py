"""The Vast.ai client against the emulator: search filters, rent, poll, destroy + confirm, retries."""
from __future__ import annotations

import logging

import pytest

from nursery_core.cloud import credentials as settings
from nursery_core.cloud.vast import VastAPIError, VastAuthError, VastClient
from nursery_core.emulators.vast import VastEmulator

KEY = "client-test-key-5678"


@pytest.fixture
def emu():
    e = VastEmulator(KEY).start()
    yield e
    e.stop()


@pytest.fixture
def client(emu):
    c = VastClient(KEY, emu.url, attempts=4, wait=0.01, max_wait=0.05, poll_interval=0.01)
    yield c
    c.close()


def rent(client, offer=4101003, label="nursery-jclient"):
    return client.rent(offer, image="pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime", disk_gb=20,
                       label=label, onstart="touch ~/.no_auto_tmux")


def test_key_and_url_come_from_env_or_secrets_toml(tmp_path, monkeypatch):
    monkeypatch.delenv("VAST_API_KEY", raising=False)
    monkeypatch.delenv("VAST_API_URL", raising=False)
    monkeypatch.setenv("NURSERY_SECRETS_FILE", str(tmp_path / "secrets.toml"))
    with pytest.raises(Exception, match="VAST_API_KEY"):
        settings.vast_api_key()
    (tmp_path / "secrets.toml").write_text('VAST_API_KEY = "from-toml"\n[vast]\napi_url = "http://127.0.0.1:9/"\n')
    assert settings.vast_api_key() == "from-toml"
    assert settings.vast_api_url() == "http://127.0.0.1:9"
    assert settings.key_status("vast") == {"set": True, "source": "secrets.toml", "name": "VAST_API_KEY"}
    monkeypatch.setenv("VAST_API_KEY", "from-env")
    assert settings.vast_api_key() == "from-env"
    assert "from-env" not in repr(VastClient())
    (tmp_path / "secrets.toml").write_text("VAST_API_KEY = \n")
    monkeypatch.delenv("VAST_API_KEY")
    with pytest.raises(Exception, match="secrets.toml"):
        settings.vast_api_key()


def test_search_sends_the_filters_and_returns_cheapest_fitting_first(client, emu):
    offers = client.search_offers(max_dph=0.5, min_gpu_ram_gb=20, disk_gb=20)
    assert offers, "some offer fits"
    assert [o["dph_total"] for o in offers] == sorted(o["dph_total"] for o in offers)
    for o in offers:
        assert o["dph_total"] <= 0.5 and o["gpu_ram"] >= 20000 and o["reliability"] > 0.95
        assert o["verification"] == "verified" and o["num_gpus"] == 1
    assert offers[0]["gpu_name"] == "RTX 3090"
    assert [o["gpu_name"] for o in client.search_offers(gpu_name="RTX_4090", max_dph=1)] == ["RTX 4090"]
    assert client.search_offers(max_dph=0.01) == []
    # storage is priced in: a bigger disk can push an offer over the cap
    cheap = client.search_offers(max_dph=0.16, min_gpu_ram_gb=20, disk_gb=10)
    assert [o["id"] for o in cheap] == [4101002]
    assert client.search_offers(max_dph=0.16, min_gpu_ram_gb=20, disk_gb=200) == []


def test_rent_poll_attach_list_destroy_and_confirm(client, emu, tmp_path):
    r = rent(client)
    assert r["adopted"] is False
    iid = r["instance_id"]
    statuses = []
    inst = client.wait_running(iid, timeout=10, on_status=lambda i: statuses.append(i["actual_status"]))
    assert statuses == [None, "loading", "running"]
    assert client.ssh_endpoint(inst) == ("127.0.0.1", emu.ssh_port)
    client.attach_ssh_key(iid, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKEYKEYKEYKEYKEYKEYKEYKEYKEYKEYKEYKEYKEYKEYK x")
    listed = client.list_instances(label_prefix="nursery-")
    assert [i["id"] for i in listed] == [iid]
    assert client.destroy(iid) is True
    assert client.show(iid) is None and emu.live_instances() == []
    assert client.destroy(iid) is False  # already gone is not an error


def test_list_follows_pages(client, emu):
    emu.offers.update({8000 + i: dict(emu.offers[4101002], id=8000 + i) for i in range(27)})
    made = [rent(client, 8000 + i, label=f"nursery-j{i}")["instance_id"] for i in range(27)]
    assert [i["id"] for i in client.list_instances()] == made
    assert [i["id"] for i in client.list_instances(label="nursery-j26")] == [made[26]]
    for iid in made:
        client.destroy(iid, confirm=False)
    assert emu.live_instances() == []


def test_terminal_state_and_timeout_raise(client, emu):
    iid = rent(client)["instance_id"]
    emu.set_status(iid, "exited")
    with pytest.raises(VastAPIError, match="exited"):
        client.wait_running(iid, timeout=5)
    iid2 = rent(client, offer=4101002, label="nursery-j2")["instance_id"]
    emu.boot_polls = (1000, 0)
    with pytest.raises(VastAPIError, match="not running after"):
        client.wait_running(iid2, timeout=0.1)
    client.destroy(iid)
    client.destroy(iid2)
    assert emu.live_instances() == []


def test_retries_429_5xx_and_dropped_connections(client, emu, caplog):
    emu.add_fault("search", 429)
    emu.add_fault("search", 502)
    emu.add_fault("search", 0)
    with caplog.at_level(logging.WARNING):
        assert client.search_offers(max_dph=1)
    assert [r["status"] for r in emu.requests if r["endpoint"] == "search"] == [429, 502, 0, 200]
    assert KEY not in caplog.text
    emu.add_fault("search", 503, count=10)
    with pytest.raises(VastAPIError, match="503") as exc:
        client.search_offers()
    assert KEY not in str(exc.value)


def test_destroy_is_retried_through_5xx_and_confirmed(client, emu):
    iid = rent(client)["instance_id"]
    emu.add_fault("destroy", 500, count=3)
    emu.add_fault("show", 503, count=1)
    assert client.destroy(iid) is True
    assert emu.live_instances() == []
    assert [r["status"] for r in emu.requests if r["endpoint"] == "destroy"] == [500, 500, 500, 200]


def test_rent_adopts_the_instance_a_5xx_reply_hid(client, emu):
    emu.add_fault("rent", 500, apply=True)
    r = rent(client)
    assert r["adopted"] is True
    assert [i["id"] for i in emu.live_instances()] == [r["instance_id"]]
    client.destroy(r["instance_id"])
    # a plain 503 (nothing happened) is simply retried
    emu.add_fault("rent", 503, count=2)
    r2 = rent(client, label="nursery-j3")
    assert r2["adopted"] is False and len(emu.live_instances()) == 1
    client.destroy(r2["instance_id"])
    # persistent failure: a clear error, nothing rented
    emu.add_fault("rent", 503, count=10)
    with pytest.raises(VastAPIError, match="failed after 4 attempts"):
        rent(client, label="nursery-j4")
    assert emu.live_instances() == []


@pytest.mark.parametrize("status", [401, 404])
def test_bad_key_is_a_clear_auth_error(status):
    with VastEmulator(KEY, auth_error_status=status) as e:
        c = VastClient("not-the-key", e.url, attempts=3, wait=0.01)
        with pytest.raises(VastAuthError, match="rejected the API key"):
            c.search_offers()
        with pytest.raises(VastAuthError):
            c.destroy(1234)
        # auth errors are not retried
        assert len([r for r in e.requests if r["endpoint"] == "search"]) == 1
