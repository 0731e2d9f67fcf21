"""`nursery_train_cloud`: validate and queue a training run on Vast.ai or on an SSH server.

The job row carries the provider request (offer, GPU, server; never a secret) in provider_state and the caps
in budget; the job directory is the same self-contained one a local run uses.
"""
from __future__ import annotations

from typing import Any

from ..errors import BackendError, InvalidConfig, InvalidInput

PROVIDERS = ("vast", "ssh")


def _positive(name: str, value: Any) -> float | None:
    if value in (None, ""):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number, got {value!r}", field=name) from None
    if v <= 0:
        raise InvalidInput(f"{name} must be greater than 0, got {v:g}", field=name)
    return v


def resolve_server(ssh_server: str | None = None, host: str | None = None, port: Any = None,
                   user: str | None = None, key_path: str | None = None, python: str | None = None,
                   remote_root: str | None = None):
    """The SSH server for a run: explicit host flags, else a configured server by name (or the only one)."""
    from .settings import make_server, ssh_servers

    if host:
        return make_server(ssh_server or "cli", host, port, user, key_path, python=python,
                           remote_root=remote_root, where="--host")
    servers = ssh_servers()
    if ssh_server:
        if ssh_server not in servers:
            raise InvalidConfig(f"no SSH server named {ssh_server!r} (configured: {', '.join(servers) or 'none'}; "
                                "add [ssh_servers.<name>] to .streamlit/secrets.toml or pass --host)")
        return servers[ssh_server]
    if len(servers) == 1:
        return next(iter(servers.values()))
    raise InvalidConfig("which SSH server? pass --host (and --port/--user/--key-path) or --server NAME "
                        f"(configured: {', '.join(servers) or 'none'})")


def nursery_train_cloud(dataset: str, base_model: str = "smollm2-135m", output_name: str | None = None,
                        provider: str = "vast", *, max_dph: float | None = None, max_hours: float | None = None,
                        max_cost: float | None = None, gpu: str | None = None, offer_id: int | None = None,
                        min_gpu_ram_gb: float | None = None, image: str | None = None, disk_gb: float | None = None,
                        ssh_server: str | None = None, host: str | None = None, port: int | None = None,
                        user: str | None = None, key_path: str | None = None, python: str | None = None,
                        remote_root: str | None = None, created_by: str | None = None, **hyper: Any) -> dict:
    """Queues a cloud run after checking everything (dataset, base model, output name, provider settings and
    caps); returns the job's status. A JobRunner (dashboard or `train-cloud --wait`) runs it."""
    from ..jobs.api import (base_model_source, build_config, check_output_name, check_training_dataset,
                            create_job, default_output_name, nursery_job_status)

    if provider not in PROVIDERS:
        raise InvalidInput(f"provider {provider!r} is not supported (supported: {', '.join(PROVIDERS)}; see the "
                           "provider table in Settings)", field="provider")
    check_training_dataset(dataset)
    budget = {"max_dph": _positive("max_dph", max_dph), "max_hours": _positive("max_hours", max_hours),
              "max_cost": _positive("max_cost", max_cost)}
    request: dict[str, Any] = {}
    if provider == "vast":
        from .settings import vast_api_key

        vast_api_key(required=True)  # fail now, not on the runner; the key itself goes nowhere
        request = {k: v for k, v in {"gpu": gpu, "offer_id": int(offer_id) if offer_id else None,
                                     "min_gpu_ram_gb": _positive("min_gpu_ram_gb", min_gpu_ram_gb),
                                     "image": image, "disk_gb": _positive("disk_gb", disk_gb),
                                     "python": python, "remote_root": remote_root}.items() if v is not None}
        if request.get("disk_gb") is not None and request["disk_gb"] < 8:
            raise InvalidInput("disk_gb must be at least 8 (Vast.ai's minimum)", field="disk_gb")
    else:
        server = resolve_server(ssh_server, host, port, user, key_path, python, remote_root)
        if not server.key_path:
            raise InvalidConfig(f"no SSH key for {server.address}: pass --key-path or set key_path")
        request = {"server": server.to_dict()}
    config = build_config(base_model, hyper)
    try:
        source, spec = base_model_source(base_model)
    except BackendError:  # not reachable from here: the GPU machine downloads it from the hub itself
        from ..base_models import resolve

        spec = resolve(base_model)
        source = spec.hf_id
    output_name = check_output_name(output_name) if output_name else default_output_name(dataset, spec.alias)
    estimate = _estimate(dataset, base_model, config)
    if provider == "vast" and estimate and "min_gpu_ram_gb" not in request:
        request["min_gpu_ram_gb"] = estimate["gpu_ram_gb"]
    job = create_job(provider, dataset, base_model, output_name, config, created_by=created_by,
                     base_model_dir=source, budget={k: v for k, v in budget.items() if v is not None},
                     estimate=estimate,
                     provider_state={"provider": provider, "request": request, "phase": "queued"})
    from ..jobs.runner import notify_all

    notify_all()
    return nursery_job_status(job["id"])


def _estimate(dataset: str, base_model: str, config) -> dict | None:
    """The GPU memory and per-GPU time/cost estimate stored on the job (actuals are recorded against it)."""
    import math

    try:
        from ..estimate import nursery_estimate_cost

        e = nursery_estimate_cost(dataset, base_model, epochs=config.epochs, probe=False, config=config)
    except Exception:  # an estimate is a nicety; it never blocks a run
        return None
    mem = float((e.get("memory") or {}).get("total_gb") or 0.0)
    return {"memory_gb": round(mem, 2), "gpu_ram_gb": max(8, math.ceil(mem * 1.2)),
            "tokens": (e.get("tokens") or {}).get("total"), "gpus": e.get("gpus")}
