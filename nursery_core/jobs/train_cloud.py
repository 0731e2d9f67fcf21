"""`nursery_train_cloud`: validate and queue a training run on a cloud provider (Vast.ai or an SSH server).

The job row carries the provider request (offer, GPU, server; never a secret) in provider_state and the caps
in budget; the job directory is the same self-contained one a local run uses. Each provider validates its
own options (`Provider.request`, see `jobs/backends/__init__.py`).
"""
from __future__ import annotations

import logging
import math
from typing import Any

from ..base_models import resolve
from ..errors import BackendError, InvalidInput
from ..estimate import nursery_estimate_cost
from ..training.config import TrainConfig
from .api import (
    base_model_source,
    build_config,
    check_output_name,
    check_training_dataset,
    create_job,
    default_output_name,
    nursery_job_status,
)
from .backends import get_provider
from .budget import caps
from .runner import notify_all

log = logging.getLogger("nursery.jobs")


def nursery_train_cloud(dataset: str, base_model: str = "smollm2-135m", output_name: str | None = None,
                        provider: str = "vast", *, max_dph: float | None = None, max_hours: float | None = None,
                        max_cost: float | None = None, gpu: str | None = None, offer_id: int | None = None,
                        min_gpu_ram_gb: float | None = None, gpu_count: int | None = None,
                        image: str | None = None, disk_gb: float | None = None,
                        ssh_server: str | None = None, host: str | None = None, port: int | None = None,
                        user: str | None = None, key_path: str | None = None, python: str | None = None,
                        remote_root: str | None = None, trainer: str | None = None,
                        destination: str | None = None, hardware: str | None = None,
                        created_by: str | None = None, **hyper: Any) -> dict:
    """Queues a cloud run after checking everything (dataset, base model, output name, provider settings and
    caps); returns the job's status (nursery_job_status's keys). A JobRunner (dashboard or
    `train-cloud --wait`) runs it. Caps: max_dph in US$ per GPU hour, max_hours wall-clock hours, max_cost
    US$. Raises InvalidInput (unknown provider, bad cap or option, field named), InvalidConfig (no API key,
    no SSH server), NotFound (dataset), AlreadyExists / DuplicateRun (output name)."""
    backend = get_provider(provider)
    check_training_dataset(dataset)
    budget = caps(max_dph, max_hours, max_cost)
    options = {"gpu": gpu, "offer_id": offer_id, "min_gpu_ram_gb": min_gpu_ram_gb, "gpu_count": gpu_count,
               "image": image, "disk_gb": disk_gb, "ssh_server": ssh_server, "host": host, "port": port, "user": user,
               "key_path": key_path, "python": python, "remote_root": remote_root, "trainer": trainer,
               "destination": destination, "hardware": hardware}
    config = build_config(base_model, hyper)
    try:
        source, spec = base_model_source(base_model)
    except BackendError:  # not reachable from here: the GPU machine downloads it from the hub itself
        spec = resolve(base_model)
        source = spec.hf_id
    output_name = check_output_name(output_name) if output_name else default_output_name(dataset, spec.alias)
    estimate = _estimate(dataset, base_model, config)
    request = backend.request(options, estimate)
    job = create_job(provider, dataset, base_model, output_name, config, created_by=created_by,
                     base_model_dir=source, budget=budget, estimate=estimate,
                     provider_state={"provider": provider, "request": request, "phase": "queued"})
    notify_all()
    return nursery_job_status(job["id"])


def nursery_price_quote(dataset: str, base_model: str = "smollm2-135m", provider: str = "together",
                        epochs: float | None = None) -> dict:
    """The provider's price for training `dataset` next to Nursery's, each labelled with its source: {"provider",
    "epochs", "estimates": [{"source", "usd" (None when unavailable), "how"}, ...]}. Only providers that quote
    before a run (Together.ai) have one. Raises InvalidInput for another provider, NotFound for the dataset."""
    backend = get_provider(provider)
    quote = getattr(backend, "quote", None)
    if quote is None:
        raise InvalidInput(f"{backend.label} gives no price before a run (only Together.ai does); its cost is in "
                           "the GPU table above and in the job once it runs", field="provider")
    check_training_dataset(dataset)
    return quote(dataset, base_model, build_config(base_model, {"epochs": epochs} if epochs else {}))


def _estimate(dataset: str, base_model: str, config: TrainConfig) -> dict | None:
    """The GPU memory and per-GPU time/cost estimate stored on the job (actuals are recorded against it):
    {memory_gb, gpu_ram_gb (what to rent: memory + 20 %, at least 8), tokens, gpus}; None when it fails."""
    try:
        e = nursery_estimate_cost(dataset, base_model, epochs=config.epochs, probe=False, config=config)
    except Exception:  # an estimate is a nicety; it never blocks a run (logged for whoever wonders why)
        log.warning("no estimate for a cloud run on %s", dataset, exc_info=True)
        return None
    mem = float((e.get("memory") or {}).get("total_gb") or 0.0)
    return {"memory_gb": round(mem, 2), "gpu_ram_gb": max(8, math.ceil(mem * 1.2)),
            "tokens": (e.get("tokens") or {}).get("total"), "gpus": e.get("gpus")}
