"""Accuracy tables shared by the overview and the Model Cradle: held-out and golden-set scores side by side,
each with its Wilson 95 % interval and a visible mark under 30 examples (evaluate.ast_score's shape)."""
from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from ..formatting import score


def cell(s: dict | None) -> str:
    """One score as '71.4% [52.1–85.3%] n=21 ⚠ small sample' ('–' when there is none)."""
    if not s:
        return "–"
    return score(s.get("ast_accuracy"), s.get("ci95"), s.get("num_examples"), s.get("warning"))


def golden_cell(golden: dict[str, dict]) -> str:
    """Every golden set's score of one model, '; '-separated ('–' when none)."""
    return "; ".join(f"{name}: {cell(s)}" for name, s in golden.items()) or "–"


def scorecard_frame(card: dict[str, dict]) -> pd.DataFrame:
    """model | held-out | one column per golden set (nursery_scorecard's output)."""
    sets = sorted({g for c in card.values() for g in c["golden"]})
    rows = [{"model": m, "held-out AST (95% CI)": cell(c["held_out"]),
             **{f"golden: {g}": cell(c["golden"].get(g)) for g in sets}} for m, c in card.items()]
    return pd.DataFrame(rows, columns=["model", "held-out AST (95% CI)", *(f"golden: {g}" for g in sets)])


# Column names people read for the evaluation metrics (evaluate.HEADLINE's keys; rates are fractions 0..1).
METRIC_LABELS = {
    "ast_accuracy": "AST accuracy", "format_validity": "Format valid", "call_precision": "Call precision",
    "call_recall": "Call recall", "no_call_precision": "No-call precision", "no_call_recall": "No-call recall",
    "name_accuracy": "Tool name accuracy", "arg_exact_match": "Arguments exact", "arg_f1": "Arguments F1",
    "schema_validity": "Schema valid", "hallucinated_tool_rate": "Invented tools",
    "hallucinated_param_rate": "Invented parameters", "num_examples": "Examples",
}


def metric_label(key: str) -> str:
    """A metric key as a column name: METRIC_LABELS, else the key with spaces and a capital."""
    return METRIC_LABELS.get(key) or key.replace("_", " ").capitalize()


def percent(value, digits: int = 1) -> str:
    """A fraction 0..1 as '62.5 %' ('–' when missing)."""
    return "–" if value is None else f"{100 * float(value):.{digits}f} %"


def interval(ci) -> str:
    """A Wilson interval [low, high] (fractions) as '41.2–80.1 %' ('–' when missing)."""
    return f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f} %" if ci else "–"


def metrics_cells(metrics: dict, keys: list[str]) -> dict[str, Any]:
    """{readable column: '62.5 %'} for these metric keys (an example count stays a number)."""
    return {metric_label(k): (metrics.get(k) if k == "num_examples" else percent(metrics.get(k))) for k in keys}


def leaderboard_frame(board: list[dict], keys: list[str]) -> pd.DataFrame:
    """The leaderboard as people read it (nursery_leaderboard's rows): rank, model, decoding, data, examples,
    each metric in `keys` as a percentage under a readable name, AST accuracy's 95 % interval and the warning."""
    rows = []
    for r in board:
        rows.append({"Rank": r["rank"], "Model": r["model"], "Decoding": r.get("decoding") or "file",
                     "Dataset": r["dataset"], "Data": "golden" if r.get("dataset_kind") == "golden" else "held-out",
                     "Examples": r["num_examples"], **metrics_cells(r, keys),
                     "AST 95 % interval": interval(r.get("ast_ci95")),
                     "Warning": "⚠ under 30 examples" if r.get("warning") else ""})
    return pd.DataFrame(rows)


def categories_frame(per_category: dict[str, dict], keys: list[str]) -> pd.DataFrame:
    """One line per example category of an evaluation (metrics' per_category), metrics as percentages."""
    return pd.DataFrame([{"Category": c, **metrics_cells(m, ["num_examples", *keys])}
                         for c, m in per_category.items()])


