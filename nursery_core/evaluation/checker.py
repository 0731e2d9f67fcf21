"""The BFCL-style AST checker (Berkeley Function Calling Leaderboard rules, reference §2.3), over our tools.

A possible answer is BFCL's shape: a list of `{function_name: {param: [acceptable values]}}`, one per expected
call; `""` among a parameter's values means it may be omitted. Tools are our canonical JSON-Schema tools, whose
`number` plays BFCL's `float` and whose missing `type` plays `any`.

Parity with the official checker (ShishirPatil/gorilla, bfcl_eval/eval_checker/ast_eval/ast_checker.py,
`type_checker` and `simple_function_checker`): an int is promoted to float for a top-level `float`
parameter only; array items are type-checked strictly one level deep (`[1, 2]` is not an array of float,
unless an acceptable answer is itself written with ints: BFCL's "variable" escape); dict values are compared
by value, not type (BFCL has no nested type check for dicts, so `{"x": 1}` matches `{"x": [1.0]}`).
Known differences: BFCL maps `any` to `str`, we accept any value for a parameter without a type; JSON Schema
type lists (`["number", "null"]`), which BFCL does not have, accept a value of any listed type; the Java and
JavaScript categories' string-typed values are not supported (those categories are not imported).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_STD_RE = re.compile(r"[ ,./\-_*^]")
_PY_TYPES: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool,
                              "array": list, "object": dict}


@dataclass
class CheckResult:
    valid: bool
    error: str = ""
    error_type: str = ""
    matched: list[int] = field(default_factory=list)  # for multi-call checks: output index per expected call

    def to_dict(self) -> dict:
        return {"valid": self.valid, "error": self.error, "error_type": self.error_type}


def standardize_string(s: str) -> str:
    """BFCL's normalisation: drop spaces and ,./-_*^, lowercase, ' → \"."""
    return _STD_RE.sub("", s).lower().replace("'", '"')


def _fn(tool: dict) -> dict:
    return tool["function"] if isinstance(tool.get("function"), dict) else tool


def find_tool(tools: list[dict], name: str) -> dict | None:
    for t in tools or []:
        if _fn(t).get("name") == name:
            return _fn(t)
    return None


def _declared(schema: dict) -> list[str]:
    t = (schema or {}).get("type")
    if isinstance(t, str):
        return [t]
    if isinstance(t, list):
        return [x for x in t if isinstance(x, str) and x != "null"]
    return []  # "any"


def _is_item_type(value: Any, json_type: str) -> bool:
    """BFCL's nested check: `type(item) == expected` with no promotion, so an int is not a float item."""
    if json_type == "number":
        return type(value) is float
    return _is_type(value, json_type)


def _is_type(value: Any, json_type: str) -> bool:
    """Strict Python types as BFCL: bool is not int, "5" is not int; an int is a number."""
    if json_type == "number":
        return type(value) in (int, float)
    py = _PY_TYPES.get(json_type)
    return py is not None and type(value) is py


def _answer_type(alternatives: list) -> type | None:
    for a in alternatives:
        if a != "":
            return type(a)
    return None


def _py_fits(py: type, json_type: str) -> bool:
    return (py in (int, float)) if json_type == "number" else _PY_TYPES.get(json_type) is py


def _value_kind(schema: dict, value: Any) -> str:
    """Which value rule applies: 'dict', 'list_dict', 'list', 'string' or 'other' (by declared, else actual type)."""
    types = _declared(schema)
    t = types[0] if len(types) == 1 else None
    if t is None:  # any / unions: follow the value itself
        t = ("object" if isinstance(value, dict) else "array" if isinstance(value, list) else
             "string" if isinstance(value, str) else "other")
    if t == "object":
        return "dict"
    if t == "array":
        items = (schema or {}).get("items")
        return "list_dict" if isinstance(items, dict) and _declared(items) == ["object"] else "list"
    if t == "string":
        return "string"
    return "other"


