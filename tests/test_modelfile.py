"""The Ollama Modelfile: the Go TEMPLATE, rendered by real Go text/template with Ollama-shaped values, must
match Nursery's Jinja rendering (the compact tool list exactly; the JSON of earlier calls up to spacing and key
order), for the current rendering and for adapters trained on the v1 JSON one; Ollama's parseTag must find
`<tool_call>`; stops, SYSTEM and parsing a Modelfile back."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import require
from nursery_core.errors import InvalidInput
from nursery_core.export.modelfile import (build_modelfile, go_template, parse_modelfile, read_modelfile,
                                           stop_tokens)
from nursery_core.training.rendering import DEFAULT_SYSTEM, END_OF_TURN, TEMPLATES, TEMPLATES_V1

HARNESS = Path(__file__).parent / "gotmpl" / "main.go"
# Only keys Ollama's tool types keep (type/description/enum/items/required/properties) appear here: Ollama
# drops other JSON-schema keys when it decodes a chat request, so no template could render them.
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather <now> & later for a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "array", "items": {"type": "integer"}, "description": "Days ahead"}},
        "required": ["city"]}}}
MEMORY = {"type": "function", "function": {
    "name": "memory_store", "description": "Save a fact.",
    "parameters": {"type": "object", "properties": {"content": {"type": "string"}}, "required": ["content"]}}}


def _call(name, args):
    return {"type": "function", "function": {"name": name, "arguments": args}}


CONVERSATION = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Weather in Paris for 2 days, and remember I like rain?"},
    {"role": "assistant", "content": "", "tool_calls": [
        _call("get_weather", {"city": "Paris", "unit": "celsius", "days": [1, 2]}),
        _call("memory_store", {"content": "likes rain \"a lot\""})]},
    {"role": "tool", "content": '{"temp": 21, "sky": "rain"}'},
    {"role": "tool", "content": "stored"},
    {"role": "assistant", "content": "Rain and 21 °C in Paris."},
    {"role": "user", "content": "Thanks! {{ not a template }}"},
    {"role": "assistant", "content": "Checking again.", "tool_calls": [_call("get_weather", {"city": "Paris"})]},
    {"role": "tool", "content": "{\"temp\": 22}"},
]


def canonical_json(text: str) -> str:
    """Every JSON object/array in the text rewritten compactly with sorted keys; other text untouched."""
    dec = json.JSONDecoder()
    out, i = [], 0
    while i < len(text):
        if text[i] in "{[":
            try:
                value, end = dec.raw_decode(text, i)
            except ValueError:
                pass
            else:
                if isinstance(value, (dict, list)):
                    out.append(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
                    i = end
                    continue
        out.append(text[i])
        i += 1
    return "".join(out)


@pytest.fixture(scope="module")
def gotmpl(tmp_path_factory) -> Path:
    """The harness compiled once with Debian's Go (stdlib only, caches under a temp dir)."""
    go = shutil.which("go")
    require(go is not None, "go (Debian golang-go)")
    tmp = tmp_path_factory.mktemp("gotmpl")
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOPATH": str(tmp / "gopath"), "GOCACHE": str(tmp / "gocache"),
           "GO111MODULE": "off", "CGO_ENABLED": "0"}
    exe = tmp / "gotmpl"
    subprocess.run([go, "build", "-o", str(exe), str(HARNESS)], env=env, check=True, capture_output=True,
                   timeout=300)
    return exe


