"""Form widgets generated from declared options (nursery_core/options.py): one widget per Option, its label,
help, bounds and choices taken from the declaration, its key `<prefix>_<field name>`."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import streamlit as st

from ..options import Option, split_list

# A field whose widget a surface draws itself (e.g. a selectbox of stored datasets): (container, key, value)
# → the value.
Custom = Callable[[Any, str, Any], Any]


def option_key(prefix: str, option: Option | str) -> str:
    return f"{prefix}_{option if isinstance(option, str) else option.name}"


def option_input(o: Option, value: Any, key: str, container: Any = st) -> Any:
    """The widget for one option, showing `value` (the current setting); returns what the user set."""
    if o.kind is bool:
        return container.checkbox(o.label, value=bool(value), key=key, help=o.help)
    if o.choices:
        options = list(o.choices)
        return container.selectbox(o.label, options, index=options.index(value) if value in options else 0,
                                   key=key, help=o.help)
    if o.kind is list:
        text = container.text_input(o.label, value=", ".join(map(str, value or [])), key=key, help=o.help)
        return split_list(text)
    if o.kind is int:
        return int(container.number_input(
            o.label, min_value=None if o.min is None else int(o.min), max_value=None if o.max is None else int(o.max),
            value=None if value is None else int(value), step=int(o.step or 1), key=key, help=o.help))
    if o.kind is float:
        out = container.number_input(
            o.label, min_value=None if o.min is None else float(o.min),
            max_value=None if o.max is None else float(o.max), value=None if value is None else float(value),
            step=float(o.step) if o.step else None, format=o.format or "%g", key=key, help=o.help)
        return None if out is None else float(out)
    return container.text_input(o.label, value="" if value is None else str(value), key=key, help=o.help)


def option_inputs(options: Sequence[Option], values: dict[str, Any], prefix: str, columns: int = 4,
                  custom: dict[str, Custom] | None = None) -> dict[str, Any]:
    """The options laid out in `columns` columns, in order; returns {field name: value}."""
    out: dict[str, Any] = {}
    if not options:
        return out
    cols = st.columns(columns)
    for i, o in enumerate(options):
        col, key = cols[i % columns], option_key(prefix, o)
        draw = (custom or {}).get(o.name)
        out[o.name] = draw(col, key, values.get(o.name)) if draw else option_input(o, values.get(o.name), key, col)
    return out


GROUP_TITLES = {"lora": "LoRA", "optim": "Optimisation", "data": "Training-data recipe", "eval": "Evaluation",
                "hardware": "Hardware", "paths": "Paths", "model": "Model"}


def config_form_body(options: Sequence[Option], featured: Sequence[str], values: dict[str, Any], prefix: str,
                     more_title: str = "More settings", columns: int = 4,
                     custom: dict[str, Custom] | None = None) -> dict[str, Any]:
    """A config form: the `featured` fields first, then every other option inside one expander, grouped by
    their declared group (so a field added to the declaration appears without an edit here). Returns
    {field name: value} for every option."""
    by_name = {o.name: o for o in options}
    out = option_inputs([by_name[n] for n in featured if n in by_name], values, prefix, columns, custom)
    rest = [o for o in options if o.name not in out]
    if rest:
        with st.expander(more_title):
            groups: dict[str, list[Option]] = {}
            for o in rest:
                groups.setdefault(o.group, []).append(o)
            for group, members in groups.items():
                st.markdown(f"**{GROUP_TITLES.get(group, group.capitalize() or 'Other')}**")
                out.update(option_inputs(members, values, prefix, columns, custom))
    return out


def load_into_form(values: dict[str, Any], options: Sequence[Option], prefix: str) -> None:
    """Puts stored values into the form's widget state (an on_click callback, before the widgets are drawn)."""
    for o in options:
        if o.name in values and values[o.name] is not None:
            v = values[o.name]
            st.session_state[option_key(prefix, o)] = ", ".join(v) if o.kind is list else o.kind(v)
