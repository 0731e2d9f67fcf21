"""A cloud run's budget caps: max_dph (US dollars per GPU hour), max_hours (wall-clock hours) and max_cost
(US dollars); the wall-clock limit they give once the hourly price is known."""
from __future__ import annotations

from typing import Any

from ..errors import InvalidInput


def positive(name: str, value: Any) -> float | None:
    """value as a float > 0, None when absent (None or ""); InvalidInput naming the field otherwise."""
    if value in (None, ""):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number, got {value!r}", field=name) from None
    if v <= 0:
        raise InvalidInput(f"{name} must be greater than 0, got {v:g}", field=name)
    return v


def caps(max_dph: Any = None, max_hours: Any = None, max_cost: Any = None) -> dict[str, float]:
    """The caps the user set, validated ({} when none): keys max_dph, max_hours, max_cost."""
    given = {"max_dph": positive("max_dph", max_dph), "max_hours": positive("max_hours", max_hours),
             "max_cost": positive("max_cost", max_cost)}
    return {k: v for k, v in given.items() if v is not None}


def max_seconds(budget: dict, dph: float | None) -> float | None:
    """The run's wall-clock limit in seconds: the tighter of max_hours and max_cost at dph $/h (None: no cap;
    max_cost counts only once the price is known)."""
    limits = []
    if budget.get("max_hours"):
        limits.append(float(budget["max_hours"]) * 3600.0)
    if budget.get("max_cost") and dph:
        limits.append(float(budget["max_cost"]) / dph * 3600.0)
    return min(limits) if limits else None


def budget_reason(budget: dict, dph: float | None) -> str:
    """The caps in words for messages: 'max 2 h, max $1 at $0.160/h'."""
    parts = []
    if budget.get("max_hours"):
        parts.append(f"max {float(budget['max_hours']):g} h")
    if budget.get("max_cost"):
        parts.append(f"max ${float(budget['max_cost']):g}")
    return ", ".join(parts) + (f" at ${dph:.3f}/h" if dph else "")
