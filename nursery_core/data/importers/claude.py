"""Claude.ai export (conversations.json): text from type "text" blocks only (the message-level `text` mixes
thinking and answer); tool_use blocks become calls, tool_result blocks their replies."""
from __future__ import annotations

import json
from typing import Any

from .common import Builder, text_of


def matches(rec: Any) -> bool:
    return isinstance(rec, dict) and isinstance(rec.get("chat_messages"), list)


def ref(rec: dict, i: int) -> str:
    return f"conversation {i + 1}" + (f" {rec.get('name')!r}" if rec.get("name") else "")


def convert(rec: dict) -> dict:
    b = Builder()
    for k, msg in enumerate(rec["chat_messages"]):
        if not isinstance(msg, dict):
            b.count("non_object_message_dropped")
            continue
        sender = msg.get("sender")
        blocks = msg.get("content")
        if not isinstance(blocks, list) or not blocks:
            # Older exports carry only `text`; newer ones always have blocks.
            blocks = [{"type": "text", "text": msg.get("text") or ""}]
        for blk in blocks:
            if not isinstance(blk, dict):
                b.count("non_text_blocks_dropped")
                continue
            t = blk.get("type")
            if t == "text":
                if sender == "human":
                    b.user(blk.get("text") or "")
                else:
                    b.assistant(blk.get("text") or "", src=k)
            elif t == "tool_use" and sender == "assistant":
                b.call(blk.get("name"), blk.get("input") or {}, blk.get("id"), src=k)
            elif t == "tool_result":
                b.tool(_result_text(blk.get("content"), b), call_id=blk.get("tool_use_id"), name=blk.get("name"))
            elif t in ("thinking", "redacted_thinking"):
                b.count("reasoning_message_skipped")
            else:
                b.count("non_text_blocks_dropped")
    return {"messages": b.messages(), "transformations": b.counts}


def _result_text(content: Any, b) -> str:
    """A tool_result's text: a string, its text blocks, or JSON of anything else (never a Python repr)."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list) and all(isinstance(x, dict) and "type" in x for x in content):
        return text_of(content, b)
    b.count("tool_reply_json_encoded")
    return json.dumps(content, ensure_ascii=False)
