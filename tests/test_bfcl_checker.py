"""The BFCL-style AST checker, rule by rule, positive and negative (reference §2.3)."""
import pytest

from nursery_core.evaluation.checker import (check_calls, gold_from_possible_answer, possible_answer_from_gold,
                                             standardize_string)
from nursery_core.records import normalise_tool


def tool(name, properties, required=()):
    return normalise_tool({"name": name, "description": "d", "parameters": {
        "type": "dict", "properties": properties, "required": list(required)}})


TRI = tool("calculate_triangle_area", {"base": {"type": "integer"}, "height": {"type": "integer"},
                                       "unit": {"type": "string"}}, ["base", "height"])
TRI_ANSWER = [{"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""]}}]


def ok(tools, calls, answer, **kw):
    return check_calls(tools, calls, answer, **kw).valid


def call(name, **args):
    return {"name": name, "arguments": args}


def test_exact_function_name():
    assert ok([TRI], [call("calculate_triangle_area", base=10, height=5)], TRI_ANSWER)
    r = check_calls([TRI], [call("calculate_triangle", base=10, height=5)], TRI_ANSWER)
    assert not r.valid and r.error_type == "wrong_func_name"
    assert not ok([TRI], [call("Calculate_Triangle_Area", base=10, height=5)], TRI_ANSWER)


def test_dotted_names_are_kept_as_is():
    t = tool("math.factorial", {"number": {"type": "integer"}}, ["number"])
    answer = [{"math.factorial": {"number": [5]}}]
    assert ok([t], [call("math.factorial", number=5)], answer)
    assert not ok([t], [call("math_factorial", number=5)], answer)


def test_required_parameters_must_be_present():
    r = check_calls([TRI], [call("calculate_triangle_area", base=10)], TRI_ANSWER)
    assert not r.valid and r.error_type == "missing_required" and "height" in r.error


def test_no_unknown_parameters():
    r = check_calls([TRI], [call("calculate_triangle_area", base=10, height=5, colour="red")], TRI_ANSWER)
    assert not r.valid and r.error_type == "unexpected_param"
    # in the schema but not in the possible answer: also unexpected
    t = tool("f", {"a": {"type": "integer"}, "b": {"type": "integer"}}, ["a"])
    assert not ok([t], [call("f", a=1, b=2)], [{"f": {"a": [1]}}])


@pytest.mark.parametrize("declared,value,answer,expected", [
    ("integer", 5, [5], True),
    ("integer", "5", [5], False),        # a string is not an int
    ("integer", True, [1], False),       # bool is not int
    ("integer", 5.0, [5], False),        # no float → int
    ("float", 5, [5.0], True),           # int → float promotion
    ("float", 5.0, [5.0], True),
    ("float", True, [1.0], False),
    ("float", "5.0", [5.0], False),
    ("boolean", True, [True], True),
    ("boolean", 1, [True], False),
    ("boolean", "true", [True], False),
    ("string", "5", ["5"], True),
    ("string", 5, ["5"], False),
    ("array", [1, 2], [[1, 2]], True),
    ("array", "1,2", [[1, 2]], False),
    ("dict", {"k": "v"}, [{"k": ["v"]}], True),
    ("dict", "k=v", [{"k": ["v"]}], False),
])
def test_strict_types(declared, value, answer, expected):
    t = tool("f", {"p": {"type": declared, **({"items": {"type": "integer"}} if declared == "array" else {})}}, ["p"])
    assert ok([t], [call("f", p=value)], [{"f": {"p": answer}}]) is expected


def test_nested_array_item_types():
    t = tool("f", {"p": {"type": "array", "items": {"type": "integer"}}}, ["p"])
    assert ok([t], [call("f", p=[3, 5])], [{"f": {"p": [[3, 5]]}}])
    r = check_calls([t], [call("f", p=["3", "5"])], [{"f": {"p": [[3, 5]]}}])
    assert not r.valid and r.error_type == "type_error"
    assert not ok([t], [call("f", p=[True, 5])], [{"f": {"p": [[1, 5]]}}])


def test_variable_escape_hatch_accepts_the_answers_own_type():
    # BFCL writes a variable name as a string answer for a typed parameter
    t = tool("f", {"n": {"type": "integer"}}, ["n"])
    assert ok([t], [call("f", n="count")], [{"f": {"n": ["count"]}}])
    assert not ok([t], [call("f", n="other")], [{"f": {"n": ["count"]}}])


def test_string_standardisation():
    assert standardize_string("April 1, 2024") == standardize_string("april 1 2024")
    assert standardize_string("New-York_City.") == "newyorkcity"
    assert standardize_string("it's") == 'it"s'
    t = tool("f", {"d": {"type": "string"}}, ["d"])
    answer = [{"f": {"d": ["April 1, 2024"]}}]
    for good in ["april 1 2024", "APRIL 1,2024", "April-1-2024", "april_1/2024*"]:
        assert ok([t], [call("f", d=good)], answer), good
    for bad in ["April 2, 2024", "1 April 2024", "April 1 2024!"]:
        assert not ok([t], [call("f", d=bad)], answer), bad
    quote = [{"f": {"d": ["say 'hi'"]}}]
    assert ok([t], [call("f", d='say "hi"')], quote)


def test_any_of_several_alternatives():
    t = tool("f", {"unit": {"type": "string"}}, ["unit"])
    answer = [{"f": {"unit": ["celsius", "c"]}}]
    assert ok([t], [call("f", unit="Celsius")], answer) and ok([t], [call("f", unit="C")], answer)
    assert not ok([t], [call("f", unit="fahrenheit")], answer)


def test_lists_are_ordered_and_standardised():
    t = tool("f", {"p": {"type": "array", "items": {"type": "string"}}}, ["p"])
    answer = [{"f": {"p": [["New York", "Los Angeles"]]}}]
    assert ok([t], [call("f", p=["new york", "los-angeles"])], answer)
    assert not ok([t], [call("f", p=["Los Angeles", "New York"])], answer)
    assert not ok([t], [call("f", p=["New York"])], answer)
    n = tool("g", {"p": {"type": "array", "items": {"type": "integer"}}}, ["p"])
    assert not ok([n], [call("g", p=[5, 3])], [{"g": {"p": [[3, 5]]}}])


def test_dict_rules():
    t = tool("f", {"opts": {"type": "dict", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}},
             ["opts"])
    answer = [{"f": {"opts": [{"a": ["Yes", "y"], "b": [1, ""]}]}}]
    assert ok([t], [call("f", opts={"a": "yes", "b": 1})], answer)
    assert ok([t], [call("f", opts={"a": "Y"})], answer)                 # b may be omitted: "" listed
    assert not ok([t], [call("f", opts={"b": 1})], answer)               # a may not
    assert not ok([t], [call("f", opts={"a": "no", "b": 1})], answer)    # wrong value
    assert not ok([t], [call("f", opts={"a": "yes", "c": 1})], answer)   # key not in the answer


def test_list_of_dicts_rules():
    t = tool("f", {"items": {"type": "array", "items": {"type": "dict"}}}, ["items"])
    answer = [{"f": {"items": [[{"n": ["apple"], "q": [2]}, {"n": ["pear"], "q": [1, ""]}]]}}]
    assert ok([t], [call("f", items=[{"n": "Apple", "q": 2}, {"n": "pear"}])], answer)
    assert not ok([t], [call("f", items=[{"n": "pear"}, {"n": "Apple", "q": 2}])], answer)   # order matters
    assert not ok([t], [call("f", items=[{"n": "Apple", "q": 2}])], answer)                 # length
    assert not ok([t], [call("f", items=[{"n": "Apple", "q": 3}, {"n": "pear"}])], answer)  # value


def test_omission_only_when_empty_string_is_acceptable():
    assert ok([TRI], [call("calculate_triangle_area", base=10, height=5)], TRI_ANSWER)
    assert ok([TRI], [call("calculate_triangle_area", base=10, height=5, unit="Units")], TRI_ANSWER)
    strict = [{"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units"]}}]
    r = check_calls([TRI], [call("calculate_triangle_area", base=10, height=5)], strict)
    assert not r.valid and r.error_type == "missing_optional"   # optional in the doc, but not omittable here


