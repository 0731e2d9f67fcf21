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


def when(ts: str | None, missing: str = "–") -> str:
    """A stored UTC ISO timestamp as 'YYYY-MM-DD HH:MM UTC' (minutes are what people read)."""
    if not ts:
        return missing
    return ts[:16].replace("T", " ") + " UTC"


def count(n, missing: str = "–") -> str:
    """A large count as '135M', '1.2B', '42k' (parameter counts, token totals)."""
    if n is None:
        return missing
    n = float(n)
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            v = n / div
            return f"{v:.0f}{unit}" if v >= 10 else f"{v:.1f}{unit}"
    return f"{n:.0f}"


def things(n: int, noun: str, plural: str | None = None) -> str:
    """'1 example', '3 examples' (the noun's plural is noun + 's' unless given)."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def served_by(result: dict) -> tuple[str, list[str]]:
    """('llama.cpp' or 'A: llama.cpp; B: torch', the engines' notes) of a test-model or compare result ('' and
    [] when it does not say)."""
    engines = result.get("engines") or ({"": {"engine": result["engine"], "notes": result.get("engine_notes") or []}}
                                        if result.get("engine") else {})
    served = "; ".join(f"{k + ': ' if k else ''}{e['engine']}" for k, e in engines.items())
    return served, [n for e in engines.values() for n in e.get("notes") or []]
