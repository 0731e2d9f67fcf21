"""Raw glaive-function-calling-v2 rows: `system` ("SYSTEM: … Use them if required -" then one or more
pretty-printed JSON functions) and `chat` (USER: / ASSISTANT: / FUNCTION RESPONSE: turns; an assistant call is
`<functioncall> {"name": …, "arguments": '{…}'}` with the arguments as single-quoted JSON; `<|endoftext|>`
ends a turn)."""
from __future__ import annotations

import json
import re
from typing import Any

from ...errors import InvalidInput
from ...records import decode_json_like
from .common import Builder, Skip

_TURN = re.compile(r"(?:^|\n)\s*(USER|ASSISTANT|FUNCTION RESPONSE|SYSTEM):\s?", re.S)
_END = "<|endoftext|>"
_CALL = "<functioncall>"
# The single-quoted arguments: everything between the quotes, which may itself hold quotes ("it's").
_QUOTED_ARGS = re.compile(r"""^\s*\{\s*"name"\s*:\s*"([^"]+)"\s*,\s*"arguments"\s*:\s*'(.*)'\s*\}\s*$""", re.S)


def matches(rec: Any) -> bool:
    return isinstance(rec, dict) and isinstance(rec.get("chat"), str) and isinstance(rec.get("system"), str)


def ref(rec: dict, i: int) -> str:
    return f"row {i + 1}"


def tools_from_system(system: str) -> list[dict]:
    """Every JSON object in the system text after its prose (raw_decode from each '{' at a line start)."""
    tools: list[dict] = []
    dec, i = json.JSONDecoder(), 0
    while True:
        at = system.find("{", i)
        if at < 0:
            return tools
        try:
            obj, end = dec.raw_decode(system, at)
        except ValueError:
            raise Skip("a function definition in the system prompt that is not JSON") from None
        if isinstance(obj, dict) and "name" in obj:
            tools.append(obj)
        i = end


def _call(body: str) -> tuple[Any, Any]:
    body = body.replace(_END, "").strip()
    m = _QUOTED_ARGS.match(body)
    if m:
        return m.group(1), m.group(2)
    try:
        obj = decode_json_like(body)
    except InvalidInput:
        raise Skip("a <functioncall> that is neither JSON nor glaive's quoted-arguments form") from None
    if not isinstance(obj, dict):
        raise Skip("a <functioncall> that is not an object")
    return obj.get("name"), obj.get("arguments", {})


def convert(rec: dict) -> dict:
    b = Builder()
    tools = tools_from_system(rec["system"])
    parts = _TURN.split(rec["chat"])
    for k in range(1, len(parts) - 1, 2):
        who, text = parts[k], parts[k + 1].replace(_END, "").strip()
        if who == "USER":
            b.user(text)
        elif who == "ASSISTANT":
            if _CALL in text:
                before, after = text.split(_CALL, 1)
                b.assistant(before, src=k)
                name, args = _call(after)
                b.call(name, args, src=k)
            else:
                b.assistant(text, src=k)
        elif who == "FUNCTION RESPONSE":
            b.tool(text)
        else:
            b.system(text)
    out = {"messages": b.messages(), "transformations": b.counts}
    if tools:
        out["tools"] = tools
    return out
