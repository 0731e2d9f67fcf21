"""The reaper: finds what Nursery started on a provider for a job that is no longer live and ends it: Vast.ai
instances labelled and RunPod pods named `nursery-<job id>` (listed from the provider), Together fine-tunes and
Replicate trainings (recorded in the instances table the moment they were created). Modal calls need nothing:
their ephemeral app ends with the process that spawned them.

Runs on dashboard start, from `reap-instances` and from a button (dry run first). A job is live when it is
queued, or running under a runner that is still alive; anything else (finished, unknown, or orphaned by a
dashboard that died) no longer needs its machine.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

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


def _vast_rows(client) -> list[dict]:
    return [{"provider": "vast", "instance_id": inst.get("id"), "label": inst.get("label"),
             "actual_status": inst.get("actual_status"), "gpu_name": inst.get("gpu_name"),
             "dph_total": inst.get("dph_total"), "start_date": inst.get("start_date")}
            for inst in client.list_instances(label_prefix=LABEL_PREFIX)]


def _runpod_rows(client) -> list[dict]:
    return [{"provider": "runpod", "instance_id": p.get("id"), "label": p.get("name"),
             "actual_status": p.get("desiredStatus"), "gpu_name": (p.get("machine") or {}).get("gpuDisplayName"),
             "dph_total": p.get("costPerHr"), "start_date": None}
            for p in client.list_pods(name_prefix=LABEL_PREFIX)]


def _recorded_rows(provider: str):
    """Managed runs (Together fine-tunes, Replicate trainings) have no machine name to search for: their ids are
    in the instances table from the moment the create call returned, labelled nursery-<job id>."""
    def rows(client) -> list[dict]:
        return [{"provider": provider, "instance_id": r["id"], "label": r.get("label"), "actual_status": None,
                 "gpu_name": None, "dph_total": None, "start_date": r.get("created_at")}
                for r in get_store().list_instances(live_only=True) if r.get("provider") == provider]
    return rows


def _release(provider: str, client, instance_id) -> None:
    """Destroys / terminates / cancels one orphan on its provider."""
    if provider == "vast":
        client.destroy(int(instance_id), confirm=True)
    elif provider == "runpod":
        client.terminate_pod(str(instance_id), confirm=True)
    elif provider == "together":
        client.cancel(str(instance_id))  # a job already over is returned as it is
    elif provider == "replicate":
        from ..cloud.replicate import TERMINAL_STATUSES

        if client.get_training(str(instance_id)).get("status") not in TERMINAL_STATUSES:
            client.cancel_training(str(instance_id))


LISTERS = {"vast": _vast_rows, "runpod": _runpod_rows, "together": _recorded_rows("together"),
           "replicate": _recorded_rows("replicate")}
# The providers with nothing to reap, and why (every provider is in LISTERS or here: tests/test_cloud_cli.py).
NOTHING_TO_REAP = {
    "ssh": "the user's own server: Nursery rents and bills nothing there, and the next runner re-attaches to a "
           "run a dead dashboard left (jobs/backends/ssh.py recover)",
    "modal": "the run is a call in an ephemeral Modal app (`app.run()`, not --detach), which Modal stops with the "
             "process that started it (modal.com/docs/guide/apps); the next runner marks the job",
}


def _clients(clients: dict | None) -> tuple[dict, set[str]]:
    """The provider clients to reap with: those given, else one per provider whose key is set (InvalidConfig
    when none is); the second item names the ones created here (closed afterwards)."""
    if clients:
        return dict(clients), set()
    from ..cloud.credentials import key_status, provider_secret
    from ..cloud.replicate import ReplicateClient
    from ..cloud.runpod import RunPodClient
    from ..cloud.together import TogetherClient
    from ..cloud.vast import VastClient
    from ..errors import InvalidConfig

    makers: dict[str, Callable[[], Any]] = {
        "vast": VastClient, "runpod": lambda: RunPodClient(provider_secret("runpod") or ""),
              "together": TogetherClient, "replicate": ReplicateClient}
    made: dict = {p: make() for p, make in makers.items() if key_status(p)["set"]}
    if not made:
        raise InvalidConfig("no Vast.ai, RunPod, Together.ai or Replicate key is set: nothing to reap")
    return made, set(made)


def nursery_reap_instances(dry_run: bool = False, client=None, clients: dict | None = None) -> dict:
    """Lists `nursery-*` Vast.ai instances, RunPod pods, Together fine-tunes and Replicate trainings with no live
    job and (unless dry_run) destroys / terminates / cancels them; returns {dry_run, orphans, kept, destroyed, errors} (rows carry `provider`).
    `client` is a Vast client (kept for callers), `clients` maps provider -> client; by default every provider
    with a key. Raises InvalidConfig when no key is set."""
    store = get_store()
    given = dict(clients or {})
    if client is not None:
        given["vast"] = client
    clients, own = _clients(given)
    orphans: list[dict] = []
    kept: list[dict] = []
    destroyed: list = []
    errors: list[dict] = []
    try:
        for provider, c in clients.items():
            try:
                rows = LISTERS[provider](c)
            except Exception as e:  # noqa: BLE001 — one provider down must not keep the others from reaping
                errors.append({"provider": provider, "instance_id": None, "error": f"listing failed: {e}"})
                continue
            for row in rows:
                job_id = str(row["label"])[len(LABEL_PREFIX):]
                live, why = _job_is_live(store, job_id)
                row.update(job_id=job_id, job_state=why)
                (kept if live else orphans).append(row)
        if not dry_run:
            for row in orphans:
                c = clients[row["provider"]]
                try:
                    _release(row["provider"], c, row["instance_id"])
                    destroyed.append(row["instance_id"])
                    log.warning("reaper destroyed %s instance %s (%s: %s)", row["provider"], row["instance_id"],
                                row["label"], row["job_state"])
                    try:
                        store.update_instance(str(row["instance_id"]), state="destroyed", destroyed_at=now())
                    except Exception:  # noqa: BLE001 — an instance we never recorded is fine
                        pass
                except Exception as e:  # noqa: BLE001 — report and go on with the others
                    errors.append({"provider": row["provider"], "instance_id": row["instance_id"], "error": str(e)})
    finally:
        for provider in own:
            clients[provider].close()
    return {"dry_run": dry_run, "orphans": orphans, "kept": kept, "destroyed": destroyed, "errors": errors}


def reap_on_start() -> dict | None:
    """For dashboard start-up: reaps when a Vast.ai key is configured; never raises (a warning is logged)."""
    from ..cloud.credentials import key_status
    from ..errors import NurseryError

    try:
        if not any(key_status(p)["set"] for p in LISTERS):
            return None
        result = nursery_reap_instances(dry_run=False)
    except NurseryError as e:
        log.warning("instance reaper skipped at start-up: %s", e)
        return None
    if result["destroyed"]:
        log.warning("reaper destroyed %d orphaned instance(s)/pod(s) at start-up", len(result["destroyed"]))
    return result
