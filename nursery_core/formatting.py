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


def pct(value, missing: str = "–") -> str:
    """A fraction as '71.4%'."""
    return missing if value is None else f"{100 * float(value):.1f}%"


def score(accuracy, ci95=None, n=None, warning=None) -> str:
    """An accuracy with its 95 % interval, size and small-sample mark: '71.4% [52.1–85.3%] n=21 ⚠ small sample'."""
    if accuracy is None:
        return "–"
    text = pct(accuracy)
    if ci95:
        text += f" [{100 * ci95[0]:.1f}–{100 * ci95[1]:.1f}%]"
    if n is not None:
        text += f" n={n}"
    if warning:
        text += " ⚠ small sample"
    return text
