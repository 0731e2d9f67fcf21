"""AppTest of golden sets in the pages: the Data Garden's Golden sets tab (schema form, preview, add, refusals
with nothing stored, edit, delete) and golden scores beside held-out ones in the Model Cradle and the overview."""
import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from cradle_helpers import TOOLS, examples, store_dataset
from nursery_core.golden import nursery_golden_add, nursery_golden_show

ROOT = Path(__file__).resolve().parent.parent


def run(page):
    at = AppTest.from_file(str(ROOT / page), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def errors(at):
    return [e.value for e in at.error]


def test_write_a_row_with_the_schema_form_and_see_it_stored(store):
    at = run("pages/1_Data_Garden.py")
    assert at.selectbox(key="gs_set").value == "➕ New golden set"
    at.text_input(key="gs_new_name").set_value("mine")
    at.text_area(key="gs_request").set_value("Weather in Lisbon for 3 days, in fahrenheit?")
    at.multiselect(key="gs_tools").set_value(["get_weather", "calculator"]).run()
    assert at.selectbox(key="gs_call_0_tool").value == "get_weather"
    # one widget per parameter: enum as a select (with "not given" when optional), others as text
    assert at.selectbox(key="gs_call_0_get_weather_unit").options == ["(not given)", "celsius", "fahrenheit"]
    assert any("required parameter 'city'" in e for e in errors(at))
    assert at.button(key="gs_add").disabled
    at.text_input(key="gs_call_0_get_weather_city").set_value("Lisbon")
    at.text_input(key="gs_call_0_get_weather_days").set_value("3")
    at.selectbox(key="gs_call_0_get_weather_unit").set_value("fahrenheit").run()
    assert not errors(at) and not at.exception
    assert len(at.get("chat_message")) >= 2  # the stored example, previewed as chat bubbles
    assert any('"fahrenheit"' in c.value for c in at.code)
    at.button(key="gs_add").click().run()
    assert not at.exception and not errors(at)
    assert any("mine" in s.value for s in at.success)
    rows = nursery_golden_show("mine")["rows"]
    assert rows[0]["calls"] == [{"name": "get_weather", "arguments": {"city": "Lisbon", "unit": "fahrenheit",
                                                                       "days": 3}}]
    assert rows[0]["tools"] == ["get_weather", "calculator"]
    assert at.selectbox(key="gs_set").value == "mine" and at.text_area(key="gs_request").value == ""
    # a no-call row, arguments pasted as JSON for a parallel one
    at.text_area(key="gs_request").set_value("What's 2+2 and the weather in Oslo?")
    at.number_input(key="gs_ncalls").set_value(2).run()
    at.radio(key="gs_call_0_mode").set_value("JSON")
    at.radio(key="gs_call_1_mode").set_value("JSON").run()
    at.selectbox(key="gs_call_1_tool").set_value("calculator")
    at.text_area(key="gs_call_0_json").set_value('{"city": "Oslo"}')
    at.text_area(key="gs_call_1_json").set_value('{"expression": "2+2"}').run()
    assert not errors(at), errors(at)
    at.button(key="gs_add").click().run()
    assert nursery_golden_show("mine")["categories"] == {"call": 1, "parallel": 1}
    at.text_area(key="gs_request").set_value("Hello there")
    at.radio(key="gs_expect").set_value("No call").run()
    assert any("no tool call" in c.value for c in at.caption)
    at.button(key="gs_add").click().run()
    assert nursery_golden_show("mine")["num_examples"] == 3


def test_bad_rows_and_shared_requests_are_refused_and_nothing_is_stored(store):
    store_dataset("weather", n=8)  # holds "What's the weather in Paris?"
    nursery_golden_add("mine", "Tell me a joke", ["get_weather"], [])
    before = (store.count_datasets(), nursery_golden_show("mine")["num_examples"])
    at = run("pages/1_Data_Garden.py")
    at.text_area(key="gs_request").set_value("Weather in Oslo?")
    at.multiselect(key="gs_tools").set_value(["get_weather"]).run()
    at.radio(key="gs_call_0_mode").set_value("JSON").run()
    at.text_area(key="gs_call_0_json").set_value('{"city": 5}').run()
    assert any("calls[0].arguments.city" in e for e in errors(at)) and at.button(key="gs_add").disabled
    at.radio(key="gs_call_0_mode").set_value("Form").run()
    at.text_input(key="gs_call_0_get_weather_city").set_value("Oslo")
    at.text_input(key="gs_call_0_get_weather_days").set_value("a week").run()
    assert any("is not a whole number" in e and "arguments.days" in e for e in errors(at))
    at.text_input(key="gs_call_0_get_weather_days").set_value("")
    at.text_area(key="gs_request").set_value("what's the weather in PARIS").run()
    at.text_input(key="gs_call_0_get_weather_city").set_value("Paris").run()
    assert not errors(at)
    at.button(key="gs_add").click().run()
    assert any("training dataset 'weather'" in e and "golden set 'mine'" in e for e in errors(at))
    at.text_area(key="gs_request").set_value("TELL me a joke!")
    at.radio(key="gs_expect").set_value("No call").run()
    at.button(key="gs_add").click().run()
    assert any("duplicate request" in e for e in errors(at))
    assert (store.count_datasets(), nursery_golden_show("mine")["num_examples"]) == before


def test_edit_and_delete_rows(store):
    a = nursery_golden_add("mine", "Start a 5 minute timer", [TOOLS[1]], [{"name": "set_timer",
                                                                           "arguments": {"minutes": 5}}])
    b = nursery_golden_add("mine", "Tell me a joke", [TOOLS[1]], [])
    at = run("pages/1_Data_Garden.py")
    assert at.selectbox(key="gs_set").value == "mine"
    assert "set_timer" in at.multiselect(key="gs_tools").options  # the set's own tool is offered
    at.button(key=f"gs_edit_{a['row']['id']}").click().run()
    assert at.text_area(key="gs_request").value == "Start a 5 minute timer"
    assert json.loads(at.text_area(key="gs_call_0_json").value) == {"minutes": 5}
    at.text_area(key="gs_request").set_value("Start a 7 minute timer")
    at.text_area(key="gs_call_0_json").set_value('{"minutes": 7}').run()
    at.button(key="gs_save").click().run()
    assert not at.exception and not errors(at)
    rows = nursery_golden_show("mine")["rows"]
    assert (rows[0]["id"], rows[0]["request"], rows[0]["calls"][0]["arguments"]) == (
        a["row"]["id"], "Start a 7 minute timer", {"minutes": 7})
    at.button(key=f"gs_del_{b['row']['id']}").click().run()
    assert not at.exception
    assert [r["id"] for r in nursery_golden_show("mine")["rows"]] == [a["row"]["id"]]


def test_import_a_golden_file_from_the_page(store, tmp_path):
    at = run("pages/1_Data_Garden.py")
    at.text_input(key="gs_new_name").set_value("imported").run()
    assert at.button(key="gs_import").disabled  # no file yet (AppTest cannot upload; the core import is tested)


def _evaluations(tmp_path, store):
    from nursery_core.evaluation.api import nursery_evaluate
    from nursery_core.training.rendering import format_calls

    store_dataset("weather", n=8)
    for ex in examples(3)[:2]:
        calls = [c["function"] for c in ex["messages"][1]["tool_calls"]]
        nursery_golden_add("gold", ex["messages"][0]["content"].replace("What's", "Tell me"), TOOLS,
                           [{"name": c["name"], "arguments": c["arguments"]} for c in calls])
    store.add_model({"name": "m", "path": str(tmp_path), "dataset": "weather", "tools": TOOLS, "base_model": "tiny"})
    right = {r["id"]: format_calls(r["calls"]) for r in nursery_golden_show("gold")["rows"]}
    p = tmp_path / "p.jsonl"
    p.write_text("\n".join(json.dumps({"id": k, "output": v}) for k, v in right.items()))
    nursery_evaluate("m", "gold", predictions=p)
    q = tmp_path / "q.jsonl"
    q.write_text(json.dumps({"id": "ex0", "output": "no"}))
    nursery_evaluate("m", "weather", split="all", predictions=q)


def table(at, *columns):
    for df in at.dataframe:
        if all(c in df.value.columns for c in columns):
            return df.value
    raise AssertionError(f"no table with columns {columns}")


def test_model_cradle_and_overview_show_golden_beside_held_out(store, tmp_path):
    _evaluations(tmp_path, store)
    at = run("pages/3_Model_Cradle.py")
    card = table(at, "model", "held-out AST (95% CI)", "golden: gold")
    assert card["model"].tolist() == ["m"]
    assert card["golden: gold"][0].startswith("100.0% [34.2–100.0%] n=2 ⚠ small sample")
    assert card["held-out AST (95% CI)"][0].startswith("0.0% [0.0–79.3%] n=1 ⚠")
    board = table(at, "Rank", "Data", "AST accuracy", "AST 95 % interval", "Warning")
    assert set(board["Data"]) == {"golden", "held-out"} and all(board["Warning"])
    # readable names and percentages, never raw metric keys or unrounded fractions
    assert not any("_" in c for c in board.columns), list(board.columns)
    by_data = dict(zip(board["Data"], board["AST accuracy"]))
    assert by_data == {"golden": "100.0 %", "held-out": "0.0 %"}
    assert dict(zip(board["Data"], board["AST 95 % interval"]))["golden"] == "34.2–100.0 %"
    models = table(at, "name", "held-out AST (95% CI)", "golden sets AST (95% CI)")
    assert models["golden sets AST (95% CI)"][0].startswith("gold: 100.0%")
    assert at.checkbox(key="mc_eval_with_base") and at.multiselect(key="mc_eval_golden").options == ["gold"]
    ov = run("app.py")
    recent = table(ov, "name", "held-out AST (95% CI)", "golden sets AST (95% CI)")
    assert "gold: 100.0% [34.2–100.0%] n=2 ⚠ small sample" == recent["golden sets AST (95% CI)"][0]
    assert any("fewer than 30 examples" in c.value for c in ov.caption)


def test_an_uploaded_golden_file_is_named_by_its_own_name_in_errors(monkeypatch, store):
    """Golden sets → Import: a bad row is reported as `<the upload's name>:<line>`, never as the server's temporary
    copy (/tmp/…), and nothing is stored (the same helper serves the Data Garden's import)."""
    from types import SimpleNamespace

    from nursery_core.golden import nursery_golden_import
    from nursery_core.webui import widgets

    shown: list[str] = []
    monkeypatch.setattr(widgets.st, "error", shown.append)
    up = SimpleNamespace(name="my golden (1).csv", getvalue=lambda: b"request,calls\nhello,not json\n")
    with widgets.uploaded_copy(up, "golden.jsonl") as path:
        nursery_golden_import(path, name="g-upload")
    assert len(shown) == 1 and shown[0].startswith("my golden (1).csv:2"), shown
    assert "/tmp" not in shown[0] and not path.exists()
    assert not store.has_dataset("g-upload")