def runs_frame(runs: list[dict]) -> pd.DataFrame:
    """One line per run of an evaluation suite (nursery_evaluate_suite's `runs`)."""
    rows = []
    for r in runs:
        m = r.get("metrics") or {}
        ci = (m.get("ci95") or {}).get("ast_accuracy")
        rows.append({"model": ("base: " if r.get("is_base") else "") + str(r.get("model")),
                     "data": "golden" if r.get("dataset_kind") == "golden" else "held-out",
                     "dataset": r.get("dataset"), "decoding": r.get("decoding") or "–",
                     "examples": r.get("num_examples"),
                     "AST accuracy": percent(m.get("ast_accuracy")), "95 % interval": interval(ci),
                     "warning": "⚠ under 30 examples" if m.get("warning") else ""})
    return pd.DataFrame(rows, columns=["model", "data", "dataset", "decoding", "examples", "AST accuracy", "95 % interval",
                                       "warning"])


def warn_small(runs: list[dict]) -> None:
    """A visible st.warning per run measured on too few examples to compare."""
    for r in runs:
        w = (r.get("metrics") or {}).get("warning")
        if w:
            st.warning(f"{'base ' if r.get('is_base') else ''}{r.get('model')} on {r.get('dataset')}"
                       + (f" ({r['decoding']})" if r.get("decoding") else "") + f": {w}")


def _one(x: dict) -> str:
    m = x.get("metrics") or {}
    ci = (m.get("ci95") or {}).get("ast_accuracy")
    return (f"{100 * (m.get('ast_accuracy') or 0):.1f}%"
            + (f" [{100 * ci[0]:.0f}–{100 * ci[1]:.0f}%]" if ci else "")
            + (f" {x['decoding']}" if x.get("decoding") else ""))


def summary_line(r: dict) -> str:
    """An evaluation in one line: AST accuracy with its Wilson 95 % interval per decoding, the number of
    examples, the bare base model's score on the same data when it was run, and a small-sample warning."""
    runs = r.get("runs") or [r]
    mine = [x for x in runs if x["dataset"] == r["dataset"] and not x.get("is_base")]
    base = [x for x in runs if x["dataset"] == r["dataset"] and x.get("is_base")]
    text = (f"AST accuracy {' · '.join(_one(x) for x in mine)} on {r['num_examples']} examples of "
            f"{r['dataset']}")
    if base:
        text += f"; base model without the adapter: {' · '.join(_one(x) for x in base)}"
    else:
        text += " (score the base model too for a baseline)"
    if any((x.get("metrics") or {}).get("warning") for x in mine):
        text += " — ⚠ under 30 examples: the interval is wide"
    return text


BAR_STEP = 20  # px per bar


def leaderboard_chart(board: list[dict]) -> alt.Chart:
    """Horizontal bars of AST accuracy, one line per model (and dataset when several), one bar per decoding,
    each BAR_STEP px high, with its Wilson 95 % interval drawn as a black rule. The height is a Vega-Lite step:
    a fixed total height let Streamlit squeeze the plot to nothing."""
    several = len({r["dataset"] for r in board}) > 1
    rows = [{"line": r["model"] + (f" · {r['dataset']}" if several else ""), "model": r["model"],
             "dataset": r["dataset"], "decoding": r.get("decoding") or "file", "examples": r["num_examples"],
             "ast_accuracy": r["ast_accuracy"] or 0.0,
             "low": (r.get("ast_ci95") or [None, None])[0], "high": (r.get("ast_ci95") or [None, None])[1]}
            for r in board]
    df = pd.DataFrame(rows)
    y = alt.Y("line:N", sort=alt.EncodingSortField("ast_accuracy", op="max", order="descending"), title=None,
              axis=alt.Axis(labelLimit=320))
    base = alt.Chart(df).encode(y=y, yOffset=alt.YOffset("decoding:N"))
    bars = base.mark_bar().encode(
        x=alt.X("ast_accuracy:Q", title="BFCL-style AST accuracy (bar) and 95% interval (line)",
                scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        color=alt.Color("decoding:N", legend=alt.Legend(orient="bottom")),
        tooltip=["model", "decoding", "dataset", "examples", alt.Tooltip("ast_accuracy:Q", format=".1%"),
                 alt.Tooltip("low:Q", format=".1%", title="95% low"),
                 alt.Tooltip("high:Q", format=".1%", title="95% high")])
    ci = base.mark_rule(color="black").encode(x="low:Q", x2="high:Q")
    return (bars + ci).properties(height=alt.Step(BAR_STEP, **{"for": "offset"}))
