"""The `runpod` backend: rent the cheapest fitting RunPod GPU pod, check its GPUs, train there over SSH exactly
as Vast runs do, and always terminate it.

A stopped RunPod pod still bills its disk (runpod/docs pods/pricing.mdx), so teardown terminates, never stops,
and confirms the pod is gone. Each pod is recorded (instances table, provider_state) the moment the create call
returns and is named `nursery-<job id>`, which is how the reaper (`jobs/reaper.py`) finds pods a dead dashboard
left. Before training, the GPU health check (`gpu_check`) runs on the pod: on a fault (ERR!, no GPU, fewer GPUs
or less memory than promised) the pod is terminated, the reason recorded as a job event, and the next offer
rented: at most NURSERY_RUNPOD_GPU_TRIES (default 3) pods, within the budget cap. A pod with N GPUs trains on
all N (`training.launch`: torchrun + DDP).

Settings read here (the CLI options are in `run_options.py`): RUNPOD_API_KEY (or [runpod] api_key) and
RUNPOD_API_BASE_URL (the SDK's own override: the emulator); NURSERY_RUNPOD_REMOTE_PYTHON,
NURSERY_RUNPOD_REMOTE_ROOT, NURSERY_RUNPOD_BOOT_TIMEOUT_S; NURSERY_GPU_CHECK_PATH / NURSERY_GPU_CHECK_PYTHON
put another nvidia-smi / python first for the GPU check (tests use a fake one on an emulated pod).
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

from ...cloud.credentials import provider_secret
from ...cloud.remote import RemoteTarget
from ...cloud.runpod import RunPodClient
from ...cloud.ssh import generate_keypair
from ...errors import BackendError, InvalidInput
from ...rows import JobRow
from ...store import now
from ..budget import budget_reason, positive
from ..context import RunContext
from ..errors import Cancelled
from ..supervise import stop_as_cancel, supervise
from .gpu_health import check_remote_gpus
from .live import LiveMachines
from .options import env_float as _env
from .options import require_key
from .remote import BudgetReached, Limits, RemoteRun

log = logging.getLogger("nursery.cloud")

KIND = "runpod"
NAME_PREFIX = "nursery-"  # the reaper's prefix: a pod is named nursery-<job id>
DEFAULT_IMAGE = "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04"
DEFAULT_REMOTE_ROOT = "/root/nursery-jobs"
DEFAULT_DISK_GB = 20
DEFAULT_TRIES = 3
# A running pod's container disk costs $0.10/GB/month (runpod/docs pods/pricing.mdx), over a 720-hour month.
DISK_USD_PER_GB_HOUR = 0.10 / 720.0

# Pods this process created and has not terminated yet (for atexit and the CLI's interrupt path).
_LIVE = LiveMachines("RunPod pod")


def terminate_live_pods(reason: str = "shutdown") -> list[str]:
    """Terminates every pod this process still holds (atexit and the CLI's interrupt path call this)."""
    return _LIVE.release_all(reason)


atexit.register(terminate_live_pods, "exit")


@dataclass
class Pod:
    """One pod of a run: what it costs ($/hour: GPUs + container disk) and when it was created/terminated."""

    pod_id: str
    gpu: str
    gpu_count: int
    dph: float
    rent_at: float
    gone_at: float | None = None

    def cost(self, at: float | None = None) -> float:
        end = self.gone_at if self.gone_at is not None else (at or time.time())
        return max(0.0, end - self.rent_at) * self.dph / 3600.0


@dataclass
class PodRun:
    """What one run has rented so far (for the teardown in `finally`)."""

    client: Any
    ctx: RunContext
    state: dict[str, Any]
    started: float = field(default_factory=time.time)
    pods: list[Pod] = field(default_factory=list)

    def phase(self, p: str, **extra: Any) -> None:
        self.state.update(phase=p, **extra)
        self.ctx.update(provider_state=self.state)

    def spent(self) -> float:
        return sum(p.cost() for p in self.pods)

    def live(self) -> list[Pod]:
        return [p for p in self.pods if p.gone_at is None]


def matches_gpu(offer: dict, wanted: str) -> bool:
    """Whether an offer is the GPU a user named: its type id or display name, case and `_`/space insensitive."""
    norm = lambda s: " ".join(str(s or "").replace("_", " ").lower().split())  # noqa: E731
    w = norm(wanted)
    return w in (norm(offer.get("gpu_type_id")), norm(offer.get("gpu_name")))


class RunPodBackend:
    """Runs a job on a RunPod GPU pod over SSH (see module docstring)."""

    kind = KIND
    label = "RunPod"

    def __init__(self, client_factory: Callable[[], Any] | None = None):
        self._client_factory = client_factory

    def request(self, options: dict[str, Any], estimate: dict[str, Any] | None) -> dict[str, Any]:
        """The pod filter stored on the job (gpu, gpu_count, min_gpu_ram_gb, image, disk_gb, python,
        remote_root). InvalidConfig without an API key; InvalidInput for a Vast.ai offer id or a bad number."""
        require_key(KIND, self.label)
        if options.get("offer_id"):
            raise InvalidInput("offer_id is a Vast.ai offer; for RunPod name the GPU type with gpu "
                               "(e.g. 'RTX 4090')", field="offer_id")
        count = options.get("gpu_count")
        if count not in (None, ""):
            try:
                count = int(count)
            except (TypeError, ValueError):
                raise InvalidInput(f"gpu_count must be a whole number, got {count!r}", field="gpu_count") from None
            if not 1 <= count <= 8:
                raise InvalidInput(f"gpu_count must be between 1 and 8, got {count}", field="gpu_count")
        request = {k: v for k, v in {
            "gpu": options.get("gpu"), "gpu_count": count or None,
            "min_gpu_ram_gb": positive("min_gpu_ram_gb", options.get("min_gpu_ram_gb")),
            "image": options.get("image"), "disk_gb": positive("disk_gb", options.get("disk_gb")),
            "python": options.get("python"), "remote_root": options.get("remote_root")}.items() if v is not None}
        if estimate and "min_gpu_ram_gb" not in request:
            request["min_gpu_ram_gb"] = estimate["gpu_ram_gb"]
        return request

    def client(self) -> Any:
        if self._client_factory is not None:
            return self._client_factory()
        return RunPodClient(provider_secret(KIND) or "")

    # ------------------------------------------------------------------------------------ offers
    def offers(self, client: Any, req: dict, budget: dict, job: JobRow) -> list[dict]:
        """GPU types that fit (memory, GPU name, max $/GPU hour), cheapest first; BackendError when none does."""
        count = int(req.get("gpu_count") or 1)
        need = float(req.get("min_gpu_ram_gb") or ((job.get("estimate") or {}).get("gpu_ram_gb") or 8))
        cap = budget.get("max_dph")
        rows = client.offers(gpu_count=count, min_memory_gb=need,
                             max_usd_per_hour=float(cap) * count if cap is not None else None)
        if req.get("gpu"):
            rows = [o for o in rows if matches_gpu(o, req["gpu"])]
        if not rows:
            what = [f"{count} x {need:g} GB GPU"] + ([f"under ${float(cap):g}/GPU/h"] if cap is not None else []) \
                + ([f"GPU {req['gpu']}"] if req.get("gpu") else [])
            raise BackendError("no RunPod GPU type is available that fits (" + ", ".join(what) + "): raise "
                               "--max-dph, pick another GPU, or try again later")
        return rows

    # -------------------------------------------------------------------------------------- run
    def run(self, job: JobRow, ctx: RunContext) -> dict[str, Any]:
        req = dict((job.get("provider_state") or {}).get("request") or {})
        budget = dict(job.get("budget") or {})
        run = PodRun(self.client(), ctx, {"provider": KIND, "request": req, "phase": "searching", "pods": []})
        remote: RemoteRun | None = None
        primary: BaseException | None = None
        result: dict[str, Any] | None = None
        try:
            with stop_as_cancel():
                offers = self.offers(run.client, req, budget, job)
                if ctx.should_stop():
                    raise Cancelled("cancelled before renting")
                key_path, public = generate_keypair(ctx.job_dir / "ssh", comment=f"nursery-{job['id']}")
                remote, pod = self._healthy_pod(job, ctx, run, offers, req, budget, key_path, public)
                remote_model = remote.prepare((job.get("config") or {}).get("base_model_dir") or "")
            remote.heartbeat()
            remote.start(remote_model, nproc=pod.gpu_count)
            result = remote.finish(supervise(remote, ctx, remote.limits.supervision(on_shutdown="stop")),
                                   run.started)
            return result
        except BaseException as e:
            primary = e
            raise
        finally:
            if remote is not None:
                remote.close()
            try:
                self._teardown(ctx, run, primary, result)
            finally:
                shutil.rmtree(ctx.job_dir / "ssh", ignore_errors=True)
                run.client.close()

    def _healthy_pod(self, job: JobRow, ctx: RunContext, run: PodRun, offers: list[dict], req: dict,
                     budget: dict, key_path: Path, public: str) -> tuple[RemoteRun, Pod]:
        """Rents pods until one passes the GPU check (at most NURSERY_RUNPOD_GPU_TRIES); returns it connected.
        A faulty pod is terminated before the next is rented; its reason goes into the job's events."""
        tries = max(1, int(_env("NURSERY_RUNPOD_GPU_TRIES", DEFAULT_TRIES)))
        faults: list[str] = []
        for attempt in range(tries):
            max_cost = budget.get("max_cost")
            if attempt and max_cost is not None and run.spent() >= float(max_cost):
                raise BudgetReached(f"budget cap reached ({budget_reason(budget, None)}) after {attempt} pod(s) "
                                    "with a GPU fault: " + "; ".join(faults))
            # the next offer; once the list is exhausted the last type again (a new pod lands on another host)
            offer = offers[min(attempt, len(offers) - 1)]
            pod = self._create(job, ctx, run, offer, req, public)
            target = self._boot(ctx, run, pod, req, budget, key_path)
            remote = RemoteRun(ctx, target, self._limits(run, pod, budget), on_phase=run.phase)
            remote.connect()
            run.phase("checking_gpu", pod_id=pod.pod_id)
            verdict = check_remote_gpus(remote, pod.gpu_count, float(offer.get("memory_gb") or 0) * 1024.0)
            if verdict.ok:
                ctx.log(f"GPU check on pod {pod.pod_id}: {verdict.reason}")
                return remote, pod
            remote.close()
            faults.append(f"pod {pod.pod_id} ({pod.gpu}): {verdict.reason}")
            run.state.setdefault("gpu_faults", []).append({"pod_id": pod.pod_id, "reason": verdict.reason})
            more = attempt + 1 < tries
            ctx.log(f"GPU fault on pod {pod.pod_id} ({pod.gpu}): {verdict.reason}; terminating it"
                    + (f" and renting another ({attempt + 2}/{tries})" if more else ""))
            self._terminate(ctx, run, pod, why="GPU fault")
        raise BackendError(f"every pod rented had a GPU fault ({tries} tries; each was terminated): "
                           + "; ".join(faults))

    def _create(self, job: JobRow, ctx: RunContext, run: PodRun, offer: dict, req: dict, public: str) -> Pod:
        client = run.client
        name = f"{NAME_PREFIX}{job['id']}"
        disk = int(req.get("disk_gb") or DEFAULT_DISK_GB)
        ctx.log(f"chose {offer['gpu_name']} x{offer['gpu_count']} ({offer.get('memory_gb')} GB each) at "
                f"${offer['usd_per_hour']:.3f}/h")
        run.phase("renting", gpu_type_id=offer["gpu_type_id"], label=name)
        rented = client.create_pod(name=name, image=req.get("image") or DEFAULT_IMAGE,
                                   gpu_type_id=offer["gpu_type_id"], gpu_count=int(offer["gpu_count"]),
                                   public_key=public, container_disk_gb=disk)
        pod_id = str(rented["pod_id"])
        gpu_price = float((rented.get("pod") or {}).get("costPerHr") or offer["usd_per_hour"])
        pod = Pod(pod_id, offer["gpu_name"], int(offer["gpu_count"]), round(gpu_price + disk * DISK_USD_PER_GB_HOUR, 6),
                  time.time())
        run.pods.append(pod)
        # at exit the run's own client may be closed: a fresh one terminates the pod
        _LIVE.add(pod_id, lambda: self._terminate_fresh(pod_id))
        ctx.store.record_instance({"id": pod_id, "provider": KIND, "job_id": job["id"], "label": name,
                                   "state": "starting", "gpu_name": pod.gpu, "dph": pod.dph,
                                   "data": {"gpu_type_id": offer["gpu_type_id"], "gpu_count": pod.gpu_count,
                                            "adopted": rented["adopted"]}})
        run.state["pods"].append(pod_id)
        run.phase("starting", pod_id=pod_id, rented_at=pod.rent_at, dph_total=pod.dph)
        ctx.log(f"created pod {pod_id} ({name})" + (" (recovered after an API error)" if rented["adopted"] else ""))
        for dup in rented.get("duplicates") or []:
            ctx.log(f"terminating duplicate pod {dup} left by a retried create")
            client.terminate_pod(dup, confirm=True)
        return pod

    def _boot(self, ctx: RunContext, run: PodRun, pod: Pod, req: dict, budget: dict, key_path: Path) -> RemoteTarget:
        """Waits for the pod's public SSH port, re-checks its price against the cap; returns its SSH target."""
        def on_poll(p: dict) -> None:
            if ctx.should_stop():
                raise Cancelled("cancelled while the pod was starting")

        host, port, info = run.client.wait_ssh(pod.pod_id, timeout=_env("NURSERY_RUNPOD_BOOT_TIMEOUT_S", 900.0),
                                               on_poll=on_poll)
        per_gpu = float(info.get("costPerHr") or 0.0) / max(1, int(info.get("gpuCount") or pod.gpu_count))
        cap = budget.get("max_dph")
        if cap is not None and per_gpu > float(cap) + 1e-9:
            raise BackendError(f"pod {pod.pod_id} costs ${per_gpu:.3f}/GPU/h, above your cap of ${float(cap):.3f}/h; "
                               "it was terminated at once")
        ctx.store.update_instance(pod.pod_id, state="running")
        run.phase("connecting", host=host, port=port)
        ctx.update(device=f"{pod.gpu} x{pod.gpu_count} (RunPod)")
        root = req.get("remote_root") or os.environ.get("NURSERY_RUNPOD_REMOTE_ROOT") or DEFAULT_REMOTE_ROOT
        python = req.get("python") or os.environ.get("NURSERY_RUNPOD_REMOTE_PYTHON") or "python3"
        # each pod is a new host with its own host key: a known_hosts file per pod (trust on first use)
        return RemoteTarget(host, port, "root", str(key_path), str(ctx.job_dir / "ssh" / f"known_hosts-{pod.pod_id}"),
                            python=python, remote_root=root, name=f"runpod:{pod.pod_id}")

    @staticmethod
    def _limits(run: PodRun, pod: Pod, budget: dict) -> Limits:
        """The wall-clock cap for training on `pod`: max_hours from the first pod, and what max_cost has left
        after earlier (faulty) pods at this pod's price."""
        first = run.pods[0].rent_at
        caps = []
        if budget.get("max_hours"):
            caps.append(float(budget["max_hours"]) * 3600.0 - (pod.rent_at - first))
        if budget.get("max_cost") and pod.dph:
            earlier = sum(p.cost() for p in run.pods if p is not pod)
            caps.append((float(budget["max_cost"]) - earlier) / pod.dph * 3600.0)
        return Limits.from_env(max_seconds=max(0.0, min(caps)) if caps else None, clock_start=pod.rent_at,
                               budget_reason=budget_reason(budget, pod.dph))

    # ------------------------------------------------------------------------------- teardown
    def _terminate(self, ctx: RunContext, run: PodRun, pod: Pod, why: str = "") -> None:
        """Terminates one pod (confirmed gone) and records when; raises what the client raises."""
        run.phase("terminating", pod_id=pod.pod_id)
        try:
            run.client.terminate_pod(pod.pod_id, confirm=True)
        except Exception:
            ctx.store.update_instance(pod.pod_id, state="destroy_failed")
            raise
        pod.gone_at = time.time()
        _LIVE.discard(pod.pod_id)
        ctx.store.update_instance(pod.pod_id, state="destroyed", destroyed_at=now())
        ctx.log(f"terminated pod {pod.pod_id} after {pod.gone_at - pod.rent_at:.0f} s (${pod.cost():.4f})"
                + (f" ({why})" if why else ""))

    def _teardown(self, ctx: RunContext, run: PodRun, primary: BaseException | None,
                  result: dict[str, Any] | None) -> None:
        """Terminates every pod still live and records the run's cost; BackendError naming a pod that could not
        be terminated."""
        failed = []
        for pod in run.live():
            try:
                self._terminate(ctx, run, pod)
            except Exception as e:  # noqa: BLE001 — reported below with the primary error
                failed.append(f"could not terminate RunPod pod {pod.pod_id}: {e}. It may still be billing: "
                              "terminate it in the RunPod console or run reap-instances")
        cost = round(run.spent(), 6)
        last = run.pods[-1] if run.pods else None
        actual: dict[str, Any] = result.setdefault("actual", {}) if result is not None else {}
        actual.update({"provider": KIND, "gpu_name": last.gpu if last else None,
                       "gpu_count": last.gpu_count if last else None, "dph_total": last.dph if last else None,
                       "instance_id": last.pod_id if last else None, "pods": len(run.pods),
                       "wall_seconds": round(time.time() - run.started, 2), "cost_usd": cost,
                       "seconds_billed": round(sum(((p.gone_at or time.time()) - p.rent_at) for p in run.pods), 2)})
        run.state.update(phase="destroy_failed" if failed else "destroyed", destroyed_at=time.time())
        ctx.update(provider_state=run.state, cost_usd=cost, actual=actual)
        if failed:
            msg = "; ".join(failed)
            ctx.log(msg)
            raise BackendError(msg if primary is None else f"{primary}; also {msg}") from None

    def _terminate_fresh(self, pod_id: str) -> None:
        with self.client() as client:
            client.terminate_pod(pod_id, confirm=True, confirm_timeout=30)

    # ------------------------------------------------------------------------------ recovery
    def recover(self, job: JobRow, ctx: RunContext) -> dict | None:
        """The dashboard died mid-run: terminate the pods it left (the run is not re-attached)."""
        ids = {str(r["id"]) for r in ctx.store.list_instances(live_only=True, job_id=job["id"])
               if r.get("provider") == KIND}
        if not ids:
            return None
        client = self.client()
        try:
            for pod_id in ids:
                client.terminate_pod(pod_id, confirm=True)
                ctx.store.update_instance(pod_id, state="destroyed", destroyed_at=now())
                ctx.log(f"terminated pod {pod_id} left by an interrupted run")
        finally:
            client.close()
        return None
