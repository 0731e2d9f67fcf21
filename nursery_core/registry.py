"""The model list: trained adapters (from the store, with lineage, scores and deployments) and base models."""
from __future__ import annotations

import shutil
from pathlib import Path

from . import paths
from .errors import InvalidInput, NotFound
from .evaluation.api import decoding_of
from .rows import DeploymentRow, ModelRow
from .status import ACTIVE
from .store import get_store


def _adapter_row(m: ModelRow, evals: dict[str, dict], deployments: list[DeploymentRow]) -> dict:
    ev = evals.get(m["name"])
    metrics = m.get("metrics") or {}
    return {
        "name": m["name"], "kind": m.get("kind") or "adapter", "path": m.get("path"),
        "base_model": m.get("base_model"), "dataset": m.get("dataset"), "job_id": m.get("job_id"),
        "created_at": m.get("created_at"), "created_by": m.get("created_by"),
        "final_loss": m.get("final_loss"), "eval_loss": m.get("eval_loss"),
        "train_seconds": metrics.get("train_seconds"), "steps": metrics.get("steps"),
        "tools": [t.get("function", {}).get("name") for t in (m.get("tools") or []) if isinstance(t, dict)],
        "config": m.get("config"),
        "evaluation": None if ev is None else {
            "id": ev.get("id"), "dataset": ev.get("dataset"), "split": ev.get("split"),
            "decoding": decoding_of(ev.get("settings")), "ast_accuracy": ev.get("ast_accuracy"),
            "metrics": ev.get("metrics"), "created_at": ev.get("created_at")},
        "deployments": [{k: d.get(k) for k in ("id", "status", "ollama_name", "outtype", "score", "created_at")}
                        for d in deployments],
        "local": bool(m.get("path")) and Path(m["path"]).exists(),
    }


def nursery_list_models(include_base: bool = True, limit: int | None = 200, offset: int = 0) -> list[dict]:
    """Adapters newest first (paginated), with lineage, latest evaluation and deployments; then, on the first
    page, the base models from the registry with a `local` flag."""
    from .base_models import list_base_models

    store = get_store()
    models = store.list_models(limit=limit, offset=offset or None)
    evals = store.latest_evaluations([m["name"] for m in models])
    deps = store.deployments_for([m["name"] for m in models])
    rows = [_adapter_row(m, evals, deps[m["name"]]) for m in models]
    if include_base and not offset:
        for b in list_base_models():
            rows.append({"name": b["alias"], "kind": "base", "hf_id": b["hf_id"], "params": b["params"],
                         "context_length": b["context_length"], "family": b["family"],
                         "aliases": b["aliases"], "embedded": b["embedded"], "local": b["local"] or b["embedded"],
                         "base_model": None, "dataset": None, "job_id": None})
    return rows


def delete_model(name: str) -> dict:
    """Removes a trained adapter's directory and row (base models are not deletable here)."""
    from .base_models import REGISTRY

    store = get_store()
    if name in REGISTRY and not store.has_model(name):
        raise InvalidInput(f"{name!r} is a base model; only trained models can be deleted", field="name")
    row = store.get_model(name)
    for job in store.list_jobs(status=ACTIVE):
        if job.get("output_name") == name:
            raise InvalidInput(f"job {job['id']} is writing {name!r}; cancel it first", field="name")
    p = Path(row["path"]) if row.get("path") else None
    if p is not None and p.exists():
        if not paths.inside_home(p):
            raise InvalidInput(f"refusing to delete {p}: it is outside NURSERY_HOME", field="path")
        shutil.rmtree(p)
    store.delete_model(name)
    return {"deleted": name, "path": str(p) if p else None}


def get_model(name: str) -> dict:
    """One adapter's row with lineage (NotFound with a hint otherwise)."""
    store = get_store()
    m = store.get_model(name)
    return _adapter_row(m, store.latest_evaluations([name]), store.list_deployments(model=name, limit=10))


__all__ = ["nursery_list_models", "delete_model", "get_model", "NotFound"]


def adapter_zip(name: str) -> bytes:
    """A trained adapter's directory as a zip (`<name>/adapter_config.json`, weights, tokenizer files, run
    config): what PEFT's `PeftModel.from_pretrained` loads after unzipping. NotFound / InvalidInput otherwise."""
    import io
    import zipfile

    row = get_store().get_model(name)
    folder = Path(row.get("path") or "")
    if not (folder / "adapter_config.json").exists():
        raise NotFound(f"model {name!r} has no adapter files on this machine ({folder.name or 'no path'})")
    if not paths.inside_home(folder):
        raise InvalidInput(f"model {name!r} lives outside the data directory", field="path")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, arcname=f"{name}/{f.relative_to(folder)}")
    return buf.getvalue()
