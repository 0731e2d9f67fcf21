"""The `modal` backend: the run as a Modal function (serverless GPU), launched with `.spawn()`.

The job's Modal app is generated (`cloud.modal_app.render_modal_app`: an image with the pinned training stack,
`@app.function(gpu=..., timeout=...)`, a Volume for the adapter) into the job dir, spawned with the code and
job tarballs, followed until it returns, cancelled with `FunctionCall.cancel(terminate_containers=True)` on a
cancel or shutdown, and its adapter copied from the Volume into the job's output/ for the normal registration.

Modal speaks gRPC and cannot be emulated faithfully, so everything Modal-specific sits behind a small seam,
`ModalLauncher` (spawn -> `ModalCall` with result/cancel, fetch from a Volume); `ModalSDK` is the real one
(the `modal` package, credentials MODAL_TOKEN_ID / MODAL_TOKEN_SECRET), and tests pass a fake at this seam.
Budget: max_hours becomes the function's timeout (Modal ends it) and is enforced here too; max_cost is
refused (MAX_COST_REFUSAL says why). Progress is live: the function puts the worker's events on an ephemeral
`modal.Queue` while it trains (cloud/modal_app.py), drained here at every poll into the job's events; the
events.jsonl the function copies to the Volume at the end fills in whatever the queue did not deliver.
"""
from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from typing import Any, Callable, Protocol

from ...cloud.modal_app import MAX_TIMEOUT_S, check_gpu, job_tarball, write_modal_app
from ...cloud.remote import code_tarball
from ...errors import BackendError, InvalidConfig
from ...rows import JobRow
from ...store import now
from ..context import RunContext
from ..errors import Cancelled
from ..events import DONE, decode_events, is_final
from ..supervise import result_from_output
from .options import env_float, refuse_options, require_key
from .remote import LOCAL_ONLY, BudgetReached

KIND = "modal"
DEFAULT_GPU = "L4"
DEFAULT_TIMEOUT_S = 7200
VOLUME = "nursery-adapters"
MACHINE_OPTIONS = ("offer_id", "min_gpu_ram_gb", "image", "disk_gb", "ssh_server", "host", "port", "user",
                   "key_path", "python", "remote_root", "trainer", "destination", "hardware")


class ModalCallFailed(BackendError):
    """The Modal function raised, timed out or its output expired."""


MAX_COST_REFUSAL = (
    "max_cost cannot be enforced on Modal: Modal bills each second of GPU, CPU and memory at rates published "
    "only on modal.com/pricing (no API gives them, so Nursery cannot turn a budget into a time limit it can "
    "trust). Use max_hours, which becomes the function's timeout, and a workspace budget in Modal's settings "
    "(modal.com/docs/guide/budgets)")


class ModalCall(Protocol):
    """A spawned function call: `id`, `result(timeout)` (the function's return value, None while it runs;
    raises ModalCallFailed), `progress()` (the worker events that arrived since the last call, oldest first),
    `cancel()`."""

    id: str

    def result(self, timeout: float) -> dict | None: ...

    def progress(self) -> list[dict]: ...

    def cancel(self) -> None: ...


class ModalLauncher(Protocol):
    """The seam between this backend and Modal."""

    def spawn(self, app_file: Path, code_tar: bytes, job_tar: bytes) -> ModalCall: ...

    def fetch(self, volume: str, remote_dir: str, dest: Path) -> list[str]: ...

    def close(self) -> None: ...


