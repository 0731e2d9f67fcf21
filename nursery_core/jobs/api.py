"""The training-job API: validate and queue runs (self-contained job dirs), report status, cancel, wait, and
register a finished run's adapter as a model with its lineage."""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import AlreadyExists, BackendError, DuplicateRun, InvalidConfig, InvalidInput, NotFound
from ..rows import JobRow
from ..status import JobStatus
from ..store import get_store, new_id
from ..training.config import TrainConfig
from .backends import LOCAL_KIND
from .events import CHART_KINDS, EVAL, PROGRESS, STOP_FILE

log = logging.getLogger("nursery.jobs")
LOSS_POINTS = 400  # loss history is thinned to about this many points for charts and --json


# ------------------------------------------------------------------------------------------- datasets
def check_training_dataset(name: str) -> dict:
    """The dataset's row when it may be trained on: it has examples, is no golden set and shares no request
    with a golden set (InvalidInput / SharedRequest naming the request and both sets otherwise)."""
    from ..golden import refuse_for_training

    ds = get_store().get_dataset(name)
    if not ds.get("num_examples"):
        raise InvalidInput(f"dataset {name!r} has no examples", field="dataset")
    refuse_for_training(name)
    return ds


def dataset_examples(name: str, split: str) -> list[dict]:
    """A stored dataset's examples for a split ('train' | 'eval' | 'all'), as the Data Garden split them."""
    from ..datasets import load_examples

    return list(load_examples(name, split=split))


# ------------------------------------------------------------------------------------------ base model
def base_model_source(base_model: str) -> tuple[str, Any]:
    """(what the worker loads: a local dir or a hub id, spec); a clear error if it cannot load offline."""
    from ..base_models import materialise_embedded, resolve

    spec = resolve(base_model)
    if spec.local_dir:
        d = Path(spec.local_dir)
        if not any(d.glob("*.safetensors")) and not any(d.glob("*.bin")):
            raise InvalidInput(f"{d} has no model weights (*.safetensors / *.bin)", field="base_model")
        return str(d), spec
    if spec.embedded:
        return str(materialise_embedded()), spec
    local = paths.base_models_dir() / spec.alias
    if (local / "config.json").exists():
        return str(local), spec
    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True") or not _hub_reachable():
        raise BackendError(f"base model {spec.alias!r} ({spec.hf_id}) is not on this machine and the Hugging Face "
                           f"hub is not reachable: connect to the internet, put a copy in {local}, or pass a "
                           "local model directory")
    return spec.hf_id, spec


def _hub_reachable(timeout: float = 3.0) -> bool:
    import httpx

    try:
        httpx.head("https://huggingface.co", timeout=timeout)
        return True
    except httpx.HTTPError:
        return False


# ---------------------------------------------------------------------------------------------- jobs
def check_output_name(output_name: str) -> str:
    """A free model name: not an existing model (row or directory); DuplicateRun when an active or queued job
    already writes it (Store.create_job checks that again atomically, for submits racing each other)."""
    store = get_store()
    paths.check_name(output_name, "output name")
    if store.has_model(output_name) or (paths.models_dir() / output_name).exists():
        raise AlreadyExists(f"a model named {output_name!r} already exists: choose another output name")
    other = store.active_job_for_output(output_name)
    if other is not None:
        raise DuplicateRun(f"job {other['id']} ({other['status']}"
                           + (f", started by {other['created_by']}" if other.get("created_by") else "")
                           + f") already trains model {output_name!r}: follow that job, or choose another output "
                           "name", other={k: other.get(k) for k in ("id", "kind", "status", "created_by")})
    return output_name


def default_output_name(dataset: str, base_alias: str) -> str:
    """`<dataset>-<base>`, or -2, -3 ... past existing models. Deterministic on purpose: submitting the same
    run twice (a double click, a retried script) names the same model, so the second is refused as a duplicate
    (DuplicateRun) instead of training twice."""
    stem = paths.slugify(f"{dataset}-{paths.slugify(base_alias)}")[:50] or "model"
    store = get_store()
    for k in range(1, 1000):
        name = stem if k == 1 else f"{stem}-{k}"
        if store.has_model(name) or (paths.models_dir() / name).exists():
            continue
        return check_output_name(name)
    raise AlreadyExists(f"models {stem!r} to {stem}-999 all exist: choose an output name")


def build_config(base_model: str, hyper: dict) -> TrainConfig:
    """TrainConfig defaults + the user's hyper-parameters, validated (unknown names are errors)."""
    bad = {"base_model_dir", "dataset_file", "eval_file", "output_dir"} & set(hyper)
    if bad:
        raise InvalidConfig(f"{', '.join(sorted(bad))} are set by Nursery, not by the caller")
    return TrainConfig(base_model=base_model).with_overrides(**hyper).validate()


