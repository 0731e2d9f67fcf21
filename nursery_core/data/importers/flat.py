"""The seed's flat rows {user_query, tool_name, tool_arguments}: one call example each."""
from __future__ import annotations

from typing import Any

from .common import Builder, Skip, supplied_tools


def matches(rec: Any) -> bool:
    return isinstance(rec, dict) and "user_query" in rec and "tool_name" in rec


def ref(rec: dict, i: int) -> str:
    return f"row {i + 1}"


def convert(rec: dict) -> dict:
    q, name = rec.get("user_query"), rec.get("tool_name")
    if not isinstance(q, str) or not q.strip():
        raise Skip("an empty user_query")
    if not isinstance(name, str) or not name.strip():
        raise Skip("an empty tool_name")
    args = rec.get("tool_arguments", rec.get("arguments", {}))
    out: dict[str, Any] = {"messages": [{"role": "user", "content": q.strip()},
                        {"role": "assistant", "content": "", "tool_calls": [
                            {"type": "function", "function": {"name": name.strip(), "arguments": args}}]}]}
    b = Builder()
    tools = supplied_tools(rec.get("tool_schema") or rec.get("tool"), b)
    if tools:
        out["tools"] = tools
    out["transformations"] = b.counts
    return out
