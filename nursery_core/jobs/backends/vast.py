"""The `vast` backend: rent the cheapest fitting Vast.ai GPU, check its GPUs (`gpu_check`: a faulty machine is
destroyed and another offer rented), train there over SSH on every GPU, and always destroy it.

The instance id is stored (instances table + provider_state) the moment the rent call returns; teardown runs
in `finally` for success, failure, cancel and shutdown, is retried, and is confirmed. An on-instance
watchdog (onstart) destroys the machine by itself if this process stops heart-beating or a hard time cap
passes, and the reaper catches anything else.
"""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...cloud.credentials import vast_api_key
from ...cloud.remote import RemoteTarget
from ...cloud.ssh import generate_keypair
from ...cloud.vast import VastClient, env_float
from ...cloud.watchdog import GRACE_S, HARD_MAX_S, watchdog_onstart
from ...errors import BackendError, InvalidConfig, InvalidInput
from ...rows import JobRow
from ...store import now
from ..budget import budget_reason, max_seconds, positive
from ..context import RunContext
from ..errors import Cancelled
from ..supervise import stop_as_cancel, supervise
from .gpu_health import check_remote_gpus
from .live import LiveMachines
from .remote import BudgetReached, Limits, RemoteRun

log = logging.getLogger("nursery.cloud")

DEFAULT_IMAGE = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"
DEFAULT_REMOTE_ROOT = "/root/nursery-jobs"
DEFAULT_DISK_GB = 20.0

# Instances this process rented and has not destroyed yet (for signal/atexit teardown).
_LIVE = LiveMachines("Vast.ai instance")


def destroy_live_instances(reason: str = "shutdown") -> list[int]:
    """Destroys every instance this process still holds (signal handlers and atexit call this)."""
    return _LIVE.release_all(reason)


atexit.register(destroy_live_instances, "exit")


@dataclass
class Rental:
    """What one run has rented so far (for the teardown in `finally`): instance, when, at what price."""

    client: Any
    ctx: RunContext
    state: dict[str, Any]
    started: float = field(default_factory=time.time)
    iid: int | None = None
    rent_at: float | None = None
    dph: float | None = None
    gpu: str | None = None
    num_gpus: int = 1
    gpu_ram_mb: float = 0.0     # per GPU, as the offer promised
    offer: dict = field(default_factory=dict)
    spent: float = 0.0          # US$ of instances already destroyed for a GPU fault
    excluded: set = field(default_factory=set)   # ("offer", id) / ("machine", id) not to rent again

    def phase(self, p: str, **extra: Any) -> None:
        """Records the run's phase (searching, renting, starting, connecting, ...) in provider_state."""
        self.state.update(phase=p, **extra)
        self.ctx.update(provider_state=self.state)


