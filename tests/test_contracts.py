"""What crosses a process boundary has one typed definition: worker event kinds, job and deployment states."""
from __future__ import annotations

import ast
from pathlib import Path

from nursery_core.jobs import events
from nursery_core.rows import DeploymentRow, JobRow
from nursery_core.status import DeploymentStatus, JobStatus

ROOT = Path(__file__).resolve().parent.parent


def test_final_kinds_are_kinds_and_decoding_skips_what_was_recorded():
    assert set(events.FINAL_KINDS) <= set(events.KINDS) and set(events.CHART_KINDS) <= set(events.KINDS)
    lines = [b'{"kind": "progress", "seq": 1}', b'not json', b'{"kind": "done", "seq": 2}', b'[1]']
    out, last = events.decode_events(lines, after_seq=1)
    assert [e["kind"] for e in out] == [events.DONE] and last == 2
    assert events.is_final(out[0])


def test_deployment_status_after_verification():
    s = DeploymentStatus.after_verification
    assert (s(True, False), s(False, False), s(True, True), s(False, True)) == (
        DeploymentStatus.VERIFIED, DeploymentStatus.FAILED_VERIFICATION, DeploymentStatus.REGISTERED,
        DeploymentStatus.REGISTERED_UNVERIFIED)
    assert not DeploymentStatus.RUNNING.is_final and DeploymentStatus.ERROR.is_final
    assert f"{DeploymentStatus.ERROR}" == "error" and f"{JobStatus.RUNNING}" == "running"


def test_store_rows_carry_the_typed_columns(store):
    job = store.create_job({"kind": "local", "dataset": "d", "base_model": "b", "output_name": "o",
                            "config": {"epochs": 1}})
    assert set(job) <= set(JobRow.__annotations__) and JobStatus(job["status"]) is JobStatus.QUEUED
    dep = store.add_deployment({"model": "m", "status": DeploymentStatus.RUNNING.value, "path": "/x",
                                "outtype": "f16", "ollama_name": "m", "registered": 0})
    assert set(dep) <= set(DeploymentRow.__annotations__)
    assert DeploymentStatus(store.update_deployment(dep["id"], status=DeploymentStatus.ERROR.value)["status"]) \
        is DeploymentStatus.ERROR


def test_no_event_kind_is_spelled_out_where_the_constants_apply():
    """The worker, trainer, store, backends and CLI name kinds through jobs.events, never as literals."""
    files = ["nursery_core/training/worker.py", "nursery_core/training/trainer.py", "nursery_core/store.py",
             "nursery_core/jobs/fake_worker.py", "nursery_core/jobs/api.py", "nursery_core/jobs/context.py",
             "nursery_core/cli/training.py", *map(str, (ROOT / "nursery_core/jobs/backends").glob("*.py"))]
    offenders = []
    for f in files:
        tree = ast.parse((ROOT / f).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                for k, v in zip(node.keys, node.values, strict=True):
                    if isinstance(k, ast.Constant) and k.value == "kind" and isinstance(v, ast.Constant) \
                            and v.value in events.KINDS:
                        offenders.append(f"{f}:{node.lineno}")
            if isinstance(node, ast.Compare) and any(
                    isinstance(c, ast.Constant) and c.value in events.KINDS for c in node.comparators):
                offenders.append(f"{f}:{node.lineno}")
    assert offenders == []
