"""No provider's API key (Vast.ai, RunPod, Together.ai) ever reaches the database (incl. its WAL), logs, job
files, events, the rented machine or the Settings table."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from cloud_helpers import KEY, cloud_env, queue, runner, vast, wait  # noqa: F401
from provider_fixtures import box, replicate, runpod, tiny_trainer, together  # noqa: F401

pytestmark = [pytest.mark.ssh, pytest.mark.slow]


def _files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            try:
                if needle in p.read_bytes():
                    hits.append(str(p))
            except OSError:
                pass
    return hits


def test_api_key_never_stored_logged_or_shown(vast, runner, tiny_model_dir, cloud_env, caplog, capsys):
    caplog.set_level(logging.DEBUG)  # everything any logger says, httpx's request lines included
    vast.add_fault("search", 429)    # a retried call is logged: the key must not be in that either
    job = queue(tiny_model_dir, max_dph=0.5)
    st = wait(job["id"])
    assert st["status"] == "succeeded", st["error"]
    home = Path(os.environ["NURSERY_HOME"])
    needle = KEY.encode()
    from nursery_core.store import get_store

    store = get_store()
    # the DB file and its WAL/SHM side files, read as raw bytes before any checkpoint
    db_files = [p for p in home.iterdir() if p.name.startswith("nursery.db")]
    assert any(p.name.endswith("-wal") for p in db_files) or db_files
    for p in db_files:
        assert needle not in p.read_bytes(), p
    # every file Nursery wrote: job dir (config, events, logs), the model, and the remote side
    assert _files_containing(home, needle) == []
    assert _files_containing(cloud_env, needle) == []
    # events and job rows as the UI and CLI read them
    events = store.job_events(job["id"])
    assert events and KEY not in json.dumps(events, default=str)
    assert KEY not in json.dumps(store.get_job(job["id"]), default=str)
    assert KEY not in json.dumps(st, default=str)
    assert KEY not in json.dumps(store.list_instances(), default=str)
    # logs and console output
    assert "Vast.ai API call failed" in caplog.text
    assert KEY not in caplog.text
    out = capsys.readouterr()
    assert KEY not in out.out and KEY not in out.err
    # what the instance was given (env, onstart) holds no key of ours
    inst = vast.state()["instances"][0]
    assert KEY not in json.dumps(inst)
    assert "$CONTAINER_API_KEY" in inst["onstart"]
    # and the provider table only says it is set
    from nursery_core.cloud.providers import provider_table

    table = json.dumps(provider_table())
    assert KEY not in table and '"set": true' in table


def _assert_key_nowhere(key: str, job_id: str, st: dict, caplog, capsys, *roots: Path) -> None:
    """`key` is in no file under NURSERY_HOME (DB, WAL, job dir, model) or `roots`, no event, job row, status,
    instance row, log record or console line."""
    from nursery_core.store import get_store

    home = Path(os.environ["NURSERY_HOME"])
    for root in (home, *roots):
        assert _files_containing(root, key.encode()) == [], root
    store = get_store()
    assert store.job_events(job_id) and key not in json.dumps(store.job_events(job_id), default=str)
    for obj in (store.get_job(job_id), st, store.list_instances()):
        assert key not in json.dumps(obj, default=str)
    assert key not in caplog.text
    out = capsys.readouterr()
    assert key not in out.out and key not in out.err


def _one_run(kind: str, tiny_model_dir, **options) -> tuple[dict, dict]:
    from provider_fixtures import make_runner

    r = make_runner(kind)
    try:
        job = queue(tiny_model_dir, provider=kind, **options)
        st = wait(job["id"])
    finally:
        r.shutdown(timeout=30)
    assert st["status"] == "succeeded", st["error"]
    return job, st


def test_runpod_key_never_stored_logged_or_shown(runpod, tiny_model_dir, cloud_env, caplog, capsys):  # noqa: F811
    from provider_fixtures import RP_KEY

    caplog.set_level(logging.DEBUG)
    runpod.add_fault("gpuTypes", 429)  # a retried call is logged: the key must not be in that either
    job, st = _one_run("runpod", tiny_model_dir)
    assert "RunPod API call failed" in caplog.text
    _assert_key_nowhere(RP_KEY, job["id"], st, caplog, capsys, cloud_env)
    # the pod was given the run's public key, never the API key
    assert RP_KEY not in json.dumps(runpod.state(), default=str)


def test_together_key_never_stored_logged_or_shown(together, tiny_model_dir, caplog, capsys):  # noqa: F811
    from provider_fixtures import TG_KEY

    caplog.set_level(logging.DEBUG)
    together.add_fault("limits", 429)
    job, st = _one_run("together", tiny_model_dir)
    assert "Together.ai API call failed" in caplog.text
    _assert_key_nowhere(TG_KEY, job["id"], st, caplog, capsys)


def test_replicate_token_never_stored_logged_or_shown(replicate, tiny_model_dir, caplog, capsys):  # noqa: F811
    from provider_fixtures import R8_KEY

    caplog.set_level(logging.DEBUG)
    replicate.add_fault("files_create", 429)
    job, st = _one_run("replicate", tiny_model_dir, trainer=tiny_trainer(replicate))
    assert "Replicate API call failed" in caplog.text
    _assert_key_nowhere(R8_KEY, job["id"], st, caplog, capsys)
    # the rendered training data and the trainer's inputs carry no token
    assert R8_KEY not in json.dumps(replicate.state(), default=str)


def test_modal_token_never_reaches_the_generated_app_or_the_job(tiny_model_dir, tmp_path, monkeypatch, caplog,
                                                                capsys, nursery_home):
    from nursery_core.jobs.backends import BACKENDS
    from nursery_core.jobs.backends.modal import ModalBackend
    from provider_fixtures import LocalModal, make_runner

    secret = "as-modal-secret-3141592"
    for k, v in {"MODAL_TOKEN_ID": "ak-modal-id-2718", "MODAL_TOKEN_SECRET": secret,
                 "NURSERY_MODAL_VOLUME_ROOT": str(tmp_path / "vol"), "NURSERY_MODAL_POLL_S": "0.05",
                 "NURSERY_SECRETS_FILE": str(tmp_path / "none.toml")}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setitem(BACKENDS, "modal", ModalBackend(launcher_factory=LocalModal(tmp_path / "vol")))
    caplog.set_level(logging.DEBUG)
    r = make_runner("modal")
    try:
        job = queue(tiny_model_dir, provider="modal")
        st = wait(job["id"])
    finally:
        r.shutdown(timeout=30)
    assert st["status"] == "succeeded", st["error"]
    for key in (secret, "ak-modal-id-2718"):
        _assert_key_nowhere(key, job["id"], st, caplog, capsys, tmp_path / "vol")
    assert secret not in (Path(st["job_dir"]) / "modal" / "app.py").read_text()


def test_settings_lists_all_five_providers_with_key_status_never_values(monkeypatch, tmp_path):
    from nursery_core.cloud.credentials import PROVIDER_KEYS
    from nursery_core.cloud.providers import provider_table
    from nursery_core.jobs.backends import cloud_providers

    monkeypatch.setenv("NURSERY_SECRETS_FILE", str(tmp_path / "secrets.toml"))
    (tmp_path / "secrets.toml").write_text('[together]\napi_key = "tg-from-toml-secret-7781"\n')
    values = {"VAST_API_KEY": "vast-secret-1", "RUNPOD_API_KEY": "runpod-secret-2",
              "REPLICATE_API_TOKEN": "r8-secret-3", "MODAL_TOKEN_ID": "ak-secret-4"}
    for name in [n for n, _ in PROVIDER_KEYS.values()]:
        monkeypatch.delenv(name, raising=False)
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    table = {row["id"]: row for row in provider_table()}
    assert set(table) >= {"vast", "runpod", "together", "replicate", "modal", "ssh"}
    for pid in ("vast", "runpod", "together", "replicate", "modal"):
        assert table[pid]["key"]["set"] is True, pid
    assert table["together"]["key"]["source"] == "secrets.toml" and table["runpod"]["key"]["source"] == "env"
    # every provider the registry runs is marked supported in Settings, and only those
    for pid in ("vast", "runpod", "together", "replicate", "modal"):
        assert table[pid]["supported"] == (pid in cloud_providers()), pid
    text = json.dumps(list(table.values()))
    for secret in [*values.values(), "tg-from-toml-secret-7781"]:
        assert secret not in text
    monkeypatch.delenv("RUNPOD_API_KEY")
    assert provider_table()[[r["id"] for r in provider_table()].index("runpod")]["key"]["set"] is False
