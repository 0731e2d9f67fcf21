"""Tool calls out of other models' raw outputs, for scoring a predictions file (`evaluate --predictions`).

Nursery's own models are scored with the strict Hermes parser (parser.parse_tool_calls), because that is the
format they are trained to write. Outputs of other models come in the forms below; `auto` picks one per
output. A format error means the output is a call attempt that no rule can decode; a plain answer is no call.

- hermes: `<tool_call>{"name": …, "arguments": {…}}</tool_call>` blocks, where `arguments` may also be a JSON
  string or be called `parameters`, a block may hold a list of calls, and single-quoted Python dicts are read
  (Hermes v1 data writes them);
- json: a JSON call object or list of them, bare or in a ```json fenced block; `{"tool_calls": [...]}` and the
  OpenAI shape `{"function": {"name", "arguments"}}` too;
- pythonic: Llama 3.2's `[get_weather(city="Paris"), f2()]` (keyword arguments with literal values; dotted
  names kept);
- mistral: `[TOOL_CALLS][{"name": …, "arguments": {…}}]`, and the newer `[TOOL_CALLS]name[ARGS]{…}`.
"""
from __future__ import annotations

import ast
import json
import re
from typing import Any

from .parser import ParseResult, parse_tool_calls

OUTPUT_FORMATS = ("auto", "hermes", "json", "pythonic", "mistral", "nursery")
_FENCE = re.compile(r"```[\w-]*[ \t]*\n?(.*?)```", re.S)
_PYTHONIC = re.compile(r"^\[?\s*[A-Za-z_][\w.]*\(.*\)\s*\]?$", re.S)
_MISTRAL = "[TOOL_CALLS]"
_MISTRAL_ARGS = re.compile(r"([A-Za-z_][\w.\-]*)\[ARGS\]")


def _decode(text: str) -> Any:
    """JSON, else a Python literal (single-quoted dicts, True/False/None); ValueError when neither."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ValueError(f"neither JSON nor a Python literal: {text.strip()[:60]!r}") from None


def _call_from(obj: Any) -> dict:
    """{name, arguments} from one call object in any of the accepted shapes; ValueError naming what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError(f"a call must be an object, not {type(obj).__name__}")
    if isinstance(obj.get("function"), dict):  # OpenAI's {"type": "function", "function": {...}}
        obj = obj["function"]
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("the call has no 'name' string")
    args = obj.get("arguments", obj.get("parameters", {}))
    for _ in range(2):  # a JSON string, or one encoded twice
        if isinstance(args, str):
            args = _decode(args) if args.strip() else {}
    if not isinstance(args, dict):
        raise ValueError(f"the arguments of {name!r} are a {type(args).__name__}, not an object")
    return {"name": name.strip(), "arguments": args}


def _calls_from(value: Any) -> list[dict]:
    if isinstance(value, dict) and isinstance(value.get("tool_calls"), list):
        value = value["tool_calls"]
    return [_call_from(v) for v in (value if isinstance(value, list) else [value])]


def _result(calls: list[dict], attempts: int, errors: list[str]) -> ParseResult:
    return ParseResult(calls=calls, format_ok=not errors, errors=errors, blocks=attempts)


def _from_bodies(bodies: list[str]) -> ParseResult:
    """Each body decoded as one call or a list of calls; a body that does not decode is a format error."""
    calls, errors = [], []
    for i, body in enumerate(bodies, 1):
        try:
            calls += _calls_from(_decode(body.strip()))
        except ValueError as e:
            errors.append(f"block {i}: {e}")
    return _result(calls, len(bodies), errors)


def parse_hermes(text: str) -> ParseResult:
    return _from_bodies(re.findall(r"<tool_call>(.*?)(?:</tool_call>|$)", text, re.S))


def parse_json(text: str) -> ParseResult:
    fenced = [b for b in _FENCE.findall(text) if b.strip()[:1] in ("{", "[")]
    return _from_bodies(fenced or ([text.strip()] if text.strip()[:1] in ("{", "[") else []))


