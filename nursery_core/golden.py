"""Golden sets: hand-written evaluation datasets (requests with their expected calls, or "no call"), never
split and never trained on.

A golden set is a dataset of kind 'golden' whose rows all sit in the eval split, stored as canonical JSONL
under datasets/ like any other. Rows come from `golden add`, the Data Garden's form, or a file in one of:
- the simple format, one JSON object per line: {"request": str, "tools": [built-in tool names or schemas],
  "calls": [{"name": str, "arguments": {...}}], "note"?: str}; `"calls": []` means "no call";
- CSV with the columns request, calls (JSON; [] for no call), tools (comma-separated names or JSON), note;
- canonical JSONL (records.py), one user request per example.
Every row is checked: a non-empty request, known tools, each call to one of the row's tools with arguments
valid against its JSON Schema (undeclared parameters included), no duplicate request in the file or the set,
and no request that a training dataset holds (overlap.normal_request). Errors name file, line and field;
nothing is stored while any row is bad.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from . import paths
from .datasets import check_source_file, get_dataset, load_examples, rewrite_dataset, write_dataset
from .errors import InvalidInput, NotFound, SharedRequest
from .jsontext import read_text, records as json_records
from .overlap import example_requests, normal_request
from .records import (Where, compiled_validator, decode_arguments, decode_json_like, example_calls,
                      normalise_example, normalise_tool_noted, tools_by_name)
from .store import GOLDEN, get_store

SIMPLE_KEYS = ("request", "tools", "calls", "note", "id")
CSV_COLUMNS = ("request", "calls", "tools", "note")
SOURCE = "golden"


# ---------------------------------------------------------------------------------------------- rows
def _resolve_tools(tools: Any, calls: Any, where: Where, conversions: dict[str, list[str]] | None = None) -> list[dict]:
    """Built-in names, schemas (dicts or JSON text) → normalised tools; none given: the called built-ins."""
    from .data.tools import DEFAULT_TOOL_NAMES, get_default_tool

    if tools is None or tools == "" or tools == []:
        names = [c.get("name") for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []
        if not names:
            raise where.error("the row lists no tools: name the tools the model is offered (even for 'no call')",
                              "tools")
        tools = list(dict.fromkeys(n for n in names if isinstance(n, str)))
    if isinstance(tools, (str, dict)):
        tools = [tools]
    if not isinstance(tools, list):
        raise where.error("'tools' must be a list of built-in tool names or tool schemas", "tools")
    out = []
    for i, t in enumerate(tools):
        f = f"tools[{i}]"
        if isinstance(t, str) and not t.lstrip().startswith("{"):
            try:
                out.append(get_default_tool(t))
            except NotFound:
                raise where.error(f"unknown tool {t.strip()!r}: not a built-in tool ({', '.join(DEFAULT_TOOL_NAMES)}); "
                                  "give its full schema instead", f) from None
        else:
            tool, notes = normalise_tool_noted(t, where, f)
            if notes and conversions is not None:
                conversions[tool["function"]["name"]] = list(notes)
            out.append(tool)
    offered: list[str] = [t["function"]["name"] for t in out]
    dupes = sorted({n for n in offered if offered.count(n) > 1})
    if dupes:
        raise where.error(f"tool(s) {dupes} listed more than once", "tools")
    return out


def _argument_errors(tool: dict, args: dict) -> list[tuple[str, str]]:
    """[(argument path, message)]: parameters the schema does not declare, missing required ones, then the
    other JSON Schema errors."""
    params = tool["function"]["parameters"]
    props = params.get("properties") or {}
    errs: list[tuple[str, str]] = []
    if params.get("additionalProperties") in (None, False):
        errs += [(k, f"{tool['function']['name']!r} has no parameter {k!r}") for k in args if k not in props]
    errs += [(k, f"the required parameter {k!r} is missing") for k in params.get("required") or []
             if k not in args]
    for e in sorted(compiled_validator(params).iter_errors(args), key=lambda e: list(e.path)):
        if not e.path and e.validator in ("required", "additionalProperties"):
            continue  # reported above, with the parameter's name
        errs.append((".".join(str(p) for p in e.path), e.message))
    return errs


def _resolve_calls(calls: Any, by_name: dict[str, dict], where: Where) -> list[dict]:
    if calls is None or calls == "":
        raise where.error("no expected calls given: write [] for 'no call'", "calls")
    if isinstance(calls, str):
        calls = decode_json_like(calls, where, "calls")
    if isinstance(calls, dict):
        calls = [calls]
    if not isinstance(calls, list):
        raise where.error("'calls' must be a list of {name, arguments} objects ([] for 'no call')", "calls")
    out = []
    for j, c in enumerate(calls):
        f = f"calls[{j}]"
        if isinstance(c, str):
            c = decode_json_like(c, where, f)
        if not isinstance(c, dict):
            raise where.error("a call must be an object with 'name' and 'arguments'", f)
        fn = c["function"] if isinstance(c.get("function"), dict) else c
        name = fn.get("name")
        if not isinstance(name, str) or not name.strip():
            raise where.error("the call has no tool name", f"{f}.name")
        name = name.strip()
        if name not in by_name:
            raise where.error(f"unknown tool {name!r}: not among this row's tools ({', '.join(by_name) or 'none'})",
                              f"{f}.name")
        args, _ = decode_arguments(fn.get("arguments"), where, f"{f}.arguments")
        errs = _argument_errors(by_name[name], args)
        if errs:
            path, msg = errs[0]
            raise where.error(f"arguments of {name!r} break its schema: {msg}",
                              f"{f}.arguments" + (f".{path}" if path else ""))
        out.append({"name": name, "arguments": args})
    return out


def build_row(request: Any, tools: Any, calls: Any, note: str | None = None, *, system: str | None = None,
              row_id: str | None = None, where: Where | None = None) -> dict:
    """One validated golden row as a canonical example (meta.split 'eval', meta.source 'golden'); nothing is
    stored. `calls` [] is "no call". Raises InvalidInput naming the field (and file/line from `where`)."""
    where = where or Where()
    if not isinstance(request, str) or not request.strip():
        raise where.error("the request is empty: write what the user asks", "request")
    if not normal_request(request):
        raise where.error("the request has no words (only punctuation)", "request")
    calls_list = calls
    if isinstance(calls, str) and calls.strip():
        calls_list = decode_json_like(calls, where, "calls")
    if isinstance(calls_list, list):  # calls given as JSON text each (CLI --call, the form's JSON boxes)
        calls_list = [decode_json_like(c, where, f"calls[{j}]") if isinstance(c, str) else c
                      for j, c in enumerate(calls_list)]
    conversions: dict[str, list[str]] = {}
    tool_list = _resolve_tools(tools, calls_list if isinstance(calls_list, list) else [], where, conversions)
    expected = _resolve_calls(calls_list, tools_by_name(tool_list), where)
    if note is not None and not isinstance(note, str):
        raise where.error("'note' must be text", "note")
    answer: dict[str, Any] = ({"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}} for c in expected]}
        if expected else {"role": "assistant", "content": ""})
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": request.strip()}, answer]
    meta: dict[str, Any] = {"source": SOURCE, "split": "eval"}
    if note and note.strip():
        meta["note"] = note.strip()
    if conversions:  # kept with the row, so an import can report them (records.TRANSFORMATIONS reasons)
        meta["schema_conversions"] = conversions
    ex = normalise_example({"id": row_id or "", "tools": tool_list, "messages": msgs, "meta": meta}, where)
    ex["meta"]["split"] = "eval"
    return ex


def row_request(example: dict) -> str:
    """A golden row's request (its one user message)."""
    return next(example_requests(example), "")


