"""The canonical format rules in records.py: what normalises, and where each bad record is pointed at."""
import json

import pytest

from nursery_core.errors import InvalidInput
from nursery_core.records import (Where, call_errors, decode_arguments, example_calls, infer_tool_from_calls,
                                  normalise_example, normalise_tool)

TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                         "days": {"type": "integer", "minimum": 1}},
                       "required": ["city"]}}}


def ex(*msgs, tools=(TOOL,), **meta):
    return {"tools": list(tools), "messages": list(msgs), "meta": meta}


def call(args, name="get_weather", cid="call_0"):
    return {"role": "assistant", "tool_calls": [{"id": cid, "type": "function",
                                                 "function": {"name": name, "arguments": args}}]}


U = {"role": "user", "content": "Weather in Oslo?"}


def test_bare_wrapped_and_repr_tools_normalise_to_the_same_shape():
    bare = normalise_tool(TOOL["function"])
    repr_ = normalise_tool(repr(TOOL["function"]))
    assert bare == normalise_tool(TOOL) == repr_
    assert bare["type"] == "function" and bare["function"]["parameters"]["type"] == "object"


def test_gorilla_and_xlam_types_are_mapped():
    t = normalise_tool({"name": "f", "parameters": {"type": "dict", "properties": {
        "a": {"type": "float"}, "b": {"type": "int, optional"}, "c": {"type": "List[str]"}, "d": {"type": "any"}}}})
    props = t["function"]["parameters"]["properties"]
    assert (t["function"]["parameters"]["type"], props["a"]["type"], props["b"]["type"], props["c"]["type"]) == \
        ("object", "number", "integer", "array")
    assert "type" not in props["d"]


@pytest.mark.parametrize("tool, field", [
    ({"description": "x", "parameters": {}}, "tools.function.name"),
    ({"name": "f", "parameters": {"type": "array"}}, "tools.function.parameters.type"),
    ({"name": "f", "parameters": {"type": "object", "properties": {}, "required": ["nope"]}},
     "tools.function.parameters.required"),
    ({"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "strng"}}}},
     "tools.function.parameters.properties.a.type"),
])
def test_bad_tools_name_the_field(tool, field):
    with pytest.raises(InvalidInput) as e:
        normalise_tool(tool, Where("t.json", 3))
    assert e.value.field == field and e.value.line == 3 and "t.json:3" in str(e.value)


def test_string_and_double_encoded_arguments_are_decoded_and_flagged():
    assert decode_arguments('{"city": "Oslo"}') == ({"city": "Oslo"}, [])
    assert decode_arguments(json.dumps(json.dumps({"city": "Oslo"}))) == ({"city": "Oslo"}, ["double_encoded_arguments"])
    assert decode_arguments("{'city': 'Oslo', 'x': True}")[0] == {"city": "Oslo", "x": True}
    out = normalise_example(ex(U, call(json.dumps(json.dumps({"city": "Oslo"})))))
    assert out["messages"][1]["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}
    assert out["meta"]["fixups"] == ["double_encoded_arguments"] and out["meta"]["category"] == "call"


def test_categories_are_inferred():
    no_call = normalise_example(ex(U, {"role": "assistant", "content": "I can't check that."}))
    par = normalise_example(ex(U, {"role": "assistant", "tool_calls": [
        {"function": {"name": "get_weather", "arguments": {"city": "A"}}},
        {"function": {"name": "get_weather", "arguments": {"city": "B"}}}]}))
    multi = normalise_example(ex(U, call({"city": "Oslo"}), {"role": "tool", "content": "4C"},
                                 {"role": "assistant", "content": "4C"}, {"role": "user", "content": "Bergen?"},
                                 call({"city": "Bergen"}, cid="call_1")))
    assert [no_call["meta"]["category"], par["meta"]["category"], multi["meta"]["category"]] == \
        ["no_call", "parallel", "multi_turn"]
    assert multi["messages"][2]["tool_call_id"] == "call_0" and multi["messages"][2]["name"] == "get_weather"
    assert example_calls(par) == [{"name": "get_weather", "arguments": {"city": "A"}},
                                  {"name": "get_weather", "arguments": {"city": "B"}}]


@pytest.mark.parametrize("raw, field, words", [
    (ex(U, call({"days": 2})), "messages[1].tool_calls[0].function.arguments", "'city' is a required property"),
    (ex(U, call({"city": "Oslo", "days": 0})), "messages[1].tool_calls[0].function.arguments", "minimum"),
    (ex(U, call({"city": "Oslo"}, name="nope")), "messages[1].tool_calls[0].function.name", "not among"),
    (ex(U, call("{not json")), "messages[1].tool_calls[0].function.arguments", "not valid JSON"),
    (ex(U, call([1, 2])), "messages[1].tool_calls[0].function.arguments", "must be an object"),
    (ex({"role": "bot", "content": "x"}), "messages[0].role", "unknown role"),
    (ex(U), "messages[0].role", "end with an assistant"),
    (ex({"role": "assistant", "content": "hi"}), "messages[0].role", "start with a user"),
    (ex(U, {"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}), "messages[2].role",
     "cannot follow"),
    (ex(U, {"role": "tool", "content": "x"}, {"role": "assistant", "content": "y"}), "messages[1].tool_call_id",
     "answers no earlier tool call"),
    (ex(U, {"role": "assistant", "content": "hi"}, category="call"), "meta.category", "makes no tool call"),
    (ex(U, call({"city": "x"}), category="no_call"), "meta.category", "makes a tool call"),
    (ex(U, {"role": "assistant", "content": "hi"}, category="weird"), "meta.category", "unknown category"),
    ({"tools": "nope", "messages": [U]}, "tools", "not valid JSON"),
    ({"tools": [], "messages": []}, "messages", "non-empty list"),
    (ex(U, {"role": "assistant", "content": "x"}, tools=(TOOL, TOOL)), "tools", "duplicate"),
])
def test_bad_records_name_line_and_field(raw, field, words):
    with pytest.raises(InvalidInput) as e:
        normalise_example(raw, Where("data.jsonl", 7))
    assert e.value.file == "data.jsonl" and e.value.line == 7 and e.value.field == field
    assert words in str(e.value) and str(e.value).startswith("data.jsonl:7, field")


def test_not_an_object_line():
    with pytest.raises(InvalidInput) as e:
        normalise_example([1, 2], Where("d.jsonl", 2))
    assert "d.jsonl:2" in str(e.value)


def test_call_errors_and_inferred_tools_validate_observed_calls():
    assert call_errors(normalise_tool(TOOL), {"city": "Oslo"}) == []
    assert call_errors(normalise_tool(TOOL), {"city": 3})
    calls = [{"q": "a", "n": 1}, {"q": "b", "n": 2.5, "flag": True}]
    tool = normalise_tool(infer_tool_from_calls("search", calls))
    props = tool["function"]["parameters"]["properties"]
    assert props["q"] == {"type": "string"} and props["n"] == {"type": "number"}
    assert tool["function"]["parameters"]["required"] == ["n", "q"]
    assert all(call_errors(tool, c) == [] for c in calls)


def test_normalised_tools_are_cached_but_fresh_for_raw_input():
    a, b = normalise_tool(TOOL), normalise_tool(TOOL)
    assert a == b and a is not b  # raw input: a fresh copy each time, safe to mutate
    assert normalise_tool(a) is a  # already normalised: returned as is
