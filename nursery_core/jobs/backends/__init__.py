"""Where training runs: the `Backend` and `Provider` protocols and the registry of backends by job kind.

A job's `kind` names its backend: `local` (this machine), `vast` (a rented Vast.ai GPU), `ssh` (the team's
own server), `runpod` (a RunPod pod), `together` / `replicate` (managed fine-tuning), `modal` (a Modal function). The runner (`jobs/runner.py`) claims a queued job, builds a `RunContext`, and calls
`backend.run(job, ctx)`; after a restart it calls `backend.recover(job, ctx)` for a job whose runner died.
It owns every state transition: a backend only reports (events, columns) and returns or raises.

Adding a cloud provider is one module, `jobs/backends/<name>.py`, plus one line in `BACKENDS` (and its row in
`cloud/providers.py` for Settings). Its class implements `Provider`:

- `kind: str` — the job kind and `--provider` value ("vast").
- `label: str` — the name users read ("Vast.ai").
- `request(options, estimate) -> dict` — at submit time, in the caller's process: validate the provider
  options the user gave (the keyword arguments of `nursery_train_cloud`: gpu, gpu_count, offer_id,
  min_gpu_ram_gb, image, disk_gb, ssh_server, host, port, user, key_path, python, remote_root, trainer,
  destination, hardware; absent ones are None; `run_options.CloudRunOptions` says which provider reads which) and
  return the request stored in the job's `provider_state["request"]` — JSON, never a secret (check that a
  key is configured, do not copy it). `estimate` is the job's memory/time estimate or None. Raises
  InvalidInput (field named) or InvalidConfig.
- `run(job, ctx) -> dict` — in the runner's thread: rent/connect, start the worker, supervise it, fetch the
  adapter, release everything it holds (in `finally`). Returns `{output_dir, metrics, actual}`
  (`jobs.supervise.result_from_output` builds it; cost goes into `actual` as cost_usd, seconds_billed).
  Raises `Cancelled` when the job's cancel stopped it, `Detached` when the runner shuts down and the run
  goes on elsewhere, a NurseryError with a message the user can act on for any failure.
- `recover(job, ctx) -> dict | None` — a runner found the job `running` under a dead runner: re-attach and
  return the result as `run` does, or release what the job left (machines) and return None (the job is
  then marked interrupted).

The transport (HTTP client, SSH/SFTP, watchdog script) lives in `nursery_core/cloud/` and knows nothing of
jobs; a provider that trains over SSH reuses `jobs.backends.remote.RemoteRun` with the shared supervision
loop (`jobs.supervise.supervise`), as `vast` and `ssh` do. `ctx` gives the provider: `emit(event)`,
`log(message)`, `update(**job_columns)`, `heartbeat()`, `should_stop()`, `detached()`, `job()`,
`job_dir`, `store` (for the instances table).
"""
from __future__ import annotations

import importlib
from typing import Any, Protocol

from ...errors import InvalidInput, NotFound
from ...rows import JobRow
from ..context import RunContext


class Backend(Protocol):
    """What the runner calls for every job kind (see the module docstring)."""

    kind: str

    def run(self, job: JobRow, ctx: RunContext) -> dict[str, Any]: ...

    def recover(self, job: JobRow, ctx: RunContext) -> dict[str, Any] | None: ...


class Provider(Backend, Protocol):
    """A backend that runs jobs off this machine and validates its options when a run is queued."""

    label: str

    def request(self, options: dict[str, Any], estimate: dict[str, Any] | None) -> dict[str, Any]: ...


# kind -> "module:Class" (imported on first use so the registry costs nothing at import time) or a class
LOCAL_KIND = "local"
BACKENDS: dict[str, object] = {
    LOCAL_KIND: "nursery_core.jobs.backends.local:LocalBackend",
    "vast": "nursery_core.jobs.backends.vast:VastBackend", "ssh": "nursery_core.jobs.backends.ssh:SSHBackend",
    "runpod": "nursery_core.jobs.backends.runpod:RunPodBackend",
    "together": "nursery_core.jobs.backends.together:TogetherBackend",
    "replicate": "nursery_core.jobs.backends.replicate:ReplicateBackend",
    "modal": "nursery_core.jobs.backends.modal:ModalBackend",
}


def get_backend(kind: str) -> Backend:
    """The backend instance for a job kind; NotFound naming the known kinds."""
    target = BACKENDS.get(kind)
    if target is None:
        raise NotFound(f"no training backend {kind!r} (known: {', '.join(sorted(BACKENDS))})")
    if isinstance(target, str):
        mod, cls = target.split(":")
        target = getattr(importlib.import_module(mod), cls)
    return target() if isinstance(target, type) else target  # type: ignore[return-value]


def cloud_providers() -> list[str]:
    """The kinds that run off this machine (the values `--provider` accepts), in registry order."""
    return [k for k in BACKENDS if k != LOCAL_KIND]


def get_provider(name: str) -> Provider:
    """The provider for `--provider NAME`; InvalidInput naming the supported ones."""
    if name not in cloud_providers():
        raise InvalidInput(f"provider {name!r} is not supported (supported: {', '.join(cloud_providers())}; see "
                           "the provider table in Settings)", field="provider")
    return get_backend(name)  # type: ignore[return-value]  # every non-local backend implements Provider