def row_view(example: dict) -> dict:
    """A stored row in the simple shape: {id, request, tools (names), calls, note}."""
    return {"id": example.get("id"), "request": row_request(example),
            "tools": [t["function"]["name"] for t in example.get("tools") or []],
            "calls": example_calls(example), "note": (example.get("meta") or {}).get("note")}


def _from_record(rec: Any, where: Where) -> dict:
    """A golden row from a file record: the simple shape, or a canonical example with one user request."""
    if not isinstance(rec, dict):
        raise where.error("each row must be a JSON object with 'request', 'tools' and 'calls'")
    if "messages" in rec:
        ex = normalise_example(rec, where)
        users = list(example_requests(ex))
        if len(users) != 1:
            raise where.error(f"a golden row holds one request; this example has {len(users)} user messages",
                              "messages")
        system = ex["messages"][0]["content"] if ex["messages"][0]["role"] == "system" else None
        return build_row(users[0], ex["tools"], example_calls(ex), (ex.get("meta") or {}).get("note"),
                         system=system, where=where)
    unknown = [k for k in rec if k not in SIMPLE_KEYS]
    if unknown:
        raise where.error(f"unknown key {unknown[0]!r} (a row has {', '.join(SIMPLE_KEYS[:4])})", unknown[0])
    if "request" not in rec:
        raise where.error("the row has no request", "request")
    if "calls" not in rec:
        raise where.error("the row has no 'calls': write [] for 'no call'", "calls")
    return build_row(rec.get("request"), rec.get("tools"), rec.get("calls"), rec.get("note"), where=where)


