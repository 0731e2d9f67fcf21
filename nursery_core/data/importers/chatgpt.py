"""ChatGPT data export (conversations.json): follow current_node back to the root; assistant messages whose
recipient is not 'all' are tool calls, and tool-role messages are their replies."""
from __future__ import annotations

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


def _tool_text(content: dict, b: Builder) -> str:
    """The text of a tool reply by content type; never the export's content dict itself."""
    ct = content.get("content_type")
    if ct == "tether_quote":
        return "\n".join(x for x in (content.get("title"), content.get("url"), content.get("text")) if x)
    if ct == "tether_browsing_display":
        return "\n".join(x for x in (content.get("result"), content.get("summary")) if isinstance(x, str) and x)
    if ct in ("execution_output", "code", "system_error"):
        return content.get("text") or ""
    if any(k in content for k in ("parts", "text", "result")):
        return text_of(content, b)
    raise Skip(f"a tool reply of content type {ct!r} that holds no text")


def convert(rec: dict) -> dict:
    """ChatGPT's `weight` is not a training weight (browsing and tool replies carry 0.0, hidden or not), so it
    is not read; messages the export marks hidden and reasoning messages are skipped and counted."""
    b = Builder()
    for msg in _thread(rec):
        author = msg.get("author") or {}
        role = author.get("role")
        content = msg.get("content") or {}
        meta = msg.get("metadata") or {}
        src = msg.get("id") or id(msg)
        if meta.get("is_visually_hidden_from_conversation"):
            b.count("hidden_message_skipped")
            continue
        if content.get("content_type") in SKIP_TYPES:
            b.count("reasoning_message_skipped")
            continue
        recipient = msg.get("recipient") or "all"
        if role == "system":
            b.system(text_of(content, b))
        elif role == "user":
            b.user(text_of(content, b))
        elif role == "assistant" and recipient == "all":
            text = text_of(content, b) if content.get("content_type") != "code" else content.get("text", "")
            b.assistant(text, src=src)
        elif role == "assistant":
            raw = content.get("text") if content.get("content_type") == "code" else text_of(content, b)
            raw = raw or ""
            try:
                args = decode_json_like(raw) if raw.strip().startswith("{") else None
            except InvalidInput:
                args = None
            if not isinstance(args, dict):
                key = "code" if recipient == "python" else "command"
                args = {key: raw}
                b.count("call_text_wrapped_as_argument")
            b.call(recipient, args, src=src)
        elif role == "tool":
            b.tool(_tool_text(content, b), name=author.get("name"))
    return {"messages": b.messages(), "transformations": b.counts}