def _type_check(param: str, value: Any, schema: dict, alternatives: list) -> tuple[bool, bool, str]:
    """(ok, is_variable, error): BFCL's type_checker, one level of nesting for arrays."""
    types = _declared(schema)
    if not types:
        return True, False, ""
    ans_type = _answer_type(alternatives)
    # BFCL's "variable" escape hatch: an answer written in another type than declared (a variable name).
    is_variable = ans_type is not None and not any(_py_fits(ans_type, t) for t in types)
    if any(_is_type(value, t) for t in types):
        items = (schema or {}).get("items") if isinstance(value, list) else None
        item_types = _declared(items) if isinstance(items, dict) else []
        if not item_types:
            return True, is_variable, ""
        for alt in alternatives:
            if not isinstance(alt, list):
                return True, is_variable, ""  # BFCL: a non-list alternative (e.g. "") does not constrain items
            alt_type = _answer_type(alt)
            if all(any(_is_item_type(v, it) for it in item_types) or (alt_type is not None and type(v) is alt_type)
                   for v in value):
                return True, is_variable, ""
        return False, False, (f"nested type check failed for parameter {param!r}: expected array of "
                              f"{'/'.join(item_types)}, got {value!r}")
    if ans_type is not None and type(value) is ans_type:
        return True, True, ""
    return False, False, (f"incorrect type for parameter {param!r}: expected {'/'.join(types)}, "
                          f"got {type(value).__name__} ({value!r})")


def _std(v: Any) -> Any:
    return standardize_string(v) if isinstance(v, str) else v


def _dict_match(value: dict, alternatives: list) -> tuple[bool, str]:
    err = f"no acceptable dict among {alternatives!r}"
    for alt in alternatives:
        if alt == "" or not isinstance(alt, dict):
            continue
        ok = True
        for k, v in value.items():
            if k not in alt:
                ok, err = False, f"unexpected dict key {k!r}"
                break
            allowed = alt[k] if isinstance(alt[k], list) else [alt[k]]
            if _std(v) not in [_std(a) for a in allowed]:
                ok, err = False, f"invalid value for dict key {k!r}: {v!r}, expected one of {allowed!r}"
                break
        if ok:
            for k, allowed in alt.items():
                allowed = allowed if isinstance(allowed, list) else [allowed]
                if k not in value and "" not in allowed:
                    ok, err = False, f"missing dict key {k!r}"
                    break
        if ok:
            return True, ""
    return False, err


def _value_check(param: str, value: Any, schema: dict, alternatives: list, is_variable: bool) -> tuple[bool, str]:
    kind = "other" if is_variable else _value_kind(schema, value)
    if kind == "dict" and isinstance(value, dict):
        ok, err = _dict_match(value, alternatives)
        return ok, ("" if ok else f"parameter {param!r}: {err}")
    if kind == "list_dict" and isinstance(value, list):
        for alt in alternatives:
            if isinstance(alt, list) and len(alt) == len(value) and all(
                    isinstance(v, dict) and _dict_match(v, [a])[0] for v, a in zip(value, alt)):
                return True, ""
        return False, f"invalid value for parameter {param!r}: {value!r}, expected one of {alternatives!r}"
    if kind == "string" and isinstance(value, str):
        if standardize_string(value) in [standardize_string(a) for a in alternatives if isinstance(a, str)]:
            return True, ""
        return False, (f"invalid value for parameter {param!r}: {value!r}, expected one of {alternatives!r} "
                       "(case and punctuation insensitive)")
    if kind == "list" and isinstance(value, list):
        got = [_std(v) for v in value]
        if any(isinstance(a, list) and got == [_std(x) for x in a] for a in alternatives):
            return True, ""
        return False, f"invalid value for parameter {param!r}: {value!r}, expected one of {alternatives!r} (ordered)"
    # Python == as BFCL (5 == 5.0), except that a bool never equals a number.
    if any(value == a and (type(value) is bool) == (type(a) is bool) for a in alternatives):
        return True, ""
    return False, f"invalid value for parameter {param!r}: {value!r}, expected one of {alternatives!r}"


def check_param(param: str, value: Any, schema: dict, alternatives: list) -> tuple[bool, str]:
    """Type then value of one provided argument against its acceptable values."""
    if "number" in _declared(schema) and type(value) is int:
        value = float(value)  # BFCL's int → float promotion
    ok, is_variable, err = _type_check(param, value, schema, alternatives)
    if not ok:
        return False, err
    return _value_check(param, value, schema, alternatives, is_variable)


