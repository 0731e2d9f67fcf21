"""Reads tool calls out of raw model text: Hermes `<tool_call>{json}</tool_call>` blocks and the seed's
legacy `<tool_call>name({json})</tool_call>` form; tolerant of whitespace, strict about JSON."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_LEGACY_RE = re.compile(r"\A([A-Za-z_][\w.\-]*)\s*\((.*)\)\Z", re.DOTALL)


@dataclass
class ParseResult:
    """Calls found (`{"name", "arguments"}` each), whether every block was well-formed, and why not."""

    calls: list[dict] = field(default_factory=list)
    format_ok: bool = True
    errors: list[str] = field(default_factory=list)
    blocks: int = 0  # `<tool_call>` blocks seen, well-formed or not: an attempt to call

    @property
    def attempted_call(self) -> bool:
        return self.blocks > 0

    def to_dict(self) -> dict:
        return {"calls": self.calls, "format_ok": self.format_ok, "errors": self.errors, "blocks": self.blocks}


def _parse_block(body: str) -> tuple[dict | None, str | None]:
    body = body.strip()
    if not body:
        return None, "empty <tool_call> block"
    if body.startswith("{"):
        try:
            obj = json.loads(body)
        except ValueError as e:
            return None, f"invalid JSON: {e}"
        if not isinstance(obj, dict):
            return None, "the block is not a JSON object"
        name = obj.get("name")
        if not isinstance(name, str) or not name.strip():
            return None, "the call has no 'name' string"
        if "arguments" not in obj:
            return None, f"call to {name!r} has no 'arguments' object"
        args = obj["arguments"]
        if not isinstance(args, dict):
            return None, f"'arguments' of {name!r} is a {type(args).__name__}, not a JSON object"
        extra = sorted(set(obj) - {"name", "arguments"})
        if extra:
            return None, f"call to {name!r} has unexpected key(s) {extra}"
        return {"name": name.strip(), "arguments": args}, None
    m = _LEGACY_RE.match(body)
    if m:
        name, inner = m.group(1), m.group(2).strip()
        if not inner:
            return {"name": name, "arguments": {}}, None
        try:
            args = json.loads(inner)
        except ValueError as e:
            return None, f"invalid JSON in the arguments of {name}(...): {e}"
        if not isinstance(args, dict):
            return None, f"the arguments of {name}(...) are not a JSON object"
        return {"name": name, "arguments": args}, None
    return None, f"not a JSON call object nor name({{...}}): {body[:60]!r}"


def parse_tool_calls(text: str | None) -> ParseResult:
    """Parses every `<tool_call>` block in `text`; text outside the blocks is ignored (a plain answer)."""
    result = ParseResult()
    if not text:
        return result
    segments = text.split(OPEN)
    if CLOSE in segments[0]:
        result.format_ok = False
        result.errors.append(f"'{CLOSE}' without an opening '{OPEN}'")
    for i, seg in enumerate(segments[1:], start=1):
        result.blocks += 1
        last = i == len(segments) - 1
        if CLOSE in seg:
            body, after = seg.split(CLOSE, 1)
            if CLOSE in after:
                result.format_ok = False
                result.errors.append(f"block {i}: '{CLOSE}' repeated")
        else:
            body = seg
            if not last:  # only the final block may lose its close tag (generation stopped there)
                result.format_ok = False
                result.errors.append(f"block {i}: not closed before the next '{OPEN}'")
        call, err = _parse_block(body)
        if err:
            result.format_ok = False
            result.errors.append(f"block {i}: {err}")
        elif call is not None:
            result.calls.append(call)
    return result
