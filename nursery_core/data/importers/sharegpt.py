"""ShareGPT tool data: LLaMA-Factory/glaive roles human/gpt/function_call/observation with `tools` as a JSON
string, and Hermes (<tools> in the system turn, <tool_call> blocks with JSON or Python-dict bodies)."""
from __future__ import annotations

import json
from typing import Any

from ...errors import InvalidInput
from ...records import decode_json_like
from .common import Builder, Skip, response_name, split_tool_calls, supplied_tools, tool_responses, tools_in_system

USER = {"human", "user"}
ASSISTANT = {"gpt", "assistant", "model", "chatgpt", "bing", "bard"}
CALL = {"function_call", "tool_call"}
REPLY = {"observation", "tool", "function_response", "function", "ipython", "tool_response"}


def unwrap(rec: Any) -> Any:
    """The Hermes dataset card wraps records as {'entry': {...}}."""
    if isinstance(rec, dict) and isinstance(rec.get("entry"), dict) and "conversations" not in rec:
        return rec["entry"]
    return rec


def matches(rec: Any) -> bool:
    rec = unwrap(rec)
    return isinstance(rec, dict) and isinstance(rec.get("conversations"), list)


def is_hermes(rec: Any) -> bool:
    rec = unwrap(rec)
    turns = rec.get("conversations") if isinstance(rec, dict) else None
    return isinstance(turns, list) and any(isinstance(t, dict) and isinstance(t.get("value"), str)
                               and ("<tool_call>" in t["value"] or "<tools>" in t["value"]) for t in turns)


def ref(rec: dict, i: int) -> str:
    rec = unwrap(rec)
    rid = rec.get("id") if isinstance(rec, dict) else None
    return f"record {i + 1}" + (f" (id {rid})" if rid else "")


def convert(rec: dict) -> dict:
    rec = unwrap(rec)
    b = Builder()
    tools = supplied_tools(rec.get("tools"), b)
    if isinstance(rec.get("system"), str):
        found, rest = tools_in_system(rec["system"])
        if found is not None:
            b.count("hermes_tools_prompt_replaced")
        tools = tools or found
        b.system(rest if found is not None else rec["system"])
    for k, t in enumerate(rec["conversations"]):
        if not isinstance(t, dict):
            raise Skip("a turn that is not an object")
        who = str(t.get("from", t.get("role", ""))).lower()
        value = t.get("value", t.get("content", ""))
        if value is None:
            value = ""
        elif not isinstance(value, str):
            value = json.dumps(value, ensure_ascii=False)  # JSON, never a Python repr
            b.count("non_string_turn_json_encoded")
        if who == "system":
            found, rest = tools_in_system(value)
            if found is not None:
                b.count("hermes_tools_prompt_replaced")
            tools = tools or found
            b.system(rest if found is not None else value)
        elif who in USER:
            b.user(value)
        elif who in ASSISTANT:
            rest, calls = split_tool_calls(value) if "<tool_call>" in value else (value, [])
            b.assistant(rest, src=k)
            for c in calls:
                b.call(c["name"], c["arguments"], src=k)
        elif who in CALL:
            try:
                obj = decode_json_like(value)
            except InvalidInput:
                raise Skip("a function_call turn that is neither JSON nor a Python dict") from None
            for c in obj if isinstance(obj, list) else [obj]:
                if not isinstance(c, dict):
                    raise Skip("a function_call turn that is not an object")
                b.call(c.get("name"), c.get("arguments", c.get("parameters", {})), src=k)
        elif who in REPLY:
            for r in tool_responses(value) if "<tool_response>" in value else [value]:
                b.tool(r, name=response_name(r))
        else:
            raise Skip(f"unknown speaker {who!r}")
    out = {"messages": b.messages(), "transformations": b.counts}
    if tools:
        out["tools"] = tools
    return out