def create_job(kind: str, dataset: str, base_model: str, output_name: str, config: TrainConfig | dict,
               created_by: str | None = None, base_model_dir: str | None = None, **columns: Any) -> JobRow:
    """Writes the self-contained job dir (config.json + data/train.jsonl + data/eval.jsonl from the
    dataset's stored split) and inserts the queued row; nothing is left behind if that fails."""
    store = get_store()
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    check_training_dataset(dataset)  # every route to training passes here: golden data never reaches a job
    train = dataset_examples(dataset, "train")
    evals = dataset_examples(dataset, "eval")
    if not train:
        raise InvalidInput(f"dataset {dataset!r} has no training examples", field="dataset")
    train, recipe = _apply_recipe(dataset, train, evals, cfg)
    job_id = new_id("j")
    job_dir = paths.job_dir(job_id)
    cfg = TrainConfig.from_dict({**cfg.to_dict(), "base_model": base_model, "dataset_file": "data/train.jsonl",
                                 "eval_file": "data/eval.jsonl", "output_dir": "output",
                                 "base_model_dir": base_model_dir or cfg.base_model_dir})
    try:
        (job_dir / "data").mkdir(parents=True)
        for fname, rows in (("train.jsonl", train), ("eval.jsonl", evals)):
            with open(job_dir / "data" / fname, "w", encoding="utf-8") as fh:
                for ex in rows:
                    fh.write(json.dumps(ex, ensure_ascii=False) + "\n")
        if recipe is not None:
            (job_dir / "data" / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
        cfg.save(job_dir / "config.json")
        row = {"id": job_id, "kind": kind, "dataset": dataset, "base_model": base_model,
               "output_name": output_name, "config": cfg.to_dict(), "created_by": created_by,
               "total_steps": 0, **columns}
        return store.create_job(row)
    except BaseException:
        shutil.rmtree(job_dir, ignore_errors=True)
        raise


def _apply_recipe(dataset: str, train: list[dict], evals: list[dict],
                  cfg: TrainConfig) -> tuple[list[dict], dict | None]:
    """The config's data recipe (mixing, practice tools, function masking) on the training split; None when it
    has none."""
    if cfg.function_masking <= 0 and cfg.practice_fraction <= 0 and not (cfg.mix_dataset and cfg.mix_fraction > 0):
        return train, None
    from ..data.recipe import apply_recipe

    mix: list[dict] = []
    if cfg.mix_dataset and cfg.mix_fraction > 0:
        if cfg.mix_dataset == dataset:
            raise InvalidConfig(f"mix_dataset is the dataset being trained ({dataset!r}): name another one")
        try:
            check_training_dataset(cfg.mix_dataset)  # golden data never reaches a job, mixed in or not
        except NotFound:
            raise NotFound(f"mix_dataset {cfg.mix_dataset!r} is not a stored dataset (see list-datasets)") from None
        mix = dataset_examples(cfg.mix_dataset, "train")
    practice: list[dict] = []
    if cfg.practice_fraction > 0:
        from ..data.practice_tools import practice_examples

        own = {t["function"]["name"] for ex in train + mix for t in ex.get("tools") or ()}
        practice = practice_examples(int(round(cfg.practice_fraction * len(train))), cfg.seed, exclude=own,
                                     avoid=get_store().golden_request_norms())
    return apply_recipe(train, evals, cfg.seed, cfg.function_masking, mix, cfg.mix_fraction, cfg.mix_dataset,
                        practice)


def nursery_train_local(dataset: str, base_model: str = "smollm2-135m", output_name: str | None = None,
                        created_by: str | None = None, **hyper: Any) -> dict:
    """Queues a local LoRA run after checking everything (dataset, base model, output name, settings);
    returns the job's status. A JobRunner (dashboard or `train-local --wait`) runs it."""
    check_training_dataset(dataset)
    config = build_config(base_model, hyper)
    from ..base_models import resolve

    spec = resolve(base_model)
    output_name = check_output_name(output_name) if output_name else default_output_name(dataset, spec.alias)
    source, spec = base_model_source(base_model)  # last: the embedded default is materialised once here
    estimate = None
    try:
        from ..estimate import quick_local_estimate

        estimate = quick_local_estimate(dataset, base_model, config)
    except Exception:  # an estimate is a nicety; it never blocks a run (logged for whoever wonders why)
        log.warning("no estimate for a local run on %s", dataset, exc_info=True)
        estimate = None
    job = create_job(LOCAL_KIND, dataset, base_model, output_name, config, created_by=created_by,
                     base_model_dir=source, estimate=estimate)
    from .runner import notify_all

    notify_all()
    return nursery_job_status(job["id"])


def _elapsed(job: JobRow) -> float | None:
    from datetime import datetime

    started_at, finished_at = job.get("started_at"), job.get("finished_at")
    if not started_at:
        return None
    start = datetime.fromisoformat(started_at.replace("Z", "+00:00"))
    end = datetime.fromisoformat(finished_at.replace("Z", "+00:00")) if finished_at else datetime.now(UTC)
    return round((end - start).total_seconds(), 1)


def _thin(points: list[dict], n: int = LOSS_POINTS) -> list[dict]:
    if len(points) <= n:
        return points
    stride = len(points) / n
    picked = [points[int(i * stride)] for i in range(n)]
    return picked + ([points[-1]] if picked[-1] is not points[-1] else [])


def job_summary(job: JobRow) -> dict:
    """The short row for tables and list-jobs."""
    return {k: job.get(k) for k in ("id", "kind", "status", "dataset", "base_model", "output_name", "model_name",
                                   "progress", "step", "total_steps", "last_loss", "eval_loss", "tokens_per_s",
                                   "eta_s", "device", "created_at", "started_at", "finished_at", "cost_usd",
                                   "created_by")} | {"elapsed_s": _elapsed(job)}


def nursery_job_status(job_id: str, log_lines: int = 20) -> dict:
    """Everything about one job: status, progress, step/total, elapsed, ETA, tokens/s, loss history (train and
    eval), device, log tail, error, and estimated vs actual time and cost."""
    from .supervise import log_tail

    store = get_store()
    job = store.get_job(job_id)
    events = store.job_events(job_id, kinds=CHART_KINDS)
    loss = [{"step": e["step"], "loss": e["loss"]} for e in events if e["kind"] == PROGRESS and e["loss"] is not None]
    evals = [{"step": e["step"], "eval_loss": e["eval_loss"]} for e in events
             if e["kind"] == EVAL and e["eval_loss"] is not None]
    jd = paths.jobs_dir() / job_id
    tail = log_tail(jd, log_lines) if jd.exists() else ""
    status = job_summary(job)
    status.update({
        "error": job.get("error"), "log_tail": tail or job.get("log_tail") or "",
        "loss_history": _thin(loss), "eval_history": evals, "learning_rate": job.get("learning_rate"),
        "estimate": job.get("estimate"), "actual": job.get("actual"), "config": job.get("config"),
        "cancel_requested": bool(job.get("cancel_requested")), "job_dir": str(jd),
        "active": JobStatus(job["status"]).is_active,
    })
    if job["status"] == JobStatus.QUEUED.value:
        status["queue"] = queue_position(job)
    return status


def queue_position(job: JobRow) -> dict:
    """Where a queued job waits: {position (1 = next), ahead: [queued ids before it], running: [running ids of
    its kind]} — the runner claims the oldest queued job of a kind once fewer than its limit run."""
    store = get_store()
    queued = [j["id"] for j in store.list_jobs(status=JobStatus.QUEUED.value, kind=job["kind"],
                                               order="created_at, rowid")]
    ahead = queued[:queued.index(job["id"])] if job["id"] in queued else queued
    running = [j["id"] for j in store.list_jobs(status=JobStatus.RUNNING.value, kind=job["kind"])]
    return {"position": len(ahead) + 1, "ahead": ahead, "running": running}


def nursery_list_jobs(status: str | list[str] | None = None, kind: str | None = None, limit: int | None = 50,
                      offset: int | None = 0) -> list[dict]:
    """Jobs, newest first (paginated with limit/offset)."""
    return [job_summary(j) for j in get_store().list_jobs(status=status, kind=kind, limit=limit, offset=offset)]


def nursery_cancel_job(job_id: str) -> dict:
    """Requests cancellation: a queued job is cancelled at once, a running one stops within seconds."""
    store = get_store()
    job = store.get_job(job_id)
    if JobStatus(job["status"]).is_final:
        raise InvalidInput(f"job {job_id} already finished ({job['status']}); nothing to cancel", field="job_id")
    store.request_cancel(job_id)
    jd = paths.jobs_dir() / job_id
    if job["kind"] == LOCAL_KIND and jd.exists():
        (jd / STOP_FILE).touch()  # the worker sees it even when no runner watches (CLI or dashboard closed)
    from .runner import notify_all

    notify_all()
    return nursery_job_status(job_id)


def wait_for_job(job_id: str, on_event: Callable[[dict], None] | None = None, poll_s: float = 0.5,
                 timeout: float | None = None) -> dict:
    """Blocks until the job is final (whichever runner runs it), passing each new event to on_event."""
    store = get_store()
    after = 0
    deadline = time.monotonic() + timeout if timeout else None
    while True:
        for ev in store.job_events(job_id, after_id=after):
            after = ev["id"]
            if on_event:
                on_event(ev)
        job = store.get_job(job_id)
        if JobStatus(job["status"]).is_final:
            for ev in store.job_events(job_id, after_id=after):
                after = ev["id"]
                if on_event:
                    on_event(ev)
            return nursery_job_status(job_id)
        if deadline and time.monotonic() > deadline:
            raise BackendError(f"job {job_id} is still {job['status']} after {timeout:.0f} s")
        time.sleep(poll_s)
