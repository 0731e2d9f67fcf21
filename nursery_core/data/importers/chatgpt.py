"""ChatGPT data export (conversations.json): follow current_node back to the root; assistant messages whose
recipient is not 'all' are tool calls, and tool-role messages are their replies."""
from __future__ import annotations

import json
from typing import Any

from ...errors import InvalidInput
from ...records import decode_json_like
from .common import Builder, Skip, text_of

SKIP_TYPES = {"thoughts", "reasoning_recap", "user_editable_context", "model_editable_context"}


def matches(rec: Any) -> bool:
    return isinstance(rec, dict) and isinstance(rec.get("mapping"), dict)


def ref(rec: dict, i: int) -> str:
    return f"conversation {i + 1}" + (f" {rec.get('title')!r}" if rec.get("title") else "")


def _thread(rec: dict) -> list[dict]:
    mapping = rec["mapping"]
    node_id = rec.get("current_node")
    if node_id not in mapping:
        leaves = [n for n in mapping.values() if not n.get("children")]
        if not leaves:
            raise Skip("the message tree has no leaf")
        node_id = max(leaves, key=lambda n: ((n.get("message") or {}).get("create_time") or 0))["id"]
    out, seen = [], set()
    while node_id and node_id in mapping and node_id not in seen:
        seen.add(node_id)
        node = mapping[node_id]
        if node.get("message"):
            out.append(node["message"])
        node_id = node.get("parent")
    return out[::-1]


def _tool_text(content: dict) -> str:
    ct = content.get("content_type")
    if ct == "tether_quote":
        return "\n".join(x for x in (content.get("title"), content.get("url"), content.get("text")) if x)
    if ct == "execution_output":
        return content.get("text") or ""
    return text_of(content) or json.dumps(content, ensure_ascii=False)


def convert(rec: dict) -> dict:
    b = Builder()
    for msg in _thread(rec):
        author = msg.get("author") or {}
        role = author.get("role")
        content = msg.get("content") or {}
        meta = msg.get("metadata") or {}
        if meta.get("is_visually_hidden_from_conversation") or msg.get("weight") == 0:
            continue
        if content.get("content_type") in SKIP_TYPES:
            continue
        recipient = msg.get("recipient") or "all"
        if role == "system":
            b.system(text_of(content))
        elif role == "user":
            b.user(text_of(content))
        elif role == "assistant" and recipient == "all":
            text = text_of(content) if content.get("content_type") != "code" else content.get("text", "")
            b.assistant(text)
        elif role == "assistant":
            raw = content.get("text") if content.get("content_type") == "code" else text_of(content)
            raw = raw or ""
            try:
                args = decode_json_like(raw) if raw.strip().startswith("{") else None
            except InvalidInput:
                args = None
            if not isinstance(args, dict):
                key = "code" if recipient == "python" else "command"
                args = {key: raw}
            b.call(recipient, args)
        elif role == "tool":
            b.tool(_tool_text(content), name=author.get("name"))
    return {"messages": b.messages()}
