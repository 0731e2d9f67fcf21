"""Nursery's public API: the nursery_* functions behind the dashboard and the CLI.

Imports are lazy so that `import nursery_core` stays fast (no torch) for pages and the CLI.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> "module:attribute"
_API = {
    "nursery_generate_data": "nursery_core.data.generator:nursery_generate_data",
    "nursery_extract_conversations": "nursery_core.data.importers:nursery_extract_conversations",
    "nursery_import_hub": "nursery_core.data.hub:nursery_import_hub",
    "nursery_list_datasets": "nursery_core.datasets:nursery_list_datasets",
    "nursery_import_dataset": "nursery_core.datasets:nursery_import_dataset",
    "nursery_estimate_cost": "nursery_core.estimate:nursery_estimate_cost",
    "nursery_train_local": "nursery_core.jobs.api:nursery_train_local",
    "nursery_job_status": "nursery_core.jobs.api:nursery_job_status",
    "nursery_list_jobs": "nursery_core.jobs.api:nursery_list_jobs",
    "nursery_cancel_job": "nursery_core.jobs.api:nursery_cancel_job",
    "nursery_list_models": "nursery_core.registry:nursery_list_models",
    "nursery_test_model": "nursery_core.interactive:nursery_test_model",
    "nursery_compare_models": "nursery_core.compare:nursery_compare_models",
    "nursery_evaluate": "nursery_core.evaluation.api:nursery_evaluate",
    "nursery_leaderboard": "nursery_core.evaluation.api:nursery_leaderboard",
    "nursery_evaluate_suite": "nursery_core.evaluation.api:nursery_evaluate_suite",
    "nursery_scorecard": "nursery_core.evaluation.api:nursery_scorecard",
    "nursery_golden_add": "nursery_core.golden:nursery_golden_add",
    "nursery_golden_import": "nursery_core.golden:nursery_golden_import",
    "nursery_golden_list": "nursery_core.golden:nursery_golden_list",
    "nursery_golden_show": "nursery_core.golden:nursery_golden_show",
    "nursery_golden_edit_row": "nursery_core.golden:nursery_golden_edit_row",
    "nursery_golden_remove_row": "nursery_core.golden:nursery_golden_remove_row",
    "nursery_golden_delete": "nursery_core.golden:nursery_golden_delete",
    "nursery_train_cloud": "nursery_core.jobs.train_cloud:nursery_train_cloud",
    "nursery_reap_instances": "nursery_core.jobs.reaper:nursery_reap_instances",
    "nursery_deploy_ollama": "nursery_core.export.deploy:nursery_deploy_ollama",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str):
    target = _API.get(name)
    if target is None:
        raise AttributeError(f"module 'nursery_core' has no attribute {name!r}")
    mod, attr = target.split(":")
    return getattr(importlib.import_module(mod), attr)
