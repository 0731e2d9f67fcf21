"""AppTest for the overview and the Data Garden: empty states, generating from the page, viewing, deleting."""
import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
FIX = Path(__file__).parent / "fixtures" / "imports"


def run(page):
    at = AppTest.from_file(str(ROOT / page), default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    return at


def test_overview_empty_state_tells_the_three_steps():
    at = run("app.py")
    text = " ".join(i.value for i in at.info)
    assert "Three steps" in text
    md = " ".join(m.value for m in at.markdown)
    assert "Training Forge" in md or any("Training" in str(p) for p in at.get("page_link"))
    assert [m.value for m in at.metric][:3] == ["0", "0", "0"]


def test_overview_lists_recent_datasets(store):
    from nursery_core.data.generator import nursery_generate_data
    nursery_generate_data("calculator", 12)
    at = run("app.py")
    assert at.metric[0].value == "1"
    assert "calculator" in at.dataframe[0].value["name"].tolist()


def test_generate_from_the_page_and_see_it(store):
    at = run("pages/1_Data_Garden.py")
    assert any("No datasets yet" in i.value for i in at.info)
    at.multiselect(key="gen_tools").set_value(["memory_store", "get_weather"])
    at.number_input(key="gen_count").set_value(40)
    at.text_input(key="gen_name").set_value("page-made")
    at.button(key="gen_go").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert store.get_dataset("page-made")["num_examples"] == 40
    assert any("page-made" in s.value for s in at.success)
    assert any("page-made" in df.value["name"].tolist() for df in at.dataframe if "name" in df.value.columns)
    assert at.selectbox(key="ds_pick").value == "page-made"
    assert len(at.get("chat_message")) >= 5  # examples rendered as chat bubbles
    labels = {m.label: m.value for m in at.metric}
    assert float(labels["Request skeletons per 100 requests"]) > 50  # the diversity report
    assert labels["No-call examples"].endswith("%") and "Distinct 3-grams per call" in labels
    # the same name again: a clear error, nothing replaced
    at.button(key="gen_go").click().run()
    assert any("already exists" in e.value for e in at.error)


def test_custom_schema_live_validation_and_generation(store):
    at = run("pages/1_Data_Garden.py")
    at.text_area(key="gen_schema_text").set_value('{"name": "x", "parameters": {"type": "string"}}').run()
    assert any("parameters must have type 'object'" in e.value for e in at.error)
    schema = {"name": "create_ticket", "description": "Creates a support ticket.",
              "parameters": {"type": "object", "properties": {"title": {"type": "string"},
                             "priority": {"type": "string", "enum": ["low", "high"]}}, "required": ["title"]}}
    at.text_area(key="gen_schema_text").set_value(json.dumps(schema)).run()
    assert any("create_ticket" in s.value for s in at.success)
    at.multiselect(key="gen_tools").set_value([])
    at.number_input(key="gen_count").set_value(25)
    at.button(key="gen_go").click().run()
    assert not at.exception and not at.error
    assert store.get_dataset("create-ticket")["report"]["tools"] == ["create_ticket"]


def test_delete_with_confirmation(store):
    from nursery_core.data.generator import nursery_generate_data
    nursery_generate_data("read_file", 15, name="doomed")
    at = run("pages/1_Data_Garden.py")
    assert at.button(key="ds_delete").disabled
    at.checkbox(key="ds_delete_confirm").check().run()
    at.button(key="ds_delete").click().run()
    assert not at.exception
    assert store.count_datasets() == 0


def test_the_dataset_view_shows_what_an_import_changed_and_weight_0_turns(store, tmp_path):
    from nursery_core.data.importers import nursery_extract_conversations
    tool = {"type": "function", "function": {"name": "lookup_order", "description": "Find an order", "parameters": {
        "type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}
    row = {"tools": tool, "messages": [
        {"role": "user", "content": "Where is A17?"}, {"role": "assistant", "content": "It shipped.", "weight": 0},
        {"role": "user", "content": "Use the tool."},
        {"role": "assistant", "tool_calls": [{"type": "function", "function": {
            "name": "lookup_order", "arguments": "{\"order_id\": \"A17\"}"}}]}]}
    src = tmp_path / "ft.jsonl"
    src.write_text(json.dumps(row) + "\n")
    nursery_extract_conversations(src, name="weighted")
    at = run("pages/1_Data_Garden.py")
    changes = [df.value for df in at.dataframe if "change" in df.value.columns]
    assert changes, "the import report's transformations are shown"
    shown = dict(zip(changes[0]["code"], changes[0]["count"]))
    assert shown == {"weight_0_turn_kept_as_context": 1, "single_tool_object_listed": 1, "call_id_assigned": 1}
    assert any("weight 0: kept as context, not trained on" in c.value for c in at.caption)


def test_schema_check_reports_its_dry_run_and_what_the_tool_list_omits(store):
    schema = {"name": "create_order", "description": "Create an order", "parameters": {
        "type": "object", "$defs": {"who": {"type": "object", "properties": {"id": {"type": "string"}},
                                            "required": ["id"]}},
        "properties": {"customer": {"$ref": "#/$defs/who"}, "qty": {"type": "integer", "enum": [1, 2]}},
        "required": ["customer", "qty"]}}
    at = run("pages/1_Data_Garden.py")
    at.text_area(key="gen_schema_text").set_value(json.dumps(schema)).run()
    assert not at.error, [e.value for e in at.error]
    assert any("create_order" in s.value and "dry run generated 12 examples" in s.value for s in at.success)
    assert any("fields of a nested object (id)" in c.value for c in at.caption)
    schema["parameters"]["properties"]["customer"] = {"$ref": "https://example.com/who.json"}
    at.text_area(key="gen_schema_text").set_value(json.dumps(schema)).run()
    assert any("is not local" in e.value and "properties.customer.$ref" in e.value for e in at.error)


def test_shared_ref_defs_case_is_valid_after_a_dry_run_in_the_schema_check(store):
    import pytest
    case = ROOT.parent / "shared" / "cases" / "real-world" / "09_tool_schema_ref_defs.json"
    if not case.exists():
        pytest.skip("../shared/cases/real-world is absent")
    at = run("pages/1_Data_Garden.py")
    at.text_area(key="gen_schema_text").set_value(case.read_text()).run()
    assert not at.error, [e.value for e in at.error]
    assert any("create_order" in s.value and "dry run generated" in s.value for s in at.success)
