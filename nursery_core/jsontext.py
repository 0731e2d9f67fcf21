"""Reading JSON and JSON Lines the same way in every reader: a UTF-8 BOM and CRLF line ends are accepted,
and the strict parse refuses what RFC 8259 does not allow but Python's `json` accepts.

Python's `json.loads` takes `NaN`, `Infinity`, duplicate object keys (the last one wins) and `\\ud800`
escapes that decode to lone surrogates; none of them is JSON that other tools read back (RFC 8259 §6 has no
NaN/Infinity, §4 says names SHOULD be unique, §8.2 makes lone surrogates unpredictable). `loads_strict`
refuses them with the field path, so a stored file is always valid JSON Lines.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

from .errors import InvalidInput

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def has_lone_surrogate(text: str) -> bool:
    return _LONE_SURROGATE.search(text) is not None


def read_text(path: str | Path, label: str | None = None) -> str:
    """A file's text as UTF-8 (a leading BOM dropped); InvalidInput naming the line of the first bad byte."""
    p = Path(path)
    data = p.read_bytes()
    return decode_bytes(data, label or str(path))


def decode_bytes(data: bytes, label: str) -> str:
    """UTF-8 text from bytes, BOM dropped; CRLF is left to `lines`, which every reader uses."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InvalidInput("the file is not UTF-8 text", file=label, line=line) from None


def lines(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) for every non-blank line; CRLF and a BOM left on the text are dropped.
    Lines end at "\n" only: JSON strings may hold U+2028, U+2029 or U+0085 unescaped (json.dumps with
    ensure_ascii=False writes them so), which `str.splitlines` would wrongly treat as line ends."""
    for n, line in enumerate(text.lstrip("\ufeff").split("\n"), start=1):
        line = line.rstrip("\r")
        if line.strip():
            yield n, line


class _NonFinite:
    def __init__(self, token: str):
        self.token = token


class _DupDict(dict):
    duplicates: list[str]


def _duplicates(pairs: list[tuple[str, Any]], d: dict) -> _DupDict:
    seen: set[str] = set()
    out = _DupDict(d)
    out.duplicates = sorted({k for k, _ in pairs if k in seen or _first_sight(seen, k)})
    return out



def _first_sight(seen: set[str], key: str) -> bool:
    """Records `key` as seen; False, so a comprehension's `k in seen or _first_sight(...)` keeps repeats only."""
    seen.add(key)
    return False

def _problem(value: Any, path: str) -> tuple[str, str] | None:
    """(field path, what is wrong) for the first non-JSON value inside `value`, or None."""
    if isinstance(value, _NonFinite):
        return path or "(top level)", f"{value.token} is not a JSON number"
    if isinstance(value, str):
        if has_lone_surrogate(value):
            return path or "(top level)", "a lone UTF-16 surrogate (\\ud800-\\udfff) is not valid text"
        return None
    if isinstance(value, dict):
        if isinstance(value, _DupDict):
            return path or "(top level)", f"duplicate key(s) {value.duplicates}"
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            if has_lone_surrogate(k):
                return sub, "a lone UTF-16 surrogate (\\ud800-\\udfff) in a key"
            found = _problem(v, sub)
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _problem(v, f"{path}[{i}]")
            if found:
                return found
    return None


def loads_marked(text: str) -> tuple[Any, bool]:
    """(value, suspicious): json.loads that leaves markers where NaN/Infinity or duplicate keys were, for
    `marked_problem` to name per record; raises ValueError on a syntax error as json.loads does."""
    flagged: list[bool] = []

    def const(token: str) -> _NonFinite:
        flagged.append(True)
        return _NonFinite(token)

    def pairs(p: list[tuple[str, Any]]) -> dict:  # one call per object: it runs for every object parsed
        d = dict(p)
        if len(d) != len(p):
            flagged.append(True)
            return _duplicates(p, d)
        return d

    value = json.loads(text, parse_constant=const, object_pairs_hook=pairs)
    return value, bool(flagged) or _SURROGATE_ESCAPE.search(text) is not None


def marked_problem(value: Any) -> tuple[str, str] | None:
    """(field path, what is wrong) for the first marker or lone surrogate in a `loads_marked` value."""
    return _problem(value, "")


def loads_strict(text: str, file: str | None = None, line: int | None = None) -> Any:
    """json.loads that refuses NaN/Infinity, duplicate keys and lone surrogates (InvalidInput with file, line
    and the field path); a syntax error names its column."""
    try:
        value, suspicious = loads_marked(text)
    except ValueError as e:
        msg = getattr(e, "msg", str(e))
        at = line if line is not None else getattr(e, "lineno", None)
        raise InvalidInput(f"not valid JSON: {msg} (column {getattr(e, 'colno', '?')})", file=file, line=at) from None
    if suspicious:
        found = _problem(value, "")
        if found:
            raise InvalidInput(found[1], file=file, line=line, field=found[0])
    return value


def problem_in(value: Any) -> tuple[str, str] | None:
    """(field path, what is wrong) when an already parsed value holds a non-finite float or a lone surrogate
    (what `json.loads` lets through), else None."""
    return _problem_parsed(value, "")


def _problem_parsed(value: Any, path: str) -> tuple[str, str] | None:
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            token = "NaN" if value != value else "Infinity" if value > 0 else "-Infinity"
            return path or "(top level)", f"{token} is not a JSON number"
        return None
    if isinstance(value, (dict, list, str)):
        if isinstance(value, str):
            return _problem(value, path)
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for k, v in items:
            sub = (f"{path}.{k}" if path else str(k)) if isinstance(value, dict) else f"{path}[{k}]"
            if isinstance(k, str) and has_lone_surrogate(k):
                return sub, "a lone UTF-16 surrogate (\\ud800-\\udfff) in a key"
            found = _problem_parsed(v, sub)
            if found:
                return found
    return None


def records(text: str, label: str) -> list[tuple[int, Any]]:
    """[(line, record)] from a JSON array (line = position, 1-based) or JSON Lines (line = its line number),
    parsed strictly (loads_strict); the first bad line raises InvalidInput naming label, line and field."""
    if text.lstrip("\ufeff").lstrip().startswith("["):
        data = loads_strict(text.lstrip("\ufeff"), file=label)
        if not isinstance(data, list):
            raise InvalidInput("not a JSON array", file=label)
        return [(i + 1, r) for i, r in enumerate(data)]
    return [(n, loads_strict(line, file=label, line=n)) for n, line in lines(text)]
