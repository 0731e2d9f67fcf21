"""The Data Garden's Golden sets tab: pick or create a set, write a row (request, tools, expected calls from a
form generated from each tool's JSON Schema, or pasted JSON), preview the stored example, list rows with edit
and delete, and import a golden file. Every action is one golden.* call; widget keys start with gs_."""
from __future__ import annotations

import json
from typing import Any

import streamlit as st

from ..data.tools import DEFAULT_TOOL_NAMES, get_default_tool, parse_tool_schemas
from ..errors import NurseryError
from ..golden import (build_row, coerce_form_values, nursery_golden_add, nursery_golden_edit_row,
                      nursery_golden_import, nursery_golden_list, nursery_golden_remove_row, nursery_golden_show)
from . import widgets

NEW = "➕ New golden set"
MAX_CALLS = 5
EXPECT = ("Tool call(s)", "No call")


# ------------------------------------------------------------------------------------- schema form
def _placeholder(schema: dict) -> str:
    typ = schema.get("type")
    bits = []
    if schema.get("default") is not None:
        bits.append(f"default {json.dumps(schema['default'])}")
    if "minimum" in schema or "maximum" in schema:
        bits.append(f"{schema.get('minimum', '…')}–{schema.get('maximum', '…')}")
    if schema.get("format"):
        bits.append(schema["format"])
    if typ == "array":
        bits.append("a, b, c  or a JSON list")
    elif typ == "object" or typ is None:
        bits.append('JSON, e.g. {"key": "value"}')
    elif typ in ("integer", "number"):
        bits.insert(0, "a whole number" if typ == "integer" else "a number")
    return " · ".join(bits)


def arguments_form(tool: dict, key: str) -> dict[str, Any]:
    """One widget per parameter of the tool's schema (enum and boolean: a select, others: a text box; required
    ones marked *); returns {parameter: raw value}, '' for not given, for golden.coerce_form_values."""
    params = tool["function"]["parameters"]
    props = params.get("properties") or {}
    required = set(params.get("required") or [])
    if not props:
        st.caption(f"`{tool['function']['name']}` takes no arguments.")
        return {}
    values: dict[str, Any] = {}
    cols = st.columns(2)
    for i, (name, schema) in enumerate(props.items()):
        schema = schema if isinstance(schema, dict) else {}
        col = cols[i % 2]
        label = f"{name} *" if name in required else name
        k = f"{key}_{name}"
        helptext = schema.get("description") or None
        if "enum" in schema or schema.get("type") == "boolean":
            choices = schema.get("enum") or [True, False]
            options = ([] if name in required else [""]) + [v if isinstance(v, str) else json.dumps(v) for v in choices]
            values[name] = col.selectbox(label, options, key=k, help=helptext,
                                         format_func=lambda v: v if v != "" else "(not given)")
        else:
            values[name] = col.text_input(label, key=k, help=helptext, placeholder=_placeholder(schema))
    return values


# ---------------------------------------------------------------------------------------- state
def _flash(kind: str, text: str) -> None:
    st.session_state["gs_flash"] = (kind, text)


def _clear_form() -> None:
    for k in [k for k in st.session_state if isinstance(k, str) and k.startswith("gs_call_")]:
        del st.session_state[k]
    for k in ("gs_request", "gs_note", "gs_editing"):
        st.session_state.pop(k, None)
    st.session_state["gs_ncalls"] = 1


def _add(name: str, request: str, tools: list, calls: list, note: str, user: str | None) -> None:
    # Runs inline on the click (not as an on_click callback), so it sees this run's widget values.
    try:
        r = nursery_golden_add(name, request, tools, calls, note=note or None, created_by=user)
    except NurseryError as e:
        st.error(str(e))
        return
    st.session_state.update(gs_reset=True, gs_pick_next=r["set"]["name"])
    _flash("success", f"Added to **{r['set']['name']}** ({r['set']['num_examples']} rows).")
    st.rerun()