def check_call(tool: dict | None, call: dict, answer: dict) -> CheckResult:
    """BFCL's simple_function_checker: one output call against one `{name: {param: [values]}}` answer."""
    (expected_name, possible), = answer.items()
    if tool is None:
        return CheckResult(False, f"no tool named {expected_name!r} among the example's tools",
                           "wrong_func_name")
    if call.get("name") != expected_name:
        return CheckResult(False, f"expected a call to {expected_name!r}, got {call.get('name')!r}",
                           "wrong_func_name")
    params = tool.get("parameters") or {}
    props = params.get("properties") or {}
    args = call.get("arguments") or {}
    for req in params.get("required") or []:
        if req not in args:
            return CheckResult(False, f"missing required parameter {req!r}", "missing_required")
    for p, value in args.items():
        if p not in props or p not in possible:
            return CheckResult(False, f"unexpected parameter {p!r}", "unexpected_param")
        ok, err = check_param(p, value, props[p], possible[p])
        if not ok:
            return CheckResult(False, err, "type_error" if err.startswith(("incorrect type", "nested type"))
                               else "value_error")
    for p, alternatives in possible.items():
        if p not in args and "" not in alternatives:
            return CheckResult(False, f"parameter {p!r} omitted, but omitting it is not acceptable",
                               "missing_optional")
    return CheckResult(True)


def check_calls(tools: list[dict], calls: list[dict], possible_answer: list[dict], *,
                attempted_call: bool = False, format_ok: bool = True) -> CheckResult:
    """The whole answer: no call expected → pass only without a call (a malformed `<tool_call>` block is an
    attempt); one → exactly that call; several → the same number, matched regardless of order (greedy: the
    first passing output per expected call). Undecodable output fails, as BFCL's "failed to decode AST"."""
    if not possible_answer:
        if calls or attempted_call:
            return CheckResult(False, "a tool call was made where none was expected", "irrelevance")
        return CheckResult(True)
    if not format_ok:
        return CheckResult(False, "invalid syntax: a <tool_call> block could not be decoded", "format_error")
    if len(calls) != len(possible_answer):
        return CheckResult(False, f"wrong number of calls: expected {len(possible_answer)}, got {len(calls)}",
                           "wrong_count")
    matched: list[int] = []
    for i, answer in enumerate(possible_answer):
        name = next(iter(answer))
        tool = find_tool(tools, name)
        last = CheckResult(False, "no output call left to match", "cannot_find_match")
        for j, call in enumerate(calls):
            if j in matched:
                continue
            last = check_call(tool, call, answer)
            if last.valid:
                matched.append(j)
                break
        else:
            if len(possible_answer) == 1:
                return last
            return CheckResult(False, f"no output call matches expected call {i + 1} ({name}): {last.error}",
                               last.error_type or "cannot_find_match")
    return CheckResult(True, matched=matched)


# ------------------------------------------------------------------------------ answers from gold calls
def _alternative(schema: dict, value: Any) -> Any:
    """One acceptable value in the checker's shape (dict values become lists of alternatives)."""
    kind = _value_kind(schema, value)
    if kind == "dict" and isinstance(value, dict):
        return {k: [v] for k, v in value.items()}
    if kind == "list_dict" and isinstance(value, list):
        return [{k: [v] for k, v in d.items()} if isinstance(d, dict) else d for d in value]
    return value


def possible_answer_from_gold(gold_calls: list[dict], tools: list[dict]) -> list[dict]:
    """BFCL-shaped answers for our own data: each gold argument → [its value]; an optional parameter the gold
    call leaves out → ["", its schema default if any]; "" is also accepted where the gold value is the default."""
    out = []
    for call in gold_calls:
        tool = find_tool(tools, call["name"]) or {}
        params = tool.get("parameters") or {}
        props = params.get("properties") or {}
        required = set(params.get("required") or [])
        answer: dict[str, list] = {}
        for k, v in (call.get("arguments") or {}).items():
            schema = props.get(k) or {}
            alts = [_alternative(schema, v)]
            if k not in required and "default" in schema and _same(schema["default"], v):
                alts.append("")
            answer[k] = alts
        for k, schema in props.items():
            if k in answer or k in required:
                continue
            alts = [""]
            if isinstance(schema, dict) and "default" in schema and schema["default"] is not None:
                alts.append(_alternative(schema, schema["default"]))
            answer[k] = alts
        out.append({call["name"]: answer})
    return out


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def gold_from_possible_answer(possible_answer: list[dict]) -> list[dict]:
    """One concrete call per expected call: each parameter's first acceptable value (omitted when that is "")."""
    calls = []
    for answer in possible_answer:
        (name, params), = answer.items()
        args = {}
        for k, alts in params.items():
            if not alts or alts[0] == "":
                continue
            args[k] = _concrete(alts[0])
        calls.append({"name": name, "arguments": args})
    return calls


def _concrete(value: Any) -> Any:
    """A BFCL dict alternative `{key: [values]}` → `{key: first value}`; lists of them element-wise."""
    if isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
        return {k: v[0] for k, v in value.items() if v and v[0] != ""}
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [_concrete(v) for v in value]
    return value
