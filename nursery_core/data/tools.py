"""The built-in tool schemas (DEFAULT_TOOLS) and the loader for a user's own tool schemas."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from ..errors import InvalidInput, NotFound
from ..jsontext import read_text
from ..records import TRANSFORMATIONS, Where, decode_json_like, normalise_tool, normalise_tool_noted


def _tool(name: str, description: str, properties: dict, required: list[str]) -> dict:
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": properties, "required": required,
                       "additionalProperties": False}}}


_EMAIL = {"type": "string", "format": "email"}

DEFAULT_TOOLS: list[dict] = [
    _tool("calculator", "Evaluate an arithmetic expression and return the numeric result.", {
        "expression": {"type": "string", "description": "The arithmetic expression to evaluate, "
                       "using + - * / ** and parentheses, e.g. '(12.5 + 7) * 3'."},
        "precision": {"type": "integer", "minimum": 0, "maximum": 10, "default": 2,
                      "description": "Number of decimal places to round the result to."},
    }, ["expression"]),
    _tool("get_current_time", "Get the current date and time, optionally in a given time zone.", {
        "timezone": {"type": "string", "description": "IANA time zone name such as 'Europe/Paris'. "
                     "Defaults to the user's local time zone."},
        "format": {"type": "string", "enum": ["iso", "12h", "24h"], "default": "iso",
                   "description": "How to format the time."},
    }, []),
    _tool("memory_store", "Save a fact or note to the user's long-term memory so it can be recalled later.", {
        "content": {"type": "string", "minLength": 1, "maxLength": 2000,
                    "description": "The fact or note to remember, in the user's words."},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5, "uniqueItems": True,
                 "description": "Optional short labels to file the memory under."},
        "importance": {"type": "string", "enum": ["low", "normal", "high"], "default": "normal",
                       "description": "How important the memory is."},
    }, ["content"]),
    _tool("memory_search", "Search the user's long-term memory for previously saved facts and notes.", {
        "query": {"type": "string", "minLength": 1, "description": "What to look for in memory."},
        "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 5,
                  "description": "Maximum number of memories to return."},
    }, ["query"]),
    _tool("web_search", "Search the web and return the top results with titles, links and snippets.", {
        "query": {"type": "string", "minLength": 1, "description": "The search query."},
        "num_results": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5,
                        "description": "How many results to return."},
        "recency": {"type": "string", "enum": ["any", "day", "week", "month", "year"], "default": "any",
                    "description": "Only return results published within this period."},
    }, ["query"]),
    _tool("get_weather", "Get the current weather or a short forecast for a city.", {
        "city": {"type": "string", "description": "Name of the city, e.g. 'Lisbon'."},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius",
                 "description": "Temperature unit."},
        "days": {"type": "integer", "minimum": 1, "maximum": 7,
                 "description": "Number of forecast days; omit for the current weather."},
    }, ["city"]),
    _tool("send_email", "Send an email on the user's behalf.", {
        "to": {**_EMAIL, "description": "Recipient email address."},
        "subject": {"type": "string", "minLength": 1, "maxLength": 200, "description": "Subject line."},
        "body": {"type": "string", "minLength": 1, "description": "Plain-text body of the email."},
        "cc": {"type": "array", "items": _EMAIL, "maxItems": 5, "description": "Addresses to copy in."},
    }, ["to", "subject", "body"]),
    _tool("create_calendar_event", "Create an event in the user's calendar.", {
        "title": {"type": "string", "minLength": 1, "description": "Title of the event."},
        "date": {"type": "string", "format": "date", "description": "Date of the event, YYYY-MM-DD."},
        "start_time": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$",
                       "description": "Start time, 24-hour HH:MM."},
        "duration_minutes": {"type": "integer", "minimum": 5, "maximum": 480, "default": 60,
                             "description": "Length of the event in minutes."},
        "location": {"type": "string", "description": "Where the event takes place."},
        "attendees": {"type": "array", "items": _EMAIL, "maxItems": 10,
                      "description": "Email addresses of people to invite."},
    }, ["title", "date", "start_time"]),
    _tool("read_file", "Read a text file from the user's workspace and return its contents.", {
        "path": {"type": "string", "minLength": 1, "description": "Path of the file to read."},
        "encoding": {"type": "string", "enum": ["utf-8", "latin-1", "ascii"], "default": "utf-8",
                     "description": "Text encoding of the file."},
        "max_bytes": {"type": "integer", "minimum": 1, "maximum": 10485760,
                      "description": "Stop reading after this many bytes."},
    }, ["path"]),
    _tool("run_sql", "Run a SQL query against one of the user's databases and return the rows.", {
        "query": {"type": "string", "minLength": 1, "description": "The SQL statement to run."},
        "database": {"type": "string", "description": "Name of the database to query."},
        "read_only": {"type": "boolean", "default": True,
                      "description": "Refuse statements that modify data."},
        "max_rows": {"type": "integer", "minimum": 1, "maximum": 10000,
                     "description": "Maximum number of rows to return."},
    }, ["query"]),
]
# Normalised once, so every use shares the same validated objects.
DEFAULT_TOOLS = [normalise_tool(t) for t in DEFAULT_TOOLS]
DEFAULT_TOOL_NAMES: list[str] = [t["function"]["name"] for t in DEFAULT_TOOLS]
_BY_NAME = {t["function"]["name"]: t for t in DEFAULT_TOOLS}


def get_default_tool(name: str) -> dict:
    """A built-in tool by name; NotFound lists the names there are."""
    tool = _BY_NAME.get(str(name).strip())
    if tool is None:
        raise NotFound(f"no built-in tool named {name!r}; built-in tools: {', '.join(DEFAULT_TOOL_NAMES)} "
                       "(or give your own tool as a JSON Schema)")
    return tool


def parse_tool_schemas(text: str, source: str = "<pasted schema>",
                       conversions: dict[str, list[str]] | None = None) -> list[dict]:
    """Tools from pasted text: one tool (OpenAI function format or a bare {name, description, parameters}),
    a list of them, or {"tools": [...]}; JSON or a Python literal. Errors name the source and field.
    `conversions`, when given, receives {tool name: [records.TRANSFORMATIONS reasons]} for each tool whose schema
    was converted ($ref inlined, anyOf-null folded, xLAM parameters...)."""
    where = Where(file=source)
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("the tool schema is empty: paste a JSON object with name, description and "
                           "parameters", file=source)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        try:
            data = decode_json_like(text, where, "schema")
        except InvalidInput:
            raise InvalidInput(f"not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})",
                               file=source, line=e.lineno) from None
    return tools_from_data(data, source, conversions)


def tools_from_data(data: Any, source: str = "<schema>", conversions: dict[str, list[str]] | None = None) -> list[dict]:
    """Normalises already-parsed schema data (see parse_tool_schemas, also for `conversions`) into wrapped tools."""
    where = Where(file=source)
    if isinstance(data, dict) and isinstance(data.get("tools"), list):
        items, field = data["tools"], "tools"
    elif isinstance(data, dict) and isinstance(data.get("functions"), list):
        items, field = data["functions"], "functions"
    elif isinstance(data, list):
        items, field = data, ""
    elif isinstance(data, dict):
        items, field = [data], ""
    else:
        raise InvalidInput("a tool schema must be a JSON object (or a list of them)", file=source)
    if not items:
        raise InvalidInput("the schema file lists no tools", file=source)
    tools = []
    for i, item in enumerate(items):
        f = f"{field}[{i}]" if field or len(items) > 1 or isinstance(data, list) else "schema"
        if isinstance(item, dict):
            fn = item["function"] if isinstance(item.get("function"), dict) else item
            if "parameters" not in fn and "input_schema" not in fn and "name" in fn:
                raise InvalidInput(f"tool {fn.get('name')!r} has no 'parameters' (a JSON Schema object with "
                                   "type, properties and required)", file=source, field=f"{f}.parameters")
        tool, notes = normalise_tool_noted(item, where, f)
        if notes and conversions is not None:
            conversions[tool["function"]["name"]] = list(notes)
        tools.append(tool)
    names = [t["function"]["name"] for t in tools]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidInput(f"duplicate tool name(s) {dupes}", file=source, field="name")
    return tools


def load_tool_schemas(path: str | Path) -> list[dict]:
    """Tools from a schema file (.json); see parse_tool_schemas for the accepted shapes."""
    p = Path(path)
    if not p.is_file():
        raise InvalidInput("tool schema file not found", file=str(path))
    return parse_tool_schemas(read_text(p), str(path))


def resolve_tools(spec: Any, conversions: dict[str, list[str]] | None = None) -> list[dict]:
    """Built-in names, wrapped/bare tool dicts, schema text or a list mixing them → normalised tools
    (`conversions`: see parse_tool_schemas)."""
    if isinstance(spec, (str, dict)):
        spec = [spec]
    if not isinstance(spec, Iterable) or isinstance(spec, (bytes, bytearray)):
        raise InvalidInput("tools must be a built-in tool name, a tool schema or a list of them", field="tool")
    out: list[dict] = []
    for item in spec:
        if isinstance(item, str) and not item.lstrip().startswith(("{", "[")):
            out.append(get_default_tool(item))
        elif isinstance(item, str):
            out.extend(parse_tool_schemas(item, conversions=conversions))
        else:
            out.extend(tools_from_data(item, conversions=conversions))
    if not out:
        raise InvalidInput("no tools given: pick at least one built-in tool or pass a schema", field="tool")
    names = [t["function"]["name"] for t in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidInput(f"tool(s) {dupes} given more than once", field="tool")
    return out


def conversion_notes(conversions: dict[str, list[str]]) -> list[str]:
    """One readable line per converted tool schema, for a report's notes."""
    return [f"tool {name!r}: " + "; ".join(TRANSFORMATIONS.get(r, r) for r in reasons)
            for name, reasons in conversions.items()]
