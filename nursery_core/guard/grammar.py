"""The guard's grammar: free text, or 1..max_calls call blocks in exactly the layout training renders
(`rendering.CALL_BEGIN` … `CALL_END`), each naming an offered tool with arguments valid for its schema.

Written in llguidance's Lark dialect with inline `%json` schemas (github.com/guidance-ai/llguidance,
docs/syntax.md and docs/json_schema.md). What the library enforces, and how the guard adapts a schema first:

* JSON layout: `x-guidance` fixes the separators to training's `", "` / `": "` and allows no other whitespace.
* Key order: llguidance fixes object keys to the order of the schema's `properties` (required keys must be
  present, optional ones may be left out). Training writes arguments in that order, so a valid answer in the
  trained layout passes unchanged; the same keys in another order are steered back to schema order.
* Bounds: strings without `maxLength` get `max_string` characters, arrays without `maxItems` get `max_items`,
  an answer holds at most `max_calls` blocks, and `max_new_tokens` caps everything.
* Closed objects: an object schema with `properties` but no `additionalProperties` is closed, as the checker
  counts undeclared keys as hallucinated parameters.
* Relaxed, not enforced (reported in the plan): `uniqueItems` and string formats the library does not know.
* Anything else the library cannot compile (`not`, `if`/`then`, `dependentRequired`, a non-trivial `oneOf`…)
  makes the whole request decode free, and the plan says why.
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..training.rendering import (CALL_ARGUMENTS, CALL_BEGIN, CALL_END, CALL_SEPARATOR, JSON_SEPARATORS,
                                  TOOL_CALL_OPEN)

DEFAULT_MAX_CALLS = 8
DEFAULT_MAX_STRING = 512   # characters
DEFAULT_MAX_ITEMS = 16
MAX_GAP = 4                # whitespace characters allowed around and between call blocks

# Formats llguidance 1.9 enforces (docs/json_schema.md); any other is dropped from the guard's copy.
KNOWN_FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid",
                           "uri"})
_ANNOTATIONS = frozenset({"description", "title", "examples", "$comment", "deprecated", "readOnly", "writeOnly"})
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SUBSCHEMA_ONE = ("items", "additionalProperties", "contains", "not", "if", "then", "else", "propertyNames",
                  "additionalItems", "unevaluatedItems", "unevaluatedProperties")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_REGEX_META = set("\\.+*?()|[]{}^$#&-~/")


@dataclass(frozen=True)
class GuardCaps:
    """Bounds the guard adds where a schema has none."""

    max_calls: int = DEFAULT_MAX_CALLS
    max_string: int = DEFAULT_MAX_STRING
    max_items: int = DEFAULT_MAX_ITEMS

    def __post_init__(self):
        for name in ("max_calls", "max_string", "max_items"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")


@dataclass(frozen=True)
class GuardPlan:
    """How one request decodes: `grammar` (Lark text) when guarded, else None with the `reason`."""

    grammar: str | None
    reason: str | None = None
    relaxed: tuple[str, ...] = field(default=())

    @property
    def guarded(self) -> bool:
        return self.grammar is not None

    @classmethod
    def free(cls, reason: str) -> "GuardPlan":
        return cls(None, reason)


def _types(schema: dict) -> set[str]:
    t = schema.get("type")
    return {t} if isinstance(t, str) else set(t) if isinstance(t, list) else set()


def bounded_schema(schema: Any, caps: GuardCaps = GuardCaps(), where: str = "",
                   relaxed: list[str] | None = None) -> Any:
    """A copy of a JSON schema the guard can compile: annotations dropped, caps added, objects closed, and
    keywords it cannot enforce but may safely ignore removed (each named in `relaxed` as "where: keyword")."""
    if not isinstance(schema, dict):
        return schema
    relaxed = relaxed if relaxed is not None else []
    out: dict[str, Any] = {}
    for k, v in schema.items():
        if k in _ANNOTATIONS:
            continue
        if k in _SUBSCHEMA_MAPS and isinstance(v, dict):
            out[k] = {n: bounded_schema(s, caps, f"{where}.{n}" if where else n, relaxed) for n, s in v.items()}
        elif k in _SUBSCHEMA_ONE and isinstance(v, (dict, list)):
            out[k] = ([bounded_schema(s, caps, where, relaxed) for s in v] if isinstance(v, list)
                      else bounded_schema(v, caps, where + "[]" if k == "items" else where, relaxed))
        elif k in _SUBSCHEMA_LISTS and isinstance(v, list):
            out[k] = [bounded_schema(s, caps, where, relaxed) for s in v]
        elif k == "uniqueItems":
            if v:
                relaxed.append(f"{where or 'arguments'}: uniqueItems")
        elif k == "format" and v not in KNOWN_FORMATS:
            relaxed.append(f"{where or 'arguments'}: format {v!r}")
        else:
            out[k] = v
    types = _types(schema)
    if "string" in types and "maxLength" not in schema and "enum" not in schema and "const" not in schema:
        out["maxLength"] = max(caps.max_string, int(schema.get("minLength") or 0))
    if "array" in types and "maxItems" not in schema:
        out["maxItems"] = max(caps.max_items, int(schema.get("minItems") or 0))
    if isinstance(schema.get("properties"), dict) and "additionalProperties" not in schema \
            and "patternProperties" not in schema:
        out["additionalProperties"] = False
    return out


def _lark_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _regex_literal(text: str) -> str:
    return "".join("\\" + ch if ch in _REGEX_META else ch for ch in text)


def _json_options() -> dict:
    item, key = JSON_SEPARATORS
    # Escapes: \uXXXX for any character too (json.dumps writes it for control characters, other writers for
    # more); llguidance 1.9 has no \/ escape, which json.dumps never writes.
    return {"item_separator": _regex_literal(item), "key_separator": _regex_literal(key),
            "whitespace_flexible": False, "json_allow_general_unicode_escapes": True}


def tool_name(tool: dict) -> str:
    return (tool.get("function") or tool)["name"]


def tool_parameters(tool: dict) -> dict:
    return (tool.get("function") or tool).get("parameters") or {"type": "object", "properties": {}}


def tool_grammar(tools: list[dict], caps: GuardCaps = GuardCaps(),
                 require_call: bool = False) -> tuple[str, list[str]]:
    """(Lark grammar, relaxed keywords) for answers to a request offering `tools` (OpenAI-style dicts);
    `require_call` leaves out the plain-text answer (OpenAI's tool_choice "required" or a named tool).

    With no tools, only text is allowed: any call would name a tool that was not offered."""
    text = f"TEXT: /(?s:.*)/ & ~/(?s:.*){_regex_literal(TOOL_CALL_OPEN)}(?s:.*)/"
    if not tools:
        return "\n".join(["%llguidance {}", "start: TEXT", text]), []
    relaxed: list[str] = []
    sep = "GAP?" if not CALL_SEPARATOR.strip() else _lark_string(CALL_SEPARATOR)
    more = f" ({sep} call){{0,{caps.max_calls - 1}}}" if caps.max_calls > 1 else ""
    lines = ["%llguidance {}", "start: calls" if require_call else "start: TEXT | calls",
             f"calls: GAP? call{more} GAP?",
             "call: " + " | ".join(f"call_{i}" for i in range(len(tools)))]
    for i, tool in enumerate(tools):
        name = tool_name(tool)
        schema = bounded_schema(tool_parameters(tool), caps, name, relaxed)
        schema["x-guidance"] = _json_options()
        begin = CALL_BEGIN + json.dumps(name, ensure_ascii=False) + CALL_ARGUMENTS
        lines.append(f"call_{i}: {_lark_string(begin)} args_{i} {_lark_string(CALL_END)}")
        lines.append(f"args_{i}: %json {json.dumps(schema, ensure_ascii=False)}")
    lines += [text, f"GAP: /[ \\t\\r\\n]{{1,{MAX_GAP}}}/"]
    return "\n".join(lines), relaxed


# x-guidance options newer than the llguidance inside llama.cpp's bindings (xllamacpp 2026.10), which rejects a
# grammar naming them and then decodes free without a word; engines/llamacpp.py sends the grammar without them.
LLAMACPP_UNKNOWN_OPTIONS = ("json_allow_general_unicode_escapes",)


def llamacpp_grammar(grammar: str) -> str:
    """The guard's grammar for llama.cpp's llguidance: the same, less LLAMACPP_UNKNOWN_OPTIONS (so \\uXXXX escapes
    of ordinary characters are not allowed there; engines/llamacpp.py checks every answer against the full
    grammar with the Python llguidance and runs it on torch when it falls outside)."""
    for option in LLAMACPP_UNKNOWN_OPTIONS:
        grammar = grammar.replace(f', "{option}": true', "").replace(f', "{option}": false', "")
    return grammar


def compile_error(grammar: str) -> str | None:
    """llguidance's complaint about a grammar (None when it compiles). Raises ImportError without llguidance."""
    from llguidance import LLMatcher

    is_error, messages = LLMatcher.validate_grammar_with_warnings(LLMatcher.grammar_from_lark(grammar))
    return (messages[0] if messages else "invalid grammar") if is_error else None


def _first_line(message: str, limit: int = 200) -> str:
    line = message.strip().splitlines()[0] if message.strip() else message
    line = line.split(": failed to compile JSON schema: ", 1)[-1]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _build_plan(tools: list[dict], caps: GuardCaps, require_call: bool = False) -> GuardPlan:
    try:
        grammar, relaxed = tool_grammar(tools, caps, require_call)
        err = compile_error(grammar)
    except ImportError:
        return GuardPlan.free("llguidance is not installed (run `make setup`): decoded free")
    except (KeyError, TypeError, ValueError) as e:
        return GuardPlan.free(f"the tool schemas could not be turned into a grammar ({e}): decoded free")
    if err is None:
        return GuardPlan(grammar, None, tuple(relaxed))
    culprit = next((tool_name(t) for t in tools if compile_error(tool_grammar([t], caps)[0])), None)
    what = f"tool {culprit!r}'s schema" if culprit else "the tool schemas"
    return GuardPlan.free(f"guarded decoding cannot enforce {what} ({_first_line(err)}): decoded free")


_PLANS: "OrderedDict[str, GuardPlan]" = OrderedDict()
_PLANS_LOCK = threading.Lock()
_PLANS_MAX = 256


def plan_for(tools: list[dict] | None, caps: GuardCaps = GuardCaps(), require_call: bool = False) -> GuardPlan:
    """The guard for a request offering `tools`, built and checked once per distinct tool list (keyed by the
    tools' JSON in their order, since key order is part of what the grammar enforces). Never raises."""
    tools = list(tools or [])
    require_call = bool(require_call and tools)
    try:
        key = json.dumps([tools, caps.max_calls, caps.max_string, caps.max_items, require_call], ensure_ascii=False)
    except (TypeError, ValueError) as e:
        return GuardPlan.free(f"the tool schemas are not JSON ({e}): decoded free")
    with _PLANS_LOCK:
        hit = _PLANS.get(key)
        if hit is not None:
            _PLANS.move_to_end(key)
            return hit
    plan = _build_plan(tools, caps, require_call)
    with _PLANS_LOCK:
        _PLANS[key] = plan
        while len(_PLANS) > _PLANS_MAX:
            _PLANS.popitem(last=False)
    return plan


TOOL_CHOICES = ("auto", "none", "required")


def select_tools(tools: list[dict], tool_choice: Any = None) -> tuple[list[dict], bool]:
    """(the tools a guarded answer may call, whether it must call one) for OpenAI's `tool_choice`: "auto" (or
    None) any offered tool or text, "none" text only, "required" at least one call, {"type": "function",
    "function": {"name": N}} a call of N. Raises InvalidInput for anything else or a tool not offered.
    Source: platform.openai.com/docs/api-reference/chat/create (tool_choice)."""
    from ..errors import InvalidInput

    if tool_choice is None or tool_choice == "auto":
        return tools, False
    if tool_choice == "none":
        return [], False
    if tool_choice == "required":
        if not tools:
            raise InvalidInput("tool_choice 'required' needs tools", field="tool_choice")
        return tools, True
    fn = tool_choice.get("function") if isinstance(tool_choice, dict) else None
    if not isinstance(fn, dict) or tool_choice.get("type", "function") != "function" or not fn.get("name"):
        raise InvalidInput(f"tool_choice must be one of {', '.join(TOOL_CHOICES)} or "
                           '{"type": "function", "function": {"name": ...}}', field="tool_choice")
    chosen = [t for t in tools if tool_name(t) == fn["name"]]
    if not chosen:
        raise InvalidInput(f"tool_choice names {fn['name']!r}, which is not among the offered tools",
                           field="tool_choice")
    return chosen, True


def decoding_summary(guarded: bool, plans: list[GuardPlan], runtime_errors: dict[int, str] | None = None,
                     closed: int = 0) -> dict:
    """What ran for a set of prompts: {"decoding": "guarded" | "free" | "mixed", "guarded_prompts", "prompts",
    "notes": why some decoded free, which schema keywords the grammar did not enforce, and how many answers were
    steered to end within max_new_tokens (`closed`)}."""
    runtime_errors = runtime_errors or {}
    if not guarded:
        return {"decoding": "free", "guarded_prompts": 0, "prompts": len(plans), "notes": []}
    ok = [p.guarded and i not in runtime_errors for i, p in enumerate(plans)]
    notes: list[str] = []
    for i, p in enumerate(plans):
        for note in ([p.reason] if p.reason else []) + ([runtime_errors[i]] if i in runtime_errors else []):
            if note not in notes:
                notes.append(note)
    relaxed = sorted({r for p in plans if p.guarded for r in p.relaxed})
    if relaxed:
        notes.append("not enforced by the grammar (checked after decoding): " + ", ".join(relaxed))
    if closed:
        notes.append(f"{closed} answer(s) steered to close their tool call within max_new_tokens")
    n = sum(ok)
    mode = "guarded" if n == len(plans) else "free" if n == 0 else "mixed"
    return {"decoding": mode, "guarded_prompts": n, "prompts": len(plans), "notes": notes}
