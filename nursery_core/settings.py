"""Team-wide settings kept in the store: the Ollama host and the training defaults the forms start from."""
from __future__ import annotations

import os
from typing import Any

OLLAMA_HOST_KEY = "ollama_host"
TRAINING_DEFAULTS_KEY = "training_defaults"


def ollama_host(store=None) -> str | None:
    """OLLAMA_HOST from the environment, else the stored setting, else None (export only)."""
    env = os.environ.get("OLLAMA_HOST")
    if env:
        return env if env.startswith(("http://", "https://")) else f"http://{env}"
    if store is None:
        from .store import get_store
        store = get_store()
    return store.get_setting(OLLAMA_HOST_KEY) or None


def save_ollama_host(store, host: str | None, user: str | None = None) -> str | None:
    """Stores the team's Ollama address (None or "" clears it: deploys then only export files). Returns it
    normalised (export.ollama_client.normalise_host). Raises InvalidInput naming field 'ollama_host' for an
    address that is not http(s)://host[:port], so a bad one never lands where a deploy would trip on it."""
    from .export.ollama_client import normalise_host

    host = (host or "").strip()
    value = normalise_host(host) if host else None
    store.set_setting(OLLAMA_HOST_KEY, value, by=user)
    return value


def effective_training_defaults(store) -> dict[str, Any]:
    """TrainConfig's defaults with the team's saved overrides applied."""
    from .training.config import TrainConfig

    overrides = store.get_setting(TRAINING_DEFAULTS_KEY) or {}
    return TrainConfig().with_overrides(**overrides).to_dict()


def save_training_defaults(store, values: dict[str, Any], user: str | None = None) -> dict:
    """Validates the overrides through TrainConfig before storing them (bad values never land)."""
    from .training.config import TrainConfig

    TrainConfig().with_overrides(**values).validate()
    store.set_setting(TRAINING_DEFAULTS_KEY, values, by=user)
    return values
