"""The only module with SQL: Nursery's metadata in SQLite, shared safely by Streamlit threads and runners.

One connection (check_same_thread=False, WAL, busy timeout for other processes such as the CLI) behind a
re-entrant lock; multi-row writes run in `db.atomic()` inside it. Rows come back as plain dicts with their
JSON columns decoded, so pages, the CLI (--json) and tests read the same shape.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, cast

import sqlite_utils

from . import paths
from .errors import AlreadyExists, DuplicateRun, InvalidInput, NotFound, SharedRequest
from .jobs.events import LOG
from .overlap import example_requests, normal_request
from .rows import DeploymentRow, JobRow, ModelRow
from .status import ACTIVE, JobStatus

# Columns stored as JSON text and decoded on read, per table.
JSON_COLUMNS: dict[str, tuple[str, ...]] = {
    "datasets": ("tools", "categories", "split", "stats", "report"),
    "jobs": ("config", "estimate", "actual", "provider_state", "budget"),
    "job_events": ("data",),
    "models": ("config", "metrics", "tools"),
    "evaluations": ("settings", "metrics"),
    "deployments": ("verification", "files"),
    "instances": ("data",),
}


PRIMARY_KEYS = {"datasets": "name", "jobs": "id", "job_events": "id", "models": "name", "evaluations": "id",
                "deployments": "id", "instances": "id", "settings": "key", "inflight_runs": "key"}


def now() -> str:
    """UTC ISO-8601 with milliseconds: sortable as text."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id(prefix: str = "") -> str:
    return prefix + uuid.uuid4().hex[:12]


# --------------------------------------------------------------------------------------- migrations
def _m001_initial(db: sqlite_utils.Database) -> None:
    db.table("datasets").create({
        "name": str, "path": str, "num_examples": int, "tools": str, "categories": str, "source": str,
        "description": str, "created_at": str, "created_by": str, "split": str, "stats": str, "report": str,
        "sha256": str,
    }, pk="name")
    db.table("jobs").create({
        "id": str, "kind": str, "status": str, "dataset": str, "base_model": str, "output_name": str,
        "config": str, "created_at": str, "created_by": str, "started_at": str, "finished_at": str,
        "heartbeat_at": str, "step": int, "total_steps": int, "progress": float, "last_loss": float,
        "eval_loss": float, "learning_rate": float, "tokens_per_s": float, "eta_s": float, "device": str,
        "pid": int, "runner_id": str, "error": str, "log_tail": str, "estimate": str, "actual": str,
        "cancel_requested": int, "provider_state": str, "budget": str, "cost_usd": float,
        "model_name": str,
    }, pk="id", defaults={"cancel_requested": 0, "step": 0, "progress": 0.0})
    db.table("job_events").create({
        "id": int, "job_id": str, "ts": str, "kind": str, "step": int, "loss": float, "eval_loss": float,
        "learning_rate": float, "tokens_per_s": float, "message": str, "data": str,
    }, pk="id")
    db.table("models").create({
        "name": str, "kind": str, "path": str, "base_model": str, "dataset": str, "job_id": str,
        "created_at": str, "created_by": str, "final_loss": float, "eval_loss": float, "config": str,
        "metrics": str, "tools": str,
    }, pk="name")
    db.table("evaluations").create({
        "id": str, "model": str, "dataset": str, "split": str, "created_at": str, "created_by": str,
        "num_examples": int, "settings": str, "metrics": str, "details_path": str, "ast_accuracy": float,
    }, pk="id")
    db.table("deployments").create({
        "id": str, "model": str, "created_at": str, "created_by": str, "status": str, "path": str,
        "gguf_path": str, "gguf_size": int, "outtype": str, "score": float, "verification": str,
        "ollama_name": str, "ollama_host": str, "registered": int, "files": str, "error": str,
    }, pk="id")
    db.table("instances").create({
        "id": str, "provider": str, "job_id": str, "label": str, "created_at": str, "destroyed_at": str,
        "state": str, "gpu_name": str, "dph": float, "data": str,
    }, pk="id")
    db.table("jobs").create_index(["status"])
    db.table("jobs").create_index(["created_at"])
    db.table("jobs").create_index(["created_by", "kind"])
    db.table("job_events").create_index(["job_id", "id"])
    db.table("datasets").create_index(["created_at"])
    db.table("models").create_index(["created_at"])
    db.table("models").create_index(["job_id"])
    db.table("evaluations").create_index(["model", "dataset"])
    db.table("evaluations").create_index(["created_at"])
    db.table("deployments").create_index(["model"])
    db.table("instances").create_index(["job_id"])


