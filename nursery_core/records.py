"""The canonical example format: one module that normalises and validates every record before it is stored.

A record is OpenAI/HF chat shaped: `tools` (wrapped JSON-Schema functions), `messages` (system?, user,
assistant with `tool_calls` whose `arguments` is an object, tool replies), `meta.category` in
call | no_call | parallel | multi_turn. Importers and the generator build rough dicts; `normalise_example`
turns them into the stored shape or raises InvalidInput naming the line and field.
"""
from __future__ import annotations

import ast
import json
from typing import Any, Iterable

import jsonschema
from jsonschema import Draft202012Validator

from .errors import InvalidInput
from .jsontext import problem_in
from .schemas import SchemaUnsupported, close_nested_objects, normalise_parameters

CATEGORIES = ("call", "no_call", "parallel", "multi_turn")
ROLES = ("system", "user", "assistant", "tool")
SCHEMA_VERSION = 1

# Every change an import makes to its source, by code (import reports count them; meta.fixups names them).
TRANSFORMATIONS = {
    # values repaired
    "double_encoded_arguments": "arguments encoded twice as a JSON string, decoded",
    "tool_content_json_encoded": "a tool result that was not text, stored as its JSON",
    "tool_reply_json_encoded": "a tool reply that was not text, stored as its JSON",
    "non_string_turn_json_encoded": "a turn whose value was not text, stored as its JSON",
    "empty_tool_reply_kept": "an empty tool reply, kept as an empty message",
    # schemas converted or inferred
    "single_tool_object_listed": "one tool object where a list was meant, read as a one-item list",
    "xlam_parameters_converted": "xLAM/APIGen flat parameters converted to JSON Schema",
    "python_type_names_mapped": "Python/Gorilla type names (str, int, dict, 'int, optional') mapped to JSON Schema",
    "local_refs_inlined": "local $ref/$defs inlined into the tool schema",
    "nullable_anyof_as_type_list": "anyOf/oneOf [type, null] written as a nullable type list",
    "tool_schemas_inferred": "tool schemas inferred from the calls (the source gave none)",
    # weights
    "weight_0_turn_kept_as_context": "an assistant turn with weight 0, kept as context and not trained on",
    "weight_on_non_assistant_ignored": "a weight on a non-assistant message, ignored (OpenAI weighs assistant turns)",
    # messages merged, matched or dropped
    "consecutive_user_messages_merged": "user messages in a row, merged into one",
    "consecutive_assistant_messages_merged": "assistant messages in a row, merged into one",
    "tool_reply_matched_by_order": "a tool reply paired with its call by order (no matching id or name)",
    "call_id_assigned": "a tool call without an id, given one (call_N) so its reply can name it",
    "tool_reply_list_split": "one tool message answering several calls, split into one reply per call",
    "tool_reply_without_call_dropped": "a tool reply that answers no call, dropped",
    "unanswered_call_before_user": "a tool call without its reply, followed by a user message",
    "unanswered_call_before_answer": "one of several calls without its reply, followed by the next answer",
    "late_system_message_dropped": "a system message after the first turn, dropped",
    "empty_message_dropped": "an empty user message, dropped",
    "assistant_before_user_dropped": "an assistant message before any user message, dropped",
    "message_before_first_user_dropped": "a message before the first user message, dropped",
    "message_after_last_answer_dropped": "a message after the last assistant answer, dropped",
    "non_text_blocks_dropped": "content blocks that are not text (images, files), dropped",
    "non_object_message_dropped": "a message that is not an object, dropped",
    "hermes_tools_prompt_replaced": "a Hermes system prompt listing the tools, replaced by the tool list itself",
    "call_text_wrapped_as_argument": "a ChatGPT plugin/code call written as text, stored as {code|command: text}",
    "hidden_message_skipped": "a message the ChatGPT export marks hidden, skipped",
    "reasoning_message_skipped": "a reasoning/thinking message, skipped",
}

