"""What every provider's `request` checks first: its key is configured (never copied) and no option meant for
another kind of machine was given; and the float settings they read from the environment."""
from __future__ import annotations

from typing import Any

from ...cloud.http_api import provider_key
from ...cloud.vast import env_float
from ...errors import InvalidInput

__all__ = ["env_float", "require_key", "refuse_options"]


def require_key(provider: str, label: str) -> None:
    """InvalidConfig naming the environment variable and secrets.toml when the provider's key is not set."""
    provider_key(provider, label)  # the value stays where it is: the transport client reads it itself


def refuse_options(options: dict[str, Any], names: tuple[str, ...], label: str, why: str) -> None:
    """InvalidInput naming the first of `names` that was given (not None or ""): `label` cannot honour it."""
    given = [k for k in names if options.get(k) not in (None, "")]
    if given:
        raise InvalidInput(f"{given[0]} does not apply to {label} ({why})", field=given[0])