def _save(name: str, row_id: str, request: str, tools: list, calls: list, note: str) -> None:
    try:
        nursery_golden_edit_row(name, row_id, request=request, tools=tools, calls=calls, note=note)
    except NurseryError as e:
        st.error(str(e))
        return
    st.session_state["gs_reset"] = True
    _flash("success", f"Saved row `{row_id}`.")
    st.rerun()


def _remove(name: str, row_id: str) -> None:
    try:
        nursery_golden_remove_row(name, row_id)
        _flash("success", f"Deleted row `{row_id}`.")
    except NurseryError as e:
        _flash("error", str(e))


def _load_for_edit(row: dict) -> None:
    """Puts a stored row into the form (its calls as JSON, which round-trips any schema exactly)."""
    _clear_form()
    st.session_state.update(gs_editing=row["id"], gs_request=row["request"], gs_tools=row["tools"],
                            gs_note=row.get("note") or "", gs_expect=EXPECT[0] if row["calls"] else EXPECT[1],
                            gs_ncalls=max(1, len(row["calls"])))
    for j, c in enumerate(row["calls"]):
        st.session_state[f"gs_call_{j}_tool"] = c["name"]
        st.session_state[f"gs_call_{j}_mode"] = "JSON"
        st.session_state[f"gs_call_{j}_json"] = json.dumps(c["arguments"], ensure_ascii=False)


# ---------------------------------------------------------------------------------------- panel
def _tool_options(current: dict | None) -> dict[str, Any]:
    """name → what golden.build_row takes: a built-in's name, or the schema of a custom tool (from the set's
    rows or pasted)."""
    options: dict[str, Any] = {n: n for n in DEFAULT_TOOL_NAMES}
    for row in (current or {}).get("rows") or []:
        for t in row["example"]["tools"]:
            n = t["function"]["name"]
            if n not in DEFAULT_TOOL_NAMES or t != get_default_tool(n):
                options[n] = t
    with st.expander("Your own tool schema", expanded=False):
        text = st.text_area("Schema JSON (one tool or a list)", key="gs_schema_text", height=140,
                            placeholder='{"name": "create_ticket", "description": "…", "parameters": {"type": '
                                        '"object", "properties": {"title": {"type": "string"}}, "required": ["title"]}}')
        if text.strip():
            try:
                for t in parse_tool_schemas(text, "schema"):
                    options[t["function"]["name"]] = t
            except NurseryError as e:
                st.error(str(e))
    return options


def _schema_of(spec: Any) -> dict:
    return get_default_tool(spec) if isinstance(spec, str) else spec


def _calls_editor(picked: list[str], options: dict[str, Any]) -> tuple[list[dict], str | None]:
    """The expected calls: per call a tool and its arguments (generated form or JSON); (calls, first error)."""
    n = int(st.number_input("Number of calls", 1, MAX_CALLS, key="gs_ncalls",
                            help="Two or more: the model should call them in one turn (parallel)."))
    calls: list[dict] = []
    error = None
    for j in range(n):
        with st.container(border=True):
            c1, c2 = st.columns([2, 1])
            name = c1.selectbox(f"Call {j + 1}: tool", picked, key=f"gs_call_{j}_tool")
            mode = c2.radio("Arguments", ["Form", "JSON"], key=f"gs_call_{j}_mode", horizontal=True)
            if not name:
                continue
            tool = _schema_of(options[name])
            if mode == "Form":
                raw = arguments_form(tool, key=f"gs_call_{j}_{name}")
                try:
                    args: Any = coerce_form_values(tool, raw)
                except NurseryError as e:
                    error = error or f"call {j + 1}: {e}"
                    args = {}
            else:
                args = st.text_area("Arguments (JSON object)", key=f"gs_call_{j}_json", height=90,
                                    placeholder='{"city": "Lisbon"}') or "{}"
            calls.append({"name": name, "arguments": args})
    return calls, error


