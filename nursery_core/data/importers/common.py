"""Shared pieces of the chat-history importers: a conversation builder, Hermes tag parsing and redaction."""
from __future__ import annotations

import json
import re
from typing import Any

from ...errors import InvalidInput
from ...records import decode_json_like


class Skip(Exception):
    """A conversation that yields no example; the message is the reason shown in the report."""


def text_of(content: Any, b: "Builder | None" = None) -> str:
    """Text from a string, a list of typed blocks ({type: text, text|value}) or ChatGPT {parts: [...]}.
    Blocks that are not text (images, files) are left out and counted on `b` when given."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        if isinstance(content.get("parts"), list):
            texts = [p for p in content["parts"] if isinstance(p, str)]
            if b is not None and len(texts) < len(content["parts"]):
                b.count("non_text_blocks_dropped", len(content["parts"]) - len(texts))
            return "\n".join(texts)
        for k in ("text", "value", "result", "content"):
            if isinstance(content.get(k), str):
                return content[k]
        return ""
    if isinstance(content, list):
        out = []
        for blk in content:
            if isinstance(blk, str):
                out.append(blk)
            elif isinstance(blk, dict) and blk.get("type", "text") in ("text", "input_text", "output_text") \
                    and isinstance(text := blk.get("text", blk.get("value")), str):
                out.append(text)
            elif b is not None:
                b.count("non_text_blocks_dropped")
        return "".join(out)
    return ""


class Builder:
    """Turns a stream of turns (user text, assistant text, tool call, tool reply) into canonical messages.

    Every change to the source is counted in `counts` by reason (see records.TRANSFORMATIONS): merged turns,
    dropped messages, replies matched by order. `src` names the source message a piece comes from: calls join
    one assistant turn (a parallel call) only when they come from the same source message, so a missing reply
    never turns sequential calls into a parallel one (Skip instead). `weight` 0 marks an assistant turn kept as
    context but not trained on (OpenAI fine-tuning JSONL)."""

    def __init__(self):
        self.msgs: list[dict] = []
        self.pending: list[tuple[str, str]] = []  # (call id, name) not yet answered
        self.n = 0
        self.counts: dict[str, int] = {}
        self._src: dict[int, Any] = {}  # id(assistant message) -> source of its calls

    def count(self, reason: str, n: int = 1) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + n

    def _last(self) -> dict | None:
        return self.msgs[-1] if self.msgs else None

    def system(self, text: str) -> None:
        if not text.strip():
            return
        if self.msgs:
            self.count("late_system_message_dropped")
            return
        self.msgs.append({"role": "system", "content": text.strip()})

    def user(self, text: str) -> None:
        text = text.strip()
        if not text:
            self.count("empty_message_dropped")
            return
        last = self._last()
        if last and last["role"] == "user":
            last["content"] += "\n\n" + text
            self.count("consecutive_user_messages_merged")
        else:
            if self.pending:
                self.count("unanswered_call_before_user")
            self.msgs.append({"role": "user", "content": text})
        self.pending = []

    def _open_assistant(self, src: Any, weight: Any, with_calls: bool) -> dict | None:
        """The assistant message a new piece joins (or a new one); None when there is nothing to follow."""
        last = self._last()
        w = 0 if weight == 0 else None
        if last and last["role"] == "assistant":
            same = src is not None and self._src.get(id(last)) == src
            if last.get("tool_calls") and not same:
                raise Skip("a tool call whose reply is missing before the next turn (merging them would change "
                           "the order of calls and answers)")
            if not same and last.get("weight") != w:
                raise Skip("assistant turns in a row with different training weights")
            if not same and (last.get("content") or "").strip():
                self.count("consecutive_assistant_messages_merged")
            if src is not None:
                self._src[id(last)] = src
            return last
        if last and last["role"] in ("user", "tool"):
            if last["role"] == "tool" and self.pending:
                self.count("unanswered_call_before_answer", len(self.pending))
                self.pending = []
            msg: dict[str, Any] = {"role": "assistant", "content": ""}
            if w == 0:
                msg["weight"] = 0
            self.msgs.append(msg)
            self._src[id(msg)] = src
            return msg
        self.count("assistant_before_user_dropped")
        return None

    def assistant(self, text: str, src: Any = None, weight: Any = None) -> None:
        text = text.strip()
        if not text:
            return
        msg = self._open_assistant(src, weight, False)
        if msg is not None:
            msg["content"] = (msg["content"] + "\n\n" + text).strip()

    def call(self, name: Any, arguments: Any, call_id: str | None = None, src: Any = None,
             weight: Any = None) -> None:
        if not isinstance(name, str) or not name.strip():
            raise Skip("a tool call without a function name")
        msg = self._open_assistant(src, weight, True)
        if msg is None:
            return
        cid = str(call_id) if call_id else f"call_{self.n}"
        if not call_id:
            self.count("call_id_assigned")
        self.n += 1
        msg.setdefault("tool_calls", []).append(
            {"id": cid, "type": "function", "function": {"name": name.strip(), "arguments": arguments}})
        self.pending.append((cid, name.strip()))

    def tool(self, content: Any, call_id: str | None = None, name: str | None = None) -> None:
        """A tool reply, paired with its call by id, else by name, else with the oldest unanswered call."""
        match = None
        for i, (cid, n) in enumerate(self.pending):
            if call_id and cid == str(call_id):
                match = i
                break
        if match is None and name:
            same = [i for i, (_, n) in enumerate(self.pending) if n == name]
            if same:
                match = same[0]
                if len(same) > 1:  # several open calls of that tool: the first one, in call order
                    self.count("tool_reply_matched_by_order")
        if match is None and self.pending:
            if call_id and len(self.pending) > 1:
                raise Skip("a tool reply whose tool_call_id matches none of several open calls (pairing it by "
                           "guess could give a result to the wrong call)")
            match = 0
            if call_id or len(self.pending) > 1:
                self.count("tool_reply_matched_by_order")
        if match is None:
            self.count("tool_reply_without_call_dropped")
            return
        cid, n = self.pending.pop(match)
        if not isinstance(content, str):
            content = json.dumps(content, ensure_ascii=False)
            self.count("tool_reply_json_encoded")
        if not content.strip():
            self.count("empty_tool_reply_kept")
        self.msgs.append({"role": "tool", "tool_call_id": cid, "name": name or n, "content": content})

    def messages(self) -> list[dict]:
        """Leading non-user turns (after a system one) and trailing turns after the last assistant dropped."""
        msgs = list(self.msgs)
        head = [msgs.pop(0)] if msgs and msgs[0]["role"] == "system" else []
        while msgs and msgs[0]["role"] != "user":
            msgs.pop(0)
            self.count("message_before_first_user_dropped")
        while msgs and msgs[-1]["role"] != "assistant":
            msgs.pop()
            self.count("message_after_last_answer_dropped")
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


def reply_list(text: str) -> list[dict] | None:
    """A tool message answering several calls at once, `[{"tool_call_id"?, "name"?, "content"}, ...]`
    (LLaMA-Factory writes parallel results so), as its replies; None when the text is anything else."""
    if not text.lstrip().startswith("[{"):
        return None
    try:
        items = json.loads(text)
    except ValueError:
        return None
    if isinstance(items, list) and len(items) > 1 and all(
            isinstance(x, dict) and "content" in x and ("tool_call_id" in x or "name" in x) for x in items):
        return items
    return None


def response_name(body: str) -> str | None:
    """The function name a Hermes `<tool_response>` body names ({"name": ..., "content": ...}), if any."""
    if not body.lstrip().startswith("{"):
        return None
    try:
        obj = decode_json_like(body)
    except InvalidInput:
        return None
    name = obj.get("name") if isinstance(obj, dict) else None
    return name if isinstance(name, str) and name else None


def _tools_body(body: str) -> list | None:
    """The tools in one <tools> block body: a JSON list, one object, or one object per line; None if not."""
    body = body.strip()
    if not body:
        return None
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
                    return None
    return tools if tools and all(isinstance(t, dict) for t in tools) else None


def tools_in_system(text: str) -> tuple[list | None, str]:
    """(tools listed inside the <tools>…</tools> block that holds them, the system text without the Hermes tool
    boilerplate). Prompts often name the tag in prose first ("within <tools></tools> XML tags"): the first
    block whose body parses as tools is used; a block with a body that parses as nothing is a Skip."""
    bodies = [m.group(1) for m in _TOOLS.finditer(text or "")]
    if not bodies:
        return None, text
    for body in bodies:
        tools = _tools_body(body)
        if tools is not None:
            # The rest of a Hermes system prompt only explains the tag format, which the chat template renders anew.
            return tools, ""
    if any(b.strip() for b in bodies):
        raise Skip("a <tools> list in the system message that cannot be parsed")
    return None, text


def supplied_tools(tools: Any, b: Builder) -> list | None:
    """A record's own `tools` (a list, one tool object, or a JSON string of either); None when absent.
    A single object is a one-item list (counted); anything else is a Skip, never a reason to infer schemas."""
    if isinstance(tools, str):
        if not tools.strip():
            return None
        try:
            tools = decode_json_like(tools)
        except InvalidInput:
            raise Skip("a 'tools' string that is not JSON") from None
    if tools is None or tools == [] or tools == {}:
        return None
    if isinstance(tools, dict):
        b.count("single_tool_object_listed")
        return [tools]
    if isinstance(tools, list):
        return tools
    raise Skip(f"'tools' is a {type(tools).__name__}, neither a list of tools nor one tool object")


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
