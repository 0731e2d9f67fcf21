"""An OpenAI-compatible chat endpoint for the models Nursery trains: `POST /v1/chat/completions` (tools,
tool_choice, streaming as server-sent events) and `GET /v1/models`, on starlette + uvicorn.

Shapes follow platform.openai.com/docs/api-reference/chat (the request's messages, tools and tool_choice; the
response's choices[0].message.tool_calls with `arguments` as a JSON string; the stream's
`chat.completion.chunk` deltas ending in `data: [DONE]`). Generation goes through the process's inference pool
(one base in memory serves its adapters), rendering through the training rendering, and tool calls are parsed
from the model's `<tool_call>` blocks; guarded decoding (the default) constrains them to the offered tools'
schemas and enforces tool_choice. Errors use OpenAI's error body: {"error": {"message", "type", "param",
"code"}}.
"""
from __future__ import annotations

import hmac
import json
import time
import uuid
from typing import Any, Iterator

from ..errors import InvalidConfig, InvalidInput, NotFound, NurseryError

ROLES = ("system", "developer", "user", "assistant", "tool")
DEFAULT_PORT = 8000
CHAT_PATH, MODELS_PATH = "/v1/chat/completions", "/v1/models"


class ApiError(Exception):
    """An HTTP error in OpenAI's shape."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _from_core(e: NurseryError) -> ApiError:
    if isinstance(e, NotFound):
        return ApiError(404, str(e), code="model_not_found")
    if isinstance(e, (InvalidInput, InvalidConfig)):
        return ApiError(400, str(e), param=getattr(e, "field", None))
    return ApiError(500, str(e), type="server_error")


# --------------------------------------------------------------------------------------- the request
def _text(content: Any, where: str) -> str:
    """OpenAI content: a string, null, or a list of parts of which only text parts are read."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise InvalidInput("only text content parts are supported", field=f"{where}.content[{i}]")
            out.append(part["text"])
        return "".join(out)
    raise InvalidInput("content must be a string or a list of text parts", field=f"{where}.content")


def canonical_messages(messages: Any) -> list[dict]:
    """OpenAI chat messages → the canonical format (arguments as objects, developer → system)."""
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("messages must be a non-empty list", field="messages")
    out = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field=f"{where}.role")
        role = "system" if m["role"] == "developer" else m["role"]
        msg: dict[str, Any] = {"role": role, "content": _text(m.get("content"), where)}
        if role == "assistant" and m.get("tool_calls"):
            calls = []
            for j, c in enumerate(m["tool_calls"]):
                fn = c.get("function") if isinstance(c, dict) else None
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                    raise InvalidInput("a tool call needs function.name", field=f"{where}.tool_calls[{j}]")
                args = fn.get("arguments") or "{}"
                if isinstance(args, str):
                    try:
                        args = json.loads(args)
                    except ValueError as e:
                        raise InvalidInput(f"arguments are not JSON: {e}",
                                           field=f"{where}.tool_calls[{j}].function.arguments") from None
                calls.append({"id": c.get("id") or f"call_{j}", "type": "function",
                              "function": {"name": fn["name"], "arguments": args}})
            msg["tool_calls"] = calls
        if role == "tool":
            msg["tool_call_id"] = m.get("tool_call_id")
            msg["name"] = m.get("name")
        out.append(msg)
    return out


def _tools(raw: Any) -> list[dict]:
    from ..data.tools import tools_from_data

    if raw is None or raw == []:
        return []
    if not isinstance(raw, list):
        raise InvalidInput("tools must be a list of {type: function, function: {...}}", field="tools")
    return tools_from_data(raw, "tools")


def _settings(body: dict):
    from ..inference import GenerationSettings

    n = body.get("n", 1)
    if n not in (1, None):
        raise InvalidInput("only n = 1 is supported", field="n")
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    return GenerationSettings.of(max_new_tokens=max_tokens, temperature=body.get("temperature"),
                                 top_p=body.get("top_p"), seed=body.get("seed"), guarded=body.get("guarded"))


