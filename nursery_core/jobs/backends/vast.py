"""The `vast` backend: rent the cheapest fitting Vast.ai GPU, train there over SSH, and always destroy it.

The instance id is stored (instances table + provider_state) the moment the rent call returns; teardown runs
in `finally` for success, failure, cancel and shutdown, is retried, and is confirmed. An on-instance
watchdog (onstart) destroys the machine by itself if this process stops heart-beating or a hard time cap
passes, and the reaper catches anything else.
"""
from __future__ import annotations

import atexit
import logging
import os
import shlex
import shutil
import threading
import time
from typing import Any

from ...errors import BackendError, InvalidConfig
from ..context import RunContext
from ..errors import Cancelled

log = logging.getLogger("nursery.cloud")

DEFAULT_IMAGE = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"
DEFAULT_REMOTE_ROOT = "/root/nursery-jobs"
DEFAULT_DISK_GB = 20.0
WATCHDOG_GRACE_S = 900.0      # no heartbeat for this long: the instance destroys itself
WATCHDOG_HARD_MAX_S = 24 * 3600.0

# Instances this process rented and has not destroyed yet (for signal/atexit teardown).
_LIVE: dict[int, Any] = {}
_LIVE_LOCK = threading.Lock()


def destroy_live_instances(reason: str = "shutdown") -> list[int]:
    """Destroys every instance this process still holds (signal handlers and atexit call this)."""
    with _LIVE_LOCK:
        items = list(_LIVE.items())
    done = []
    for iid, client in items:
        try:
            client.destroy(iid, confirm=True, confirm_timeout=30)
            done.append(iid)
            with _LIVE_LOCK:
                _LIVE.pop(iid, None)
            log.warning("destroyed Vast.ai instance %s (%s)", iid, reason)
        except Exception as e:  # noqa: BLE001 — best effort at exit; the watchdog and reaper remain
            log.error("could not destroy Vast.ai instance %s at %s: %s", iid, reason, e)
    return done


atexit.register(destroy_live_instances, "exit")


def watchdog_onstart(api_url: str, heartbeat_file: str, grace_s: float, max_s: float, check_s: float = 30.0) -> str:
    """The onstart script: a background loop that destroys this instance through the API (with the
    container's own CONTAINER_API_KEY) when the heartbeat file is older than grace_s or max_s has passed."""
    url = api_url.rstrip("/") + "/api/v0/instances/"
    hb = shlex.quote(heartbeat_file)
    py_delete = ("import os,sys,urllib.request as u; u.urlopen(u.Request(sys.argv[1], data=b'{}', method='DELETE', "
                 "headers={'Authorization': 'Bearer ' + os.environ['CONTAINER_API_KEY'], "
                 "'Content-Type': 'application/json'}), timeout=30)")
    loop = (
        f"start=$(date +%s); "
        f"while sleep {float(check_s):g}; do "
        f"now=$(date +%s); hb=$(stat -c %Y {hb} 2>/dev/null || echo $start); "
        f"if [ $((now - hb)) -gt {int(grace_s)} ] || [ $((now - start)) -gt {int(max_s)} ]; then "
        f"u={shlex.quote(url)}\"$CONTAINER_ID/\"; "
        f"if command -v curl >/dev/null 2>&1; then "
        f"curl -s -m 30 -X DELETE -H \"Authorization: Bearer $CONTAINER_API_KEY\" "
        f"-H 'Content-Type: application/json' -d '{{}}' \"$u\"; "
        f"else python3 -c {shlex.quote(py_delete)} \"$u\"; fi; "
        f"sleep 30; fi; done")
    return (f"touch ~/.no_auto_tmux 2>/dev/null; mkdir -p \"$(dirname {hb})\" && touch {hb}; "
            f"nohup sh -c {shlex.quote(loop)} > /dev/null 2>&1 &")


def _env_float(name: str, default: float | None) -> float | None:
    v = os.environ.get(name)
    try:
        return float(v) if v else default
    except ValueError:
        return default