def _m002_settings(db: sqlite_utils.Database) -> None:
    db.table("settings").create({"key": str, "value": str, "updated_at": str, "updated_by": str}, pk="key")


def _m003_overview_indexes(db: sqlite_utils.Database) -> None:
    # The overview at team scale: live jobs per status in date order without a sort, and the cloud spend
    # per person from a covering index instead of a scan of every job row.
    db.table("jobs").create_index(["status", "created_at"], if_not_exists=True)
    db.table("jobs").create_index(["created_by", "kind", "cost_usd"], if_not_exists=True)


def _m004_golden_sets(db: sqlite_utils.Database) -> None:
    # datasets.kind: "training" (everything so far) or "golden" (hand-written, never split nor trained on).
    # dataset_requests: every distinct normalised user request per dataset, so "does this request appear in
    # a training dataset / a golden set?" is an index lookup, not a scan of every dataset file.
    db.table("datasets").add_column("kind", str, not_null_default="training")
    db.table("dataset_requests").create({"dataset": str, "norm": str, "request": str})
    db.table("dataset_requests").create_index(["norm"])
    db.table("dataset_requests").create_index(["dataset"])
    for name, path in db.execute("select name, path from datasets").fetchall():
        _index_file(db, name, Path(path or ""))


def _index_file(db: sqlite_utils.Database, name: str, path: Path) -> None:
    """Backfills the request index from a dataset file written before it existed (a missing file: nothing)."""
    if not path.is_file():
        return
    seen: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                ex = json.loads(line) if line.strip() else None
            except ValueError:
                continue
            for text in example_requests(ex) if isinstance(ex, dict) else ():
                seen.setdefault(normal_request(text), text)
    db.conn.executemany("insert into dataset_requests (dataset, norm, request) values (?, ?, ?)",
                        [(name, k, v) for k, v in seen.items() if k])


def _m005_inflight_runs(db: sqlite_utils.Database) -> None:
    # Runs that execute in the caller's process (deployments, evaluations): one row per run in flight, keyed
    # by what it writes, so a second identical run is refused while the first one lives.
    db.table("inflight_runs").create({"key": str, "kind": str, "label": str, "owner": str, "pid": int,
                                "pid_start": str, "host": str, "created_by": str, "started_at": str}, pk="key")


MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = [
    ("m001_initial", _m001_initial),
    ("m002_settings", _m002_settings),
    ("m003_overview_indexes", _m003_overview_indexes),
    ("m004_golden_sets", _m004_golden_sets),
    ("m005_inflight_runs", _m005_inflight_runs),
]

GOLDEN = "golden"
TRAINING = "training"


def apply_migrations(db: sqlite_utils.Database) -> list[str]:
    """Applies the migrations not yet recorded in `_migrations`; returns their names."""
    if "_migrations" not in db.table_names():
        db.table("_migrations").create({"name": str, "applied_at": str}, pk="name")
    done = {r["name"] for r in db.table("_migrations").rows}
    applied = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        with db.atomic():
            fn(db)
            db.table("_migrations").insert({"name": name, "applied_at": now()})
        applied.append(name)
    return applied


