"""JSON Schema end to end: local $ref/$defs, anyOf/oneOf with null, nullable type lists, arrays of objects,
nested objects, integer enums and xLAM/APIGen type strings, through the schema check (with its dry-run
generation), the generator, call validation and the compact rendering; unsupported constructs named."""
from __future__ import annotations

import json

import pytest

from nursery_core.data.generator import check_tool_schemas, generate_examples
from nursery_core.errors import InvalidConfig, InvalidInput
from nursery_core.records import call_errors, normalise_example, normalise_tool
from nursery_core.schemas import normalise_parameters, python_type

BOOKING = {"type": "function", "function": {
    "name": "book_trip", "description": "Book a trip", "strict": True,
    "parameters": {"type": "object", "additionalProperties": False, "$defs": {
        "traveller": {"type": "object", "additionalProperties": False,
                      "properties": {"name": {"type": "string"}, "age": {"type": ["integer", "null"]},
                                     "seat": {"$ref": "#/$defs/seat"}},
                      "required": ["name", "age", "seat"]},
        "seat": {"type": "string", "enum": ["aisle", "window"]}},
        "properties": {
            "lead": {"$ref": "#/$defs/traveller", "description": "Who books"},
            "others": {"type": "array", "items": {"$ref": "#/$defs/traveller"}},
            "nights": {"type": "integer", "enum": [1, 2, 7]},
            "budget": {"anyOf": [{"type": "number", "minimum": 0}, {"type": "null"}], "description": "EUR"},
            "comment": {"oneOf": [{"type": "string"}, {"type": "null"}]}},
        "required": ["lead", "others", "nights", "budget", "comment"]}}}


def test_local_refs_are_inlined_and_nullable_unions_become_type_lists():
    params, notes = normalise_parameters(BOOKING["function"]["parameters"])
    assert "$defs" not in params and "$ref" not in json.dumps(params)
    assert params["properties"]["lead"]["properties"]["seat"] == {"type": "string", "enum": ["aisle", "window"]}
    assert params["properties"]["lead"]["description"] == "Who books"  # a $ref's siblings are kept
    assert params["properties"]["others"]["items"]["required"] == ["name", "age", "seat"]
    assert params["properties"]["budget"] == {"type": ["number", "null"], "minimum": 0, "description": "EUR"}
    assert params["properties"]["comment"] == {"type": ["string", "null"]}
    assert notes == ["local_refs_inlined", "nullable_anyof_as_type_list"]


def test_call_validation_follows_refs_nested_objects_arrays_of_objects_and_integer_enums():
    tool = normalise_tool(BOOKING)
    ok = {"lead": {"name": "Ana", "age": None, "seat": "aisle"}, "others": [], "nights": 2, "budget": None,
          "comment": "late check-in"}
    assert call_errors(tool, ok) == []
    for bad, where in [({**ok, "nights": 3}, "nights"), ({**ok, "nights": 2.5}, "nights"),
                       ({**ok, "lead": {**ok["lead"], "seat": "floor"}}, "lead.seat"),
                       ({**ok, "others": [{"name": "Bo", "age": "ten", "seat": "aisle"}]}, "others.0.age"),
                       ({**ok, "others": [{"name": "Bo", "age": 9}]}, "others.0"),
                       ({**ok, "budget": "cheap"}, "budget")]:
        errs = call_errors(tool, bad)
        assert errs and errs[0].startswith(where + ":"), (where, errs)


@pytest.mark.parametrize("schema, field, message", [
    ({"type": "object", "properties": {"x": {"$ref": "https://example.com/s.json"}}},
     "tools[0].function.parameters.properties.x.$ref", "is not local"),
    ({"type": "object", "$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}},
      "properties": {"head": {"$ref": "#/$defs/node"}}},
     "tools[0].function.parameters.properties.head.properties.next.$ref", "is recursive"),
    ({"type": "object", "properties": {"x": {"$ref": "#/$defs/missing"}}},
     "tools[0].function.parameters.properties.x.$ref", "points to nothing"),
])
def test_unsupported_refs_are_named_with_their_path(schema, field, message):
    with pytest.raises(InvalidInput) as e:
        normalise_tool({"name": "t", "parameters": schema}, field="tools[0]")
    assert e.value.field == field and message in e.value.detail


