"""Page render times at team scale: 10,000 jobs (with events), 1,000 datasets, 500 models.

Seeds a fresh NURSERY_HOME through the store, then renders every page with AppTest and prints the time of
each render (target < 1.5 s) and how many statements it ran, and lists every select on a big table that scans
it without an index or reads it without a LIMIT (the trace of what each page really asked).
Run: .venv/bin/python bench/ui_scale.py [--jobs 10000 --datasets 1000 --models 500 --events 5]
"""
from __future__ import annotations

import argparse
import re
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def seed(store, n_jobs: int, n_datasets: int, n_models: int, events_per_job: int) -> None:
    rng = random.Random(0)
    people = ["ada", "grace", "linus", "margaret", ""]
    tools = ["calculator", "get_weather", "memory_store", "web_search", "send_email"]
    store.bulk_insert("datasets", ({
        "name": f"dataset-{i:04d}", "path": f"datasets/dataset-{i:04d}.jsonl", "num_examples": rng.randint(10, 5000),
        "tools": rng.sample(tools, 2), "categories": {"call": 40, "no_call": 10}, "source": "synthetic",
        "created_at": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00.000Z", "created_by": rng.choice(people),
        "split": {"train": 45, "eval": 5, "seed": 0}, "stats": {"chars_mean": 300.0, "tokens_mean": 90.0},
    } for i in range(n_datasets)))
    statuses = ["succeeded"] * 6 + ["failed", "cancelled", "interrupted"]
    jobs = []
    for i in range(n_jobs):
        st_ = rng.choice(statuses)
        jobs.append({"id": f"j{i:011d}", "kind": rng.choice(["local", "local", "vast", "ssh"]), "status": st_,
                     "dataset": f"dataset-{i % max(1, n_datasets):04d}", "base_model": "smollm2-135m",
                     "output_name": f"adapter-{i}", "created_at": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00.000Z",
                     "created_by": rng.choice(people), "step": 100, "total_steps": 100, "progress": 1.0,
                     "last_loss": rng.random(), "cost_usd": round(rng.random(), 3), "config": {"r": 16}})
    # A few live ones that stay live while the pages render: running rows whose runner looks alive (fresh
    # heartbeat), and local runs queued behind the running local one (one local run at a time).
    for j in jobs[:3]:
        j.update(status="running", progress=0.4, step=40, runner_id="bench", heartbeat_at="2999-01-01T00:00:00.000Z")
    jobs[0]["kind"] = "local"
    for j in jobs[3:8]:
        j.update(status="queued", kind="local", progress=0.0, step=0)
    store.bulk_insert("jobs", jobs)
    store.bulk_insert("job_events", ({"job_id": j["id"], "ts": j["created_at"], "kind": "progress", "step": s,
                                      "loss": 2.0 / (s + 1), "learning_rate": 1e-4}
                                     for j in jobs for s in range(events_per_job)), batch_size=5000)
    store.bulk_insert("models", ({"name": f"adapter-{i}", "kind": "adapter", "path": f"models/adapter-{i}",
                                  "base_model": "smollm2-135m", "dataset": f"dataset-{i % max(1, n_datasets):04d}",
                                  "job_id": jobs[i]["id"] if i < len(jobs) else None,
                                  "created_at": jobs[i]["created_at"] if i < len(jobs) else "2026-01-01T00:00:00Z",
                                  "final_loss": 0.1, "eval_loss": 0.2, "tools": ["calculator"]}
                                 for i in range(n_models)))
    # what a team's Model Cradle accumulates: evaluations (with per-category metrics) and deployments
    cats = {c: {"num_examples": 10, "ast_accuracy": 0.8, "format_validity": 0.9, "arg_f1": 0.85}
            for c in ("call", "no_call", "parallel", "multi_turn")}
    store.bulk_insert("evaluations", ({
        "id": f"e{i:011d}", "model": f"adapter-{i % max(1, n_models)}", "dataset": f"dataset-{i % 7:04d}",
        "split": "eval", "created_at": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T12:00:00.000Z", "created_by": "ada",
        "num_examples": 40, "ast_accuracy": rng.random(), "settings": {"max_new_tokens": 256},
        "metrics": {"ast_accuracy": 0.8, "format_validity": 0.9, "arg_f1": 0.85, "per_category": cats}}
        for i in range(n_models * 2)))
    store.bulk_insert("deployments", ({"id": f"d{i:011d}", "model": f"adapter-{i * 5}", "status": "registered",
                                       "created_at": "2026-06-01T00:00:00.000Z", "created_by": "grace"}
                                      for i in range(n_models // 5)))


BIG_TABLES = ("jobs", "job_events", "datasets", "models", "evaluations", "deployments")


class QueryLog:
    """Every statement the store runs while a page renders (sqlite3 trace callback), for plans and counts."""

    def __init__(self, store):
        self.store = store
        self.sql: list[str] = []

    def __enter__(self):
        self.sql = []
        self.store.db.conn.set_trace_callback(self.sql.append)
        return self

    def __exit__(self, *exc):
        self.store.db.conn.set_trace_callback(None)

    def findings(self) -> tuple[int, list[str]]:
        """(statements run, the selects on big tables that scan without an index or read without a LIMIT)."""
        bad = []
        for sql in dict.fromkeys(q for q in self.sql if q.lstrip().lower().startswith("select")):
            low = sql.lower()
            tables = [t for t in BIG_TABLES if re.search(rf"\b(from|join)\s+[\"\[]?{t}\b", low)]
            if not tables:
                continue
            try:
                plan = [r[3] for r in self.store.db.execute("explain query plan " + sql).fetchall()]
            except Exception:  # noqa: BLE001 — a statement whose text cannot be re-planned (parameters not inlined)
                continue
            full = [p for p in plan if p.startswith("SCAN ") and "INDEX" not in p and
                    any(p.split()[1].strip("[]") == t for t in tables)]
            aggregate = "count(" in low or "sum(" in low
            unbounded = " limit " not in low and not aggregate and " where " not in low
            if full or unbounded:
                bad.append(f"{sql[:110]}  ->  {' | '.join(plan)}")
        return len(self.sql), bad


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--datasets", type=int, default=1_000)
    ap.add_argument("--models", type=int, default=500)
    ap.add_argument("--events", type=int, default=5, help="progress events per job")
    ap.add_argument("--runs", type=int, default=3, help="renders per page (the first and the best are shown)")
    args = ap.parse_args()
    home = tempfile.mkdtemp(prefix="nursery-scale-")
    os.environ["NURSERY_HOME"] = home
    os.chdir(ROOT)
    from streamlit.testing.v1 import AppTest

    from nursery_core.store import get_store

    store = get_store()
    t0 = time.perf_counter()
    seed(store, args.jobs, args.datasets, args.models, args.events)
    print(f"seeded {args.jobs} jobs ({args.jobs * args.events} events), {args.datasets} datasets, "
          f"{args.models} models ({2 * args.models} evaluations, {args.models // 5} deployments) in {time.perf_counter() - t0:.1f} s  ({home})")

    pages = ["app.py"] + sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").glob("*.py"))
    worst = 0.0
    first_slow = []
    notes = []
    print(f"{'page':34s} {'first (s)':>10s} {'best (s)':>10s} {'queries':>8s}")
    for page in pages:
        times = []
        queries = 0
        for run in range(args.runs):
            at = AppTest.from_file(str(ROOT / page), default_timeout=120)
            at.session_state["nursery_user"] = "bench"
            with QueryLog(store) as qlog:
                t = time.perf_counter()
                at.run()
                times.append(time.perf_counter() - t)
            if run == 0:
                queries, bad = qlog.findings()
                notes += [f"{page}: {b}" for b in bad]
            if at.exception:
                print(f"{page}: exception {at.exception[0].message}")
                return 1
        worst = max(worst, min(times))
        if times[0] >= 1.5:
            first_slow.append(page)
        print(f"{page:34s} {times[0]:10.3f} {min(times):10.3f} {queries:8d}")
    print("queries on big tables that scan without an index or read without a limit:"
          + ("" if notes else " none"))
    for n in notes:
        print("  " + n)
    if first_slow:
        print("first render (cold imports in this process) over 1.5 s: " + ", ".join(first_slow))
    print(f"slowest page (best of {args.runs}): {worst:.3f} s  target < 1.5 s  ->  {'OK' if worst < 1.5 else 'TOO SLOW'}")
    return 0 if worst < 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