def go_render(exe: Path, template: str, messages: list[dict], tools: list[dict] | None, tmp_path: Path) -> dict:
    case = {"messages": [{"role": m["role"], "content": m.get("content") or "",
                          "tool_calls": [{"function": c["function"]} for c in m.get("tool_calls") or []]}
                         for m in messages], "tools": tools or []}
    (tmp_path / "t.gotmpl").write_text(template)
    (tmp_path / "case.json").write_text(json.dumps(case))
    proc = subprocess.run([str(exe), str(tmp_path / "t.gotmpl"), str(tmp_path / "case.json")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def tokenizer():
    from nursery_core.base_models import load_embedded_tokenizer
    return load_embedded_tokenizer()


def jinja(tok, family: str, messages, tools, add_generation_prompt: bool, templates=TEMPLATES) -> str:
    tok.chat_template = templates[family]
    return tok.apply_chat_template(messages, tools=tools, tokenize=False,
                                   add_generation_prompt=add_generation_prompt)


def _system_turn(text: str, family: str) -> str:
    return text.split(END_OF_TURN[family], 1)[0]


@pytest.mark.parametrize("rendering", ["v2", "v1"])
@pytest.mark.parametrize("family", ["chatml", "zephyr", "llama3"])
def test_go_template_renders_like_jinja(family, rendering, gotmpl, tokenizer, tmp_path):
    template = go_template(family, rendering=rendering)
    templates = TEMPLATES if rendering == "v2" else TEMPLATES_V1
    tools = [WEATHER, MEMORY]
    bos = tokenizer.bos_token if family == "llama3" else ""
    checked = 0
    # Every prefix that ends on a user or tool turn is a prompt Ollama renders for generation.
    for k in range(2, len(CONVERSATION) + 1):
        msgs = CONVERSATION[:k]
        if msgs[-1]["role"] == "assistant":
            continue
        want = jinja(tokenizer, family, msgs, tools, add_generation_prompt=True, templates=templates)
        assert want.startswith(bos)
        got = go_render(gotmpl, template, msgs, tools, tmp_path)
        assert canonical_json(got["render"]) == canonical_json(want[len(bos):]), f"prefix of {k} messages"
        if rendering == "v2":  # the compact tool list has no JSON: the same text, character for character
            assert _system_turn(got["render"], family) == _system_turn(want[len(bos):], family)
        else:  # Go's JSON is compact: only the normalised forms agree
            assert got["render"] != want[len(bos):]
        checked += 1
    assert checked == 5
    # The whole conversation ending on an assistant turn: Ollama leaves that turn open for continuation.
    full = CONVERSATION[:6]
    want = jinja(tokenizer, family, full, tools, add_generation_prompt=False, templates=templates)
    got = go_render(gotmpl, template, full, tools, tmp_path)["render"]
    assert canonical_json(got + END_OF_TURN[family] + ("\n" if family != "llama3" else "")) == \
        canonical_json(want[len(bos):])


def _ollama_shaped(tool: dict) -> dict:
    """What Ollama keeps of a tool when it decodes a chat request: type, items, description, enum per property."""
    fn = tool["function"]
    params = fn["parameters"]
    props = {k: {key: v for key, v in p.items() if key in ("type", "items", "description", "enum")}
             for k, p in params["properties"].items()}
    return {"type": "function", "function": {"name": fn["name"], "description": fn["description"],
            "parameters": {"type": "object", "required": params.get("required", []), "properties": props}}}


def test_compact_tool_list_matches_for_every_default_tool(gotmpl, tokenizer, tmp_path):
    """Enums, arrays of typed items, integers, booleans, no required parameters: the same system turn."""
    from nursery_core.data.tools import DEFAULT_TOOLS

    msgs = [{"role": "user", "content": "hi"}]
    want = jinja(tokenizer, "chatml", msgs, DEFAULT_TOOLS, add_generation_prompt=True)
    got = go_render(gotmpl, go_template("chatml"), msgs, [_ollama_shaped(t) for t in DEFAULT_TOOLS], tmp_path)
    assert got["render"] == want
    assert '- unit ("celsius"|"fahrenheit"): Temperature unit.' in want
    assert "- tags (array of string): " in want and "- to (string, required): " in want


@pytest.mark.parametrize("family", ["chatml", "zephyr"])
def test_default_system_and_no_tools(family, gotmpl, tokenizer, tmp_path):
    msgs = [{"role": "user", "content": "hello"}]
    got = go_render(gotmpl, go_template(family), msgs, None, tmp_path)["render"]
    assert got == jinja(tokenizer, family, msgs, None, add_generation_prompt=True)
    assert DEFAULT_SYSTEM in got


@pytest.mark.parametrize("family", ["chatml", "zephyr", "llama3"])
def test_parse_tag_finds_tool_call(family, gotmpl, tmp_path):
    got = go_render(gotmpl, go_template(family), [{"role": "user", "content": "x"}], [WEATHER], tmp_path)
    assert got["tag"] == "<tool_call>"


def test_harness_detects_a_template_without_tag(gotmpl, tmp_path):
    """The parseTag check can fail: a template whose ToolCalls block starts with JSON has no tag."""
    bad = '{{ range .Messages }}{{ if .ToolCalls }}{"name": "x"}{{ end }}{{ .Content }}{{ end }}'
    assert go_render(gotmpl, bad, [{"role": "user", "content": "x"}], None, tmp_path)["tag"] == ""


def test_unknown_family_is_a_clear_error():
    with pytest.raises(InvalidInput, match="no Ollama template for chat family 'llama2'"):
        go_template("llama2")
    with pytest.raises(InvalidInput, match="chatml"):
        build_modelfile("m.gguf", "mistral")


def test_stop_tokens_per_family():
    assert stop_tokens("chatml", "<|im_end|>") == ["<|im_end|>", "<|im_start|>"]
    assert stop_tokens("chatml", "<|endoftext|>") == ["<|im_end|>", "<|im_start|>", "<|endoftext|>"]
    assert stop_tokens("zephyr", "</s>")[0] == "</s>" and "<|user|>" in stop_tokens("zephyr")
    assert stop_tokens("llama3")[0] == "<|eot_id|>"


def test_modelfile_round_trips_through_the_parser():
    text = build_modelfile("smol-q8_0.gguf", "chatml", eos_token="<|endoftext|>",
                           parameters={"num_ctx": 4096, "temperature": 0.2})
    assert text.startswith("FROM ./smol-q8_0.gguf\nTEMPLATE \"\"\"")
    fields = parse_modelfile(text)
    assert fields["from"] == "./smol-q8_0.gguf"
    assert fields["template"] == go_template("chatml")
    assert fields["system"] == DEFAULT_SYSTEM
    assert fields["parameters"] == {"stop": ["<|im_end|>", "<|im_start|>", "<|endoftext|>"], "num_ctx": 4096,
                                    "temperature": 0.2}


def test_modelfile_without_system_and_custom_system():
    assert "SYSTEM" not in build_modelfile("a.gguf", "zephyr", system=None).split('"""')[-1]
    fields = parse_modelfile(build_modelfile("a.gguf", "zephyr", system="Answer in French."))
    assert fields["system"] == "Answer in French."
    assert "Answer in French." in fields["template"]  # also the template's fallback when SYSTEM is unset


def test_parse_hand_written_modelfile(tmp_path):
    text = ('# comment\nfrom llama3.2\nPARAMETER temperature 0.7\nparameter stop "<|eot_id|>"\n'
            'PARAMETER stop </s>\nSYSTEM You are Mario.\nMESSAGE user Hi\nMESSAGE assistant "Hello!"\n'
            'ADAPTER ./lora.gguf\nLICENSE """MIT\nline 2"""\n')
    f = parse_modelfile(text)
    assert f["from"] == "llama3.2" and f["system"] == "You are Mario."
    assert f["parameters"] == {"temperature": 0.7, "stop": ["<|eot_id|>", "</s>"]}
    assert f["messages"] == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    assert f["adapters"] == ["./lora.gguf"] and f["license"] == "MIT\nline 2"


@pytest.mark.parametrize("text,match", [
    ("PARAMETER stop x\n", "needs a FROM"),
    ("FROM x\nBOGUS y\n", "unknown instruction 'BOGUS'"),
    ('FROM x\nTEMPLATE """{{ .Prompt }}\n', "unterminated"),
    ("FROM x\nMESSAGE robot hi\n", "MESSAGE role"),
])
def test_parse_errors_name_the_line(text, match, tmp_path):
    p = tmp_path / "Modelfile"
    p.write_text(text)
    with pytest.raises(InvalidInput, match=match) as e:
        read_modelfile(p)
    assert str(p) in str(e.value)


def test_modelfile_rejects_bad_inputs():
    with pytest.raises(InvalidInput):
        build_modelfile("../x.gguf", "chatml")
    with pytest.raises(InvalidInput, match='"""'):
        build_modelfile("x.gguf", "chatml", system='say """ hi')


def test_compact_tool_list_matches_for_refs_nullable_types_integer_enums_and_nested_objects(gotmpl, tokenizer,
                                                                                           tmp_path):
    """A strict OpenAI tool ($ref/$defs, anyOf with null, type lists, arrays of objects, an integer enum),
    normalised as every import stores it: the Go TEMPLATE writes the same tool list as the Jinja one."""
    from nursery_core.records import normalise_tool

    tool = normalise_tool({"type": "function", "function": {
        "name": "create_order", "description": "Create an order", "strict": True, "parameters": {
            "type": "object", "additionalProperties": False, "$defs": {"who": {"type": "object", "properties": {
                "id": {"type": "string"}, "email": {"type": ["string", "null"]}}, "required": ["id", "email"]}},
            "properties": {"customer": {"$ref": "#/$defs/who"},
                           "lines": {"type": "array", "items": {"type": "object", "properties": {
                               "sku": {"type": "string"}, "qty": {"type": "integer"}}}},
                           "priority": {"type": "integer", "enum": [1, 2, 3], "description": "1 is urgent"},
                           "note": {"type": ["string", "null"]},
                           "discount": {"anyOf": [{"type": "number"}, {"type": "null"}]}},
            "required": ["customer", "lines", "priority"]}}})
    msgs = [{"role": "user", "content": "order it"}]
    want = jinja(tokenizer, "chatml", msgs, [tool], add_generation_prompt=True)
    got = go_render(gotmpl, go_template("chatml"), msgs, [_ollama_shaped(tool)], tmp_path)
    assert got["render"] == want
    for line in ("- customer (object, required)", "- lines (array of object, required)",
                 "- priority (1|2|3, required): 1 is urgent", "- discount (number|null)", "- note (string|null)"):
        assert line in want