# --------------------------------------------------------------------------------------------- files
def _csv_records(text: str, label: str) -> list[tuple[int, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if "request" not in header:
        raise InvalidInput(f"a golden CSV needs a header with the columns {', '.join(CSV_COLUMNS)} "
                           f"(found: {', '.join(header) or 'none'})", file=label, line=1, field="request")
    extra = [h for h in header if h not in CSV_COLUMNS]
    if extra:
        raise InvalidInput(f"unknown column {extra[0]!r} (columns: {', '.join(CSV_COLUMNS)})", file=label,
                           line=1, field=extra[0])
    out = []
    for raw in reader:
        line = reader.line_num
        rec = {k.strip(): v for k, v in raw.items() if k is not None}
        if not any((v or "").strip() for v in rec.values()):
            continue
        tools = (rec.get("tools") or "").strip()
        if tools and not tools.startswith(("[", "{")):
            tools = [t.strip() for t in tools.split(",") if t.strip()]
        elif tools:
            tools = decode_json_like(tools, Where(label, line), "tools")
        calls = (rec.get("calls") or "").strip()
        row: dict[str, Any] = {"request": rec.get("request") or "", "tools": tools or None,
                               "calls": calls if calls else None}
        if (rec.get("note") or "").strip():
            row["note"] = rec["note"]
        out.append((line, row))
    return out


def read_golden_file(path: str | Path) -> list[tuple[int, dict]]:
    """[(line, validated golden row)] from a simple JSONL/JSON, CSV or canonical JSONL file; the first bad row
    raises InvalidInput naming file, line and field."""
    p = check_source_file(path)
    label = str(path)
    text = read_text(p, label)
    records = _csv_records(text, label) if p.suffix.lower() == ".csv" else json_records(text, label)
    if not records:
        raise InvalidInput("the file has no rows", file=label)
    return [(line, _from_record(rec, Where(label, line))) for line, rec in records]


# ------------------------------------------------------------------------------------------- the set
def golden_set(name: str) -> dict:
    """A golden set's row; NotFound, or InvalidInput when `name` is a training dataset."""
    row = get_dataset(name)
    if row.get("kind") != GOLDEN:
        raise InvalidInput(f"{name!r} is a training dataset, not a golden set (see golden list)", field="name")
    return row


def _new_id(request: str, taken: set[str]) -> str:
    base = "g-" + hashlib.sha256(normal_request(request).encode()).hexdigest()[:10]
    rid, n = base, 1
    while rid in taken:
        n += 1
        rid = f"{base}-{n}"
    taken.add(rid)
    return rid


def _check_new_rows(name: str, new: Sequence[tuple[int | None, dict]], existing: list[dict],
                    file: str | None = None) -> None:
    """Refuses a request repeated in `new`, already in the set, or held by a training dataset."""
    have = {normal_request(row_request(ex)): ex["id"] for ex in existing}
    first_line: dict[str, int | None] = {}
    for line, ex in new:
        key = normal_request(row_request(ex))
        if key in first_line:
            at = f"line {first_line[key]}" if first_line[key] is not None else "another row"
            raise InvalidInput(f"duplicate request: {row_request(ex)!r} repeats {at}", file=file, line=line,
                               field="request")
        if key in have:
            raise InvalidInput(f"duplicate request: golden set {name!r} already has {row_request(ex)!r} "
                               f"(row {have[key]})", file=file, line=line, field="request")
        first_line[key] = line
    hits = get_store().find_requests(first_line, golden=False)
    if hits:
        by_key = {h["norm"]: h for h in hits}
        for line, ex in new:
            hit = by_key.get(normal_request(row_request(ex)))
            if hit:
                raise SharedRequest(row_request(ex), golden=name, training=hit["dataset"], other=hit["request"],
                                    file=file, line=line)


def _store_rows(name: str, new: Sequence[tuple[int | None, dict]], *, created_by: str | None, file: str | None,
                description: str | None = None) -> dict:
    """Appends validated rows to a golden set (created when new); all or nothing."""
    store = get_store()
    if store.has_dataset(name):
        row = golden_set(name)
        existing = load_examples(name)
    else:
        paths.check_name(name, "golden set name")
        row, existing = None, []
    _check_new_rows(name, new, existing, file)
    taken = {ex["id"] for ex in existing}
    for _, ex in new:
        ex["id"] = _new_id(row_request(ex), taken)
    rows = [ex for _, ex in new]
    if row is None:
        lines = [ln for ln, _ in new if ln is not None]
        return write_dataset(name, rows, source=SOURCE, kind=GOLDEN, eval_fraction=1.0, prevalidated=True,
                             created_by=created_by, file=file, lines=lines if len(lines) == len(new) else None,
                             description=description or "golden set (hand-written evaluation data)")
    return rewrite_dataset(name, existing + rows, expect_sha256=row.get("sha256"))


def _meta(row: dict) -> dict:
    return {k: row.get(k) for k in ("name", "kind", "path", "num_examples", "tools", "categories", "source",
                                    "description", "created_by", "created_at")}


def nursery_golden_add(name: str, request: str, tools: Any, calls: Any = (), note: str | None = None,
                       created_by: str | None = None) -> dict:
    """Adds one row to golden set `name` (created when it does not exist). `tools`: built-in names and/or
    schemas; `calls`: [{name, arguments}], [] for "no call". Returns {"set": metadata, "row": the stored
    example}. Raises InvalidInput (field named) for a bad row or a duplicate, SharedRequest when a training
    dataset holds the request, NotFound/InvalidInput for a bad name."""
    ex = build_row(request, tools, list(calls) if isinstance(calls, tuple) else calls, note)
    row = _store_rows(name, [(None, ex)], created_by=created_by, file=None)
    return {"set": _meta(row), "row": ex}


def nursery_golden_import(file: str | Path, name: str | None = None, created_by: str | None = None) -> dict:
    """Imports a golden file (simple JSONL/JSON, CSV or canonical JSONL) into golden set `name` (default: from
    the file name), creating it or appending to it. Every row is validated first; one bad row stores nothing.
    Returns the set's metadata plus `imported` (rows added)."""
    p = Path(file)
    name = name if name is not None else (paths.slugify(p.stem) or "golden")
    paths.check_name(name, "golden set name")
    if get_store().has_dataset(name):
        golden_set(name)
    rows = read_golden_file(file)
    out = _meta(_store_rows(name, rows, created_by=created_by, file=str(file),
                            description=f"golden set imported from {p.name}"))
    out["imported"] = len(rows)
    conversions: dict[str, list[str]] = {}
    for _line, r in rows:
        conversions.update((r.get("meta") or {}).get("schema_conversions") or {})
    out["schema_conversions"] = conversions  # each converted tool schema, never silently
    return out


def nursery_golden_list() -> list[dict]:
    """Golden sets, newest first: name, num_examples, tools, categories, created_at, created_by."""
    return [_meta(r) for r in get_store().list_datasets(kind=GOLDEN)]


def nursery_golden_show(name: str) -> dict:
    """A golden set's metadata and its rows, each as {id, request, tools, calls, note, example}."""
    row = golden_set(name)
    out = _meta(row)
    out["rows"] = [{**row_view(ex), "example": ex} for ex in load_examples(name)]
    return out


def _find(name: str, row_id: str) -> tuple[dict, list[dict], int]:
    row = golden_set(name)
    rows = load_examples(name)
    for i, ex in enumerate(rows):
        if ex["id"] == row_id:
            return row, rows, i
    raise NotFound(f"golden set {name!r} has no row {row_id!r} (see golden show {name})")


def nursery_golden_remove_row(name: str, row_id: str) -> dict:
    """Deletes one row; returns {"set": metadata, "removed": the row in the simple shape}."""
    row, rows, i = _find(name, row_id)
    gone = rows.pop(i)
    return {"set": _meta(rewrite_dataset(name, rows, expect_sha256=row.get("sha256"))), "removed": row_view(gone)}


def nursery_golden_edit_row(name: str, row_id: str, request: str | None = None, tools: Any = None,
                            calls: Any = None, note: str | None = None) -> dict:
    """Replaces fields of one row (None keeps a field; calls [] makes it "no call"), validated like a new
    row; the row keeps its id. Returns {"set": metadata, "row": the stored example}."""
    row, rows, i = _find(name, row_id)
    old = rows[i]
    view = row_view(old)
    system = old["messages"][0]["content"] if old["messages"][0]["role"] == "system" else None
    ex = build_row(view["request"] if request is None else request, old["tools"] if tools is None else tools,
                   view["calls"] if calls is None else calls, view["note"] if note is None else note,
                   system=system, row_id=row_id)
    others = rows[:i] + rows[i + 1:]
    _check_new_rows(name, [(None, ex)], others)
    rows[i] = ex
    return {"set": _meta(rewrite_dataset(name, rows, expect_sha256=row.get("sha256"))), "row": ex}


def nursery_golden_delete(name: str) -> dict:
    """Deletes a golden set (its file, its row and its requests in the index)."""
    from .datasets import delete_dataset

    golden_set(name)
    return delete_dataset(name)


# ------------------------------------------------------------------------------------ other features
def golden_sets_for(tool_names: Iterable[str] | None) -> list[str]:
    """Golden sets with rows whose every tool is among `tool_names` (all of them when None), newest first."""
    wanted = None if tool_names is None else set(tool_names)
    return [r["name"] for r in get_store().list_datasets(kind=GOLDEN)
            if r.get("num_examples") and (wanted is None or set(r.get("tools") or []) <= wanted)]


def refuse_for_training(dataset: str) -> None:
    """Training's guard: a golden set is never training data, nor is a dataset sharing a request with one."""
    store = get_store()
    row = store.get_dataset(dataset)
    if row.get("kind") == GOLDEN:
        raise InvalidInput(f"{dataset!r} is a golden set: golden sets are for evaluation only and are never "
                           "trained on; pick a training dataset", field="dataset")
    clash = store.shared_requests(dataset, limit=1)
    if clash:
        raise SharedRequest(clash[0]["request"], golden=clash[0]["other"], training=dataset,
                            other=clash[0]["other_request"], field="dataset")


def coerce_form_values(tool: dict, raw: dict[str, Any]) -> dict:
    """Form input (text per parameter, '' = not given) → typed arguments by the tool's JSON Schema; raises
    InvalidInput naming `arguments.<parameter>` when a value cannot be read as its type."""
    props = tool["function"]["parameters"].get("properties") or {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None or (isinstance(value, str) and not value.strip()) or value == []:
            continue
        schema = props.get(key) or {}
        out[key] = _coerce(value, schema, f"arguments.{key}")
    return out


def _coerce(value: Any, schema: dict, field: str) -> Any:
    typ = schema.get("type")
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if typ == "integer":
            return int(text)
        if typ == "number":
            return int(text) if text.lstrip("-").isdigit() else float(text)
        if typ == "boolean":
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        if typ in ("array", "object") or (typ is None and text.startswith(("[", "{"))):
            if typ == "array" and not text.startswith("["):
                item = schema.get("items") or {}
                return [_coerce(v, item, field) for v in (x.strip() for x in text.split(",")) if v]
            return json.loads(text)
    except ValueError:
        kind = {"integer": "a whole number", "number": "a number", "boolean": "true or false",
                "array": "a JSON list or comma-separated values", "object": "a JSON object"}.get(str(typ), "JSON")
        raise InvalidInput(f"{text!r} is not {kind}", field=field) from None
    return text