def render_golden_panel(user: str | None) -> None:
    """The whole Golden sets tab."""
    st.caption("A golden set is hand-written evaluation data: requests with the calls you expect (or none). It is "
               "never split and never trained on, and no training dataset may share one of its requests.")
    if "gs_pick_next" in st.session_state:  # a set just written: select it before the picker is drawn
        st.session_state["gs_set"] = st.session_state.pop("gs_pick_next")
    if st.session_state.pop("gs_reset", False):  # a row was stored: an empty form, before its widgets exist
        _clear_form()
    flash = st.session_state.pop("gs_flash", None)
    if flash:
        (st.success if flash[0] == "success" else st.error)(flash[1])
    names = [s["name"] for s in nursery_golden_list()]
    c1, c2 = st.columns(2)
    choice = c1.selectbox("Golden set", names + [NEW], key="gs_set")
    if choice == NEW:
        name = c2.text_input("Name of the new set", key="gs_new_name", placeholder="my-golden-set").strip()
        current = None
    else:
        name = choice
        try:
            current = nursery_golden_show(name)
        except NurseryError as e:
            st.error(str(e))
            return
        c2.metric("Rows", current["num_examples"])

    editing = st.session_state.get("gs_editing")
    st.subheader(f"Edit row `{editing}`" if editing else "Add a row")
    request = st.text_area("Request (what the user asks)", key="gs_request", height=80,
                           placeholder="What's the weather in Lisbon tomorrow, in fahrenheit?")
    options = _tool_options(current)
    picked = st.multiselect("Tools the model is offered", list(options), key="gs_tools",
                            help="Built-in tools, the set's own tools, or a schema pasted above.")
    expect = st.radio("Expected answer", EXPECT, key="gs_expect", horizontal=True)
    calls, error = _calls_editor(picked, options) if expect == EXPECT[0] and picked else ([], None)
    if expect == EXPECT[0] and not picked:
        st.caption("Pick the tools first, then fill in each expected call.")
    note = st.text_input("Note (optional)", key="gs_note", placeholder="why this row is here")
    tools = [options[n] for n in picked]

    preview = None
    if error:
        st.error(error)
    elif request.strip() and picked:
        try:
            preview = build_row(request, tools, calls, note or None)
        except NurseryError as e:
            st.error(str(e))
    if preview is not None:
        st.markdown("**The stored example**")
        with st.container(border=True):
            widgets.render_example(preview, key="gs_preview")
    b1, b2 = st.columns(2)
    if editing:
        if b1.button("Save changes", key="gs_save", type="primary", disabled=preview is None or current is None):
            _save(name, editing, request, tools, calls, note)
        b2.button("Cancel editing", key="gs_cancel", on_click=_clear_form)
    else:
        if b1.button("Add row", key="gs_add", type="primary", disabled=preview is None or not name):
            _add(name, request, tools, calls, note, user)

    with st.expander("Import a golden file", expanded=False):
        st.caption('JSONL `{"request", "tools", "calls", "note"}` (`"calls": []` = no call), CSV with columns '
                   "request, calls, tools, note, or canonical JSONL. One bad row stores nothing.")
        up = st.file_uploader("File", type=["jsonl", "json", "csv"], key="gs_upload")
        if st.button("Import", key="gs_import", disabled=up is None or not name) and up is not None:
            with widgets.uploaded_copy(up, "golden.jsonl") as path:
                r = nursery_golden_import(path, name=name, created_by=user)
                _flash("success", f"Imported {r['imported']} rows into **{r['name']}**.")
                st.session_state["gs_pick_next"] = r["name"]
                st.rerun()

    if current is not None:
        st.subheader(f"Rows of {name}")
        if not current["rows"]:
            st.caption("No rows yet.")
        for row in current["rows"]:
            with st.container(border=True):
                left, right = st.columns([6, 1])
                with left:
                    widgets.render_example(row["example"], key=f"gs_row_{row['id']}")
                    if row.get("note"):
                        st.caption(f"Note: {row['note']}")
                right.button("Edit", key=f"gs_edit_{row['id']}", on_click=_load_for_edit, args=(row,))
                right.button("Delete", key=f"gs_del_{row['id']}", on_click=_remove, args=(name, row["id"]))
