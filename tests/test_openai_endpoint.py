"""`python -m nursery_core serve` driven by the official `openai` client: tool calls in OpenAI's shape whose
arguments validate against the tool's schema (a tiny model trained briefly, guarded decoding), tool_choice,
streaming, /v1/models and the bearer token; plus the request/response mapping without a model."""
from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import openai
import pytest

from conftest import ROOT
from server_helpers import child_env, nursery_server
from training_helpers import MEMORY_TOOL, store_dataset

TOKEN = "s3cret-token"


# ------------------------------------------------------------------------- mapping, no model loaded
def test_messages_map_to_the_canonical_format():
    from nursery_core.errors import InvalidInput
    from nursery_core.serving.openai_api import canonical_messages

    msgs = canonical_messages([
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "remember "}, {"type": "text", "text": "4821"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_9", "type": "function", "function": {
            "name": "memory_store", "arguments": "{\"content\": \"4821\"}"}}]},
        {"role": "tool", "tool_call_id": "call_9", "content": "stored"}])
    assert msgs[0] == {"role": "system", "content": "be brief"}
    assert msgs[1]["content"] == "remember 4821"
    assert msgs[2]["tool_calls"][0]["function"]["arguments"] == {"content": "4821"}
    assert msgs[3]["role"] == "tool" and msgs[3]["tool_call_id"] == "call_9"
    with pytest.raises(InvalidInput, match=r"messages\[0\].tool_calls\[0\].function.arguments"):
        canonical_messages([{"role": "assistant", "tool_calls": [{"function": {"name": "x", "arguments": "{oops"}}]}])
    with pytest.raises(InvalidInput, match=r"messages\[0\].role"):
        canonical_messages([{"role": "wizard", "content": "hi"}])


def test_stream_holds_back_what_could_start_a_tool_call():
    from nursery_core.serving.openai_api import _safe_prefix

    assert _safe_prefix("Hello there", "<tool_call>") == len("Hello there")
    assert _safe_prefix("Hello <tool", "<tool_call>") == len("Hello ")
    assert _safe_prefix("Hi <tool_call>{", "<tool_call>") == len("Hi")


def test_tool_choice_selects_what_the_guard_allows():
    from nursery_core.errors import InvalidInput
    from nursery_core.guard.grammar import select_tools, tool_grammar

    other = {"type": "function", "function": {"name": "other", "parameters": {"type": "object", "properties": {}}}}
    assert select_tools([MEMORY_TOOL, other], "auto") == ([MEMORY_TOOL, other], False)
    assert select_tools([MEMORY_TOOL, other], "none") == ([], False)
    assert select_tools([MEMORY_TOOL, other], "required") == ([MEMORY_TOOL, other], True)
    assert select_tools([MEMORY_TOOL, other], {"type": "function", "function": {"name": "other"}}) == ([other], True)
    with pytest.raises(InvalidInput, match="'nope', which is not among the offered tools"):
        select_tools([MEMORY_TOOL], {"type": "function", "function": {"name": "nope"}})
    with pytest.raises(InvalidInput, match="tool_choice must be one of"):
        select_tools([MEMORY_TOOL], "always")
    assert "start: calls\n" in tool_grammar([MEMORY_TOOL], require_call=True)[0]
    assert "start: TEXT | calls" in tool_grammar([MEMORY_TOOL])[0]


def test_models_token_and_bad_requests_without_a_model():
    from starlette.testclient import TestClient

    from nursery_core.serving.openai_api import build_app

    client = TestClient(build_app(token=TOKEN))
    assert client.get("/v1/models").status_code == 401
    assert client.get("/v1/models", headers={"Authorization": "Bearer wrong"}).json()["error"]["code"] == \
        "invalid_api_key"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    ids = [m["id"] for m in client.get("/v1/models", headers=auth).json()["data"]]
    assert "smollm2-135m" in ids  # the embedded base is always local
    r = client.post("/v1/chat/completions", headers=auth, json={"model": "no-such-model", "messages": [
        {"role": "user", "content": "hi"}]})
    assert r.status_code == 404 and "no-such-model" in r.json()["error"]["message"]
    r = client.post("/v1/chat/completions", headers=auth, json={"model": "qwen2.5-7b", "messages": [
        {"role": "user", "content": "hi"}]})
    assert r.status_code == 404, "a base model not on this machine is not fetched from the hub"
    r = client.post("/v1/chat/completions", headers=auth, json={"model": "smollm2-135m", "messages": []})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    r = client.post("/v1/chat/completions", headers=auth, json={
        "model": "smollm2-135m", "messages": [{"role": "user", "content": "hi"}], "tools": [MEMORY_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "web_search"}}})
    assert r.status_code == 400 and "web_search" in r.json()["error"]["message"]
    r = client.post("/v1/chat/completions", headers=auth, content=b"{not json")
    assert r.status_code == 400