class VastBackend:
    """Runs a job on a rented Vast.ai instance (see module docstring)."""

    kind = "vast"

    def __init__(self, client_factory=None):
        self._client_factory = client_factory

    def client(self):
        if self._client_factory is not None:
            return self._client_factory()
        from ...cloud.vast import VastClient
        return VastClient()

    # -------------------------------------------------------------------------------------- run
    def run(self, job: dict, ctx: RunContext) -> dict:
        from ...cloud.remote import Limits, RemoteRun, RemoteTarget
        from ...cloud.ssh import generate_keypair

        req = dict((job.get("provider_state") or {}).get("request") or {})
        budget = dict(job.get("budget") or {})
        state: dict[str, Any] = {"provider": "vast", "request": req, "phase": "searching"}
        started = time.time()
        client = self.client()
        iid: int | None = None
        rent_at: float | None = None
        remote = None
        dph: float | None = None
        gpu = None
        primary: BaseException | None = None
        result: dict | None = None

        def phase(p: str, **extra: Any) -> None:
            state.update(phase=p, **extra)
            ctx.update(provider_state=state)

        try:
            offer = self.pick_offer(client, req, budget, job)
            dph, gpu = float(offer["dph_total"]), offer.get("gpu_name")
            ctx.log(f"chose offer {offer['id']}: {gpu} x{offer.get('num_gpus', 1)}, "
                    f"{offer.get('gpu_ram', 0) / 1000:.0f} GB, ${dph:.3f}/h, reliability "
                    f"{offer.get('reliability', 0):.3f}")
            if ctx.should_stop():
                raise Cancelled("cancelled before renting")
            key_path, public = generate_keypair(ctx.job_dir / "ssh", comment=f"nursery-{job['id']}")
            remote_root = req.get("remote_root") or os.environ.get("NURSERY_VAST_REMOTE_ROOT") or DEFAULT_REMOTE_ROOT
            heartbeat = f"{remote_root.rstrip('/')}/{job['id']}/HEARTBEAT"
            max_s = self._max_seconds(budget, dph)
            grace = _env_float("NURSERY_VAST_WATCHDOG_GRACE_S", WATCHDOG_GRACE_S)
            onstart = watchdog_onstart(client.base_url, heartbeat, grace,
                                       (max_s + 600.0) if max_s else WATCHDOG_HARD_MAX_S,
                                       _env_float("NURSERY_VAST_WATCHDOG_CHECK_S", 30.0))
            label = f"nursery-{job['id']}"
            phase("renting", offer_id=offer["id"], label=label, gpu_name=gpu, dph_total=dph)
            rented = client.rent(int(offer["id"]), image=req.get("image") or DEFAULT_IMAGE,
                                 disk_gb=float(req.get("disk_gb") or DEFAULT_DISK_GB), label=label, onstart=onstart)
            iid, rent_at = rented["instance_id"], time.time()
            with _LIVE_LOCK:
                _LIVE[iid] = client
            ctx.store.record_instance({"id": str(iid), "provider": "vast", "job_id": job["id"], "label": label,
                                       "state": "starting", "gpu_name": gpu, "dph": dph,
                                       "data": {"offer_id": offer["id"], "adopted": rented["adopted"]}})
            phase("starting", instance_id=iid, rented_at=rent_at)
            ctx.log(f"rented instance {iid} ({label})" + (" (recovered after an API error)"
                                                          if rented["adopted"] else ""))
            for dup in rented.get("duplicates") or []:
                ctx.log(f"destroying duplicate instance {dup} left by a retried rent")
                client.destroy(dup)
            inst = client.wait_running(iid, timeout=float(req.get("boot_timeout_s") or
                                                          _env_float("NURSERY_VAST_BOOT_TIMEOUT_S", 1800.0)),
                                       should_stop=ctx.should_stop,
                                       on_status=lambda i: ctx.log(f"instance {iid}: "
                                                                   f"{i.get('actual_status') or 'provisioning'}"))
            dph = float(inst.get("dph_total") or dph)
            gpu = inst.get("gpu_name") or gpu
            cap = budget.get("max_dph")
            if cap is not None and dph > float(cap) + 1e-9:
                raise BackendError(f"instance {iid} costs ${dph:.3f}/h, above your cap of ${float(cap):.3f}/h; "
                                   "it was destroyed at once")
            client.attach_ssh_key(iid, public)
            host, port = client.ssh_endpoint(inst)
            ctx.store.update_instance(str(iid), state="running", gpu_name=gpu, dph=dph)
            phase("connecting", host=host, port=port, gpu_name=gpu, dph_total=dph)
            ctx.update(device=f"{gpu} (Vast.ai)")
            target = RemoteTarget(host, port, "root", str(key_path), str(ctx.job_dir / "ssh" / "known_hosts"),
                                  python=req.get("python") or os.environ.get("NURSERY_VAST_REMOTE_PYTHON")
                                  or "python3", remote_root=remote_root, name=f"vast:{iid}")
            limits = Limits.from_env(max_seconds=self._max_seconds(budget, dph), clock_start=rent_at,
                                     budget_reason=self._budget_reason(budget, dph))
            remote = RemoteRun(ctx, target, limits, on_phase=phase)
            remote.connect()
            base_dir = (job.get("config") or {}).get("base_model_dir") or ""
            remote_model = remote.prepare(base_dir)
            remote.touch("HEARTBEAT")
            remote.start(remote_model)
            final, rc = remote.supervise()
            result = remote.finish(final, rc, started)
            return result
        except BaseException as e:
            primary = e
            raise
        finally:
            if remote is not None:
                remote.close()
            try:
                self._teardown(ctx, client, iid, rent_at, dph, gpu, state, started, primary, result)
            finally:
                shutil.rmtree(ctx.job_dir / "ssh", ignore_errors=True)
                client.close()

    def _teardown(self, ctx: RunContext, client, iid: int | None, rent_at: float | None, dph: float | None,
                  gpu: str | None, state: dict, started: float, primary: BaseException | None,
                  result: dict | None = None) -> None:
        # the runner stores result["actual"] on success, so the cost goes there as well as into the row
        actual: dict[str, Any] = (result.setdefault("actual", {}) if result is not None else {})
        actual.update({"provider": "vast", "gpu_name": gpu, "dph_total": dph, "instance_id": iid,
                       "wall_seconds": round(time.time() - started, 2)})
        if iid is None:
            ctx.update(actual=actual, provider_state={**state, "phase": "done"})
            return
        state["phase"] = "destroying"
        ctx.update(provider_state=state)
        try:
            client.destroy(iid, confirm=True)
        except Exception as e:  # noqa: BLE001
            ctx.store.update_instance(str(iid), state="destroy_failed")
            msg = (f"could not destroy Vast.ai instance {iid}: {e}. It may still be billing: destroy it in the "
                   "Vast.ai console or run reap-instances (its watchdog also destroys it once this dashboard "
                   "stops heart-beating)")
            ctx.log(msg)
            if primary is None:
                raise BackendError(msg) from None
            raise BackendError(f"{primary}; also {msg}") from None
        destroyed_at = time.time()
        with _LIVE_LOCK:
            _LIVE.pop(iid, None)
        seconds = destroyed_at - (rent_at or destroyed_at)
        cost = seconds * (dph or 0.0) / 3600.0
        actual.update(seconds_billed=round(seconds, 2), cost_usd=round(cost, 6))
        from ...store import now
        ctx.store.update_instance(str(iid), state="destroyed", destroyed_at=now())
        state.update(phase="destroyed", destroyed_at=destroyed_at)
        ctx.update(provider_state=state, cost_usd=round(cost, 6), actual=actual)
        ctx.log(f"destroyed instance {iid} after {seconds:.0f} s (${cost:.4f})")

    # ------------------------------------------------------------------------------ recovery
    def recover(self, job: dict, ctx: RunContext) -> dict | None:
        """The dashboard died mid-run: destroy the instance it left (the run cannot be re-attached safely)."""
        state = job.get("provider_state") or {}
        ids = {int(r["id"]) for r in ctx.store.list_instances(live_only=True, job_id=job["id"])}
        if state.get("instance_id") and state.get("phase") != "destroyed":
            ids.add(int(state["instance_id"]))
        if not ids:
            return None
        client = self.client()
        try:
            for iid in ids:
                client.destroy(iid, confirm=True)
                from ...store import now
                ctx.store.update_instance(str(iid), state="destroyed", destroyed_at=now())
                ctx.log(f"destroyed instance {iid} left by an interrupted run")
        finally:
            client.close()
        return None

    # ------------------------------------------------------------------------------------ offers
    @staticmethod
    def _max_seconds(budget: dict, dph: float | None) -> float | None:
        limits = []
        if budget.get("max_hours"):
            limits.append(float(budget["max_hours"]) * 3600.0)
        if budget.get("max_cost") and dph:
            limits.append(float(budget["max_cost"]) / dph * 3600.0)
        return min(limits) if limits else None

    @staticmethod
    def _budget_reason(budget: dict, dph: float | None) -> str:
        parts = []
        if budget.get("max_hours"):
            parts.append(f"max {float(budget['max_hours']):g} h")
        if budget.get("max_cost"):
            parts.append(f"max ${float(budget['max_cost']):g}")
        return ", ".join(parts) + (f" at ${dph:.3f}/h" if dph else "")

    def pick_offer(self, client, req: dict, budget: dict, job: dict) -> dict:
        """The user's chosen offer (re-checked), else the cheapest verified offer that fits."""
        cap = budget.get("max_dph")
        disk = float(req.get("disk_gb") or DEFAULT_DISK_GB)
        if req.get("offer_id"):
            oid = int(req["offer_id"])
            offers = client.request("POST", "/api/v0/bundles/", json_body={
                "id": {"eq": oid}, "rentable": {"eq": True}, "allocated_storage": disk}).get("offers") or []
            if not offers:
                raise BackendError(f"offer {oid} is no longer available: pick another from list-offers")
            offer = offers[0]
            if cap is not None and float(offer["dph_total"]) > float(cap):
                raise InvalidConfig(f"offer {oid} costs ${offer['dph_total']:.3f}/h, above your cap of "
                                    f"${float(cap):.3f}/h")
            return offer
        need = float(req.get("min_gpu_ram_gb") or ((job.get("estimate") or {}).get("gpu_ram_gb") or 8))
        offers = client.search_offers(max_dph=cap, min_gpu_ram_gb=need, disk_gb=disk, gpu_name=req.get("gpu"),
                                      limit=10)
        if not offers:
            what = [f"{need:g} GB GPU RAM"] + ([f"under ${float(cap):g}/h"] if cap is not None else []) + \
                   ([f"GPU {req['gpu']}"] if req.get("gpu") else [])
            raise BackendError("no verified Vast.ai offer fits (" + ", ".join(what) + "): raise --max-dph, "
                               "pick another GPU, or try again later")
        return offers[0]
