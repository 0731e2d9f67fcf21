"""Claude.ai export (conversations.json): text from type "text" blocks only (the message-level `text` mixes
thinking and answer); tool_use blocks become calls, tool_result blocks their replies."""
from __future__ import annotations

from typing import Any

from .common import Builder, text_of


def matches(rec: Any) -> bool:
    return isinstance(rec, dict) and isinstance(rec.get("chat_messages"), list)


def ref(rec: dict, i: int) -> str:
    return f"conversation {i + 1}" + (f" {rec.get('name')!r}" if rec.get("name") else "")


def convert(rec: dict) -> dict:
    b = Builder()
    for msg in rec["chat_messages"]:
        if not isinstance(msg, dict):
            continue
        sender = msg.get("sender")
        blocks = msg.get("content")
        if not isinstance(blocks, list) or not blocks:
            # Older exports carry only `text`; newer ones always have blocks.
            blocks = [{"type": "text", "text": msg.get("text") or ""}]
        for blk in blocks:
            if not isinstance(blk, dict):
                continue
            t = blk.get("type")
            if t == "text":
                (b.user if sender == "human" else b.assistant)(blk.get("text") or "")
            elif t == "tool_use" and sender == "assistant":
                b.call(blk.get("name"), blk.get("input") or {}, blk.get("id"))
            elif t == "tool_result":
                b.tool(text_of(blk.get("content")) or str(blk.get("content") or ""),
                       call_id=blk.get("tool_use_id"), name=blk.get("name"))
    return {"messages": b.messages()}