class Where:
    """Location of a record for error messages: file, line (1-based) and a field path prefix."""

    def __init__(self, file: str | None = None, line: int | None = None):
        self.file, self.line = file, line

    def error(self, message: str, field: str | None = None) -> InvalidInput:
        return InvalidInput(message, file=self.file, line=self.line, field=field)


# -------------------------------------------------------------------------------------------- tools
# Normalising a tool (deepcopy + check_schema) costs far more than validating a call, and a dataset repeats
# the same few tools on every line: results are cached. `_NORMALISED` holds tools this module returned (by
# identity, so the generator's shared tool objects skip all work); `_BY_TEXT` maps a raw tool's JSON text to
# its normalised JSON text, returned as a fresh copy so callers may mutate what they get.
_CACHE_MAX = 4096
_NORMALISED: dict[int, tuple[dict, tuple[str, ...]]] = {}
_BY_TEXT: dict[str, tuple[str, tuple[str, ...]]] = {}
_VALIDATORS: dict[int, tuple[dict, Draft202012Validator]] = {}


def _remember(out: dict, notes: list[str]) -> dict:
    """Keeps a normalised tool with the conversions that made it, so normalising it again returns both."""
    if len(_NORMALISED) >= _CACHE_MAX:
        _NORMALISED.clear()
    _NORMALISED[id(out)] = (out, tuple(notes))
    return out


def normalise_tool(tool: Any, where: Where | None = None, field: str = "tools") -> dict:
    """Accepts OpenAI `{"type": "function", "function": {...}}`, a bare `{name, description, parameters}`
    or a Python-repr/JSON string of either; returns the wrapped form with a valid JSON-Schema object.
    Treat the result as read-only: normalising it again returns the very same object."""
    return normalise_tool_noted(tool, where, field)[0]


def normalise_tool_noted(tool: Any, where: Where | None = None, field: str = "tools") -> tuple[dict, list[str]]:
    """normalise_tool plus the conversions it made (schemas.normalise_parameters' notes), for import reports."""
    hit = _NORMALISED.get(id(tool)) if isinstance(tool, dict) else None
    if hit is not None and hit[0] is tool:
        return tool, list(hit[1])
    try:
        key = json.dumps(tool, sort_keys=True, ensure_ascii=False) if isinstance(tool, (dict, str)) else None
    except (TypeError, ValueError):
        key = None
    if key is not None and key in _BY_TEXT:
        text, cached = _BY_TEXT[key]
        return _remember(json.loads(text), list(cached)), list(cached)
    out, notes = _normalise_tool_uncached(tool, where, field)
    if key is not None:
        if len(_BY_TEXT) >= _CACHE_MAX:
            _BY_TEXT.clear()
        _BY_TEXT[key] = (json.dumps(out, ensure_ascii=False), tuple(notes))
    return _remember(out, notes), notes


