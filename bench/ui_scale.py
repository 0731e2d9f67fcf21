"""Page render times at team scale: 10,000 jobs (with events), 1,000 datasets, 500 models.

Seeds a fresh NURSERY_HOME through the store, then renders every page with AppTest and prints the time of
each render (target < 1.5 s), plus the query plan of the overview's queries (they must use indexes).
Run: .venv/bin/python bench/ui_scale.py [--jobs 10000 --datasets 1000 --models 500 --events 5]
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def seed(store, n_jobs: int, n_datasets: int, n_models: int, events_per_job: int) -> None:
    from nursery_core.store import new_id

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
    # a few live ones
    for j in jobs[:3]:
        j["status"] = "running"
        j["progress"] = 0.4
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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--datasets", type=int, default=1_000)
    ap.add_argument("--models", type=int, default=500)
    ap.add_argument("--events", type=int, default=5, help="progress events per job")
    ap.add_argument("--runs", type=int, default=3, help="renders per page (the best and the first are shown)")
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
          f"{args.models} models in {time.perf_counter() - t0:.1f} s  ({home})")

    for sql in ("select status, count(*) from jobs group by status",
                "select * from jobs order by created_at desc limit 20",
                "select * from jobs where status in ('queued','running') order by created_at desc",
                "select * from job_events where job_id = 'j00000000001' and id > 0 order by id"):
        plan = " | ".join(r[3] for r in store.db.execute("explain query plan " + sql).fetchall())
        print(f"plan: {sql[:70]:70s} -> {plan}")

    pages = ["app.py"] + sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").glob("*.py"))
    worst = 0.0
    print(f"{'page':34s} {'first (s)':>10s} {'best (s)':>10s}")
    for page in pages:
        times = []
        for _ in range(args.runs):
            at = AppTest.from_file(str(ROOT / page), default_timeout=60)
            t = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - t)
            if at.exception:
                print(f"{page}: exception {at.exception[0].message}")
                return 1
        worst = max(worst, min(times))
        print(f"{page:34s} {times[0]:10.3f} {min(times):10.3f}")
    print(f"slowest page (best of {args.runs}): {worst:.3f} s  target < 1.5 s  ->  {'OK' if worst < 1.5 else 'TOO SLOW'}")
    return 0 if worst < 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