class VastBackend:
    """Runs a job on a rented Vast.ai instance (see module docstring)."""

    kind = "vast"
    label = "Vast.ai"

    def __init__(self, client_factory: Callable[[], Any] | None = None):
        self._client_factory = client_factory

    def request(self, options: dict[str, Any], estimate: dict[str, Any] | None) -> dict[str, Any]:
        """The offer filter stored on the job (gpu, offer_id, min_gpu_ram_gb, image, disk_gb, python,
        remote_root; min_gpu_ram_gb from the estimate when not given). InvalidConfig without an API key."""
        vast_api_key(required=True)  # fail now, not on the runner; the key itself goes nowhere
        offer_id = options.get("offer_id")
        request = {k: v for k, v in {
            "gpu": options.get("gpu"), "offer_id": int(offer_id) if offer_id else None,
            "min_gpu_ram_gb": positive("min_gpu_ram_gb", options.get("min_gpu_ram_gb")),
            "image": options.get("image"), "disk_gb": positive("disk_gb", options.get("disk_gb")),
            "python": options.get("python"), "remote_root": options.get("remote_root")}.items() if v is not None}
        if request.get("disk_gb") is not None and request["disk_gb"] < 8:
            raise InvalidInput("disk_gb must be at least 8 (Vast.ai's minimum)", field="disk_gb")
        if estimate and "min_gpu_ram_gb" not in request:
            request["min_gpu_ram_gb"] = estimate["gpu_ram_gb"]
        return request

    def client(self) -> Any:
        if self._client_factory is not None:
            return self._client_factory()
        return VastClient()

    def _destroy_fresh(self, iid: int) -> None:
        client = self.client()
        try:
            client.destroy(iid, confirm=True, confirm_timeout=30)
        finally:
            client.close()

    # -------------------------------------------------------------------------------------- run
    def run(self, job: JobRow, ctx: RunContext) -> dict[str, Any]:
        req = dict((job.get("provider_state") or {}).get("request") or {})
        budget = dict(job.get("budget") or {})
        rental = Rental(self.client(), ctx, {"provider": "vast", "request": req, "phase": "searching"})
        remote: RemoteRun | None = None
        primary: BaseException | None = None
        result: dict[str, Any] | None = None
        try:
            with stop_as_cancel():
                remote, limits = self._healthy_instance(job, ctx, rental, req, budget)
                remote_model = remote.prepare((job.get("config") or {}).get("base_model_dir") or "")
            remote.heartbeat()
            remote.start(remote_model, nproc=rental.num_gpus)
            # a rented machine must not outlive its dashboard: on shutdown the run stops and the machine goes
            result = remote.finish(supervise(remote, ctx, limits.supervision(on_shutdown="stop")), rental.started)
            return result
        except BaseException as e:
            primary = e
            raise
        finally:
            if remote is not None:
                remote.close()
            try:
                self._teardown(ctx, rental, primary, result)
            finally:
                shutil.rmtree(ctx.job_dir / "ssh", ignore_errors=True)
                rental.client.close()

    def _healthy_instance(self, job: JobRow, ctx: RunContext, rental: Rental, req: dict,
                          budget: dict) -> tuple[RemoteRun, Limits]:
        """Rents, boots and connects until the instance's GPUs pass the health check (`gpu_check`; at most
        NURSERY_VAST_GPU_TRIES, default 3, within max_cost). A faulty instance is destroyed before the next
        offer (never the same offer or machine) is rented, and why is recorded in the job's log."""
        tries = max(1, int(env_float("NURSERY_VAST_GPU_TRIES", 3)))
        faults: list[str] = []
        for attempt in range(tries):
            left = dict(budget)
            if budget.get("max_cost") is not None:
                left["max_cost"] = float(budget["max_cost"]) - rental.spent
                if left["max_cost"] <= 0:
                    raise BudgetReached(f"budget cap reached ({budget_reason(budget, None)}) after {attempt} "
                                        "instance(s) with a GPU fault: " + "; ".join(faults))
            key_path, public = self._rent(job, ctx, rental, req, left)
            target = self._boot(job, ctx, rental, req, left, key_path, public)
            limits = Limits.from_env(max_seconds=max_seconds(left, rental.dph),
                                     clock_start=rental.rent_at or rental.started,
                                     budget_reason=budget_reason(budget, rental.dph))
            remote = RemoteRun(ctx, target, limits, on_phase=rental.phase)
            remote.connect()
            rental.phase("checking_gpu")
            verdict = check_remote_gpus(remote, rental.num_gpus, rental.gpu_ram_mb)
            if verdict.ok:
                ctx.log(f"GPU check on instance {rental.iid}: {verdict.reason}")
                return remote, limits
            remote.close()
            faults.append(f"instance {rental.iid} ({rental.gpu}): {verdict.reason}")
            self._replace(ctx, rental, verdict.reason, attempt + 1 < tries, f"{attempt + 2}/{tries}")
        raise BackendError(f"every instance rented had a GPU fault ({tries} tries; each was destroyed): "
                           + "; ".join(faults))

    def _replace(self, ctx: RunContext, rental: Rental, reason: str, more: bool, which: str) -> None:
        """Destroys a faulty instance (confirmed), adds its cost to the run's and keeps its offer and machine
        from being rented again."""
        iid = rental.iid
        assert iid is not None
        state = rental.state
        state.setdefault("gpu_faults", []).append({"instance_id": iid, "reason": reason})
        rental.client.destroy(iid, confirm=True)
        _LIVE.discard(iid)
        cost = (time.time() - (rental.rent_at or time.time())) * (rental.dph or 0.0) / 3600.0
        rental.spent += cost
        ctx.store.update_instance(str(iid), state="destroyed", destroyed_at=now())
        rental.excluded |= {(k, rental.offer.get(f)) for k, f in (("offer", "id"), ("machine", "machine_id"))
                            if rental.offer.get(f) is not None}
        ctx.log(f"GPU fault on instance {iid} ({rental.gpu}): {reason}; destroyed it (${cost:.4f})"
                + (f" and renting another ({which})" if more else ""))
        rental.iid, rental.rent_at = None, None

    def _rent(self, job: JobRow, ctx: RunContext, rental: Rental, req: dict, budget: dict) -> tuple[Path, str]:
        """Picks an offer and rents it with the watchdog onstart; returns the run's SSH key pair
        (private key path, public key)."""
        client = rental.client
        offer = self.pick_offer(client, req, budget, job, exclude=rental.excluded)
        rental.dph, rental.gpu, rental.offer = float(offer["dph_total"]), offer.get("gpu_name"), offer
        rental.num_gpus = max(1, int(offer.get("num_gpus") or 1))
        rental.gpu_ram_mb = float(offer.get("gpu_ram") or 0.0)
        ctx.log(f"chose offer {offer['id']}: {rental.gpu} x{offer.get('num_gpus', 1)}, "
                f"{offer.get('gpu_ram', 0) / 1000:.0f} GB, ${rental.dph:.3f}/h, reliability "
                f"{offer.get('reliability', 0):.3f}")
        if ctx.should_stop():
            raise Cancelled("cancelled before renting")
        key_path, public = generate_keypair(ctx.job_dir / "ssh", comment=f"nursery-{job['id']}")
        heartbeat = f"{self._remote_root(req).rstrip('/')}/{job['id']}/HEARTBEAT"
        max_s = max_seconds(budget, rental.dph)
        onstart = watchdog_onstart(client.base_url, heartbeat, env_float("NURSERY_VAST_WATCHDOG_GRACE_S", GRACE_S),
                                   (max_s + 600.0) if max_s else HARD_MAX_S,
                                   env_float("NURSERY_VAST_WATCHDOG_CHECK_S", 30.0))
        label = f"nursery-{job['id']}"
        rental.phase("renting", offer_id=offer["id"], label=label, gpu_name=rental.gpu, dph_total=rental.dph)
        rented = client.rent(int(offer["id"]), image=req.get("image") or DEFAULT_IMAGE,
                             disk_gb=float(req.get("disk_gb") or DEFAULT_DISK_GB), label=label, onstart=onstart)
        iid = rental.iid = rented["instance_id"]
        rental.rent_at = time.time()
        # a fresh client: the run's own is closed by the time atexit or the CLI's interrupt path gets here
        _LIVE.add(iid, lambda: self._destroy_fresh(iid))
        ctx.store.record_instance({"id": str(iid), "provider": "vast", "job_id": job["id"], "label": label,
                                   "state": "starting", "gpu_name": rental.gpu, "dph": rental.dph,
                                   "data": {"offer_id": offer["id"], "adopted": rented["adopted"]}})
        rental.phase("starting", instance_id=iid, rented_at=rental.rent_at)
        ctx.log(f"rented instance {iid} ({label})" + (" (recovered after an API error)" if rented["adopted"] else ""))
        for dup in rented.get("duplicates") or []:
            ctx.log(f"destroying duplicate instance {dup} left by a retried rent")
            client.destroy(dup)
        return key_path, public

    def _boot(self, job: JobRow, ctx: RunContext, rental: Rental, req: dict, budget: dict, key_path: Path,
              public: str) -> RemoteTarget:
        """Waits until the instance runs, re-checks its price against the cap, installs the run's key;
        returns its SSH target."""
        client, iid = rental.client, rental.iid
        assert iid is not None  # _rent set it
        inst = client.wait_running(iid, timeout=float(req.get("boot_timeout_s") or
                                                      env_float("NURSERY_VAST_BOOT_TIMEOUT_S", 1800.0)),
                                   should_stop=ctx.should_stop,
                                   on_status=lambda i: ctx.log(f"instance {iid}: "
                                                               f"{i.get('actual_status') or 'provisioning'}"))
        dph = rental.dph = float(inst.get("dph_total") or rental.dph or 0.0)
        gpu = rental.gpu = inst.get("gpu_name") or rental.gpu
        cap = budget.get("max_dph")
        if cap is not None and dph > float(cap) + 1e-9:
            raise BackendError(f"instance {iid} costs ${dph:.3f}/h, above your cap of ${float(cap):.3f}/h; "
                               "it was destroyed at once")
        client.attach_ssh_key(iid, public)
        host, port = client.ssh_endpoint(inst)
        ctx.store.update_instance(str(iid), state="running", gpu_name=gpu, dph=dph)
        rental.phase("connecting", host=host, port=port, gpu_name=gpu, dph_total=dph)
        ctx.update(device=f"{gpu} (Vast.ai)")
        return RemoteTarget(host, port, "root", str(key_path), str(ctx.job_dir / "ssh" / "known_hosts"),
                            python=req.get("python") or os.environ.get("NURSERY_VAST_REMOTE_PYTHON") or "python3",
                            remote_root=self._remote_root(req), name=f"vast:{iid}")

    @staticmethod
    def _remote_root(req: dict) -> str:
        return req.get("remote_root") or os.environ.get("NURSERY_VAST_REMOTE_ROOT") or DEFAULT_REMOTE_ROOT

    def _teardown(self, ctx: RunContext, rental: Rental, primary: BaseException | None,
                  result: dict[str, Any] | None = None) -> None:
        """Destroys the instance (confirmed) and records its cost; BackendError naming it when that fails."""
        client, iid, rent_at, dph, gpu, state = (rental.client, rental.iid, rental.rent_at, rental.dph, rental.gpu,
                                                 rental.state)
        # the runner stores result["actual"] on success, so the cost goes there as well as into the row
        actual: dict[str, Any] = (result.setdefault("actual", {}) if result is not None else {})
        actual.update({"provider": "vast", "gpu_name": gpu, "dph_total": dph, "instance_id": iid,
                       "wall_seconds": round(time.time() - rental.started, 2)})
        if iid is None:
            if rental.spent:
                actual.update(cost_usd=round(rental.spent, 6))
                ctx.update(cost_usd=round(rental.spent, 6))
            ctx.update(actual=actual, provider_state={**state, "phase": "done"})
            return
        state["phase"] = "destroying"
        ctx.update(provider_state=state)
        try:
            client.destroy(iid, confirm=True)
        except Exception as e:  # noqa: BLE001 — any failure is reported below (with the primary error) and recorded
            ctx.store.update_instance(str(iid), state="destroy_failed")
            msg = (f"could not destroy Vast.ai instance {iid}: {e}. It may still be billing: destroy it in the "
                   "Vast.ai console or run reap-instances (its watchdog also destroys it once this dashboard "
                   "stops heart-beating)")
            ctx.log(msg)
            if primary is None:
                raise BackendError(msg) from None
            raise BackendError(f"{primary}; also {msg}") from None
        destroyed_at = time.time()
        _LIVE.discard(iid)
        seconds = destroyed_at - (rent_at or destroyed_at)
        cost = seconds * (dph or 0.0) / 3600.0 + rental.spent
        actual.update(seconds_billed=round(seconds, 2), cost_usd=round(cost, 6))
        ctx.store.update_instance(str(iid), state="destroyed", destroyed_at=now())
        state.update(phase="destroyed", destroyed_at=destroyed_at)
        ctx.update(provider_state=state, cost_usd=round(cost, 6), actual=actual)
        ctx.log(f"destroyed instance {iid} after {seconds:.0f} s (${cost:.4f})")

    # ------------------------------------------------------------------------------ recovery
    def recover(self, job: JobRow, ctx: RunContext) -> dict | None:
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
                ctx.store.update_instance(str(iid), state="destroyed", destroyed_at=now())
                ctx.log(f"destroyed instance {iid} left by an interrupted run")
        finally:
            client.close()
        return None

    # ------------------------------------------------------------------------------------ offers
    def pick_offer(self, client: Any, req: dict, budget: dict, job: JobRow, exclude: set | None = None) -> dict:
        """The user's chosen offer (re-checked), else the cheapest verified offer that fits and is not in
        `exclude` ({("offer", id), ("machine", id)}: machines that showed a GPU fault)."""
        exclude = exclude or set()
        cap = budget.get("max_dph")
        disk = float(req.get("disk_gb") or DEFAULT_DISK_GB)
        if req.get("offer_id") and ("offer", int(req["offer_id"])) not in exclude:
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
        offers = [o for o in client.search_offers(max_dph=cap, min_gpu_ram_gb=need, disk_gb=disk,
                                                  gpu_name=req.get("gpu"), limit=10)
                  if ("offer", o.get("id")) not in exclude and ("machine", o.get("machine_id")) not in exclude]
        if not offers:
            what = [f"{need:g} GB GPU RAM"] + ([f"under ${float(cap):g}/h"] if cap is not None else []) + \
                   ([f"GPU {req['gpu']}"] if req.get("gpu") else [])
            raise BackendError("no verified Vast.ai offer fits (" + ", ".join(what) + "): raise --max-dph, "
                               "pick another GPU, or try again later")
        return offers[0]
