"""Shared pieces of the chat-history importers: a conversation builder, Hermes tag parsing and redaction."""
from __future__ import annotations

import re
from typing import Any

from ...errors import InvalidInput
from ...records import decode_json_like


class Skip(Exception):
    """A conversation that yields no example; the message is the reason shown in the report."""


def text_of(content: Any) -> str:
    """Text from a string, a list of typed blocks ({type: text, text|value}) or ChatGPT {parts: [...]}."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        if isinstance(content.get("parts"), list):
            return "\n".join(p for p in content["parts"] if isinstance(p, str))
        for k in ("text", "value", "result", "content"):
            if isinstance(content.get(k), str):
                return content[k]
        return ""
    if isinstance(content, list):
        out = []
        for b in content:
            if isinstance(b, str):
                out.append(b)
            elif isinstance(b, dict) and b.get("type", "text") in ("text", "input_text", "output_text"):
                t = b.get("text", b.get("value"))
                if isinstance(t, str):
                    out.append(t)
        return "".join(out)
    return ""


class Builder:
    """Turns a stream of turns (user text, assistant text, tool call, tool reply) into canonical messages,
    merging what chat exports split and dropping what cannot be placed."""

    def __init__(self):
        self.msgs: list[dict] = []
        self.pending: list[tuple[str, str]] = []  # (call id, name) not yet answered
        self.n = 0
        self.dropped_replies = 0

    def _last(self) -> dict | None:
        return self.msgs[-1] if self.msgs else None

    def system(self, text: str) -> None:
        if text.strip() and not self.msgs:
            self.msgs.append({"role": "system", "content": text.strip()})

    def user(self, text: str) -> None:
        text = text.strip()
        if not text:
            return
        last = self._last()
        if last and last["role"] == "user":
            last["content"] += "\n\n" + text
        else:
            self.msgs.append({"role": "user", "content": text})
        self.pending = []

    def assistant(self, text: str) -> None:
        text = text.strip()
        if not text:
            return
        last = self._last()
        if last and last["role"] == "assistant":
            last["content"] = (last["content"] + "\n\n" + text).strip()
        elif last and last["role"] in ("user", "tool"):
            self.msgs.append({"role": "assistant", "content": text})

    def call(self, name: str, arguments: Any, call_id: str | None = None) -> None:
        if not isinstance(name, str) or not name.strip():
            raise Skip("a tool call without a function name")
        last = self._last()
        cid = str(call_id) if call_id else f"call_{self.n}"
        self.n += 1
        entry = {"id": cid, "type": "function", "function": {"name": name.strip(), "arguments": arguments}}
        if last and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(entry)
        elif last and last["role"] in ("user", "tool"):
            self.msgs.append({"role": "assistant", "content": "", "tool_calls": [entry]})
        else:
            return
        self.pending.append((cid, name.strip()))

    def tool(self, content: Any, call_id: str | None = None, name: str | None = None) -> None:
        match = None
        for i, (cid, n) in enumerate(self.pending):
            if (call_id and cid == str(call_id)) or (not call_id and name and n == name):
                match = i
                break
        if match is None and self.pending and not call_id:
            match = 0
        if match is None and self.pending and call_id:
            match = 0  # ids differ between exports; answer calls in order
        if match is None:
            self.dropped_replies += 1
            return
        cid, n = self.pending.pop(match)
        if not isinstance(content, str):
            import json
            content = json.dumps(content, ensure_ascii=False)
        self.msgs.append({"role": "tool", "tool_call_id": cid, "name": name or n, "content": content})

    def messages(self) -> list[dict]:
        """Leading non-user turns (after a system one) and trailing turns after the last assistant dropped."""
        msgs = list(self.msgs)
        head = [msgs.pop(0)] if msgs and msgs[0]["role"] == "system" else []
        while msgs and msgs[0]["role"] != "user":
            msgs.pop(0)
        while msgs and msgs[-1]["role"] != "assistant":
            msgs.pop()
        if not msgs:
            return []
        return head + msgs


# ---------------------------------------------------------------------------------------- Hermes tags
_TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>|<tool_call>(.*)$", re.S)
_TOOL_RESPONSE = re.compile(r"<tool_response>(.*?)</tool_response>", re.S)
_TOOLS = re.compile(r"<tools>(.*?)</tools>", re.S)


def split_tool_calls(text: str) -> tuple[str, list[dict]]:
    """(text outside <tool_call> blocks, [{name, arguments}]) — block bodies may be JSON or Python dicts."""
    calls = []
    for m in _TOOL_CALL.finditer(text):
        body = (m.group(1) if m.group(1) is not None else m.group(2) or "").strip()
        body = re.sub(r"^(\\n|\s)+|(\\n|\s)+$", "", body)  # literal "\n" escapes left by some dumps
        if not body:
            continue
        try:
            obj = decode_json_like(body)
        except InvalidInput:
            raise Skip("a <tool_call> block that is neither JSON nor a Python dict") from None
        for c in obj if isinstance(obj, list) else [obj]:
            if not isinstance(c, dict):
                raise Skip("a <tool_call> block that is not an object")
            calls.append({"name": c.get("name"), "arguments": c.get("arguments", c.get("parameters", {}))})
    rest = _TOOL_CALL.sub("", text)
    rest = re.sub(r"<scratch_pad>.*?</scratch_pad>", "", rest, flags=re.S).strip()
    return rest, calls


def tool_responses(text: str) -> list[str]:
    found = [m.strip() for m in _TOOL_RESPONSE.findall(text)]
    return found or [text.strip()]


def tools_in_system(text: str) -> tuple[list | None, str]:
    """(tools listed inside <tools>…</tools>, the system text without the Hermes tool boilerplate)."""
    m = _TOOLS.search(text or "")
    if not m:
        return None, text
    body = m.group(1).strip()
    try:
        tools = decode_json_like(body)
        tools = tools if isinstance(tools, list) else [tools]
    except InvalidInput:
        tools = []
        for line in body.splitlines():
            if line.strip():
                try:
                    tools.append(decode_json_like(line.strip()))
                except InvalidInput:
                    raise Skip("a <tools> list in the system message that cannot be parsed") from None
    # The rest of a Hermes system prompt only explains the tag format, which the chat template renders anew.
    return tools, ""


# ------------------------------------------------------------------------------------------ redaction
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_SECRETS = [re.compile(p) for p in (
    r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,}", r"\bgh[pousr]_[A-Za-z0-9]{20,}", r"\bgithub_pat_[A-Za-z0-9_]{20,}",
    r"\bAKIA[0-9A-Z]{16}\b", r"\bxox[abprs]-[A-Za-z0-9-]{10,}", r"\bAIza[0-9A-Za-z_\-]{30,}",
    r"\bhf_[A-Za-z0-9]{20,}", r"\b[0-9a-fA-F]{32,}\b")]
_LONG_TOKEN = re.compile(r"(?<![A-Za-z0-9+/_=-])[A-Za-z0-9+/_=-]{40,}(?![A-Za-z0-9+/_=-])")


def _looks_secret(tok: str) -> bool:
    return (any(c.isdigit() for c in tok) and any(c.isupper() for c in tok) and any(c.islower() for c in tok)
            and "/" not in tok.strip("/"))


class Redactor:
    """Replaces e-mail addresses and API-key-like strings in every string value; counts what it replaced."""

    def __init__(self):
        self.counts = {"email": 0, "secret": 0}

    def text(self, s: str) -> str:
        def sec(_m):
            self.counts["secret"] += 1
            return "[REDACTED_SECRET]"
        for pat in _SECRETS:
            s = pat.sub(sec, s)
        s = _LONG_TOKEN.sub(lambda m: sec(m) if _looks_secret(m.group(0)) else m.group(0), s)

        def mail(_m):
            self.counts["email"] += 1
            return "[REDACTED_EMAIL]"
        return _EMAIL.sub(mail, s)

    def value(self, v: Any) -> Any:
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if isinstance(v, dict):
            return {k: self.value(x) for k, x in v.items()}
        return v

    def example(self, ex: dict) -> dict:
        ex = dict(ex)
        ex["messages"] = self.value(ex["messages"])
        return ex