def _normalise_tool_uncached(tool: Any, where: Where | None, field: str) -> tuple[dict, list[str]]:
    where = where or Where()
    if isinstance(tool, str):
        tool = decode_json_like(tool, where, field)
    if not isinstance(tool, dict):
        raise where.error("a tool must be an object with name, description and parameters", field)
    fn = tool["function"] if isinstance(tool.get("function"), dict) else tool
    name = fn.get("name")
    if not isinstance(name, str) or not name.strip():
        raise where.error("tool has no name", f"{field}.function.name")
    name = name.strip()
    params = fn.get("parameters")
    if params is None:
        params = fn.get("input_schema", {"type": "object", "properties": {}})
    if isinstance(params, str):
        params = decode_json_like(params, where, f"{field}.function.parameters")
    if not isinstance(params, dict):
        raise where.error(f"tool {name!r}: parameters must be a JSON Schema object",
                          f"{field}.function.parameters")
    bad = problem_in(params)
    if bad:
        raise where.error(f"tool {name!r}: {bad[1]}", f"{field}.function.parameters.{bad[0]}")
    try:
        params, notes = normalise_parameters(params)
    except SchemaUnsupported as e:
        raise where.error(f"tool {name!r}: {e}", f"{field}.function.{e.field}") from None
    if not params:
        params = {"type": "object", "properties": {}}
    params.setdefault("type", "object")
    if params.get("type") != "object":
        raise where.error(f"tool {name!r}: parameters must have type 'object', not {params.get('type')!r}",
                          f"{field}.function.parameters.type")
    params.setdefault("properties", {})
    if not isinstance(params["properties"], dict):
        raise where.error(f"tool {name!r}: 'properties' must be an object", f"{field}.function.parameters.properties")
    req = params.get("required")
    if req is not None:
        if not isinstance(req, list) or not all(isinstance(r, str) for r in req):
            raise where.error(f"tool {name!r}: 'required' must be a list of parameter names",
                              f"{field}.function.parameters.required")
        unknown = [r for r in req if r not in params["properties"]]
        if unknown:
            raise where.error(f"tool {name!r}: required parameter(s) {unknown} are not in 'properties'",
                              f"{field}.function.parameters.required")
    try:
        Draft202012Validator.check_schema(params)
    except jsonschema.SchemaError as e:
        path = ".".join(str(p) for p in e.path)
        raise where.error(f"tool {name!r}: invalid JSON Schema: {e.message}",
                          f"{field}.function.parameters" + (f".{path}" if path else "")) from None
    out_fn = {"name": name, "description": str(fn.get("description") or "").strip(), "parameters": params}
    if isinstance(fn.get("strict"), bool):  # OpenAI's structured-outputs flag: kept, as the tool's author wrote it
        out_fn["strict"] = fn["strict"]
    return {"type": "function", "function": out_fn}, notes


def tool_name(tool: dict) -> str:
    return tool["function"]["name"]


def tools_by_name(tools: Iterable[dict]) -> dict[str, dict]:
    return {tool_name(t): t for t in tools}


def compiled_validator(parameters: dict) -> Draft202012Validator:
    """One compiled validator per parameters object (kept alive in the cache, so its id stays unique). Nested
    objects that list their properties are validated as closed (schemas.close_nested_objects), as the checker
    and the guard read them."""
    hit = _VALIDATORS.get(id(parameters))
    if hit is not None and hit[0] is parameters:
        return hit[1]
    if len(_VALIDATORS) >= _CACHE_MAX:
        _VALIDATORS.clear()
    validator = Draft202012Validator(close_nested_objects(parameters))
    _VALIDATORS[id(parameters)] = (parameters, validator)
    return validator


def call_errors(tool: dict, arguments: dict) -> list[str]:
    """Schema errors of one call's arguments against its tool (empty list when valid). An argument the tool
    does not declare is an error when the schema lists its properties and says nothing of
    `additionalProperties` (JSON Schema would allow it, but a training target must not invent arguments)."""
    params = tool["function"]["parameters"]
    validator = compiled_validator(params)
    errs = []
    for e in sorted(validator.iter_errors(arguments), key=lambda e: list(e.path)):
        loc = ".".join(str(p) for p in e.path)
        errs.append(f"{loc + ': ' if loc else ''}{e.message}")
    props = params.get("properties") or {}
    if props and "additionalProperties" not in params and isinstance(arguments, dict):
        errs += [f"{k}: unexpected argument (not among the tool's parameters {sorted(props)})"
                 for k in arguments if k not in props]
    return errs