# --------------------------------------------------------------------------------------- the response
def _calls(text: str, tools: list[dict]) -> tuple[str | None, list[dict]]:
    """(content outside the calls or None, OpenAI tool_calls) of a completion."""
    from ..evaluation.parser import parse_tool_calls
    from ..training.rendering import TOOL_CALL_OPEN

    if not tools:
        return text, []
    parsed = parse_tool_calls(text)
    calls = [{"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
              "function": {"name": c["name"], "arguments": json.dumps(c["arguments"], ensure_ascii=False)}}
             for c in parsed.calls]
    if not calls:
        return text, []
    before = text.split(TOOL_CALL_OPEN, 1)[0].strip()
    return before or None, calls


class ChatService:
    """The models this endpoint serves and the two operations; transport-free so it can be tested directly."""

    def __init__(self, models: list[str] | None = None):
        from ..inference import resolve_model

        self.fixed = None
        if models:
            for m in models:
                resolve_model(m)  # NotFound with a hint, before the server starts
            self.fixed = list(dict.fromkeys(models))

    def model_ids(self) -> list[dict]:
        """[{id, kind}] of what can be asked for: the --models list, else every trained adapter and every
        base model on this machine."""
        if self.fixed is not None:
            return [{"id": m, "kind": "chosen"} for m in self.fixed]
        from ..registry import nursery_list_models

        return [{"id": r["name"], "kind": r["kind"]} for r in nursery_list_models(limit=None)
                if r["kind"] != "base" or r.get("local")]

    def check_model(self, name: Any) -> str:
        if not isinstance(name, str) or not name:
            raise ApiError(400, "model is required", param="model")
        served = self.fixed if self.fixed is not None else [r["id"] for r in self.model_ids()]
        if name not in served:
            raise ApiError(404, f"model {name!r} is not served here (see GET /v1/models: trained models and the "
                           "base models on this machine, or the --models list)", param="model",
                           code="model_not_found")
        return name

    def prepare(self, body: Any) -> tuple[str, dict, Any, Any]:
        """(model, prompt for the pool, settings, tool_choice) of a request body; raises ApiError/NurseryError."""
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        from ..guard.grammar import select_tools
        from ..inference import resolve_model

        model = self.check_model(body.get("model"))
        messages = canonical_messages(body.get("messages"))
        tools = _tools(body.get("tools"))
        choice = body.get("tool_choice")
        select_tools(tools, choice)
        settings = _settings(body)
        resolve_model(model)  # last (it may materialise a base model); a missing one is a 404 before any stream
        return model, {"messages": messages, "tools": tools, "tool_choice": choice}, settings, choice

    def complete(self, body: Any) -> dict:
        from ..interactive import generate_batch

        model, prompt, s, choice = self.prepare(body)
        out = generate_batch(model, [prompt], s)
        content, calls = _calls(out[0], prompt["tools"] if choice != "none" else [])
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = calls
        used = out.usage[0] if out.usage else {}
        finish = "tool_calls" if calls else ("length" if used.get("stopped") is False else "stop")
        usage = {"prompt_tokens": used.get("prompt_tokens", 0), "completion_tokens": used.get("completion_tokens", 0)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {"id": _id(), "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": usage, "system_fingerprint": None, "nursery": _decoding(out.decoding)}

    def stream(self, body: Any) -> Iterator[str]:
        """Server-sent events: content deltas as they are generated (held back from the first sign of a
        `<tool_call>`), then the calls, each whole in one delta, then the finish reason and [DONE]."""
        from ..interactive import stream_generate
        from ..training.rendering import TOOL_CALL_OPEN

        model, prompt, s, choice = self.prepare(body)
        tools = prompt["tools"] if choice != "none" else []
        cid, created = _id(), int(time.time())

        def chunk(delta: dict, finish: str | None = None, **extra: Any) -> str:
            return _sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                         "system_fingerprint": None,
                         "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                         **extra})

        report: dict = {}
        chunks = stream_generate(model, prompt, s, report=report)

        def events() -> Iterator[str]:
            yield chunk({"role": "assistant", "content": ""})
            text, sent = "", 0
            for piece in chunks:
                text += piece
                body = text.lstrip()  # what is sent is the stripped completion, as without streaming
                safe = _safe_prefix(body, TOOL_CALL_OPEN) if tools else len(body)
                safe = min(safe, len(body.rstrip()))
                if safe > sent:
                    yield chunk({"content": body[sent:safe]})
                    sent = safe
            text = text.strip()
            content, calls = _calls(text, tools)
            if not calls and sent < len(text):
                yield chunk({"content": text[sent:]})
            for i, c in enumerate(calls):
                yield chunk({"tool_calls": [{"index": i, **c}]})
            yield chunk({}, "tool_calls" if calls else "stop", nursery=_decoding(report))
            yield "data: [DONE]\n\n"

        return events()


def _safe_prefix(text: str, marker: str) -> int:
    """How much of `text` can be sent as content: up to the marker, and never a tail that could start it."""
    at = text.find(marker)
    if at >= 0:
        return len(text[:at].rstrip())
    for k in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-k:]):
            return len(text) - k
    return len(text)


