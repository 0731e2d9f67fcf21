"""The Vast.ai API key never reaches the database (incl. its WAL), logs, job files, events or the instance."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from cloud_helpers import KEY, cloud_env, queue, runner, vast, wait  # noqa: F401

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