def _literal(node: ast.AST) -> Any:
    return ast.literal_eval(node)


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return _dotted(node.value) + "." + node.attr
    raise ValueError("a call target that is not a (dotted) name")


def parse_pythonic(text: str) -> ParseResult:
    body = text.strip()
    if not _PYTHONIC.match(body):
        return ParseResult()
    try:
        tree = ast.parse(body if body.startswith("[") else f"[{body}]", mode="eval").body
    except SyntaxError as e:
        return _result([], 1, [f"not a Python call list: {e.msg}"])
    nodes = tree.elts if isinstance(tree, (ast.List, ast.Tuple)) else [tree]
    calls, errors = [], []
    for i, node in enumerate(nodes, 1):
        try:
            if not isinstance(node, ast.Call):
                raise ValueError("an item that is not a call")
            if node.args:
                raise ValueError("positional arguments (only keyword arguments name their parameter)")
            calls.append({"name": _dotted(node.func),
                          "arguments": {kw.arg: _literal(kw.value) for kw in node.keywords if kw.arg}})
        except ValueError as e:
            errors.append(f"call {i}: {e}")
    return _result(calls, max(1, len(nodes)), errors)


def parse_mistral(text: str) -> ParseResult:
    if _MISTRAL not in text:
        return ParseResult()
    rest = text.split(_MISTRAL, 1)[1].strip()
    calls, errors = [], []
    if _MISTRAL_ARGS.match(rest):  # [TOOL_CALLS]name[ARGS]{...}[TOOL_CALLS]name2[ARGS]{...}
        parts = [p.strip() for p in rest.split(_MISTRAL)]
        for i, part in enumerate(parts, 1):
            m = _MISTRAL_ARGS.match(part)
            try:
                if not m:
                    raise ValueError("expected name[ARGS]{…}")
                args = json.JSONDecoder().raw_decode(part[m.end():].strip())[0]
                calls.append(_call_from({"name": m.group(1), "arguments": args}))
            except ValueError as e:
                errors.append(f"call {i}: {e}")
        return _result(calls, len(parts), errors)
    try:
        value = json.JSONDecoder().raw_decode(rest)[0]
        calls = _calls_from(value)
    except ValueError as e:
        errors.append(str(e))
    return _result(calls, 1, errors)


PARSERS = {"hermes": parse_hermes, "json": parse_json, "pythonic": parse_pythonic, "mistral": parse_mistral,
           "nursery": parse_tool_calls}


# Llama 3.1 may open a JSON call with its python tag; it carries no meaning for the call itself.
_PREFIXES = ("<|python_tag|>",)


def _strip_prefix(text: str) -> str:
    t = (text or "").strip()
    for p in _PREFIXES:
        if t.startswith(p):
            t = t[len(p):].strip()
    return t


def detect(text: str) -> str | None:
    """The output form an output is written in, or None for a plain answer."""
    t = _strip_prefix(text)
    if _MISTRAL in t:
        return "mistral"
    if "<tool_call>" in t:
        return "hermes"
    if any(b.strip()[:1] in ("{", "[") for b in _FENCE.findall(t)) or t[:1] == "{" or re.match(r"^\[\s*\{", t):
        return "json"
    if _PYTHONIC.match(t):
        return "pythonic"
    return None


def parse_output(text: str | None, output_format: str = "auto") -> tuple[ParseResult, str | None]:
    """(calls found, the form used: a name of OUTPUT_FORMATS, or None for a plain answer under auto)."""
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {output_format!r}")
    if output_format == "nursery":
        return parse_tool_calls(text), output_format
    text = _strip_prefix(text or "")
    if output_format != "auto":
        return PARSERS[output_format](text), output_format
    fmt = detect(text)
    return (PARSERS[fmt](text) if fmt else ParseResult()), fmt