def test_possible_answer_from_gold_calls():
    t = tool("send", {"to": {"type": "string"}, "cc": {"type": "string"},
                      "priority": {"type": "string", "default": "normal"},
                      "retries": {"type": "integer", "default": 3}}, ["to"])
    gold = [call("send", to="ana@x.org", retries=3)]
    answer = possible_answer_from_gold(gold, [t])
    assert answer == [{"send": {"to": ["ana@x.org"], "retries": [3, ""], "cc": [""], "priority": ["", "normal"]}}]
    assert ok([t], [call("send", to="ana@x.org", retries=3)], answer)
    assert ok([t], [call("send", to="ana@x.org")], answer)                      # gold value is the default
    assert ok([t], [call("send", to="ana@x.org", priority="normal")], answer)   # explicit default
    assert not ok([t], [call("send", to="ana@x.org", priority="high")], answer)
    assert not ok([t], [call("send", to="ana@x.org", cc="bo@x.org")], answer)  # not asked for
    assert not ok([t], [call("send", to="ana@x.org", retries=4)], answer)
    assert not ok([t], [call("send", to="bo@x.org", retries=3)], answer)
    # a gold value that is not the default must be given
    gold2 = [call("send", to="ana@x.org", priority="high")]
    assert not ok([t], [call("send", to="ana@x.org")], possible_answer_from_gold(gold2, [t]))


def test_dict_gold_values_become_alternatives():
    t = tool("f", {"opts": {"type": "object"}, "rows": {"type": "array", "items": {"type": "object"}}},
             ["opts", "rows"])
    gold = [call("f", opts={"a": 1}, rows=[{"x": "A"}])]
    answer = possible_answer_from_gold(gold, [t])
    assert ok([t], [call("f", opts={"a": 1}, rows=[{"x": "a"}])], answer)
    assert not ok([t], [call("f", opts={"a": 2}, rows=[{"x": "a"}])], answer)
    assert gold_from_possible_answer(answer) == gold