def _decoding(d: dict) -> dict:
    return {"decoding": d.get("decoding"), "notes": d.get("notes") or []}


def _id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def _sse(obj: dict) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


# --------------------------------------------------------------------------------------- the app
def build_app(models: list[str] | None = None, token: str | None = None):
    """The starlette app; `token`, when given, is required as `Authorization: Bearer <token>`."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    service = ChatService(models)

    def authorised(request: Request) -> None:
        if not token:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise ApiError(401, "a valid bearer token is required (Authorization: Bearer <token>)",
                           code="invalid_api_key")

    def fail(e: Exception) -> JSONResponse:
        err = e if isinstance(e, ApiError) else _from_core(e)  # type: ignore[arg-type]
        return JSONResponse(err.body(), status_code=err.status)

    async def list_models(request: Request):
        try:
            authorised(request)
            rows = await run_in_threadpool(service.model_ids)
        except (ApiError, NurseryError) as e:
            return fail(e)
        return JSONResponse({"object": "list", "data": [
            {"id": r["id"], "object": "model", "created": 0, "owned_by": "nursery", "kind": r["kind"]}
            for r in rows]})

    async def chat(request: Request):
        try:
            authorised(request)
            try:
                body = await request.json()
            except ValueError:
                raise ApiError(400, "the request body is not JSON") from None
            if isinstance(body, dict) and body.get("stream"):
                events = await run_in_threadpool(service.stream, body)
                return StreamingResponse(events, media_type="text/event-stream",
                                         headers={"Cache-Control": "no-cache"})
            return JSONResponse(await run_in_threadpool(service.complete, body))
        except (ApiError, NurseryError) as e:
            return fail(e)

    return Starlette(routes=[Route(MODELS_PATH, list_models, methods=["GET"]),
                             Route(CHAT_PATH, chat, methods=["POST"])])


def endpoint_url(port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> str:
    """The base URL an OpenAI client takes (`base_url`)."""
    return f"http://{host}:{port}/v1"


def client_snippet(model: str, port: int = DEFAULT_PORT, host: str = "127.0.0.1", token: str | None = None,
                   tools: list[dict] | None = None) -> str:
    """Runnable Python that calls `model` through this endpoint with the official openai client, offering
    `tools` (default: the model's training tools) — for the Model Cradle's Serve panel."""
    import pprint

    if tools is None:
        from ..inference import resolve_tools

        try:
            tools = resolve_tools(model)[0]
        except NurseryError:  # unreadable training tools: the snippet still runs, with the caller's tools
            tools = []
    key = "os.environ[\"NURSERY_SERVE_TOKEN\"]" if token else '"nursery"'
    lines = (["import os", ""] if token else []) + [
        "from openai import OpenAI", "",
        ("TOOLS = " + pprint.pformat(tools, sort_dicts=False, width=110)) if tools
        else "TOOLS = []  # your tools, in OpenAI's function format", "",
        f'client = OpenAI(base_url="{endpoint_url(port, host)}", api_key={key})',
        "reply = client.chat.completions.create(",
        f"    model={json.dumps(model)},",
        '    messages=[{"role": "user", "content": "Remember that the garage code is 4821."}],',
        "    tools=TOOLS,",
        ")",
        "message = reply.choices[0].message",
        "print(message.tool_calls or message.content)"]
    return "\n".join(lines)


def serve(port: int = DEFAULT_PORT, host: str = "127.0.0.1", models: list[str] | None = None,
          token: str | None = None) -> None:
    """Runs the endpoint with uvicorn until interrupted."""
    import sys

    import uvicorn

    app = build_app(models, token)
    print(f"Nursery OpenAI-compatible endpoint on {endpoint_url(port, host)}"
          + (" (bearer token required)" if token else ""), file=sys.stderr)
    uvicorn.run(app, host=host, port=int(port), log_level="warning")
