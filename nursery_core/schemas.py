"""Tool parameter schemas from the shapes people write into the one JSON Schema shape every stage reads.

What is converted (each conversion is named in the returned notes, so imports can count it):
- Gorilla/BFCL and Python type names (`dict`, `float`, `tuple`, `any`) and xLAM/APIGen type strings
  (`"int, optional"`, `"List[str]"`, `"Dict[str, Any]"`, `"Optional[int]"`) → JSON Schema types;
- xLAM/APIGen flat parameter dicts `{name: {type, description, default}}` → `{type: object, properties,
  required}` (a parameter is required unless its type says optional; defaults are kept);
- local `$ref` (`#/$defs/…`, `#/definitions/…`, any `#/…` pointer) → the referenced schema inlined, so the
  rendering, the generator and Ollama's tool types (which know no `$ref`) see the whole schema;
- `anyOf`/`oneOf` of one typed schema and `{"type": "null"}` → that schema with a nullable type list
  (`["number", "null"]`), which validates the same values (JSON Schema 2020-12 §6.1.1).
What is refused, by name: remote or recursive `$ref` (SchemaUnsupported). `unsupported_constructs` lists the
keywords the generator cannot follow and `not_rendered` what the compact tool list does not show (validation
still honours everything).
"""
from __future__ import annotations

import copy
import re
from typing import Any

# Gorilla/BFCL and Python-ish type names → JSON Schema.
TYPE_ALIASES = {
    "dict": "object", "float": "number", "tuple": "array", "list": "array", "int": "integer",
    "str": "string", "bool": "boolean", "double": "number", "long": "integer", "map": "object",
    "set": "array", "mapping": "object", "sequence": "array",
}
JSON_TYPES = ("string", "integer", "number", "boolean", "array", "object", "null")
# The generator picks one branch of anyOf/oneOf (data/values.value_for); these it does not follow at all.
NOT_FOLLOWED = ("allOf", "not", "if", "then", "else", "patternProperties", "propertyNames",
                "dependentSchemas", "dependentRequired", "prefixItems", "contains", "unevaluatedProperties",
                "unevaluatedItems", "minProperties", "maxProperties", "$dynamicRef")