def load_app_module(app_file: Path) -> Any:
    """Imports a generated app file as a module (what `modal run FILE` does)."""
    spec = importlib.util.spec_from_file_location(f"nursery_modal_{app_file.parent.parent.name}", app_file)
    if spec is None or spec.loader is None:
        raise BackendError(f"cannot load the generated Modal app {app_file}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # Modal looks its functions' module up by name
    spec.loader.exec_module(mod)
    return mod


class _SDKCall:
    def __init__(self, fc: Any, queue: Any):
        self.fc, self.id, self.queue = fc, fc.object_id, queue

    def progress(self) -> list[dict]:
        # non-blocking get_many returns [] at once when the queue is empty (modal/queue.py Queue.get_many)
        return list(self.queue.get_many(1000, block=False))

    def result(self, timeout: float) -> dict | None:
        import modal.exception as mx

        try:
            return self.fc.get(timeout=timeout)
        except mx.OutputExpiredError:
            raise ModalCallFailed(f"the output of Modal call {self.id} expired before it was read") from None
        except mx.FunctionTimeoutError as e:
            raise ModalCallFailed(f"Modal call {self.id} hit its timeout: {e}") from None
        except mx.TimeoutError:
            return None
        except Exception as e:  # noqa: BLE001 — the function's own exception, re-raised by Modal
            raise ModalCallFailed(f"Modal call {self.id} failed: {type(e).__name__}: {e}") from None

    def cancel(self) -> None:
        self.fc.cancel(terminate_containers=True)


class ModalSDK:
    """The real launcher over the `modal` package: the app runs (ephemeral) while its call is followed."""

    def __init__(self) -> None:
        self._ctx: Any = None
        self._queue_ctx: Any = None

    def spawn(self, app_file: Path, code_tar: bytes, job_tar: bytes) -> ModalCall:
        import modal

        mod = load_app_module(app_file)
        self._ctx = mod.app.run()
        self._ctx.__enter__()
        self._queue_ctx = modal.Queue.ephemeral()
        queue = self._queue_ctx.__enter__()
        return _SDKCall(mod.train.spawn(code_tar, job_tar, queue.object_id), queue)

    def fetch(self, volume: str, remote_dir: str, dest: Path) -> list[str]:
        import modal
        from modal.types import FileEntryType

        vol = modal.Volume.from_name(volume)
        names = []
        for entry in vol.listdir(remote_dir, recursive=True):
            if entry.type != FileEntryType.FILE:
                continue
            rel = Path(entry.path).relative_to(remote_dir)
            if rel.is_absolute() or ".." in rel.parts:
                raise BackendError(f"unsafe path {entry.path!r} in the Modal volume")
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as fh:
                for chunk in vol.read_file(entry.path):
                    fh.write(chunk)
            names.append(str(rel))
        return names

    def close(self) -> None:
        if self._queue_ctx is not None:
            self._queue_ctx.__exit__(None, None, None)
            self._queue_ctx = None
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None


class _LiveEvents:
    """The worker events streamed so far: `seen` counts them (finals included: they are in the file too)."""

    def __init__(self, ctx: RunContext):
        self.ctx, self.seen, self.stopped = ctx, 0, False

    def poll(self, call: ModalCall) -> None:
        """Emits the events that arrived since the last poll; a failing queue stops live progress, not the run
        (the Volume keeps every event)."""
        if self.stopped:
            return
        try:
            events = call.progress()
        except Exception as e:  # noqa: BLE001 — reported; the events are read from the Volume at the end
            self.ctx.log(f"live progress from Modal stopped: {e}")
            self.stopped = True
            return
        for ev in events:
            self.seen += 1
            if not is_final(ev):
                self.ctx.emit(ev)


class ModalBackend:
    """Runs a job as a spawned Modal function (see module docstring)."""

    kind = KIND
    label = "Modal"

    def __init__(self, launcher_factory: Callable[[], ModalLauncher] | None = None):
        self._launcher_factory = launcher_factory

    def request(self, options: dict[str, Any], estimate: dict[str, Any] | None) -> dict[str, Any]:
        """{gpu: Modal's GPU spelling, with ':N' for gpu_count > 1}. InvalidConfig without Modal credentials;
        InvalidInput for an unknown GPU or a machine option Modal cannot honour."""
        require_key(KIND, self.label)
        refuse_options(options, MACHINE_OPTIONS, self.label, "a Modal function: it asks only for a GPU type")
        gpu = str(options.get("gpu") or DEFAULT_GPU)
        count = options.get("gpu_count")
        if count not in (None, "", 1) and ":" not in gpu:
            gpu = f"{gpu}:{int(count)}"
        return {"gpu": check_gpu(gpu)}

    def launcher(self) -> ModalLauncher:
        return self._launcher_factory() if self._launcher_factory is not None else ModalSDK()

    def run(self, job: JobRow, ctx: RunContext) -> dict[str, Any]:
        started = time.time()
        req = dict((job.get("provider_state") or {}).get("request") or {})
        budget = dict(job.get("budget") or {})
        if budget.get("max_cost") is not None:
            raise InvalidConfig(MAX_COST_REFUSAL)
        timeout_s = int(min(MAX_TIMEOUT_S, float(budget["max_hours"]) * 3600)) if budget.get("max_hours") \
            else DEFAULT_TIMEOUT_S
        state: dict[str, Any] = {"provider": KIND, "request": req, "phase": "generating"}
        app_file = write_modal_app(ctx.job_dir / "modal" / "app.py", run_id=job["id"], gpu=req.get("gpu") or
                                   DEFAULT_GPU, timeout_s=max(1, timeout_s), volume_name=VOLUME)
        ctx.update(provider_state=state)
        launcher = self.launcher()
        call: ModalCall | None = None
        finished = False
        try:
            if ctx.should_stop():
                raise Cancelled("cancelled before the Modal function was spawned")
            call = launcher.spawn(app_file, code_tarball(), job_tarball(ctx.job_dir, LOCAL_ONLY))
            state.update(phase="running", call_id=call.id, app_file=str(app_file))
            ctx.update(provider_state=state, device=f"Modal {req.get('gpu') or DEFAULT_GPU}")
            ctx.store.record_instance({"id": call.id, "provider": KIND, "job_id": job["id"],
                                       "label": f"nursery-{job['id']}", "state": "running",
                                       "gpu_name": req.get("gpu"), "dph": None, "data": {"app": str(app_file)}})
            ctx.log(f"spawned Modal function call {call.id} on {req.get('gpu') or DEFAULT_GPU}")
            live = _LiveEvents(ctx)
            out = self._follow(ctx, call, budget, started, live)
            finished = True
            live.poll(call)
            ctx.log(f"{live.seen} events streamed from Modal while the function ran")
            self._record_events(ctx, launcher, out, skip=live.seen)
            if out.get("status") != DONE or not out.get("adapter_dir"):  # status: the worker's final event kind
                final = out.get("final") or {}
                raise BackendError(f"the Modal run ended {out.get('status')} (exit {out.get('exit_code')})"
                                   + (f": {final.get('message')}" if final.get("message") else ""))
            dest = ctx.job_dir / "output"
            names = launcher.fetch(VOLUME, out["adapter_dir"], dest)
            ctx.log(f"copied the adapter from the Modal volume ({len(names)} files)")
            return result_from_output(ctx.job_dir, {**(out.get("final") or {}), "output_dir": str(dest)}, started)
        finally:
            try:
                if call is not None and not finished:
                    call.cancel()
                    ctx.log(f"cancelled Modal function call {call.id}")
                if call is not None:
                    ctx.store.update_instance(call.id, state="destroyed", destroyed_at=now())
            finally:
                launcher.close()

    def _follow(self, ctx: RunContext, call: ModalCall, budget: dict, started: float, live: "_LiveEvents") -> dict:
        """Waits for the call's result, turning streamed events into job events and polling for cancel, shutdown
        and max_hours (then cancels it)."""
        poll = env_float("NURSERY_MODAL_POLL_S", 5.0)
        while True:
            out = call.result(timeout=poll)
            live.poll(call)
            ctx.heartbeat()
            if out is not None:
                return out
            why = ("cancel" if ctx.should_stop() else "shutdown" if ctx.detached() else
                   "budget" if budget.get("max_hours") and time.time() - started > float(budget["max_hours"]) * 3600
                   else None)
            if why is None:
                continue
            call.cancel()
            ctx.log(f"cancelled Modal function call {call.id} ({why})")
            if why == "cancel":
                raise Cancelled(f"cancelled: Modal function call {call.id} was cancelled")
            if why == "budget":
                raise BudgetReached(f"budget cap reached (max {float(budget['max_hours']):g} h): Modal function "
                                    f"call {call.id} was cancelled")
            raise BackendError(f"Modal function call {call.id} was cancelled because the dashboard shut down")

    @staticmethod
    def _record_events(ctx: RunContext, launcher: ModalLauncher, out: dict, skip: int = 0) -> None:
        """Copies the run's events.jsonl from the Volume into the job's events (progress, losses), after the
        first `skip` (those already streamed live)."""
        run_dir = str(out.get("run_id") or "")
        if not run_dir:
            return
        tmp = ctx.job_dir / "modal" / "run"
        try:
            launcher.fetch(VOLUME, run_dir, tmp)
        except Exception as e:  # noqa: BLE001 — the adapter matters more than the history; logged
            ctx.log(f"could not read the run's events from the Modal volume: {e}")
            return
        path = tmp / "events.jsonl"
        if path.exists():
            events, _ = decode_events(path.read_bytes().split(b"\n"), 0)
            for ev in events[skip:]:
                if not is_final(ev):
                    ctx.emit(ev)

    def recover(self, job: JobRow, ctx: RunContext) -> dict | None:
        """A dead dashboard's Modal call cannot be re-attached here: its ephemeral app ended with that process,
        which stops the function; the row is marked."""
        call_id = (job.get("provider_state") or {}).get("call_id")
        if call_id:
            ctx.store.update_instance(call_id, state="destroyed", destroyed_at=now())
            ctx.log(f"Modal call {call_id} ended with the dashboard that spawned it (ephemeral app)")
        return None

