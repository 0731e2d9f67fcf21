"""OpenAI chat / fine-tuning JSONL ({messages, tools}): tool_calls with string, double-encoded or object
arguments, the legacy functions/function_call shape, typed content parts (LLaMA-Factory's messages format)
and Hermes <tool_call> tags inside assistant text."""
from __future__ import annotations

import json
from typing import Any

from ...errors import InvalidInput
from ...records import decode_json_like
from .common import Builder, Skip, split_tool_calls, text_of, tool_responses, tools_in_system


def matches(rec: Any) -> bool:
    return isinstance(rec, dict) and isinstance(rec.get("messages"), list)


def ref(rec: dict, i: int) -> str:
    return f"record {i + 1}"


def _tools(rec: dict) -> list | None:
    tools = rec.get("tools")
    if isinstance(tools, str):
        try:
            tools = decode_json_like(tools)
        except InvalidInput:
            raise Skip("a 'tools' string that is not JSON") from None
    if tools is None and isinstance(rec.get("functions"), list):
        tools = rec["functions"]
    return tools if isinstance(tools, list) and tools else None


def _parts(content: Any) -> tuple[str, list[dict]]:
    """(text, calls) from a content list with typed parts ({type: text|reasoning|tool_call, value})."""
    if not isinstance(content, list):
        return text_of(content), []
    text, calls = [], []
    for p in content:
        if isinstance(p, dict) and p.get("type") == "tool_call":
            v = p.get("value", p.get("tool_call"))
            try:
                v = decode_json_like(v) if isinstance(v, str) else v
            except InvalidInput:
                raise Skip("a tool_call part that is not JSON") from None
            for c in v if isinstance(v, list) else [v]:
                if isinstance(c, dict):
                    calls.append({"name": c.get("name"), "arguments": c.get("arguments", {})})
        elif isinstance(p, dict) and p.get("type") in ("reasoning", "thinking"):
            continue
        else:
            text.append(text_of([p]))
    return "".join(text), calls


def convert(rec: dict) -> dict:
    tools = _tools(rec)
    b = Builder()
    for m in rec["messages"]:
        if not isinstance(m, dict):
            raise Skip("a message that is not an object")
        role = m.get("role")
        text, part_calls = _parts(m.get("content"))
        if role in ("system", "developer"):
            found, rest = tools_in_system(text)
            if found is not None and tools is None:
                tools = found
            b.system(rest if found is not None else text)
        elif role == "user":
            b.user(text)
        elif role == "assistant":
            rest, tag_calls = split_tool_calls(text) if "<tool_call>" in text else (text, [])
            b.assistant(rest)
            for c in m.get("tool_calls") or []:
                fn = c.get("function") if isinstance(c.get("function"), dict) else c
                b.call(fn.get("name"), fn.get("arguments", {}), c.get("id"))
            fc = m.get("function_call")
            if isinstance(fc, dict):
                b.call(fc.get("name"), fc.get("arguments", {}))
            for c in part_calls + tag_calls:
                b.call(c["name"], c["arguments"])
        elif role in ("tool", "function", "ipython", "observation"):
            content = m.get("content")
            if not isinstance(content, str):
                content = text_of(content) if isinstance(content, list) else json.dumps(content, ensure_ascii=False)
            for r in tool_responses(content) if "<tool_response>" in content else [content]:
                b.tool(r, call_id=m.get("tool_call_id"), name=m.get("name"))
        else:
            raise Skip(f"unknown role {role!r}")
    out = {"messages": b.messages()}
    if tools:
        out["tools"] = tools
    return out
