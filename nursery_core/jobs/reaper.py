"""The reaper: finds Vast.ai instances labelled `nursery-*` whose job is not live and destroys them.

Runs on dashboard start, from `reap-instances` and from a button (dry run first). A job is live when it is
queued, or running under a runner that is still alive; anything else (finished, unknown, or orphaned by a
dashboard that died) no longer needs its machine.
"""
from __future__ import annotations

import logging

from ..errors import NotFound
from ..status import JobStatus
from ..store import get_store, now

log = logging.getLogger("nursery.cloud")
LABEL_PREFIX = "nursery-"


def _job_is_live(store, job_id: str) -> tuple[bool, str]:
    from .runner import runner_alive

    try:
        job = store.get_job(job_id)
    except NotFound:
        return False, "no such job"
    status = JobStatus(job["status"])
    if status is JobStatus.QUEUED:
        return True, "queued"
    if status is JobStatus.RUNNING:
        if runner_alive(job.get("runner_id"), job.get("heartbeat_at")):
            return True, "running"
        return False, "running, but its runner is gone"
    return False, status.value


def nursery_reap_instances(dry_run: bool = False, client=None) -> dict:
    """Lists `nursery-*` instances with no live job and (unless dry_run) destroys them; returns what it found."""
    from ..cloud.vast import VastClient

    store = get_store()
    own = client is None
    client = client or VastClient()
    orphans: list[dict] = []
    kept: list[dict] = []
    destroyed: list[int] = []
    errors: list[dict] = []
    try:
        for inst in client.list_instances(label_prefix=LABEL_PREFIX):
            job_id = str(inst.get("label"))[len(LABEL_PREFIX):]
            live, why = _job_is_live(store, job_id)
            row = {"instance_id": inst.get("id"), "label": inst.get("label"), "job_id": job_id,
                   "job_state": why, "actual_status": inst.get("actual_status"), "gpu_name": inst.get("gpu_name"),
                   "dph_total": inst.get("dph_total"), "start_date": inst.get("start_date")}
            (kept if live else orphans).append(row)
        if not dry_run:
            for row in orphans:
                try:
                    client.destroy(int(row["instance_id"]), confirm=True)
                    destroyed.append(row["instance_id"])
                    log.warning("reaper destroyed Vast.ai instance %s (%s: %s)", row["instance_id"], row["label"],
                                row["job_state"])
                    try:
                        store.update_instance(str(row["instance_id"]), state="destroyed", destroyed_at=now())
                    except Exception:  # noqa: BLE001 — an instance we never recorded is fine
                        pass
                except Exception as e:  # noqa: BLE001 — report and go on with the others
                    errors.append({"instance_id": row["instance_id"], "error": str(e)})
    finally:
        if own:
            client.close()
    return {"dry_run": dry_run, "orphans": orphans, "kept": kept, "destroyed": destroyed, "errors": errors}


def reap_on_start() -> dict | None:
    """For dashboard start-up: reaps when a Vast.ai key is configured; never raises (a warning is logged)."""
    from ..cloud.credentials import vast_api_key
    from ..errors import NurseryError

    try:
        if not vast_api_key(required=False):
            return None
        result = nursery_reap_instances(dry_run=False)
    except NurseryError as e:
        log.warning("instance reaper skipped at start-up: %s", e)
        return None
    if result["destroyed"]:
        log.warning("reaper destroyed %d orphaned Vast.ai instance(s) at start-up", len(result["destroyed"]))
    return result
