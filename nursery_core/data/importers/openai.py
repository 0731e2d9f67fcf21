"""OpenAI chat / fine-tuning JSONL ({messages, tools}): tool_calls with string, double-encoded or object
arguments, the legacy functions/function_call shape, typed content parts (LLaMA-Factory's messages format)
and Hermes <tool_call> tags inside assistant text."""
from __future__ import annotations

import json
from typing import Any

from ...errors import InvalidInput
from ...records import decode_json_like
from .common import Builder, Skip, reply_list, response_name, split_tool_calls, supplied_tools, text_of, tool_responses, tools_in_system


def matches(rec: Any) -> bool:
    return isinstance(rec, dict) and isinstance(rec.get("messages"), list)


def ref(rec: dict, i: int) -> str:
    return f"record {i + 1}"


def _tools(rec: dict, b: Builder) -> list | None:
    tools = rec.get("tools")
    if tools is None and rec.get("functions") is not None:
        tools = rec["functions"]
    return supplied_tools(tools, b)


def _parts(content: Any, b: Builder) -> tuple[str, list[dict]]:
    """(text, calls) from a content list with typed parts ({type: text|reasoning|tool_call, value})."""
    if not isinstance(content, list):
        return text_of(content, b), []
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
            b.count("reasoning_message_skipped")
        else:
            text.append(text_of([p], b))
    return "".join(text), calls


def convert(rec: dict) -> dict:
    """OpenAI's `weight` (0 or 1, assistant messages only) is kept: 0 is context that is not trained on."""
    b = Builder()
    tools = _tools(rec, b)
    for k, m in enumerate(rec["messages"]):
        if not isinstance(m, dict):
            raise Skip("a message that is not an object")
        role = m.get("role")
        text, part_calls = _parts(m.get("content"), b)
        weight = m.get("weight")
        if weight is not None and role != "assistant":
            b.count("weight_on_non_assistant_ignored")
        elif weight is not None and (isinstance(weight, bool) or weight not in (0, 1)):
            raise Skip(f"a weight of {weight!r} (OpenAI allows 0 or 1)")
        elif weight == 0:
            b.count("weight_0_turn_kept_as_context")
        if role in ("system", "developer"):
            found, rest = tools_in_system(text)
            if found is not None:
                b.count("hermes_tools_prompt_replaced")
            if found is not None and tools is None:
                tools = found
            b.system(rest if found is not None else text)
        elif role == "user":
            b.user(text)
        elif role == "assistant":
            rest, tag_calls = split_tool_calls(text) if "<tool_call>" in text else (text, [])
            b.assistant(rest, src=k, weight=weight)
            for c in m.get("tool_calls") or []:
                fn = c["function"] if isinstance(c.get("function"), dict) else c
                b.call(fn.get("name"), fn.get("arguments", {}), c.get("id"), src=k, weight=weight)
            fc = m.get("function_call")
            if isinstance(fc, dict):
                b.call(fc.get("name"), fc.get("arguments", {}), src=k, weight=weight)
            for c in part_calls + tag_calls:
                b.call(c["name"], c["arguments"], src=k, weight=weight)
        elif role in ("tool", "function", "ipython", "observation"):
            content = m.get("content")
            if isinstance(content, list):
                content = text_of(content, b)
            elif not isinstance(content, str):
                content = json.dumps(content, ensure_ascii=False) if content is not None else ""
                if m.get("content") is not None:
                    b.count("tool_reply_json_encoded")
            several = reply_list(content)
            if several:
                b.count("tool_reply_list_split")
                for r in several:
                    b.tool(r["content"], call_id=r.get("tool_call_id"), name=r.get("name"))
                continue
            for reply in tool_responses(content) if "<tool_response>" in content else [content]:
                b.tool(reply, call_id=m.get("tool_call_id"), name=m.get("name") or response_name(reply))
        else:
            raise Skip(f"unknown role {role!r}")
    out = {"messages": b.messages(), "transformations": b.counts}
    if tools:
        out["tools"] = tools
    return out