# ------------------------------------------------------------------------- the real endpoint
@pytest.fixture
def served(nursery_home, tiny_model_dir):
    """A tiny model trained briefly (3 steps), served by `serve --models tiny-mem --token ...`."""
    store_dataset("lockers", n=10)
    env = child_env(nursery_home)
    r = subprocess.run([sys.executable, "-m", "nursery_core", "train-local", "lockers", "--base-model",
                        str(tiny_model_dir), "--output", "tiny-mem", "--max-steps", "3", "--lora-r", "4",
                        "--wait", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    with nursery_server(nursery_home, "serve", "--models", "tiny-mem", "--token", TOKEN, port_flag="--port") as port:
        yield f"http://127.0.0.1:{port}/v1"


@pytest.mark.slow
def test_openai_client_gets_valid_tool_calls_streams_and_needs_the_token(served):
    client = openai.OpenAI(base_url=served, api_key=TOKEN, timeout=300)
    assert [m.id for m in client.models.list().data] == ["tiny-mem"]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=served, api_key="wrong", max_retries=0).models.list()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": "hi"}])

    messages = [{"role": "user", "content": "Remember that locker 3 has code 111."}]
    schema = MEMORY_TOOL["function"]["parameters"]
    for choice in ("required", {"type": "function", "function": {"name": "memory_store"}}):
        reply = client.chat.completions.create(model="tiny-mem", messages=messages, tools=[MEMORY_TOOL],
                                               tool_choice=choice, max_tokens=40)
        msg = reply.choices[0].message
        assert reply.choices[0].finish_reason == "tool_calls" and msg.tool_calls, msg
        for call in msg.tool_calls:
            assert call.type == "function" and call.function.name == "memory_store" and call.id
            jsonschema.validate(json.loads(call.function.arguments), schema)  # arguments: a JSON string

        assert reply.usage.prompt_tokens > 20 and 0 < reply.usage.completion_tokens <= 40
        assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens

    plain = client.chat.completions.create(model="tiny-mem", messages=messages, tools=[MEMORY_TOOL],
                                           tool_choice="none", max_tokens=12)
    assert plain.choices[0].message.tool_calls is None
    # finish_reason "length" exactly when the 12 tokens ran out before an end of turn
    assert plain.choices[0].finish_reason == ("length" if plain.usage.completion_tokens == 12 else "stop")
    assert isinstance(plain.choices[0].message.content, str)

    # streaming: text deltas (the same greedy text as without streaming), then a call delta
    chunks = list(client.chat.completions.create(model="tiny-mem", messages=messages, tools=[MEMORY_TOOL],
                                                 tool_choice="none", max_tokens=12, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == plain.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    streamed = list(client.chat.completions.create(model="tiny-mem", messages=messages, tools=[MEMORY_TOOL],
                                                   tool_choice="required", max_tokens=40, stream=True))
    calls = [tc for c in streamed for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls and streamed[-1].choices[0].finish_reason == "tool_calls"
    assert calls[0].function.name == "memory_store"
    jsonschema.validate(json.loads(calls[0].function.arguments), schema)

    # a conversation that already holds a call and its result renders and answers
    follow = client.chat.completions.create(model="tiny-mem", max_tokens=8, tools=[MEMORY_TOOL], messages=[
        *messages, {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "memory_store", "arguments": "{\"content\": \"locker 3 has code 111\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "stored"}], tool_choice="none")
    assert follow.choices[0].finish_reason in ("stop", "length") and follow.choices[0].message.tool_calls is None


# ------------------------------------------------------------------------- the Model Cradle's Serve panel
def test_model_cradle_shows_the_endpoint_and_a_client_snippet():
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(ROOT) / "pages" / "3_Model_Cradle.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    at.selectbox(key="mc_serve_model").set_value("smollm2-135m")
    at.number_input(key="mc_serve_port").set_value(8123)
    at.run()
    codes = [c.value for c in at.code]
    assert any("python -m nursery_core serve --port 8123 --models smollm2-135m" in c for c in codes)
    snippet = next(c for c in codes if "from openai import OpenAI" in c)
    assert 'base_url="http://127.0.0.1:8123/v1"' in snippet and 'model="smollm2-135m"' in snippet
    compile(snippet, "snippet", "exec")  # valid Python
    config = json.loads(next(c for c in codes if "mcpServers" in c))
    entry = config["mcpServers"]["nursery"]
    assert entry["args"] == ["-m", "nursery_core", "mcp"] and entry["env"]["PYTHONPATH"] == str(ROOT)
    at.toggle(key="mc_serve_token").set_value(True)
    at.run()
    assert any("NURSERY_SERVE_TOKEN" in c and "api_key=os.environ" in c for c in (c.value for c in at.code))
    assert "TOOLS = []  # your tools" in snippet  # a bare base model has no training tools