# ---------------------------------------------------------------------------------------- arguments
def decode_json_like(value: str, where: Where | None = None, field: str | None = None) -> Any:
    """Parses JSON, falling back to a Python literal (Hermes v1 writes `{'a': True}`)."""
    try:
        return json.loads(value)
    except (ValueError, TypeError):
        pass
    try:
        return ast.literal_eval(value.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise (where or Where()).error(f"not valid JSON (nor a Python literal): {value[:80]!r}", field) from None


def decode_arguments(value: Any, where: Where | None = None, field: str = "arguments") -> tuple[dict, list[str]]:
    """Returns (arguments as a dict, fixups applied). Strings are decoded; double-encoded strings twice."""
    fixups: list[str] = []
    if value is None or value == "":
        return {}, fixups
    if isinstance(value, str):
        value = decode_json_like(value, where, field)
        if isinstance(value, str):
            value = decode_json_like(value, where, field)
            fixups.append("double_encoded_arguments")
    if not isinstance(value, dict):
        raise (where or Where()).error(f"arguments must be an object, got {type(value).__name__}", field)
    return value, fixups


# ------------------------------------------------------------------------------------------ examples
def normalise_example(raw: Any, where: Where | None = None, *, validate_calls: bool = True,
                      default_source: str | None = None) -> dict:
    """Normalises one example to the stored shape and validates it; raises InvalidInput on any problem."""
    where = where or Where()
    if not isinstance(raw, dict):
        raise where.error("each line must be a JSON object with 'messages' (and usually 'tools')")
    fixups: list[str] = []
    raw_tools = raw.get("tools") or []
    if isinstance(raw_tools, str):
        raw_tools = decode_json_like(raw_tools, where, "tools")
    if isinstance(raw_tools, dict):  # one tool object where a list is meant: a one-item list
        raw_tools = [raw_tools]
        fixups.append("single_tool_object_listed")
    if not isinstance(raw_tools, list):
        raise where.error("'tools' must be a list", "tools")
    tools = []
    for i, t in enumerate(raw_tools):
        tool, notes = normalise_tool_noted(t, where, f"tools[{i}]")
        tools.append(tool)
        fixups += notes
    names = [tool_name(t) for t in tools]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise where.error(f"duplicate tool name(s) {dupes}", "tools")
    by_name = dict(zip(names, tools))

    msgs = raw.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise where.error("'messages' must be a non-empty list", "messages")
    out_msgs: list[dict] = []
    pending: dict[str, str] = {}  # tool_call_id -> name, not yet answered
    call_counter = 0
    n_call_turns = 0
    n_calls_max = 0
    for i, m in enumerate(msgs):
        f = f"messages[{i}]"
        if not isinstance(m, dict):
            raise where.error("a message must be an object", f)
        role = m.get("role")
        if role not in ROLES:
            raise where.error(f"unknown role {role!r} (expected one of {', '.join(ROLES)})", f"{f}.role")
        content = m.get("content")
        if content is None:
            content = ""
        if isinstance(content, list):  # content blocks: text only; another block would be lost silently
            for j, b in enumerate(content):
                if not (isinstance(b, dict) and b.get("type") in (None, "text") and isinstance(b.get("text"), str)):
                    kind = b.get("type") if isinstance(b, dict) else type(b).__name__
                    raise where.error(f"content block of type {kind!r} is not text: examples hold text only",
                                      f"{f}.content[{j}]")
            content = "".join(b["text"] for b in content)
        bad = problem_in(content)  # NaN/Infinity or a lone surrogate: not storable as JSON text
        if bad:
            raise where.error(bad[1], f"{f}.content" + ("" if bad[0] == "(top level)" else f".{bad[0]}"))
        if not isinstance(content, str):
            if role != "tool":
                raise where.error("content must be a string", f"{f}.content")
            content = json.dumps(content, ensure_ascii=False)
            fixups.append("tool_content_json_encoded")
        msg: dict[str, Any] = {"role": role, "content": content}
        weight = m.get("weight")
        if weight is not None:
            if role != "assistant":
                raise where.error("a training weight applies to assistant messages only (OpenAI fine-tuning "
                                  "format)", f"{f}.weight")
            if isinstance(weight, bool) or weight not in (0, 1):
                raise where.error(f"weight must be 0 (kept as context, not trained on) or 1, not {weight!r}",
                                  f"{f}.weight")
        if role == "system" and i != 0:
            raise where.error("a system message may only come first", f"{f}.role")
        if role == "assistant" and m.get("tool_calls"):
            calls = m["tool_calls"]
            if not isinstance(calls, list):
                raise where.error("tool_calls must be a list", f"{f}.tool_calls")
            out_calls = []
            for j, c in enumerate(calls):
                cf = f"{f}.tool_calls[{j}]"
                if not isinstance(c, dict):
                    raise where.error("a tool call must be an object", cf)
                fn = c["function"] if isinstance(c.get("function"), dict) else c
                name = fn.get("name")
                if not isinstance(name, str) or not name:
                    raise where.error("tool call has no function name", f"{cf}.function.name")
                args, fx = decode_arguments(fn.get("arguments", fn.get("parameters")), where, f"{cf}.function.arguments")
                fixups += fx
                bad = problem_in(args)
                if bad:
                    raise where.error(bad[1], f"{cf}.function.arguments.{bad[0]}")
                if by_name and name not in by_name:
                    raise where.error(f"call to {name!r}, which is not among the example's tools {names}",
                                      f"{cf}.function.name")
                if validate_calls and name in by_name:
                    errs = call_errors(by_name[name], args)
                    if errs:
                        raise where.error(f"arguments of {name!r} do not match its schema: {'; '.join(errs[:3])}",
                                          f"{cf}.function.arguments")
                cid = c.get("id") or f"call_{call_counter}"
                call_counter += 1
                pending[cid] = name
                out_calls.append({"id": cid, "type": "function", "function": {"name": name, "arguments": args}})
            msg["tool_calls"] = out_calls
            if weight != 0:  # the category says what the trained turns teach (a weight-0 turn is context)
                n_call_turns += 1
                n_calls_max = max(n_calls_max, len(out_calls))
        if role == "tool":
            cid = m.get("tool_call_id")
            if not cid and len(pending) >= 1:
                cid = next(iter(pending))
            if cid not in pending:
                raise where.error(f"tool reply {cid!r} answers no earlier tool call", f"{f}.tool_call_id")
            msg["tool_call_id"] = cid
            msg["name"] = m.get("name") or pending[cid]
            pending.pop(cid)
        if weight == 0:
            msg["weight"] = 0
        out_msgs.append(msg)

    _check_turn_order(out_msgs, where)
    answers = [i for i, m in enumerate(out_msgs) if m["role"] == "assistant"]
    if answers and all(out_msgs[i].get("weight") == 0 for i in answers):
        raise where.error("every assistant turn has weight 0: nothing is left to train on or to score",
                          f"messages[{answers[-1]}].weight")
    category = (raw.get("meta") or {}).get("category") or raw.get("category")
    inferred = ("multi_turn" if n_call_turns > 1 or sum(m["role"] == "user" for m in out_msgs) > 1 and n_call_turns
                else "parallel" if n_calls_max > 1 else "call" if n_call_turns else "no_call")
    if category is None:
        category = inferred
    if category not in CATEGORIES:
        raise where.error(f"unknown category {category!r} (expected one of {', '.join(CATEGORIES)})",
                          "meta.category")
    if category == "no_call" and n_call_turns:
        raise where.error("category 'no_call' but the assistant makes a tool call", "meta.category")
    if category != "no_call" and not n_call_turns:
        raise where.error(f"category {category!r} but the assistant makes no tool call", "meta.category")
    meta = dict(raw.get("meta") or {})
    bad = problem_in(meta)
    if bad:
        raise where.error(bad[1], f"meta.{bad[0]}")
    meta["category"] = category
    if default_source and not meta.get("source"):
        meta["source"] = default_source
    if fixups:
        meta["fixups"] = sorted(set(meta.get("fixups", []) + fixups))
    out = {"id": str(raw.get("id") or ""), "schema_version": SCHEMA_VERSION, "tools": tools,
           "messages": out_msgs, "meta": meta}
    return out


def _check_turn_order(msgs: list[dict], where: Where) -> None:
    """system? → user → assistant → (tool+ → assistant)* …, ending on an assistant turn."""
    body = msgs[1:] if msgs and msgs[0]["role"] == "system" else msgs
    if not body or body[0]["role"] != "user":
        raise where.error("the conversation must start with a user message (after an optional system one)",
                          "messages[0].role")
    prev = None
    offset = len(msgs) - len(body)
    for i, m in enumerate(body):
        r = m["role"]
        ok = (prev is None and r == "user") or (prev == "user" and r == "assistant") or \
             (prev == "assistant" and r in ("user", "tool") and (r == "user" or body[i - 1].get("tool_calls"))) or \
             (prev == "tool" and r in ("tool", "assistant"))
        if prev == "assistant" and r == "tool" and not body[i - 1].get("tool_calls"):
            ok = False
        if not ok:
            raise where.error(f"a {r!r} message cannot follow a {prev!r} message", f"messages[{i + offset}].role")
        prev = r
    if body[-1]["role"] != "assistant":
        raise where.error("the conversation must end with an assistant message", f"messages[{len(msgs) - 1}].role")


def example_calls(example: dict) -> list[dict]:
    """The tool calls of the first assistant turn that calls, as [{'name', 'arguments'}]."""
    for m in example["messages"]:
        if m["role"] == "assistant" and m.get("tool_calls"):
            return [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
                    for c in m["tool_calls"]]
    return []


_TOOL_JSON: dict[int, tuple[dict, str]] = {}
_CANONICAL_KEYS = ["id", "schema_version", "tools", "messages", "meta"]


def _json(value: Any) -> str:
    # allow_nan=False: a stored line is always JSON (NaN/Infinity are refused before they get here)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _tool_json(tool: dict) -> str:
    hit = _TOOL_JSON.get(id(tool))
    if hit is not None and hit[0] is tool:
        return hit[1]
    if len(_TOOL_JSON) >= _CACHE_MAX:
        _TOOL_JSON.clear()
    text = _json(tool)
    _TOOL_JSON[id(tool)] = (tool, text)
    return text


def dumps(example: dict) -> str:
    """One stored line. Tool schemas repeat on every line, so a normalised tool object is encoded once."""
    if list(example) == _CANONICAL_KEYS and isinstance(example["tools"], list):
        return (f'{{"id":{_json(example["id"])},"schema_version":{_json(example["schema_version"])},"tools":['
                + ",".join(_tool_json(t) if isinstance(t, dict) and _NORMALISED.get(id(t), (None,))[0] is t else _json(t) for t in example["tools"])
                + f'],"messages":{_json(example["messages"])},"meta":{_json(example["meta"])}}}')
    return _json(example)


def infer_tool_from_calls(name: str, calls_args: list[dict]) -> dict:
    """A JSON-Schema tool inferred from observed arguments, for sources that carry no schema."""
    props: dict[str, dict] = {}
    seen_in: dict[str, int] = {}
    for args in calls_args:
        for k, v in args.items():
            seen_in[k] = seen_in.get(k, 0) + 1
            t = ("boolean" if isinstance(v, bool) else "integer" if isinstance(v, int) else
                 "number" if isinstance(v, float) else "string" if isinstance(v, str) else
                 "array" if isinstance(v, list) else "object" if isinstance(v, dict) else None)
            prev = props.get(k, {}).get("type")
            if prev and t and prev != t:
                t = "number" if {prev, t} == {"integer", "number"} else None
            props[k] = {"type": t} if t else {}
    required = sorted(k for k, n in seen_in.items() if n == len(calls_args))
    return {"type": "function", "function": {
        "name": name, "description": f"{name} (schema inferred from observed calls)",
        "parameters": {"type": "object", "properties": props, "required": required}}}
