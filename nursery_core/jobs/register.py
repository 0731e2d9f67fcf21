"""A finished run's adapter becomes a model: moved under NURSERY_HOME/models/ and listed with its lineage."""
from __future__ import annotations

import shutil
from pathlib import Path

from .. import paths
from ..errors import AlreadyExists, BackendError, NotFound
from ..rows import JobRow, ModelRow
from ..store import get_store, now


def register_trained_model(job: JobRow, result: dict) -> ModelRow:
    """Moves the run's output to NURSERY_HOME/models/<output_name>/ and adds the models row with lineage."""
    store = get_store()
    name = job["output_name"]
    src = Path(result["output_dir"])
    if not (src / "adapter_config.json").exists():
        raise BackendError(f"the run finished but {src} holds no adapter")
    dest = paths.model_dir(name)
    if store.has_model(name) or dest.exists():
        raise AlreadyExists(f"model {name!r} appeared while the job ran; the adapter stays in {src}")
    shutil.move(str(src), str(dest))
    metrics = dict(result.get("metrics") or {})
    tools = None
    try:
        from ..datasets import dataset_tools

        tools = dataset_tools(job["dataset"])
    except NotFound:
        pass
    try:
        return store.add_model({
            "name": name, "kind": "adapter", "path": str(dest), "base_model": job["base_model"],
            "dataset": job["dataset"], "job_id": job["id"], "created_by": job.get("created_by"),
            "final_loss": metrics.get("final_loss"), "eval_loss": metrics.get("eval_loss"),
            "config": job.get("config"), "tools": tools,
            "metrics": {k: v for k, v in metrics.items() if k not in ("history", "eval_history")},
            "created_at": now(),
        })
    except BaseException:
        shutil.move(str(dest), str(src))
        raise