# ------------------------------------------------------------------------------------------- store
class Store:
    """All of Nursery's metadata. Every public method takes the lock; rows are dicts."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path else paths.db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30,
                               isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 30000")
        self.db = sqlite_utils.Database(conn)
        self._lock = threading.RLock()
        with self._lock:
            self.db.enable_wal()
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            # One process at a time migrates (two dashboards or a CLI opening a new database together).
            conn.execute("BEGIN IMMEDIATE")
            try:
                apply_migrations(self.db)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self.db.conn.close()

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        # BEGIN IMMEDIATE takes the write lock up front (waiting up to busy_timeout). A deferred BEGIN
        # that reads first and writes later fails at once with "database is locked" when another
        # connection (the CLI, a second dashboard) committed in between: the busy timeout cannot help there.
        with self._lock:
            conn = self.db.conn
            if conn.in_transaction:
                with self.db.atomic():  # nested: a savepoint
                    yield
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    def _decode(self, table: str, row: dict) -> dict:
        row = dict(row)
        for col in JSON_COLUMNS.get(table, ()):
            v = row.get(col)
            if isinstance(v, str):
                try:
                    row[col] = json.loads(v)
                except ValueError:
                    pass
        return row

    def _rows(self, sql: str, args: Iterable = ()) -> list[dict]:
        """Plain cursor reads: sqlite-utils' table helpers introspect the schema on every call."""
        with self._lock:
            cur = self.db.conn.execute(sql, list(args))
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r)) for r in cur.fetchall()]

    def _get(self, table: str, pk: Any) -> dict | None:
        rows = self._rows(f"select * from [{table}] where [{PRIMARY_KEYS[table]}] = ? limit 1", [pk])
        return self._decode(table, rows[0]) if rows else None

    def _written(self, table: str, pk: Any) -> dict:
        """The row just inserted or updated; a row that vanished meanwhile (deleted by another process) is a
        LookupError naming it."""
        row = self._get(table, pk)
        if row is None:
            raise LookupError(f"{table} row {pk!r} disappeared while it was being written")
        return row

    def _select(self, table: str, where: str | None = None, args: Iterable = (), order_by: str | None = None,
                limit: int | None = None, offset: int | None = None, select: str = "*") -> list[dict]:
        sql = f"select {select} from [{table}]"
        args = list(args)
        if where:
            sql += f" where {where}"
        if order_by:
            sql += f" order by {order_by}"
        if limit is not None or offset is not None:
            sql += " limit ? offset ?"
            args += [-1 if limit is None else int(limit), int(offset or 0)]
        return [self._decode(table, r) for r in self._rows(sql, args)]

    def _count(self, table: str, where: str | None = None, args: Iterable = ()) -> int:
        with self._lock:
            sql = f"select count(*) from [{table}]" + (f" where {where}" if where else "")
            return self.db.execute(sql, list(args)).fetchone()[0]

    @staticmethod
    def _encode(table: str, values: dict) -> dict:
        out = {}
        for k, v in values.items():
            if k in JSON_COLUMNS.get(table, ()) and v is not None and not isinstance(v, str):
                v = json.dumps(v, ensure_ascii=False, default=str)
            out[k] = v
        return out

    # ------------------------------------------------------------------------------------ datasets
    def add_dataset(self, row: dict, *, replace: bool = False,
                    requests: Iterable[tuple[str, str]] | None = None) -> dict:
        """Records a dataset; refuses to replace an existing name unless asked. `requests` [(normal form, text)]
        go into the request index in the same transaction, and a request shared between a golden set and a
        training dataset raises SharedRequest (nothing is recorded then)."""
        row = {"created_at": now(), "kind": TRAINING, **row}
        with self._atomic():
            if not replace and self._get("datasets", row["name"]) is not None:
                raise AlreadyExists(f"dataset {row['name']!r} already exists: choose another dataset "
                                    "name, or delete the existing one first")
            self.db.table("datasets").insert(self._encode("datasets", row), replace=True)
            if requests is not None:
                self._index_requests(row["name"], requests)
        return self.get_dataset(row["name"])

    def replace_dataset(self, name: str, values: dict, requests: Iterable[tuple[str, str]],
                        expect_sha256: str | None = None) -> dict:
        """Updates a dataset's row and re-indexes its requests atomically (golden-set edits); refuses when the
        stored sha256 is no longer `expect_sha256` (someone else changed it meanwhile)."""
        with self._atomic():
            current = self.get_dataset(name)
            if expect_sha256 is not None and current.get("sha256") != expect_sha256:
                raise InvalidInput(f"{name!r} was changed by someone else meanwhile: reload it and try again",
                                   field="name")
            self.db.table("datasets").update(name, self._encode("datasets", values))
            self.db.execute("delete from dataset_requests where dataset = ?", [name])
            self._index_requests(name, requests)
        return self.get_dataset(name)

    def _index_requests(self, name: str, requests: Iterable[tuple[str, str]]) -> None:
        self.db.conn.executemany("insert into dataset_requests (dataset, norm, request) values (?, ?, ?)",
                                 [(name, k, t) for k, t in requests if k])
        clash = self.shared_requests(name, limit=1)
        if clash:
            c = clash[0]
            golden, training = (name, c["other"]) if c["kind"] == GOLDEN else (c["other"], name)
            raise SharedRequest(c["request"], golden=golden, training=training, other=c["other_request"])

    def shared_requests(self, name: str, limit: int | None = None) -> list[dict]:
        """Requests of dataset `name` that a dataset of the other kind (golden vs training) also holds:
        [{request (as `name` has it), other, other_request, kind (of `name`)}]."""
        sql = ("select a.request, b.dataset, b.request, da.kind from dataset_requests a "
               "join datasets da on da.name = a.dataset "
               "join dataset_requests b on b.norm = a.norm and b.dataset != a.dataset "
               "join datasets db on db.name = b.dataset "
               "where a.dataset = ? and (da.kind = 'golden') != (db.kind = 'golden')")
        args: list[Any] = [name]
        if limit is not None:
            sql += " limit ?"
            args.append(int(limit))
        with self._lock:
            rows = self.db.conn.execute(sql, args).fetchall()
        return [{"request": r[0], "other": r[1], "other_request": r[2], "kind": r[3]} for r in rows]

    def find_requests(self, norms: Iterable[str], golden: bool | None = None,
                      exclude: str | None = None) -> list[dict]:
        """Index rows whose normal form is one of `norms`: [{norm, request, dataset, kind}]; `golden` narrows
        to golden sets (True) or training datasets (False), `exclude` leaves one dataset out."""
        norms = list(dict.fromkeys(n for n in norms if n))
        out: list[dict] = []
        for i in range(0, len(norms), 500):  # under SQLite's bound-parameter limit
            chunk = norms[i:i + 500]
            sql = ("select r.norm, r.request, r.dataset, d.kind from dataset_requests r "
                   "join datasets d on d.name = r.dataset "
                   f"where r.norm in ({', '.join('?' for _ in chunk)})")
            args: list[Any] = list(chunk)
            if golden is not None:
                sql += " and d.kind " + ("= ?" if golden else "!= ?")
                args.append(GOLDEN)
            if exclude is not None:
                sql += " and r.dataset != ?"
                args.append(exclude)
            out += [{"norm": r[0], "request": r[1], "dataset": r[2], "kind": r[3]}
                    for r in self._rows_raw(sql, args)]
        return out

    def golden_request_norms(self) -> set[str]:
        """The normal forms of every golden-set request (the generator steers clear of them)."""
        return {r[0] for r in self._rows_raw(
            "select r.norm from dataset_requests r join datasets d on d.name = r.dataset where d.kind = ?",
            [GOLDEN])}

    def _rows_raw(self, sql: str, args: Iterable = ()) -> list[tuple]:
        with self._lock:
            return self.db.conn.execute(sql, list(args)).fetchall()

    def get_dataset(self, name: str) -> dict:
        row = self._get("datasets", name)
        if row is None:
            raise NotFound(f"no dataset named {name!r} (see list-datasets)")
        return row

    def dataset_names(self, kind: str | None = None) -> list[str]:
        """Every dataset name (of one kind: 'training' or 'golden'), newest first (pickers)."""
        if kind:
            return [r["name"] for r in self._rows("select name from datasets where kind = ? "
                                                  "order by created_at desc", [kind])]
        return [r["name"] for r in self._rows("select name from datasets order by created_at desc")]

    def dataset_kinds(self) -> dict[str, str]:
        """name → 'training' | 'golden' for every dataset."""
        return {r[0]: r[1] for r in self._rows_raw("select name, kind from datasets")}

    def has_dataset(self, name: str) -> bool:
        return self._get("datasets", name) is not None

    def list_datasets(self, limit: int | None = None, offset: int | None = None,
                      kind: str | None = None) -> list[dict]:
        return self._select("datasets", "kind = ?" if kind else None, [kind] if kind else [],
                            order_by="created_at desc", limit=limit, offset=offset)

    def count_datasets(self, kind: str | None = None) -> int:
        return self._count("datasets", "kind = ?" if kind else None, [kind] if kind else [])

    def update_dataset(self, name: str, **values: Any) -> dict:
        with self._atomic():
            self.get_dataset(name)
            self.db.table("datasets").update(name, self._encode("datasets", values))
        return self.get_dataset(name)

    def delete_dataset(self, name: str) -> None:
        with self._atomic():
            self.get_dataset(name)
            self.db.execute("delete from dataset_requests where dataset = ?", [name])
            self.db.table("datasets").delete(name)

    # ---------------------------------------------------------------------------------------- jobs
    def create_job(self, row: dict) -> JobRow:
        """Inserts a job (status queued unless given) and returns it. Raises DuplicateRun when an active job
        already writes the same output name: the check and the insert share one write transaction (BEGIN
        IMMEDIATE), so two submits racing from two threads or processes cannot both pass it."""
        row = {"id": new_id("j"), "status": JobStatus.QUEUED.value, "created_at": now(), **row}
        with self._atomic():
            if row.get("output_name") and row["status"] in ACTIVE:
                other = self.active_job_for_output(row["output_name"])
                if other is not None:
                    raise DuplicateRun(
                        f"job {other['id']} ({other['status']}"
                        + (f", started by {other['created_by']}" if other.get("created_by") else "")
                        + f") already trains model {row['output_name']!r}: follow that job, or choose another "
                        "output name", other={k: other.get(k) for k in ("id", "kind", "status", "created_by")})
            self.db.table("jobs").insert(self._encode("jobs", row))
        return self.get_job(row["id"])

    def active_job_for_output(self, output_name: str) -> JobRow | None:
        """The oldest queued or running job that writes `output_name`, or None."""
        rows: list[Any] = self._select("jobs", f"output_name = ? and status in ({', '.join('?' for _ in ACTIVE)})",
                            [output_name, *ACTIVE], order_by="created_at", limit=1)
        return rows[0] if rows else None

    def get_job(self, job_id: str) -> JobRow:
        row = self._get("jobs", job_id)
        if row is None:
            raise NotFound(f"no job with id {job_id!r} (see list-jobs)")
        return cast(JobRow, row)

    def update_job(self, job_id: str, **values: Any) -> JobRow:
        with self._atomic():
            self.get_job(job_id)
            self.db.table("jobs").update(job_id, self._encode("jobs", values))
        return self.get_job(job_id)

    def list_jobs(self, status: str | Iterable[str] | None = None, kind: str | None = None,
                  limit: int | None = None, offset: int | None = None,
                  order: str = "created_at desc") -> list[JobRow]:
        where, args = self._job_filter(status, kind)
        return cast("list[JobRow]", self._select("jobs", where, args, order_by=order, limit=limit, offset=offset))

    def count_jobs(self, status: str | Iterable[str] | None = None, kind: str | None = None) -> int:
        where, args = self._job_filter(status, kind)
        return self._count("jobs", where, args)

    @staticmethod
    def _job_filter(status, kind) -> tuple[str | None, list]:
        clauses, args = [], []
        if status is not None:
            statuses = [status] if isinstance(status, str) else [str(s) for s in status]
            clauses.append(f"status in ({', '.join('?' for _ in statuses)})")
            args += [str(s) for s in statuses]
        if kind is not None:
            clauses.append("kind = ?")
            args.append(kind)
        return (" and ".join(clauses) or None), args

    def claim_next_job(self, kind: str, runner_id: str, max_running: int = 1) -> JobRow | None:
        """Atomically moves the oldest queued job of `kind` to running, if fewer than max_running run."""
        with self._atomic():
            running = self.db.execute("select count(*) from jobs where kind = ? and status = ?",
                                      [kind, JobStatus.RUNNING.value]).fetchone()[0]
            if running >= max_running:
                return None
            row = self.db.execute(
                "select id from jobs where kind = ? and status = ? and cancel_requested = 0 "
                "order by created_at, rowid limit 1", [kind, JobStatus.QUEUED.value]).fetchone()
            if row is None:
                return None
            self.db.table("jobs").update(row[0], {"status": JobStatus.RUNNING.value, "started_at": now(),
                                            "heartbeat_at": now(), "runner_id": runner_id})
        return self.get_job(row[0])

    def request_cancel(self, job_id: str) -> JobRow:
        """Flags a job for cancellation; a queued job is cancelled at once."""
        with self._atomic():
            job = self.get_job(job_id)
            values: dict[str, Any] = {"cancel_requested": 1}
            if job["status"] == JobStatus.QUEUED.value:
                values.update(status=JobStatus.CANCELLED.value, finished_at=now(),
                              error="cancelled before it started")
            self.db.table("jobs").update(job_id, values)
        return self.get_job(job_id)

    def record_event(self, job_id: str, event: Mapping[str, Any]) -> None:
        """Stores one worker event (jobs.events.Event) and folds it into the job's live columns, atomically."""
        kind = event.get("kind", LOG)
        row = {
            "job_id": job_id, "ts": event.get("ts") or now(), "kind": kind,
            "step": event.get("step"), "loss": event.get("loss"), "eval_loss": event.get("eval_loss"),
            "learning_rate": event.get("lr", event.get("learning_rate")),
            "tokens_per_s": event.get("tokens_per_s"), "message": event.get("message"),
            "data": {k: v for k, v in event.items() if k not in (
                "kind", "ts", "step", "loss", "eval_loss", "lr", "learning_rate", "tokens_per_s", "message")}
            or None,
        }
        live: dict[str, Any] = {"heartbeat_at": now()}
        for src, dst in (("step", "step"), ("total_steps", "total_steps"), ("loss", "last_loss"),
                         ("eval_loss", "eval_loss"), ("lr", "learning_rate"), ("tokens_per_s", "tokens_per_s"),
                         ("eta_s", "eta_s"), ("device", "device"), ("progress", "progress")):
            if event.get(src) is not None:
                live[dst] = event[src]
        if "progress" not in live and event.get("step") is not None and event.get("total_steps"):
            live["progress"] = min(1.0, event["step"] / event["total_steps"])
        with self._atomic():
            self.db.table("job_events").insert(self._encode("job_events", row))
            self.db.table("jobs").update(job_id, live)

    def job_events(self, job_id: str, kinds: Iterable[str] | None = None, after_id: int = 0,
                   limit: int | None = None) -> list[dict]:
        where, args = "job_id = ? and id > ?", [job_id, after_id]
        if kinds:
            kinds = list(kinds)
            where += f" and kind in ({', '.join('?' for _ in kinds)})"
            args += kinds
        return self._select("job_events", where, args, order_by="id", limit=limit)

    def finish_job(self, job_id: str, status: JobStatus | str, error: str | None = None,
                   **values: Any) -> JobRow:
        """Moves a job to a final state once; later calls do not overwrite the first final state."""
        status = JobStatus(status)
        with self._atomic():
            job = self.get_job(job_id)
            if JobStatus(job["status"]).is_final:
                return job
            vals = {"status": status.value, "finished_at": now(), **values}
            if error is not None:
                vals["error"] = error
            if status is JobStatus.SUCCEEDED:
                vals["progress"] = 1.0
            self.db.table("jobs").update(job_id, self._encode("jobs", vals))
        return self.get_job(job_id)

    def delete_job(self, job_id: str) -> None:
        with self._atomic():
            self.get_job(job_id)
            self.db.execute("delete from job_events where job_id = ?", [job_id])
            self.db.table("jobs").delete(job_id)

    # -------------------------------------------------------------------------------------- models
    def add_model(self, row: dict, *, replace: bool = False) -> ModelRow:
        row = {"kind": "adapter", "created_at": now(), **row}
        with self._atomic():
            if not replace and self._get("models", row["name"]) is not None:
                raise AlreadyExists(f"model {row['name']!r} already exists: choose another output name")
            self.db.table("models").insert(self._encode("models", row), replace=True)
        return self.get_model(row["name"])

    def get_model(self, name: str) -> ModelRow:
        row = self._get("models", name)
        if row is None:
            raise NotFound(f"no model named {name!r} (see list-models)")
        return cast(ModelRow, row)

    def model_names(self, kind: str | None = None) -> list[str]:
        """Every stored model name, newest first."""
        if kind:
            return [r["name"] for r in self._rows("select name from models where kind = ? order by created_at desc",
                                                  [kind])]
        return [r["name"] for r in self._rows("select name from models order by created_at desc")]

    def has_model(self, name: str) -> bool:
        return self._get("models", name) is not None

    def list_models(self, limit: int | None = None, offset: int | None = None) -> list[ModelRow]:
        return cast("list[ModelRow]", self._select("models", order_by="created_at desc", limit=limit, offset=offset))

    def count_models(self) -> int:
        return self._count("models")

    def update_model(self, name: str, **values: Any) -> ModelRow:
        with self._atomic():
            self.get_model(name)
            self.db.table("models").update(name, self._encode("models", values))
        return self.get_model(name)

    def delete_model(self, name: str) -> None:
        with self._atomic():
            self.get_model(name)
            self.db.table("models").delete(name)

    # --------------------------------------------------------------------------------- evaluations
    def add_evaluation(self, row: dict) -> dict:
        row = {"id": new_id("e"), "created_at": now(), **row}
        with self._atomic():
            self.db.table("evaluations").insert(self._encode("evaluations", row))
        return self._written("evaluations", row["id"])

    def get_evaluation(self, eval_id: str) -> dict:
        row = self._get("evaluations", eval_id)
        if row is None:
            raise NotFound(f"no evaluation with id {eval_id!r}")
        return row

    def list_evaluations(self, model: str | None = None, dataset: str | None = None,
                         limit: int | None = None) -> list[dict]:
        clauses, args = [], []
        if model:
            clauses.append("model = ?")
            args.append(model)
        if dataset:
            clauses.append("dataset = ?")
            args.append(dataset)
        return self._select("evaluations", " and ".join(clauses) or None, args,
                            order_by="created_at desc", limit=limit)

    def latest_evaluations(self, models: Iterable[str]) -> dict[str, dict]:
        """The newest evaluation per model name, for lineage tables."""
        models = list(models)
        if not models:
            return {}
        with self._lock:
            rows = list(self.db.query(
                f"select * from evaluations where model in ({', '.join('?' for _ in models)}) "
                "order by created_at", models))
        return {r["model"]: self._decode("evaluations", r) for r in rows}

    def latest_evaluations_by_dataset(self, models: Iterable[str]) -> dict[str, dict[str, dict]]:
        """model → dataset → its newest evaluation there (held-out and golden scores side by side)."""
        models = list(dict.fromkeys(models))
        out: dict[str, dict[str, dict]] = {m: {} for m in models}
        for i in range(0, len(models), 500):
            chunk = models[i:i + 500]
            for r in self._select("evaluations", f"model in ({', '.join('?' for _ in chunk)})", chunk,
                                  order_by="created_at"):
                out[r["model"]][r["dataset"]] = r
        return out

    # --------------------------------------------------------------------------------- deployments
    def add_deployment(self, row: dict) -> DeploymentRow:
        row = {"id": new_id("d"), "created_at": now(), **row}
        with self._atomic():
            self.db.table("deployments").insert(self._encode("deployments", row))
        return self.get_deployment(row["id"])

    def update_deployment(self, dep_id: str, **values: Any) -> DeploymentRow:
        with self._atomic():
            self.db.table("deployments").update(dep_id, self._encode("deployments", values))
        return self.get_deployment(dep_id)

    def get_deployment(self, dep_id: str) -> DeploymentRow:
        row = self._get("deployments", dep_id)
        if row is None:
            raise NotFound(f"no deployment with id {dep_id!r} (see list-deployments)")
        return cast(DeploymentRow, row)

    def list_deployments(self, model: str | None = None, limit: int | None = None) -> list[DeploymentRow]:
        if model:
            return cast("list[DeploymentRow]", self._select("deployments", "model = ?", [model],
                                                            order_by="created_at desc", limit=limit))
        return cast("list[DeploymentRow]", self._select("deployments", order_by="created_at desc", limit=limit))

    def deployments_for(self, models: Iterable[str], per_model: int = 10) -> dict[str, list[DeploymentRow]]:
        """The newest deployments of several models in one query (lineage tables)."""
        models = list(models)
        out: dict[str, list[DeploymentRow]] = {m: [] for m in models}
        if not models:
            return out
        rows: list[Any] = self._select("deployments", f"model in ({', '.join('?' for _ in models)})", models,
                            order_by="created_at desc")
        for r in rows:
            if len(out[r["model"]]) < per_model:
                out[r["model"]].append(r)
        return out

    # --------------------------------------------------------------------------------- inflight runs
    def claim_inflight(self, row: dict, is_stale: Callable[[dict], bool]) -> dict:
        """Records a run in flight under row["key"]; raises DuplicateRun naming the holder when a live run
        holds that key. A holder that `is_stale` (its process is gone) is replaced. Check and insert share
        one write transaction."""
        row = {"started_at": now(), **row}
        with self._atomic():
            held = self._get("inflight_runs", row["key"])
            if held is not None and not is_stale(held):
                raise DuplicateRun(
                    f"{held['label']} is already running (since {held['started_at'][11:19]} UTC"
                    + (f", started by {held['created_by']}" if held.get("created_by") else "")
                    + "): wait for it to finish", other={k: held.get(k) for k in ("key", "kind", "label",
                                                                                 "created_by", "started_at")})
            self.db.table("inflight_runs").insert(row, replace=True)
        return row

    def release_inflight(self, key: str, owner: str) -> None:
        """Removes the in-flight row if this owner still holds it."""
        with self._atomic():
            self.db.execute("delete from inflight_runs where key = ? and owner = ?", [key, owner])

    def list_inflight(self, kind: str | None = None) -> list[dict]:
        if kind:
            return self._select("inflight_runs", "kind = ?", [kind], order_by="started_at")
        return self._select("inflight_runs", order_by="started_at")

    # ----------------------------------------------------------------------------------- instances
    def record_instance(self, row: dict) -> dict:
        row = {"created_at": now(), **row}
        with self._atomic():
            self.db.table("instances").insert(self._encode("instances", row), replace=True)
        return self._written("instances", row["id"])

    def update_instance(self, instance_id: str, **values: Any) -> dict:
        with self._atomic():
            self.db.table("instances").update(instance_id, self._encode("instances", values))
        return self._written("instances", instance_id)

    def list_instances(self, live_only: bool = False, job_id: str | None = None) -> list[dict]:
        clauses, args = [], []
        if live_only:
            clauses.append("destroyed_at is null")
        if job_id:
            clauses.append("job_id = ?")
            args.append(job_id)
        return self._select("instances", " and ".join(clauses) or None, args, order_by="created_at desc")

    # ---------------------------------------------------------------------------------------- bulk
    def bulk_insert(self, table: str, rows: Iterable[dict], batch_size: int = 1000) -> None:
        """Fast seeding (benchmarks, imports of many rows): one transaction, JSON columns encoded."""
        if table not in JSON_COLUMNS and table != "settings":
            raise ValueError(f"unknown table {table!r}")
        with self._atomic():
            self.db.table(table).insert_all((self._encode(table, r) for r in rows), batch_size=batch_size)

    # ------------------------------------------------------------------------------------ settings
    def get_setting(self, key: str, default: Any = None) -> Any:
        row = self._get("settings", key)
        return json.loads(row["value"]) if row else default

    def all_settings(self) -> dict[str, Any]:
        return {r["key"]: json.loads(r["value"]) for r in self._select("settings")}

    def set_setting(self, key: str, value: Any, by: str | None = None) -> None:
        with self._atomic():
            self.db.table("settings").insert({"key": key, "value": json.dumps(value), "updated_at": now(),
                                        "updated_by": by}, replace=True)

    # ------------------------------------------------------------------------------------ overview
    def overview_counts(self) -> dict:
        """Counts for the overview page in a handful of indexed queries."""
        with self._lock:
            by_status = dict(self.db.execute("select status, count(*) from jobs group by status").fetchall())
            return {
                "datasets": self.db.execute("select count(*) from datasets").fetchone()[0],
                "models": self.db.execute("select count(*) from models").fetchone()[0],
                "jobs": sum(by_status.values()),
                "jobs_by_status": by_status,
                "active_jobs": sum(by_status.get(s, 0) for s in ACTIVE),
            }

    def spend_by_person(self) -> list[dict]:
        with self._lock:
            rows = self.db.execute(
                "select coalesce(created_by, '') as person, count(*) as jobs, "
                "coalesce(sum(cost_usd), 0) as cost_usd from jobs where kind != 'local' "
                "group by person order by cost_usd desc").fetchall()
        return [{"person": r[0], "jobs": r[1], "cost_usd": r[2]} for r in rows]


_stores: dict[Path, Store] = {}
_stores_lock = threading.Lock()


def get_store(path: Path | str | None = None) -> Store:
    """The process-wide Store for a database file (default: NURSERY_HOME's)."""
    p = Path(path) if path else paths.db_path()
    p = p.resolve() if p.exists() else p
    with _stores_lock:
        st = _stores.get(p)
        if st is None:
            st = _stores[p] = Store(p)
        return st


def close_all() -> None:
    """Closes every cached store (tests switch NURSERY_HOME between cases)."""
    with _stores_lock:
        for st in _stores.values():
            try:
                st.close()
            except Exception:  # noqa: BLE001 — at shutdown one broken connection must not keep the others open
                pass
        _stores.clear()
