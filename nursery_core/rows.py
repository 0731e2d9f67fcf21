"""The rows the store returns for jobs, models and deployments, as the CLI, the pages and the backends read them.

`total=False`: a row read back from SQLite has every column (None when unset), but rows built for insertion
and summaries carry a subset. JSON columns come back decoded (dicts and lists). Times are ISO-8601 UTC
strings; money is US dollars; durations are seconds. Statuses are the values of `status.JobStatus` and
`status.DeploymentStatus`.
"""
from __future__ import annotations

from typing import Any, TypedDict


class JobRow(TypedDict, total=False):
    """One training job (table `jobs`)."""

    id: str
    kind: str                    # the backend: local | vast | ssh
    status: str                  # a JobStatus value
    dataset: str
    base_model: str
    output_name: str
    model_name: str | None       # set once the adapter is registered as a model
    config: dict[str, Any]       # the TrainConfig as saved in the job directory
    created_at: str
    created_by: str | None
    started_at: str | None
    finished_at: str | None
    heartbeat_at: str | None
    step: int
    total_steps: int
    progress: float              # 0..1
    last_loss: float | None
    eval_loss: float | None
    learning_rate: float | None
    tokens_per_s: float | None
    eta_s: float | None
    device: str | None
    pid: int | None
    runner_id: str | None        # host:pid:token of the runner that supervises it
    error: str | None
    log_tail: str | None
    estimate: dict[str, Any] | None
    actual: dict[str, Any] | None
    cancel_requested: int
    provider_state: dict[str, Any] | None   # {"provider", "request", "phase", ...}: never a secret
    budget: dict[str, float] | None         # max_dph ($/h), max_hours, max_cost ($)
    cost_usd: float | None


class ModelRow(TypedDict, total=False):
    """One model (table `models`): a trained adapter, an imported one, or a base."""

    name: str
    kind: str                    # adapter | base
    path: str
    base_model: str | None
    dataset: str | None
    job_id: str | None
    created_at: str
    created_by: str | None
    final_loss: float | None
    eval_loss: float | None
    config: dict[str, Any] | None
    metrics: dict[str, Any] | None
    tools: list[dict[str, Any]] | None


class DeploymentRow(TypedDict, total=False):
    """One Ollama deployment (table `deployments`)."""

    id: str
    model: str
    created_at: str
    created_by: str | None
    status: str                  # a DeploymentStatus value
    path: str                    # the export folder
    gguf_path: str | None
    gguf_size: int | None        # bytes
    outtype: str
    score: float | None          # 0..1 share of same tool calls
    verification: dict[str, Any] | None
    ollama_name: str
    ollama_host: str | None
    registered: int
    files: list[str] | None
    error: str | None