@pytest.mark.parametrize("text, schema, optional", [
    ("str", {"type": "string"}, False), ("int, optional", {"type": "integer"}, True),
    ("List[str]", {"type": "array", "items": {"type": "string"}}, False),
    ("List[Dict[str, Any]]", {"type": "array", "items": {"type": "object"}}, False),
    ("Optional[float]", {"type": "number"}, True), ("Dict[str, int], optional", {"type": "object"}, True),
    ("bool, default=False", {"type": "boolean"}, True), ("Any", None, False), ("Union[int, str]", None, False),
])
def test_xlam_type_strings(text, schema, optional):
    assert python_type(text) == (schema, optional)


def test_the_generator_fills_refs_nested_objects_arrays_of_objects_and_enums():
    examples, _ = generate_examples([BOOKING], 30, "medium", seed=3)
    tool = normalise_tool(BOOKING)
    calls = [c["function"]["arguments"] for ex in examples for m in ex["messages"] for c in m.get("tool_calls") or ()
             if c["function"]["name"] == "book_trip"]
    assert calls and all(call_errors(tool, a) == [] for a in calls)
    assert {a["nights"] for a in calls} <= {1, 2, 7}
    assert any(a["others"] for a in calls) and all(isinstance(a["lead"]["seat"], str) for a in calls)


def test_schema_check_does_a_dry_run_and_names_what_it_cannot_follow():
    check = check_tool_schemas(json.dumps(BOOKING), "booking.json")
    assert check["generated"] == 12 and check["constructs"] == {}
    assert check["not_rendered"]["book_trip"] == ["lead: the fields of a nested object (age, name, seat)",
                                                  "others: the fields of its array items (age, name, seat)"]
    impossible = {"name": "pick", "parameters": {"type": "object", "required": ["code"], "properties": {
        "code": {"allOf": [{"type": "string", "pattern": "^[A-Z]{3}$"}, {"type": "string", "pattern": "^Q"}]}}}}
    with pytest.raises(InvalidConfig, match=r"dry-run generation failed.*pick: parameters.properties.code.allOf"):
        check_tool_schemas(json.dumps(impossible), "pick.json")


def test_an_example_with_a_ref_schema_is_stored_self_contained():
    ex = normalise_example({"tools": [BOOKING], "messages": [
        {"role": "user", "content": "Book 2 nights for Ana, window seat"},
        {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "book_trip", "arguments": {
            "lead": {"name": "Ana", "age": 30, "seat": "window"}, "others": [], "nights": 2, "budget": None,
            "comment": None}}}]}]})
    assert "$ref" not in json.dumps(ex["tools"])
    assert ex["meta"]["fixups"] == ["local_refs_inlined", "nullable_anyof_as_type_list"]


@pytest.mark.parametrize("params, flat", [
    ({"q": {"type": "str"}, "type": {"description": "kind of item", "type": "str"}}, True),
    ({"q": {"default": 3}}, True),
    ({"type": "object", "properties": {"q": {"type": "string"}}}, False),
    ({"properties": {"q": {"type": "string"}}}, False),
    ({"$defs": {"x": {"type": "string"}}, "q": {"$ref": "#/$defs/x"}}, False),
])
def test_flat_parameter_dicts_are_told_from_json_schema(params, flat):
    from nursery_core.schemas import is_flat_parameters
    assert is_flat_parameters(params) is flat


def test_a_flat_dict_with_a_parameter_called_type_keeps_it():
    tool = normalise_tool({"name": "find", "parameters": {
        "type": {"description": "kind of item", "type": "str"}, "limit": {"type": "int, optional", "default": 5}}})
    params = tool["function"]["parameters"]
    assert params["properties"]["type"] == {"type": "string", "description": "kind of item"}
    assert params["required"] == ["type"] and params["properties"]["limit"]["default"] == 5


