"""Imports never change data silently: turn order, training weights, supplied schemas, no internal structures
as text, strict canonical JSON; every transformation counted by reason; a refusal leaves the store and the
datasets folder byte for byte as they were. Fixtures are written here (one per kind of real-world fault)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from nursery_core import paths
from nursery_core.data.importers import extract_examples, nursery_extract_conversations
from nursery_core.datasets import load_examples, nursery_import_dataset
from nursery_core.errors import InvalidInput
from nursery_core.records import TRANSFORMATIONS

SHARED_CASES = Path(__file__).resolve().parent.parent.parent / "shared" / "cases" / "real-world"


def write(tmp_path: Path, name: str, data) -> Path:
    p = tmp_path / name
    if isinstance(data, str):
        p.write_text(data, encoding="utf-8")
    elif name.endswith(".jsonl"):
        p.write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")
    else:
        p.write_text(json.dumps(data), encoding="utf-8")
    return p


# ------------------------------------------------------------------------------------- ChatGPT exports
def _node(nid, parent, role, content, children, recipient="all", weight=1.0, name=None, hidden=False):
    return {"id": nid, "parent": parent, "children": children, "message": {
        "id": nid, "author": {"role": role, "name": name, "metadata": {}}, "content": content,
        "weight": weight, "recipient": recipient,
        "metadata": {"is_visually_hidden_from_conversation": True} if hidden else {}}}


def chatgpt_two_lookups(reply_weight=0.0, hide_first_reply=False, second_reply=None):
    """user → python call → output → python call → output → answer; ChatGPT gives the outputs weight 0."""
    second_reply = second_reply or {"content_type": "execution_output", "text": "84"}
    chain = [
        ("u", "user", {"content_type": "text", "parts": ["What is 6*7, then doubled?"]}, {}),
        ("c1", "assistant", {"content_type": "code", "language": "python", "text": "6*7"}, {"recipient": "python"}),
        ("r1", "tool", {"content_type": "execution_output", "text": "42"},
         {"weight": reply_weight, "name": "python", "hidden": hide_first_reply}),
        ("c2", "assistant", {"content_type": "code", "language": "python", "text": "42*2"}, {"recipient": "python"}),
        ("r2", "tool", second_reply, {"weight": reply_weight, "name": "python"}),
        ("a", "assistant", {"content_type": "text", "parts": ["6*7 is 42; doubled, 84."]}, {}),
    ]
    mapping = {"root": {"id": "root", "parent": None, "children": ["u"], "message": None}}
    parent = "root"
    for i, (nid, role, content, kw) in enumerate(chain):
        nxt = [chain[i + 1][0]] if i + 1 < len(chain) else []
        mapping[nid] = _node(nid, parent, role, content, nxt, **kw)
        parent = nid
    return [{"title": "maths", "mapping": mapping, "current_node": "a"}]


def test_chatgpt_weight_0_tool_replies_keep_call_result_call_result_answer(tmp_path):
    exs, rep, _ = extract_examples(write(tmp_path, "c.json", chatgpt_two_lookups()))
    assert rep["examples"] == 1 and not rep["skipped"]
    msgs = exs[0]["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    first, second = msgs[1]["tool_calls"], msgs[3]["tool_calls"]
    assert len(first) == len(second) == 1  # sequential, never merged into one parallel turn
    assert first[0]["function"]["arguments"] == {"code": "6*7"} and msgs[2]["content"] == "42"
    assert msgs[2]["tool_call_id"] == first[0]["id"] and msgs[4]["tool_call_id"] == second[0]["id"]
    assert exs[0]["meta"]["category"] == "multi_turn"
    assert not any("weight" in m for m in msgs)  # ChatGPT's weight is not a training weight


def test_chatgpt_missing_reply_between_calls_skips_instead_of_merging(tmp_path):
    exs, rep, _ = extract_examples(write(tmp_path, "c.json", chatgpt_two_lookups(hide_first_reply=True)))
    assert exs == []
    (reason, n), = rep["skipped"].items()
    assert n == 1 and "reply is missing" in reason


def test_chatgpt_empty_tool_reply_is_an_empty_message_never_the_content_dict(tmp_path):
    empty = {"content_type": "tether_browsing_display", "result": "", "summary": "", "assets": None}
    exs, rep, _ = extract_examples(write(tmp_path, "c.json", chatgpt_two_lookups(second_reply=empty)))
    assert exs[0]["messages"][4]["content"] == ""
    assert rep["transformations"]["empty_tool_reply_kept"] == 1
    assert "content_type" not in json.dumps(exs[0]["messages"])


def test_chatgpt_tool_reply_without_text_is_skipped_with_its_content_type(tmp_path):
    image_only = {"content_type": "image_asset_pointer", "asset_pointer": "file-service://x"}
    exs, rep, _ = extract_examples(write(tmp_path, "c.json", chatgpt_two_lookups(second_reply=image_only)))
    assert exs == [] and rep["skipped"] == {"a tool reply of content type 'image_asset_pointer' that holds no text": 1}


# ------------------------------------------------------------------------------ OpenAI fine-tuning JSONL
LOOKUP = {"type": "function", "function": {"name": "lookup_order", "description": "Find an order",
                                           "parameters": {"type": "object", "properties": {
                                               "order_id": {"type": "string"}}, "required": ["order_id"]}}}


def openai_row(weight_of_first=0, user_weight=None):
    user = {"role": "user", "content": "Where is order A17?"}
    if user_weight is not None:
        user["weight"] = user_weight
    return {"tools": [LOOKUP], "messages": [
        user,
        {"role": "assistant", "content": "It shipped yesterday.", "weight": weight_of_first},
        {"role": "user", "content": "Check it with the tool please."},
        {"role": "assistant", "tool_calls": [{"id": "k1", "type": "function", "function": {
            "name": "lookup_order", "arguments": json.dumps({"order_id": "A17"})}}], "weight": 1}]}


def test_openai_weight_0_turn_stays_as_context_and_is_stored_and_reported(tmp_path, store):
    src = write(tmp_path, "ft.jsonl", [openai_row(), openai_row(weight_of_first=1)])
    row = nursery_extract_conversations(src, name="ft")
    assert row["report"]["transformations"]["weight_0_turn_kept_as_context"] == 1
    stored = load_examples("ft")
    weighted = [m for ex in stored for m in ex["messages"] if m.get("weight") == 0]
    assert len(weighted) == 1 and weighted[0]["content"] == "It shipped yesterday."
    assert sum(len(ex["messages"]) for ex in stored) == 8  # nothing dropped
    from nursery_core.training.rendering import trained
    assert [trained(m) for m in stored[0]["messages"] if m["role"] == "assistant"].count(False) <= 1


def test_weight_0_everywhere_is_skipped_and_the_category_follows_the_trained_turns(tmp_path):
    """An example whose every answer has weight 0 teaches nothing and has no reference answer: skipped with the
    reason. With only the call turn at weight 0, the trained (and scored) turn is the text answer: no_call."""
    all_zero = openai_row()
    all_zero["messages"][-1]["weight"] = 0
    call_zero = {"tools": [LOOKUP], "messages": [
        {"role": "user", "content": "Where is order A17?"},
        {"role": "assistant", "tool_calls": [{"id": "k1", "type": "function", "function": {
            "name": "lookup_order", "arguments": json.dumps({"order_id": "A17"})}}], "weight": 0},
        {"role": "tool", "tool_call_id": "k1", "content": "shipped"},
        {"role": "assistant", "content": "It shipped.", "weight": 1}]}
    exs, rep, _ = extract_examples(write(tmp_path, "ft.jsonl", [all_zero, call_zero]))
    assert list(rep["skipped"]) == ["every assistant turn has weight 0: nothing is left to train on or to score"]
    assert len(exs) == 1 and exs[0]["meta"]["category"] == "no_call"
    from nursery_core.training.rendering import eval_prompts
    assert eval_prompts(exs[0])[1] == []


def test_openai_weights_other_than_0_or_1_and_on_users_are_reported(tmp_path):
    exs, rep, _ = extract_examples(write(tmp_path, "ft.jsonl", [openai_row(weight_of_first=0.5),
                                                                openai_row(weight_of_first=1, user_weight=0)]))
    assert rep["skipped"] == {"a weight of 0.5 (OpenAI allows 0 or 1)": 1}
    assert rep["transformations"]["weight_on_non_assistant_ignored"] == 1
    assert not any("weight" in m for m in exs[0]["messages"])


def test_canonical_weight_is_checked(tmp_path):
    ex = {"tools": [LOOKUP], "messages": [{"role": "user", "content": "hi", "weight": 0},
                                          {"role": "assistant", "content": "hello"}]}
    with pytest.raises(InvalidInput, match=r"w.jsonl:1, field 'messages\[0\].weight': a training weight applies"):
        nursery_import_dataset(write(tmp_path, "w.jsonl", [ex]))
    ex["messages"] = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello", "weight": 2}]
    with pytest.raises(InvalidInput, match=r"field 'messages\[1\].weight': weight must be 0"):
        nursery_import_dataset(write(tmp_path, "w2.jsonl", [ex]))


# -------------------------------------------------------------------------------- supplied schemas
def test_xlam_flat_parameters_become_json_schema_and_bad_calls_are_refused_with_line_and_field(tmp_path, store):
    tool = {"name": "find_flights", "description": "Find flights.", "parameters": {
        "origin": {"description": "IATA code", "type": "str", "default": "LHR"},
        "max_stops": {"description": "Stops", "type": "int, optional", "default": 1},
        "airlines": {"description": "Allowed airlines", "type": "List[str], optional"}}}

    def row(args):
        return {"tools": [tool], "messages": [{"role": "user", "content": "Flights from Oslo?"}, {
            "role": "assistant", "tool_calls": [{"type": "function", "function": {
                "name": "find_flights", "arguments": json.dumps(args)}}]}]}

    good = row({"origin": "OSL", "max_stops": 0, "airlines": ["SK"]})
    exs, rep, _ = extract_examples(write(tmp_path, "x.jsonl", [good]))
    params = exs[0]["tools"][0]["function"]["parameters"]
    assert params == {"type": "object", "required": ["origin"], "properties": {
        "origin": {"type": "string", "description": "IATA code", "default": "LHR"},
        "max_stops": {"type": "integer", "description": "Stops", "default": 1},
        "airlines": {"type": "array", "items": {"type": "string"}, "description": "Allowed airlines"}}}
    assert rep["transformations"]["xlam_parameters_converted"] == 1
    bad_type = row({"origin": "OSL", "max_stops": "two"})
    invented = row({"origin": "OSL", "cabin": "first"})
    src = write(tmp_path, "bad.jsonl", [good, bad_type, invented])
    exs, rep, _ = extract_examples(src)
    assert rep["examples"] == 1 and rep["skipped"] == {"a tool call does not match its tool's schema": 2}
    details = {r["ref"]: r["detail"] for r in rep["skipped_refs"]}
    assert "max_stops: 'two' is not of type 'integer'" in details["line 2"]
    assert details["line 2"].startswith("field 'messages[1].tool_calls[0].function.arguments'")
    assert "cabin: unexpected argument" in details["line 3"]
    with pytest.raises(InvalidInput, match=r"first: line 1, field 'messages\[1\]\.tool_calls\[0\]\.function\.arguments'"):
        nursery_extract_conversations(write(tmp_path, "only_bad.jsonl", [bad_type, invented]))


def test_sharegpt_single_tool_object_is_a_one_item_list_not_inferred(tmp_path):
    tool = {"name": "convert_units", "description": "Convert a quantity",
            "parameters": {"type": "object", "properties": {"value": {"type": "number"}, "to": {"type": "string"}},
                           "required": ["value", "to"]}}
    rec = {"conversations": [
        {"from": "human", "value": "3 miles in km?"},
        {"from": "function_call", "value": json.dumps({"name": "convert_units", "arguments": {"value": 3, "to": "km"}})},
        {"from": "observation", "value": "4.83"}, {"from": "gpt", "value": "About 4.83 km."}]}
    for tools in (tool, json.dumps(tool)):
        exs, rep, _ = extract_examples(write(tmp_path, "s.json", [{**rec, "tools": tools}]))
        assert exs[0]["tools"][0]["function"]["description"] == "Convert a quantity"
        assert rep["inferred_tools"] == [] and "tool_schemas_inferred" not in rep["transformations"]
        assert rep["transformations"]["single_tool_object_listed"] == 1


def test_hermes_uses_the_tools_block_that_holds_json_not_the_tag_named_in_prose(tmp_path):
    tools = [{"type": "function", "function": {"name": n, "description": f"{n} description", "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}, "n": {"type": "integer"}}, "required": ["q"]}}}
        for n in ("alpha", "beta")]
    system = ("Call functions given in <tools></tools> tags; answer in <tool_call></tool_call>.\n<tools>\n"
              + "\n".join(json.dumps(t) for t in tools) + "\n</tools>")
    rec = {"conversations": [
        {"from": "system", "value": system}, {"from": "human", "value": "alpha x and beta y"},
        {"from": "gpt", "value": '<tool_call>\n{"name": "alpha", "arguments": {"q": "x"}}\n</tool_call>\n'
                                 '<tool_call>\n{"name": "beta", "arguments": {"q": "y"}}\n</tool_call>'},
        {"from": "tool", "value": '<tool_response>\n{"name": "beta", "content": "B"}\n</tool_response>\n'
                                  '<tool_response>\n{"name": "alpha", "content": "A"}\n</tool_response>'},
        {"from": "gpt", "value": "Done."}]}
    exs, rep, _ = extract_examples(write(tmp_path, "h.json", [rec]))
    ex = exs[0]
    assert [t["function"]["description"] for t in ex["tools"]] == ["alpha description", "beta description"]
    assert all(t["function"]["parameters"]["required"] == ["q"] for t in ex["tools"])
    assert rep["inferred_tools"] == [] and "tool_reply_matched_by_order" not in rep["transformations"]
    ids = {c["function"]["name"]: c["id"] for c in ex["messages"][1]["tool_calls"]}
    replies = {json.loads(m["content"])["name"]: m["tool_call_id"] for m in ex["messages"] if m["role"] == "tool"}
    assert replies == ids  # each reply paired with its own call, by the name it carries


# ------------------------------------------------------------------- no internal structure as text
def test_non_text_tool_results_become_json_or_text_never_a_python_repr(tmp_path):
    claude = [{"name": "c", "chat_messages": [
        {"sender": "human", "content": [{"type": "text", "text": "look up x"}]},
        {"sender": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "lookup", "input": {"key": "x"}},
            {"type": "tool_result", "tool_use_id": "t1", "content": [{"value": True, "rows": [1, 2]}]},
            {"type": "text", "text": "Found it."}]}]}]
    exs, rep, _ = extract_examples(write(tmp_path, "claude.json", claude))
    reply = exs[0]["messages"][2]["content"]
    assert json.loads(reply) == [{"value": True, "rows": [1, 2]}] and "True" not in reply
    assert rep["transformations"]["tool_reply_json_encoded"] == 1
    sharegpt = [{"tools": [LOOKUP], "conversations": [
        {"from": "human", "value": "order A1?"},
        {"from": "function_call", "value": json.dumps({"name": "lookup_order", "arguments": {"order_id": "A1"}})},
        {"from": "observation", "value": {"status": None, "ok": False}}, {"from": "gpt", "value": "Unknown."}]}]
    exs, rep, _ = extract_examples(write(tmp_path, "s.json", sharegpt))
    assert json.loads(exs[0]["messages"][2]["content"]) == {"status": None, "ok": False}
    assert rep["transformations"]["non_string_turn_json_encoded"] == 1


def test_image_blocks_are_counted_when_dropped_and_refused_in_canonical(tmp_path):
    rows = [{"tools": [LOOKUP], "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Order on this label?"},
                                     {"type": "image_url", "image_url": {"url": "data:x"}}]},
        {"role": "assistant", "tool_calls": [{"type": "function", "function": {
            "name": "lookup_order", "arguments": {"order_id": "B2"}}}]}]}]
    exs, rep, _ = extract_examples(write(tmp_path, "o.jsonl", rows))
    assert rep["transformations"]["non_text_blocks_dropped"] == 1
    with pytest.raises(InvalidInput, match=r"field 'messages\[0\]\.content\[1\]': content block of type 'image_url'"):
        nursery_import_dataset(write(tmp_path, "canon.jsonl", rows))


def test_every_transformation_code_has_a_description():
    from nursery_core.data.importers import common
    import inspect
    import re
    src = "".join(inspect.getsource(m) for m in (common,) + tuple(__import__(
        f"nursery_core.data.importers.{n}", fromlist=["x"]) for n in ("chatgpt", "claude", "openai", "sharegpt")))
    codes = set(re.findall(r'count\("([a-z0-9_]+)"', src))
    assert codes and codes <= set(TRANSFORMATIONS), codes - set(TRANSFORMATIONS)


# ------------------------------------------------------------------------- strict canonical JSON
GOOD_LINE = json.dumps({"tools": [LOOKUP], "messages": [
    {"role": "user", "content": "Where is A1?"},
    {"role": "assistant", "tool_calls": [{"type": "function", "function": {
        "name": "lookup_order", "arguments": {"order_id": "A1"}}}]}]})


def _snapshot(home: Path) -> dict[str, str]:
    """Every stored byte: the database, its write-ahead log, the datasets folder. SQLite's -shm file is left
    out: it is a shared-memory index of the WAL that readers update too, not stored data."""
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(home.rglob("*")) if p.is_file() and not p.name.endswith("-shm")}


@pytest.mark.parametrize("bad, field, message", [
    (GOOD_LINE.replace('"A1"}', '"A1", "qty": NaN}'), "messages[1].tool_calls[0].function.arguments.qty",
     "NaN is not a JSON number"),
    (GOOD_LINE.replace('"A1"}', '"A1", "qty": -Infinity}'), "messages[1].tool_calls[0].function.arguments.qty",
     "-Infinity is not a JSON number"),
    (GOOD_LINE.replace('{"order_id": "A1"}', '{"order_id": "A1", "order_id": "A2"}'),
     "messages[1].tool_calls[0].function.arguments", r"duplicate key\(s\) \['order_id'\]"),
    (GOOD_LINE.replace("Where is A1?", "Where is \\\\ud83d A1?".replace("\\\\", "\\")), "messages[0].content",
     "lone UTF-16 surrogate"),
])
def test_canonical_import_refuses_what_is_not_json_and_changes_nothing(tmp_path, store, nursery_home, bad, field,
                                                                       message):
    nursery_import_dataset(write(tmp_path, "ok.jsonl", GOOD_LINE + "\n"), name="kept")
    before = _snapshot(nursery_home)
    src = write(tmp_path, "bad.jsonl", GOOD_LINE + "\r\n\r\n" + bad + "\r\n")
    with pytest.raises(InvalidInput) as e:
        nursery_import_dataset(src, name="bad")
    assert e.value.file == str(src) and e.value.line == 3 and e.value.field == field
    assert pytest.importorskip("re").search(message, e.value.detail)
    assert _snapshot(nursery_home) == before
    assert [r["name"] for r in store.list_datasets()] == ["kept"]


def test_importers_skip_records_that_are_not_json_with_the_field(tmp_path):
    src = write(tmp_path, "o.jsonl", GOOD_LINE + "\n" + GOOD_LINE.replace('"A1"}', '"A1", "x": NaN}') + "\n")
    exs, rep, _ = extract_examples(src)
    assert rep["examples"] == 1
    (reason, n), = rep["skipped"].items()
    assert "NaN is not a JSON number" in reason and "arguments.x" in reason


def test_a_stored_file_is_always_valid_json_lines(tmp_path, store):
    nursery_import_dataset(write(tmp_path, "ok.jsonl", "\ufeff" + GOOD_LINE + "\r\n"), name="bom")
    text = (paths.dataset_path("bom")).read_text(encoding="utf-8")
    for line in text.splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in a stored line"))


# ------------------------------------------------------------------ the shared real-world cases
def _case(name: str) -> Path:
    p = SHARED_CASES / name
    if not p.exists():
        pytest.skip(f"../shared/cases/real-world/{name} is absent")
    return p


def test_shared_cases_import_as_their_readme_says(store):
    exs, rep, _ = extract_examples(_case("01_chatgpt_weight0_tool_replies.json"))
    assert [m["role"] for m in exs[0]["messages"]] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    exs, rep, _ = extract_examples(_case("02_chatgpt_empty_tool_result.json"))
    assert exs[0]["messages"][2]["content"] == "" and "content_type" not in json.dumps(exs[0])
    exs, rep, _ = extract_examples(_case("04_openai_weight0_message.jsonl"))
    assert [m.get("weight") for m in exs[0]["messages"] if m["role"] == "assistant"] == [0, None]
    with pytest.raises(InvalidInput, match="limit"):
        nursery_extract_conversations(_case("05_xlam_flat_parameters.jsonl"))
    exs, rep, _ = extract_examples(_case("06_sharegpt_tools_single_object.json"))
    assert not rep["inferred_tools"]
    exs, rep, _ = extract_examples(_case("07_hermes_tools_tag_in_prose.json"))
    assert not rep["inferred_tools"] and len(exs[0]["tools"]) == 2
    with pytest.raises(InvalidInput, match="field 'messages.*celsius': NaN"):
        nursery_import_dataset(_case("08_canonical_nan_argument.jsonl"))
    assert store.count_datasets() == 0


# ------------------------------------------------------------------------------ BOM and CRLF everywhere
def _variants(tmp_path: Path, name: str, lines: list[str]) -> list[Path]:
    """The same content plain, with a UTF-8 BOM, with CRLF line ends, and with both."""
    out = []
    for bom in (False, True):
        for eol in ("\n", "\r\n"):
            p = tmp_path / f"{'bom' if bom else 'plain'}-{'crlf' if eol != chr(10) else 'lf'}-{name}"
            p.write_bytes((b"\xef\xbb\xbf" if bom else b"") + eol.join(lines + [""]).encode("utf-8"))
            out.append(p)
    return out


def test_every_reader_accepts_a_bom_and_crlf_the_same_way(tmp_path, store):
    from nursery_core.evaluation.api import read_predictions
    from nursery_core.evaluation.bfcl import bfcl_examples
    from nursery_core.golden import read_golden_file
    from nursery_core.datasets import _read_canonical

    canon = [GOOD_LINE, GOOD_LINE.replace("A1", "A2")]
    results = [_read_canonical(p)[0] for p in _variants(tmp_path, "c.jsonl", canon)]
    assert all(r == results[0] for r in results) and len(results[0]) == 2

    test = [json.dumps({"id": "simple_python_0", "question": [[{"role": "user", "content": "Area for r=5?"}]],
                        "function": [{"name": "area", "description": "d", "parameters": {
                            "type": "dict", "properties": {"r": {"type": "float"}}, "required": ["r"]}}]})]
    answers = [json.dumps({"id": "simple_python_0", "ground_truth": [{"area": {"r": [5.0]}}]})]
    outs = [bfcl_examples(t, a) for t, a in zip(_variants(tmp_path, "t.json", test), _variants(tmp_path, "a.json", answers))]
    assert all(o == outs[0] for o in outs) and outs[0][0]["meta"]["bfcl_id"] == "simple_python_0"

    preds = [json.dumps({"id": "x", "output": "hi"}), json.dumps({"id": "y", "output": "<tool_call>"})]
    got = [read_predictions(p) for p in _variants(tmp_path, "p.jsonl", preds)]
    assert all(g == {"x": "hi", "y": "<tool_call>"} for g in got)

    golden = [json.dumps({"request": "Where is order A9?", "calls": [{"name": "lookup_order", "arguments": {
        "order_id": "A9"}}], "tools": [LOOKUP]})]
    rows = [read_golden_file(p) for p in _variants(tmp_path, "g.jsonl", golden)]
    assert all(r == rows[0] for r in rows)

    chats = [json.dumps(openai_row())]
    extracted = [extract_examples(p)[0] for p in _variants(tmp_path, "o.jsonl", chats)]
    assert all(e == extracted[0] for e in extracted) and extracted[0]


def test_shared_bfcl_cases_float_arrays_and_bom(store):
    from nursery_core.evaluation.api import nursery_evaluate
    test, answers = _case("10_bfcl_float_array_test.json"), _case("10_bfcl_float_array_answers.json")
    nursery_import_dataset(test, name="floats", format="bfcl", answers=answers)
    run = nursery_evaluate(dataset="floats", predictions=_case("10_bfcl_float_array_pred.jsonl"))
    assert run["metrics"]["ast_accuracy"] == 0.0 and run["metrics"]["format_validity"] == 1.0
    row = nursery_import_dataset(_case("11_bom_bfcl_test.json"), name="bom", format="bfcl",
                                 answers=_case("11_bom_bfcl_answers.json"))
    assert row["num_examples"] == 1


# --------------------------------------------------------------------------------- the bad-input corpus
def _chatgpt(hidden=False, reply=None):
    return chatgpt_two_lookups(hide_first_reply=hidden, second_reply=reply)


REF_TOOL = {"type": "function", "function": {"name": "lookup_order", "description": "Find", "parameters": {
    "type": "object", "$defs": {"id": {"type": "string"}}, "properties": {"order_id": {"$ref": "#/$defs/id"}},
    "required": ["order_id"]}}}
REMOTE_REF = json.loads(json.dumps(REF_TOOL).replace("#/$defs/id", "https://x.example/id.json"))
CANON_BAD = {
    "nan": GOOD_LINE.replace('"A1"}', '"A1", "n": NaN}'),
    "infinity": GOOD_LINE.replace('"A1"}', '"A1", "n": Infinity}'),
    "duplicate key": GOOD_LINE.replace('"role": "user"', '"role": "user", "role": "user"'),
    "lone surrogate": GOOD_LINE.replace("Where is A1?", "Where is \\udc00?"),
    "syntax": GOOD_LINE[:-1],
    "weight on a user": GOOD_LINE.replace('"role": "user"', '"role": "user", "weight": 0'),
    "image block": GOOD_LINE.replace('"content": "Where is A1?"',
                                     '"content": [{"type": "image_url", "image_url": {"url": "x"}}]'),
    "remote ref": json.dumps({**json.loads(GOOD_LINE), "tools": [REMOTE_REF]}),
    "unknown argument": GOOD_LINE.replace('"A1"}', '"A1", "colour": "red"}'),
}
REFUSED_MESSAGES = {"nan": "NaN is not a JSON number", "infinity": "Infinity is not a JSON number",
                    "duplicate key": "duplicate key", "lone surrogate": "lone UTF-16 surrogate",
                    "syntax": "not valid JSON", "weight on a user": "applies to assistant messages only",
                    "image block": "is not text", "remote ref": "is not local",
                    "unknown argument": "unexpected argument"}


@pytest.mark.parametrize("kind", sorted(CANON_BAD))
def test_corpus_canonical_refusals_name_file_line_and_change_nothing(tmp_path, store, nursery_home, kind):
    nursery_import_dataset(write(tmp_path, "ok.jsonl", GOOD_LINE + "\n"), name="kept")
    before = _snapshot(nursery_home)
    src = write(tmp_path, f"{kind.replace(' ', '_')}.jsonl", GOOD_LINE + "\n" + CANON_BAD[kind] + "\n")
    with pytest.raises(InvalidInput) as e:
        nursery_import_dataset(src, name="bad")
    assert REFUSED_MESSAGES[kind] in e.value.detail and e.value.file == str(src) and e.value.line == 2
    assert _snapshot(nursery_home) == before


@pytest.mark.parametrize("kind, source, reason", [
    ("missing reply between calls", lambda: _chatgpt(hidden=True), "reply is missing"),
    ("tool reply without text", lambda: _chatgpt(reply={"content_type": "image_asset_pointer"}), "holds no text"),
    ("bad xLAM call", lambda: [xlam_bad()], "does not match its tool's schema"),
    ("weight 0.5", lambda: [openai_row(weight_of_first=0.5)], "a weight of 0.5"),
    ("NaN in chat JSONL", lambda: GOOD_LINE.replace('"A1"}', '"A1", "n": NaN}') + "\n", "NaN is not a JSON number"),
])
def test_corpus_conversations_that_cannot_be_kept_are_refused_with_the_reason(tmp_path, store, nursery_home, kind,
                                                                             source, reason):
    nursery_import_dataset(write(tmp_path, "ok.jsonl", GOOD_LINE + "\n"), name="kept")
    before = _snapshot(nursery_home)
    data = source()
    src = write(tmp_path, "in.jsonl" if isinstance(data, str) or "messages" in json.dumps(data)[:40] else "in.json",
                data)
    with pytest.raises(InvalidInput, match="no examples could be extracted") as e:
        nursery_extract_conversations(src, name="bad")
    assert reason in str(e.value)
    assert _snapshot(nursery_home) == before


def xlam_bad():
    return {"query": "Convert five km", "tools": json.dumps([{"name": "conv", "description": "c", "parameters": {
        "value": {"type": "float", "description": "v"}}}]), "answers": json.dumps([{"name": "conv", "arguments": {
            "value": "five"}}])}


@pytest.mark.parametrize("kind, source, code", [
    ("weight 0", lambda: [openai_row()], "weight_0_turn_kept_as_context"),
    ("ChatGPT weight-0 replies", lambda: _chatgpt(), None),
    ("empty tool reply", lambda: _chatgpt(reply={"content_type": "tether_browsing_display", "result": ""}),
     "empty_tool_reply_kept"),
    ("single tool object", lambda: [{**openai_row(), "tools": LOOKUP}], "single_tool_object_listed"),
    ("$ref schema", lambda: [{**openai_row(weight_of_first=1), "tools": [REF_TOOL]}], "local_refs_inlined"),
    ("xLAM parameters", lambda: [{**xlam_bad(), "answers": json.dumps([{"name": "conv", "arguments": {"value": 5.0}}])}],
     "xlam_parameters_converted"),
    ("Gorilla types", lambda: [{**openai_row(weight_of_first=1), "tools": [{"name": "lookup_order", "parameters": {
        "type": "dict", "properties": {"order_id": {"type": "str"}}, "required": ["order_id"]}}]}],
     "python_type_names_mapped"),
])
def test_corpus_every_transformation_is_counted_with_its_reason(tmp_path, store, kind, source, code):
    data = source()
    src = write(tmp_path, "in.json", data)
    row = nursery_extract_conversations(src, name="t")
    changes = row["report"]["transformations"]
    if code is None:  # turns kept as they are: only the call's representation and the inferred schema
        assert set(changes) == {"tool_schemas_inferred", "call_text_wrapped_as_argument", "call_id_assigned"}
    else:
        assert changes.get(code, 0) >= 1, changes
    assert all(c in TRANSFORMATIONS for c in changes)


def test_shared_cases_through_the_cli(tmp_path, nursery_home):
    import os
    import subprocess
    import sys
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "NURSERY_HOME": str(nursery_home), "OMP_NUM_THREADS": "1"}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "nursery_core", *args], cwd=root, env=env,
                              capture_output=True, text=True, timeout=300)

    r = cli("extract-conversations", str(_case("04_openai_weight0_message.jsonl")), "--name", "w")
    assert r.returncode == 0, r.stderr
    assert "an assistant turn with weight 0, kept as context and not trained on (1)" in r.stdout
    r = cli("show-dataset", "w")
    assert "assistant [weight 0: context, not trained on]: Sure, here it is: sunny." in r.stdout
    r = cli("extract-conversations", str(_case("05_xlam_flat_parameters.jsonl")))
    assert r.returncode == 2 and "first: line 1, field 'messages[1].tool_calls[0].function.arguments'" in r.stderr
    r = cli("import-dataset", str(_case("08_canonical_nan_argument.jsonl")))
    assert r.returncode == 2 and ":1, field 'messages[1].tool_calls[0].function.arguments.celsius': NaN" in r.stderr
    r = cli("generate-data", "--tool-schema", str(_case("09_tool_schema_ref_defs.json")), "--num-examples", "12",
            "--name", "orders", "--json")
    assert r.returncode == 0, r.stderr
    stored = load_examples("orders")
    tool = next(t for t in stored[0]["tools"] if t["function"]["name"] == "create_order")
    assert "$ref" not in json.dumps(tool) and tool["function"]["parameters"]["properties"]["discount"]["type"] == [
        "number", "null"]
    r = cli("list-datasets", "--json")
    assert sorted(d["name"] for d in json.loads(r.stdout)) == ["orders", "w"]


def test_values_that_are_not_json_are_refused_wherever_they_come_from():
    """Rows from the datasets library or Python callers are already parsed: NaN there is refused too."""
    from nursery_core.records import normalise_example
    tool = json.loads(json.dumps(LOOKUP))
    tool["function"]["parameters"]["properties"]["order_id"]["default"] = float("nan")
    ex = {"tools": [tool], "messages": json.loads(GOOD_LINE)["messages"]}
    with pytest.raises(InvalidInput, match=r"field 'tools\[0\]\.function\.parameters\.properties\.order_id\.default'"):
        normalise_example(ex)
    with pytest.raises(InvalidInput, match=r"field 'meta\.score': Infinity is not a JSON number"):
        normalise_example({**json.loads(GOOD_LINE), "meta": {"score": float("inf")}})


def test_replies_are_paired_by_id_and_never_by_guess_among_several_calls(tmp_path):
    two = {"role": "assistant", "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "lookup_order", "arguments": {"order_id": "A1"}}},
        {"id": "b", "type": "function", "function": {"name": "lookup_order", "arguments": {"order_id": "B2"}}}]}
    base = [{"role": "user", "content": "Where are A1 and B2?"}, two]
    rows = [
        {"tools": [LOOKUP], "messages": base + [{"role": "tool", "tool_call_id": "b", "content": "B2 shipped"},
                                                {"role": "tool", "tool_call_id": "a", "content": "A1 late"},
                                                {"role": "assistant", "content": "A1 is late; B2 shipped."}]},
        {"tools": [LOOKUP], "messages": base + [{"role": "tool", "tool_call_id": "zz", "content": "?"},
                                                {"role": "assistant", "content": "Hm."}]},
        {"tools": [LOOKUP], "messages": base + [{"role": "tool", "tool_call_id": "a", "content": "A1 late"},
                                                {"role": "assistant", "content": "A1 is late."}]},
    ]
    exs, rep, _ = extract_examples(write(tmp_path, "o.jsonl", rows))
    first = exs[0]["messages"]
    assert [(m["tool_call_id"], m["content"]) for m in first if m["role"] == "tool"] == [("b", "B2 shipped"),
                                                                                        ("a", "A1 late")]
    assert rep["skipped"] == {"a tool reply whose tool_call_id matches none of several open calls (pairing it by "
                              "guess could give a result to the wrong call)": 1}
    assert rep["transformations"]["unanswered_call_before_answer"] == 1


def test_one_tool_message_answering_several_calls_is_split_per_call(tmp_path):
    parts = [{"type": "tool_call", "value": json.dumps({"name": "lookup_order", "arguments": {"order_id": o}})}
             for o in ("A1", "B2")]
    replies = [{"tool_call_id": "x1", "name": "lookup_order", "content": "A1 late"},
               {"tool_call_id": "x2", "name": "lookup_order", "content": {"status": "shipped"}}]
    row = {"tools": [LOOKUP], "messages": [
        {"role": "user", "content": "A1 and B2?"}, {"role": "assistant", "content": parts},
        {"role": "tool", "content": json.dumps(replies)}, {"role": "assistant", "content": "A1 late, B2 shipped."}]}
    exs, rep, _ = extract_examples(write(tmp_path, "o.jsonl", [row]))
    msgs = exs[0]["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "tool", "assistant"]
    calls = msgs[1]["tool_calls"]
    assert [(m["tool_call_id"], m["content"]) for m in msgs[2:4]] == [(calls[0]["id"], "A1 late"),
                                                                      (calls[1]["id"], '{"status": "shipped"}')]
    assert rep["transformations"]["tool_reply_list_split"] == 1
    assert rep["transformations"]["tool_reply_matched_by_order"] == 1  # two open calls of one tool, in order


def test_line_separators_inside_json_strings_do_not_split_a_line(tmp_path, store):
    text = "Where is A1?\u2028Also B2\u0085?"
    line = json.dumps({**json.loads(GOOD_LINE), "messages": [
        {"role": "user", "content": text}, json.loads(GOOD_LINE)["messages"][1]]}, ensure_ascii=False)
    src = tmp_path / "ls.jsonl"
    src.write_text(line + "\r\n" + GOOD_LINE + "\n", encoding="utf-8")
    row = nursery_import_dataset(src, name="ls")
    assert row["num_examples"] == 2
    assert load_examples("ls")[0]["messages"][0]["content"] == text
    exs, _, _ = extract_examples(src)
    assert exs[0]["messages"][0]["content"] == text


def test_corpus_bfcl_and_predictions_refusals_change_nothing(tmp_path, store, nursery_home):
    from nursery_core.evaluation.api import nursery_evaluate
    test = tmp_path / "t.json"
    test.write_text(json.dumps({"id": "simple_python_0", "question": [[{"role": "user", "content": "r=5?"}]],
                                "function": [{"name": "area", "description": "d", "parameters": {
                                    "type": "dict", "properties": {"r": {"type": "float"}}, "required": ["r"]}}]}) + "\n")
    answers = tmp_path / "a.json"
    answers.write_text('{"id": "simple_python_0", "ground_truth": [{"area": {"r": [NaN]}}]}\n')
    before = _snapshot(nursery_home)
    with pytest.raises(InvalidInput, match=r"a.json:1, field 'ground_truth\[0\].area.r\[0\]': NaN"):
        nursery_import_dataset(test, name="b", format="bfcl", answers=answers)
    assert _snapshot(nursery_home) == before
    answers.write_text('{"id": "simple_python_0", "ground_truth": [{"area": {"r": [5.0]}}]}\n')
    nursery_import_dataset(test, name="b", format="bfcl", answers=answers)
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"id": "simple_python_0", "output": "x", "output": "y"}\n')
    before = _snapshot(nursery_home)
    with pytest.raises(InvalidInput, match=r"p.jsonl:1, field '\(top level\)': duplicate key\(s\) \['output'\]"):
        nursery_evaluate(dataset="b", split="all", predictions=preds)
    assert _snapshot(nursery_home) == before


def test_canonical_rows_are_not_read_as_openai_rows(tmp_path, store):
    """extract-conversations on a canonical file would drop ids, meta and no-call rows: it says where it belongs."""
    from nursery_core.data.generator import generate_examples

    exs, _ = generate_examples(["get_weather"], 6, "low", seed=0)
    exs = [{**e, "id": f"mine-{i}"} for i, e in enumerate(exs)]
    src = tmp_path / "canonical.jsonl"
    src.write_text("".join(json.dumps(e) + "\n" for e in exs))
    with pytest.raises(InvalidInput, match="canonical format: import it as a canonical dataset"):
        nursery_extract_conversations(src, name="c")
    assert not store.has_dataset("c")
    row = nursery_import_dataset(src, name="c")
    assert [e["id"] for e in load_examples("c", "all")] == [e["id"] for e in exs] and row["num_examples"] == 6
