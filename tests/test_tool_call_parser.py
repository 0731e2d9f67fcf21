"""The tool-call parser: Hermes blocks, the legacy name({json}) form, whitespace tolerance, strict JSON."""
from nursery_core.evaluation.parser import parse_tool_calls
from nursery_core.training.rendering import format_calls


def test_rendered_calls_round_trip():
    calls = [{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}},
             {"name": "math.factorial", "arguments": {"n": 5}}]
    r = parse_tool_calls(format_calls(calls))
    assert r.format_ok and r.errors == [] and r.calls == calls and r.blocks == 2


def test_whitespace_and_surrounding_text_are_tolerated():
    text = 'Sure!\n<tool_call>   \n\n {"name": "f", "arguments": {"a": 1}}  \n</tool_call>\n thanks'
    r = parse_tool_calls(text)
    assert r.format_ok and r.calls == [{"name": "f", "arguments": {"a": 1}}]
    compact = '<tool_call>{"name":"f","arguments":{}}</tool_call><tool_call>{"name":"g","arguments":{}}</tool_call>'
    assert [c["name"] for c in parse_tool_calls(compact).calls] == ["f", "g"]


def test_missing_final_close_tag_is_tolerated_but_not_a_middle_one():
    r = parse_tool_calls('<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n')
    assert r.format_ok and r.calls == [{"name": "f", "arguments": {"a": 1}}]
    r = parse_tool_calls('<tool_call>{"name": "f", "arguments": {}}<tool_call>{"name": "g", "arguments": {}}'
                         '</tool_call>')
    assert not r.format_ok and "not closed" in r.errors[0]


def test_plain_text_is_no_call_and_valid():
    r = parse_tool_calls("The capital of France is Paris.")
    assert r.calls == [] and r.format_ok and not r.attempted_call
    assert parse_tool_calls("").calls == [] and parse_tool_calls(None).format_ok


def test_strict_json():
    for bad in ["{'name': 'f', 'arguments': {}}",            # Python repr, not JSON
                '{"name": "f", "arguments": {"a": 1,}}',       # trailing comma
                '{"name": "f", "arguments": {"a": 1}',         # truncated
                '{"name": "f", "arguments": "{\\"a\\": 1}"}',  # arguments as a string
                '{"arguments": {"a": 1}}',                     # no name
                '{"name": "f"}',                               # no arguments
                '["f", {}]',                                   # not an object
                '{"name": "f", "arguments": {}, "extra": 1}',  # unexpected key
                '']:
        r = parse_tool_calls(f"<tool_call>\n{bad}\n</tool_call>")
        assert not r.format_ok and r.calls == [] and r.attempted_call and r.errors, bad


def test_one_bad_block_keeps_the_good_ones():
    r = parse_tool_calls('<tool_call>{"name": "f", "arguments": {}}</tool_call>\n<tool_call>{oops}</tool_call>')
    assert not r.format_ok and r.calls == [{"name": "f", "arguments": {}}] and r.blocks == 2
    assert r.errors[0].startswith("block 2")


def test_legacy_form():
    r = parse_tool_calls('<tool_call>memory_store({"content": "garage code 4821"})</tool_call>')
    assert r.format_ok and r.calls == [{"name": "memory_store", "arguments": {"content": "garage code 4821"}}]
    assert parse_tool_calls("<tool_call>list_files()</tool_call>").calls == [{"name": "list_files", "arguments": {}}]
    assert parse_tool_calls('<tool_call> spotify.play ( {"artist": "X"} ) </tool_call>').calls[0]["name"] == "spotify.play"
    bad = parse_tool_calls("<tool_call>f({'a': 1})</tool_call>")
    assert not bad.format_ok and bad.calls == []
    assert not parse_tool_calls("<tool_call>f([1, 2])</tool_call>").format_ok


def test_stray_close_tag_is_a_format_error():
    r = parse_tool_calls('oops</tool_call>')
    assert not r.format_ok and r.calls == []
    r = parse_tool_calls('<tool_call>{"name": "f", "arguments": {}}</tool_call></tool_call>')
    assert not r.format_ok and len(r.calls) == 1