def test_guarded_decoding_compiles_such_a_schema():
    import importlib.util
    from conftest import require
    require(importlib.util.find_spec("llguidance") is not None, "llguidance")
    from nursery_core.guard.grammar import compile_error, tool_grammar
    grammar, relaxed = tool_grammar([normalise_tool(BOOKING)])
    assert compile_error(grammar) is None and relaxed == []


def test_a_union_the_list_cannot_spell_is_named_and_still_generated():
    union = {"name": "tag", "description": "Tag", "parameters": {"type": "object", "required": ["v"], "properties": {
        "v": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 9}, {"type": "string", "enum": ["x", "y"]}]}}}}
    check = check_tool_schemas(json.dumps(union), "u.json")
    assert check["constructs"] == {} and check["generated"] == 12
    assert check["not_rendered"] == {"tag": ["v: its type (written as anyOf/oneOf/allOf, which the list does not "
                                             "spell out)"]}


def test_nested_objects_that_list_their_fields_are_closed_as_the_checker_and_guard_read_them():
    from nursery_core.records import call_errors
    from nursery_core.schemas import close_nested_objects

    params = {"type": "object", "properties": {
        "address": {"type": "object", "properties": {"city": {"type": "string"}}},
        "tags": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}}},
        "extra": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": True},
        "free": {"type": "object"}}}
    tool = {"type": "function", "function": {"name": "save", "parameters": params}}
    closed = close_nested_objects(params)
    assert "additionalProperties" not in closed  # the top level is the caller's to word
    assert closed["properties"]["address"]["additionalProperties"] is False
    assert closed["properties"]["tags"]["items"]["additionalProperties"] is False
    assert closed["properties"]["extra"]["additionalProperties"] is True and "additionalProperties" not in closed["properties"]["free"]
    assert "additionalProperties" not in params["properties"]["address"]  # the stored schema is not changed
    errs = call_errors(tool, {"address": {"city": "Oslo", "zip": "0150"}, "tags": [{"k": "a", "v": 1}],
                              "extra": {"b": 1}, "free": {"anything": 1}})
    assert len(errs) == 2, errs
    assert errs[0].startswith("address: ") and "'zip'" in errs[0]
    assert errs[1].startswith("tags.0: ") and "'v'" in errs[1]
    assert call_errors(tool, {"address": {"city": "Oslo"}, "tags": [{"k": "a"}]}) == []


def test_schema_conversions_are_reported_by_generation_and_golden_import_and_strict_is_kept(nursery_home, tmp_path):
    import json

    from nursery_core.data.generator import nursery_generate_data
    from nursery_core.data.tools import load_tool_schemas
    from nursery_core.golden import nursery_golden_import

    tool = {"type": "function", "function": {"name": "book_room", "description": "Book a meeting room.", "strict": True,
            "parameters": {"type": "object", "$defs": {"Room": {"type": "string", "enum": ["oak", "pine"]}},
                           "properties": {"room": {"$ref": "#/$defs/Room"},
                                          "note": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
                           "required": ["room"]}}}
    schema_file = tmp_path / "tool.json"
    schema_file.write_text(json.dumps(tool))
    tools = load_tool_schemas(schema_file)  # the CLI's path: tools normalised first, then handed on
    assert tools[0]["function"]["strict"] is True
    ds = nursery_generate_data(tools, 12, "low", name="conv")
    assert ds["report"]["schema_conversions"] == {"book_room": ["local_refs_inlined", "nullable_anyof_as_type_list"]}
    assert any("book_room" in n and "$ref" in n for n in ds["report"]["notes"])
    golden = tmp_path / "g.jsonl"
    golden.write_text(json.dumps({"request": "book the oak room please", "tools": [tool],
                                  "calls": [{"name": "book_room", "arguments": {"room": "oak"}}]}) + "\n")
    out = nursery_golden_import(golden, name="gconv")
    assert out["schema_conversions"] == {"book_room": ["local_refs_inlined", "nullable_anyof_as_type_list"]}
    plain = nursery_generate_data(["calculator"], 12, "low", name="plain")
    assert plain["report"]["schema_conversions"] == {}