class SchemaUnsupported(ValueError):
    """A schema construct Nursery cannot turn into a self-contained schema; `field` is its JSON path."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


# ------------------------------------------------------------------------------------- type strings
_OPTIONAL_SUFFIX = re.compile(r",\s*(optional|default\b.*)$", re.I)


def python_type(text: str) -> tuple[dict | None, bool]:
    """(JSON Schema fragment or None for "any", optional?) of a Python-ish type string.

    `"int, optional"` → ({"type": "integer"}, True); `"List[str]"` → ({"type": "array", "items": {"type":
    "string"}}, False); `"Optional[float]"` → ({"type": "number"}, True); unknown names → ({"type": name}, False),
    left for the JSON Schema check to refuse."""
    t = text.strip()
    optional = False
    m = _OPTIONAL_SUFFIX.search(t)
    if m:
        t, optional = t[: m.start()].strip(), True
    low = t.lower().replace(" ", "")
    if low.startswith("optional[") and low.endswith("]"):
        inner, _ = python_type(t[t.index("[") + 1: -1])
        return inner, True
    if low in ("any", "object?", "") or low.startswith("union["):
        return None, optional
    for prefix in ("list[", "tuple[", "set[", "sequence[", "iterable["):
        if low.startswith(prefix) and low.endswith("]"):
            inner, _ = python_type(t[t.index("[") + 1: -1].split(",")[0])
            return ({"type": "array", "items": inner} if inner else {"type": "array"}), optional
    if low.startswith(("dict[", "mapping[")):
        return {"type": "object"}, optional
    if low in TYPE_ALIASES:
        return {"type": TYPE_ALIASES[low]}, optional
    if low in JSON_TYPES:
        return {"type": low}, optional
    return {"type": t}, optional


# ----------------------------------------------------------------------------------- normalisation
def _map_types(schema: Any, notes: set[str]) -> Any:
    """Python/Gorilla type names → JSON Schema, recursively, on what it is given (already a copy)."""
    if isinstance(schema, list):
        return [_map_types(s, notes) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for k, v in schema.items():
        if k == "type" and isinstance(v, str):
            if v in JSON_TYPES:
                out[k] = v
                continue
            frag, _ = python_type(v)
            notes.add("python_type_names_mapped")
            if frag:
                for fk, fv in frag.items():
                    if fk == "items" and "items" in schema:
                        continue
                    out[fk] = fv
        elif k == "properties" and isinstance(v, dict):
            out[k] = {pk: _map_types(pv, notes) for pk, pv in v.items()}
        elif k in ("$defs", "definitions") and isinstance(v, dict):
            out[k] = {pk: _map_types(pv, notes) for pk, pv in v.items()}
        elif k in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "not", "prefixItems"):
            out[k] = _map_types(v, notes)
        elif k == "optional":  # a Gorilla-only hint; JSON Schema says it through `required`
            notes.add("python_type_names_mapped")
        else:
            out[k] = v
    return out


_SCHEMA_KEYWORDS = {"properties", "required", "$defs", "definitions", "additionalProperties", "anyOf", "oneOf",
                    "allOf", "$schema", "$ref", "patternProperties"}


def is_flat_parameters(params: Any) -> bool:
    """xLAM/APIGen's `{name: {type, description, default}}`: every value a parameter spec (a dict), and no
    JSON Schema keyword at the top (a parameter may still be called `type` or `description`: its value is a
    dict, never a type name or text)."""
    return (isinstance(params, dict) and bool(params) and not (set(params) & _SCHEMA_KEYWORDS)
            and all(isinstance(v, dict) for v in params.values())
            and any({"type", "description", "default"} & set(v) for v in params.values()))


def _from_flat(params: dict) -> dict:
    props: dict[str, dict] = {}
    required: list[str] = []
    for name, spec in params.items():
        spec = dict(spec)
        t = spec.pop("type", None)
        frag, optional = python_type(t) if isinstance(t, str) else (None, False)
        if spec.pop("optional", False) is True:
            optional = True
        props[name] = {**(frag or {}), **spec}
        if not optional:
            required.append(name)
    return {"type": "object", "properties": props, "required": required}


def _pointer(root: dict, ref: str, field: str) -> Any:
    node: Any = root
    for part in ref[2:].split("/") if ref != "#" else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise SchemaUnsupported(f"$ref {ref!r} points to nothing in this schema", field)
    return node


def _inline_refs(node: Any, root: dict, field: str, active: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_inline_refs(v, root, f"{field}[{i}]", active) for i, v in enumerate(node)]
    if not isinstance(node, dict):
        return node
    if isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        if not ref.startswith("#"):
            raise SchemaUnsupported(f"$ref {ref!r} is not local: only references into the same schema "
                                    "('#/$defs/…') are supported", f"{field}.$ref")
        if ref in active:
            raise SchemaUnsupported(f"$ref {ref!r} is recursive: a recursive schema cannot be inlined for "
                                    "rendering and generation", f"{field}.$ref")
        target = _pointer(root, ref, f"{field}.$ref")
        resolved = _inline_refs(copy.deepcopy(target), root, field, active + (ref,))
        siblings = {k: _inline_refs(v, root, f"{field}.{k}", active) for k, v in node.items() if k != "$ref"}
        return {**resolved, **siblings} if isinstance(resolved, dict) else resolved
    return {k: (v if k in ("enum", "const", "default", "examples", "$defs", "definitions")
                else _inline_refs(v, root, f"{field}.{k}" if k != "properties" else f"{field}.properties", active))
            for k, v in node.items()}


def _has_ref(node: Any) -> bool:
    if isinstance(node, dict):
        return isinstance(node.get("$ref"), str) or any(_has_ref(v) for k, v in node.items()
                                                        if k not in ("enum", "const", "default", "examples"))
    if isinstance(node, list):
        return any(_has_ref(v) for v in node)
    return False


def _fold_nullable(node: Any, notes: set[str]) -> Any:
    """anyOf/oneOf [S, {type: null}] (S typed) → S with `null` added to its type (and to its enum)."""
    if isinstance(node, list):
        return [_fold_nullable(v, notes) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: (v if k in ("enum", "const", "default", "examples") else _fold_nullable(v, notes))
           for k, v in node.items()}
    for key in ("anyOf", "oneOf"):
        branches = out.get(key)
        if not (isinstance(branches, list) and len(branches) == 2 and all(isinstance(b, dict) for b in branches)):
            continue
        nulls = [b for b in branches if b == {"type": "null"}]
        others = [b for b in branches if b != {"type": "null"}]
        if len(nulls) != 1 or len(others) != 1:
            continue
        s = dict(others[0])
        t = s.get("type")
        if isinstance(t, str):
            s["type"] = [t, "null"]
        elif isinstance(t, list) and all(isinstance(x, str) for x in t):
            s["type"] = t + ([] if "null" in t else ["null"])
        else:
            continue
        if isinstance(s.get("enum"), list) and None not in s["enum"]:
            s["enum"] = s["enum"] + [None]
        if "const" in s:
            continue
        rest = {k: v for k, v in out.items() if k != key}
        if set(rest) & (set(s) - {"description", "title", "default"}):
            continue  # the branch and its parent both constrain the same keyword: keep anyOf as written
        out = {**s, **rest}
        notes.add("nullable_anyof_as_type_list")
    return out


def normalise_parameters(params: dict, field: str = "parameters") -> tuple[dict, list[str]]:
    """(a self-contained JSON Schema object for a tool's parameters, notes on what was converted).

    Works on a copy; raises SchemaUnsupported naming a remote or recursive `$ref`."""
    notes: set[str] = set()
    params = copy.deepcopy(params)
    if is_flat_parameters(params):
        params = _from_flat(params)
        notes.add("xlam_parameters_converted")
    params = _map_types(params, notes)
    if _has_ref(params):
        params = _inline_refs(params, params, field, ())
        notes.add("local_refs_inlined")
    if isinstance(params, dict):
        for k in ("$defs", "definitions"):
            if k in params and "local_refs_inlined" in notes:
                params.pop(k)
        params = _fold_nullable(params, notes)
    return params, sorted(notes)


_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")


def close_nested_objects(schema: Any, depth: int = 0) -> Any:
    """A copy of `schema` in which every nested object schema that lists `properties` and says nothing of
    `additionalProperties` (or `patternProperties`) is closed (`additionalProperties: false`), as the checker
    and the guard treat them (guard/grammar.py). The top level is left as it is: callers report undeclared
    top-level arguments in their own words. JSON Schema alone would accept any extra key at any depth."""
    if isinstance(schema, list):
        return [close_nested_objects(s, depth + 1) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict = {}
    for k, v in schema.items():
        if k in _SUBSCHEMA_MAPS and isinstance(v, dict):
            out[k] = {name: close_nested_objects(sub, depth + 1) for name, sub in v.items()}
        elif k in _SUBSCHEMA_LISTS and isinstance(v, list):
            out[k] = [close_nested_objects(sub, depth + 1) for sub in v]
        elif k in ("items", "additionalProperties", "not", "if", "then", "else", "contains") and isinstance(v, dict):
            out[k] = close_nested_objects(v, depth + 1)
        else:
            out[k] = v
    if depth and isinstance(schema.get("properties"), dict) and "additionalProperties" not in schema \
            and "patternProperties" not in schema:
        out["additionalProperties"] = False
    return out


def unsupported_constructs(schema: Any, field: str = "parameters") -> list[str]:
    """The path of every keyword the generator does not follow (NOT_FOLLOWED), e.g. 'parameters.properties.x.allOf'."""
    out: list[str] = []
    if isinstance(schema, dict):
        for k, v in schema.items():
            if k in NOT_FOLLOWED:
                out.append(f"{field}.{k}")
            elif k == "properties" and isinstance(v, dict):
                for pk, pv in v.items():
                    out += unsupported_constructs(pv, f"{field}.properties.{pk}")
            elif k in ("items", "additionalProperties") and isinstance(v, dict):
                out += unsupported_constructs(v, f"{field}.{k}")
    return out


def not_rendered(params: dict) -> list[str]:
    """What the compact v2 tool list (training/rendering.py, and the Ollama TEMPLATE, whose tool types keep
    only type, items, enum and description per parameter) does not show the model, one line per parameter."""
    out: list[str] = []
    for name, p in sorted((params.get("properties") or {}).items()):
        if not isinstance(p, dict):
            continue
        if isinstance(p.get("properties"), dict) and p["properties"]:
            out.append(f"{name}: the fields of a nested object ({', '.join(sorted(p['properties']))})")
        items = p.get("items")
        if isinstance(items, dict) and isinstance(items.get("properties"), dict) and items["properties"]:
            out.append(f"{name}: the fields of its array items ({', '.join(sorted(items['properties']))})")
        if "type" not in p and "enum" not in p and any(k in p for k in ("anyOf", "oneOf", "allOf")):
            out.append(f"{name}: its type (written as anyOf/oneOf/allOf, which the list does not spell out)")
        out += [f"{name}: '{path.rsplit('.', 1)[-1]}' ({path})" for path in unsupported_constructs(p, f"properties.{name}")]
    return out
