"""The store: migrations, domain verbs, final states that stick, and no 'database is locked' under load."""
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from nursery_core.errors import AlreadyExists, NotFound
from nursery_core.status import JobStatus
from nursery_core.store import MIGRATIONS, Store, apply_migrations

ROOT = Path(__file__).resolve().parent.parent


def test_migrations_apply_once_and_create_every_table_and_index(tmp_path):
    s = Store(tmp_path / "a.db")
    assert apply_migrations(s.db) == []  # second application is a no-op
    names = set(s.db.table_names())
    assert {"datasets", "jobs", "job_events", "models", "evaluations", "deployments", "instances",
            "settings", "_migrations"} <= names
    assert [r["name"] for r in s.db["_migrations"].rows] == [m[0] for m in MIGRATIONS]
    job_indexes = {tuple(i.columns) for i in s.db["jobs"].indexes}
    assert ("status",) in job_indexes and ("created_at",) in job_indexes
    assert ("job_id", "id") in {tuple(i.columns) for i in s.db["job_events"].indexes}
    assert s.db.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_dataset_rows_round_trip_json_and_refuse_silent_overwrite(store):
    store.add_dataset({"name": "d1", "path": "x", "num_examples": 2, "tools": ["a"], "categories": {"call": 2}})
    row = store.get_dataset("d1")
    assert row["tools"] == ["a"] and row["categories"] == {"call": 2}
    with pytest.raises(AlreadyExists):
        store.add_dataset({"name": "d1", "path": "y", "num_examples": 9})
    assert store.get_dataset("d1")["num_examples"] == 2
    with pytest.raises(NotFound):
        store.get_dataset("nope")


def test_queue_claims_oldest_first_and_respects_the_running_limit(store):
    a = store.create_job({"kind": "local"})
    b = store.create_job({"kind": "local"})
    assert store.claim_next_job("local", "r1")["id"] == a["id"]
    assert store.claim_next_job("local", "r1") is None  # one running at a time
    store.finish_job(a["id"], JobStatus.SUCCEEDED)
    assert store.claim_next_job("local", "r1")["id"] == b["id"]


def test_cancel_of_a_queued_job_is_immediate_and_final_states_stick(store):
    j = store.create_job({"kind": "local"})
    assert store.request_cancel(j["id"])["status"] == "cancelled"
    assert store.claim_next_job("local", "r") is None
    store.finish_job(j["id"], JobStatus.FAILED, error="late")
    assert store.get_job(j["id"])["status"] == "cancelled"


def test_events_update_live_columns(store):
    j = store.create_job({"kind": "local"})
    store.record_event(j["id"], {"kind": "progress", "step": 5, "total_steps": 10, "loss": 1.5, "lr": 1e-4,
                                 "tokens_per_s": 100.0})
    job = store.get_job(j["id"])
    assert (job["step"], job["progress"], job["last_loss"], job["tokens_per_s"]) == (5, 0.5, 1.5, 100.0)
    ev = store.job_events(j["id"])
    assert ev[0]["loss"] == 1.5 and ev[0]["data"] == {"total_steps": 10}


def test_threads_hammering_the_store_never_see_database_locked(store):
    """8 threads × 150 mixed writes/reads through the public API, like many Streamlit sessions at once."""
    errors = []
    jobs = [store.create_job({"kind": "local"})["id"] for _ in range(4)]

    def work(i):
        try:
            for n in range(150):
                jid = jobs[(i + n) % len(jobs)]
                store.record_event(jid, {"kind": "progress", "step": n, "loss": 1.0 / (n + 1)})
                store.list_jobs(limit=20)
                store.overview_counts()
                if n % 25 == 0:
                    store.create_job({"kind": "local", "created_by": f"user{i}"})
        except Exception as e:  # noqa: BLE001 — collected: a failure in a thread must fail the test
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(len(store.job_events(j)) for j in jobs) == 8 * 150


def test_a_second_process_writes_while_this_one_does(store, nursery_home):
    """The CLI and the dashboard share the file: WAL + busy timeout keep both working."""
    code = ("from nursery_core.store import get_store\n"
            "s = get_store()\n"
            "for i in range(200): s.create_job({'kind': 'local', 'created_by': 'cli'})\n")
    p = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    for i in range(200):
        store.create_job({"kind": "local", "created_by": "ui"})
    assert p.wait(timeout=120) == 0
    assert store.count_jobs() == 400


def test_settings_round_trip(store):
    store.set_setting("ollama_host", "http://127.0.0.1:11434", by="ada")
    assert store.get_setting("ollama_host") == "http://127.0.0.1:11434"
    assert store.get_setting("missing", 5) == 5
