"""Small text formats shared by the CLI and the pages."""
from __future__ import annotations


def duration(seconds, missing: str = "–") -> str:
    """Seconds as '42 s', '3.5 min' or '1.2 h'."""
    if seconds is None:
        return missing
    s = float(seconds)
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"