def test_parallel_calls_match_regardless_of_order():
    play = tool("spotify.play", {"artist": {"type": "string"}, "duration": {"type": "integer"}},
                ["artist", "duration"])
    answer = [{"spotify.play": {"artist": ["Taylor Swift"], "duration": [20]}},
              {"spotify.play": {"artist": ["Maroon 5"], "duration": [15]}}]
    a, b = call("spotify.play", artist="Taylor Swift", duration=20), call("spotify.play", artist="Maroon 5", duration=15)
    assert ok([play], [a, b], answer) and ok([play], [b, a], answer)
    r = check_calls([play], [a], answer)
    assert not r.valid and r.error_type == "wrong_count"
    assert not ok([play], [a, b, a], answer)                       # no extra calls
    assert not ok([play], [a, a], answer)                          # each output call used once
    assert not ok([play], [a, call("spotify.play", artist="Maroon 5", duration=16)], answer)


def test_parallel_multiple_functions():
    s = tool("sum", {"n": {"type": "integer"}}, ["n"])
    p = tool("product", {"n": {"type": "integer"}}, ["n"])
    answer = [{"sum": {"n": [3]}}, {"product": {"n": [5]}}]
    assert ok([s, p], [call("product", n=5), call("sum", n=3)], answer)
    assert not ok([s, p], [call("product", n=3), call("sum", n=5)], answer)


def test_multiple_picks_the_right_function_among_several():
    other = tool("calculate_circle_area", {"radius": {"type": "integer"}}, ["radius"])
    assert ok([other, TRI], [call("calculate_triangle_area", base=10, height=5)], TRI_ANSWER)
    assert not ok([other, TRI], [call("calculate_circle_area", radius=10)], TRI_ANSWER)
    assert not ok([other, TRI], [call("calculate_triangle_area", base=10, height=5),
                                 call("calculate_circle_area", radius=1)], TRI_ANSWER)


def test_no_call_passes_only_without_a_call():
    assert ok([TRI], [], [])
    r = check_calls([TRI], [call("calculate_triangle_area", base=1, height=1)], [])
    assert not r.valid and r.error_type == "irrelevance"
    # a malformed <tool_call> block is an attempt to call too
    assert not ok([TRI], [], [], attempted_call=True, format_ok=False)
    # an example that expects a call fails without one
    assert not ok([TRI], [], TRI_ANSWER)


def test_undecodable_output_fails_a_call_example():
    good = [call("calculate_triangle_area", base=10, height=5)]
    assert ok([TRI], good, TRI_ANSWER, attempted_call=True, format_ok=True)
    r = check_calls([TRI], good, TRI_ANSWER, attempted_call=True, format_ok=False)
    assert not r.valid and r.error_type == "format_error"


def test_value_check_for_numbers_and_bools():
    t = tool("f", {"x": {"type": "float"}, "flag": {"type": "boolean"}}, ["x"])
    answer = [{"f": {"x": [2.5, 3.0], "flag": [False, ""]}}]
    assert ok([t], [call("f", x=3)], answer)
    assert ok([t], [call("f", x=2.5, flag=False)], answer)
    assert not ok([t], [call("f", x=2.4)], answer)
    assert not ok([t], [call("f", x=2.5, flag=True)], answer)


# ---------------------------------------------------------------- parity with BFCL's ast_checker.type_checker
MEAN = tool("stats.mean", {"values": {"type": "array", "items": {"type": "float"}},
                           "weights": {"type": "dict"}, "scale": {"type": "float"}}, ["values"])


@pytest.mark.parametrize("values, answer, expected", [
    ([1.0, 2.0, 4.0], [[1.0, 2.0, 4.0]], True),
    ([1, 2, 4], [[1.0, 2.0, 4.0]], False),  # no int → float promotion inside an array (BFCL: type_error:nested)
    ([1, 2.0, 4.0], [[1.0, 2.0, 4.0]], False),
    ([1, 2, 4], [[1, 2, 4]], True),  # the answer itself is written with ints: BFCL's variable escape
    ([1, 2, 4], [[1.0, 2.0, 4.0], ""], True),  # "" among the answers does not constrain items (as BFCL)
])
def test_array_items_are_typed_strictly_as_bfcl_does(values, answer, expected):
    r = check_calls([MEAN], [call("stats.mean", values=values)], [{"stats.mean": {"values": answer}}])
    assert r.valid is expected
    if not expected:
        assert r.error_type == "type_error" and "nested type check failed" in r.error


def test_top_level_ints_are_promoted_and_dict_values_compared_by_value_as_bfcl_does():
    answer = [{"stats.mean": {"values": [[1.0]], "scale": [2.0], "weights": [{"a": [1.0]}]}}]
    assert ok([MEAN], [call("stats.mean", values=[1.0], scale=2, weights={"a": 1})], answer)
    r = check_calls([MEAN], [call("stats.mean", values=[1.0], scale="2", weights={"a": 1})], answer)
    assert not r.valid and r.error_type == "type_error"
