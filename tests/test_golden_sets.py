"""Golden sets: rows from code, files and the CLI; the bad-input corpus (row and field named, nothing stored);
requests shared with training data refused both ways (write time, generation, training); the request index
through deletes and the migration; evaluation of a model on held-out + golden data (+ its bare base)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cradle_helpers import TOOLS, make_adapter, one_thread, store_dataset  # noqa: F401,F811 (fixture)
from nursery_core import paths
from nursery_core.datasets import delete_dataset, load_examples, nursery_import_dataset, write_dataset
from nursery_core.errors import InvalidInput, NotFound, SharedRequest
from nursery_core.golden import (coerce_form_values, golden_sets_for, nursery_golden_add, nursery_golden_delete,
                                 nursery_golden_edit_row, nursery_golden_import, nursery_golden_list,
                                 nursery_golden_remove_row, nursery_golden_show)
from nursery_core.overlap import normal_request

ROOT = Path(__file__).resolve().parent.parent
WEATHER_CALL = {"name": "get_weather", "arguments": {"city": "Lisbon", "unit": "fahrenheit"}}


def cli(*args, home):
    env = {**os.environ, "NURSERY_HOME": str(home), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "nursery_core", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def snapshot(store):
    """Everything a failed write must leave alone: dataset rows, the request index, the datasets folder."""
    d = paths.datasets_dir()
    files = sorted((p.name, p.read_bytes()) for p in d.iterdir()) if d.exists() else []
    index = sorted(store.db.conn.execute("select dataset, norm, request from dataset_requests").fetchall())
    return sorted((r["name"], r["num_examples"], r["sha256"]) for r in store.list_datasets()), index, files


def training_rec(request, city="Paris"):
    return {"tools": [TOOLS[0]], "messages": [
        {"role": "user", "content": request},
        {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "get_weather",
                                                                             "arguments": {"city": city}}}]}]}


# ------------------------------------------------------------------------------------------- rows
def test_add_call_parallel_and_no_call_rows(store):
    a = nursery_golden_add("mine", "Weather in Lisbon, in fahrenheit?", ["get_weather"], [WEATHER_CALL],
                           note="unit must be kept")
    assert a["set"]["kind"] == "golden" and a["set"]["num_examples"] == 1
    nursery_golden_add("mine", "Weather in Oslo and remember that I like rain", ["get_weather", "memory_store"],
                       [{"name": "get_weather", "arguments": {"city": "Oslo"}},
                        {"name": "memory_store", "arguments": {"content": "I like rain"}}])
    nursery_golden_add("mine", "Tell me a joke", ["get_weather"], [])
    shown = nursery_golden_show("mine")
    assert [r["request"] for r in shown["rows"]] == ["Weather in Lisbon, in fahrenheit?",
                                                    "Weather in Oslo and remember that I like rain", "Tell me a joke"]
    assert shown["rows"][0]["note"] == "unit must be kept" and shown["rows"][2]["calls"] == []
    assert shown["categories"] == {"call": 1, "parallel": 1, "no_call": 1}
    row = store.get_dataset("mine")
    assert row["split"]["eval"] == 3 and row["split"]["train"] == 0 and Path(row["path"]).parent == paths.datasets_dir()
    exs = load_examples("mine", "eval")
    assert len(exs) == 3 and all(e["meta"]["source"] == "golden" for e in exs)
    assert [s["name"] for s in nursery_golden_list()] == ["mine"]
    assert golden_sets_for(["get_weather", "memory_store", "calculator"]) == ["mine"]
    assert golden_sets_for(["get_weather"]) == []


def test_custom_tool_schemas_and_arguments_as_json_text(store):
    r = nursery_golden_add("custom", "Start a 5 minute timer", [TOOLS[1]],
                           ['{"name": "set_timer", "arguments": {"minutes": 5}}'])
    assert r["row"]["tools"][0]["function"]["name"] == "set_timer"
    assert nursery_golden_show("custom")["rows"][0]["calls"] == [{"name": "set_timer", "arguments": {"minutes": 5}}]


def test_edit_and_remove_rows_keep_ids(store):
    a = nursery_golden_add("g", "Weather in Rome?", ["get_weather"], [{"name": "get_weather", "arguments": {"city": "Rome"}}])
    b = nursery_golden_add("g", "Hello!", ["get_weather"], [])
    rid = a["row"]["id"]
    e = nursery_golden_edit_row("g", rid, request="Weather in Rome in fahrenheit?",
                                calls=[{"name": "get_weather", "arguments": {"city": "Rome", "unit": "fahrenheit"}}])
    assert e["row"]["id"] == rid
    rows = nursery_golden_show("g")["rows"]
    assert rows[0]["request"] == "Weather in Rome in fahrenheit?" and rows[0]["calls"][0]["arguments"]["unit"] == "fahrenheit"
    with pytest.raises(InvalidInput, match="duplicate request") as err:
        nursery_golden_edit_row("g", rid, request="hello")
    assert err.value.field == "request"
    nursery_golden_edit_row("g", b["row"]["id"], calls=[{"name": "get_weather", "arguments": {"city": "Hel"}}])
    assert nursery_golden_show("g")["categories"] == {"call": 2}
    gone = nursery_golden_remove_row("g", rid)
    assert gone["removed"]["id"] == rid and gone["set"]["num_examples"] == 1
    with pytest.raises(NotFound, match="no row"):
        nursery_golden_remove_row("g", rid)
    # a removed request is free again, in the set and in training data
    nursery_golden_add("g", "Weather in Rome in fahrenheit?", ["get_weather"], [])
    store_dataset("weather", n=4)
    with pytest.raises(InvalidInput, match="training dataset, not a golden set"):
        nursery_golden_add("weather", "x y", ["get_weather"], [])


def test_form_values_are_typed_by_the_schema():
    from nursery_core.data.tools import get_default_tool

    cal = get_default_tool("create_calendar_event")
    args = coerce_form_values(cal, {"title": " Standup ", "date": "2025-03-04", "start_time": "09:30",
                                    "duration_minutes": "15", "location": "", "attendees": "a@x.io, b@y.io"})
    assert args == {"title": "Standup", "date": "2025-03-04", "start_time": "09:30", "duration_minutes": 15,
                    "attendees": ["a@x.io", "b@y.io"]}
    sql = get_default_tool("run_sql")
    assert coerce_form_values(sql, {"query": "select 1", "read_only": "false"}) == {"query": "select 1",
                                                                                   "read_only": False}
    with pytest.raises(InvalidInput, match="not a whole number") as e:
        coerce_form_values(cal, {"duration_minutes": "soon"})
    assert e.value.field == "arguments.duration_minutes"


# ------------------------------------------------------------------------------------------ files
def test_import_simple_jsonl_csv_and_canonical(tmp_path, store):
    simple = jsonl(tmp_path / "simple.jsonl", [
        {"request": "Weather in Lisbon, in fahrenheit?", "tools": ["get_weather"], "calls": [WEATHER_CALL]},
        {"request": "Start a 3 minute timer", "tools": [TOOLS[1]], "calls": [{"name": "set_timer",
                                                                            "arguments": {"minutes": 3}}]},
        {"request": "What is love?", "tools": ["web_search", "calculator"], "calls": [], "note": "no call"},
        {"request": "What's 12*3?", "calls": [{"name": "calculator", "arguments": {"expression": "12*3"}}]},
        {"request": "What's 12/3?", "calls": [{"name": "calculator", "arguments": {"expression": "12/3"}}]},
    ])
    r = nursery_golden_import(simple)
    assert r["name"] == "simple" and r["imported"] == 5 and r["num_examples"] == 5
    assert set(r["tools"]) == {"get_weather", "set_timer", "web_search", "calculator"}
    csv_file = tmp_path / "rows.csv"
    csv_file.write_text('request,calls,tools,note\n'
                        'Email bob@x.io that I am late,"[{""name"": ""send_email"", ""arguments"": {""to"": '
                        '""bob@x.io"", ""subject"": ""Late"", ""body"": ""I am late""}}]",send_email,\n'
                        'Good morning!,[],"send_email, calculator",greeting\n')
    r = nursery_golden_import(csv_file, name="simple")  # appends to the existing set
    assert r["imported"] == 2 and r["num_examples"] == 7
    canonical = jsonl(tmp_path / "canon.jsonl", [training_rec("Weather in Quito?", "Quito")])
    assert nursery_golden_import(canonical, name="canon")["num_examples"] == 1
    assert nursery_golden_show("canon")["rows"][0]["calls"] == [{"name": "get_weather", "arguments": {"city": "Quito"}}]


BAD_ROWS = [
    # (rows after a good first row, the line, the field, a phrase of the message)
    ([{"request": "Weather?", "tools": ["get_weather"], "calls": [{"name": "get_weather", "arguments": {"city": 5}}]}],
     2, "calls[0].arguments.city", "break its schema"),
    ([{"request": "Weather?", "tools": ["get_weather"], "calls": [{"name": "get_weather", "arguments": {}}]}],
     2, "calls[0].arguments.city", "required parameter 'city'"),
    ([{"request": "Weather?", "tools": ["get_weather"],
       "calls": [{"name": "get_weather", "arguments": {"city": "Oslo", "zip": "0150"}}]}],
     2, "calls[0].arguments.zip", "no parameter 'zip'"),
    ([{"request": "Book a flight", "tools": ["book_flight"], "calls": []}], 2, "tools[0]", "unknown tool 'book_flight'"),
    ([{"request": "Book a flight", "tools": ["get_weather"], "calls": [{"name": "book_flight", "arguments": {}}]}],
     2, "calls[0].name", "unknown tool 'book_flight'"),
    ([{"request": "   ", "tools": ["get_weather"], "calls": []}], 2, "request", "request is empty"),
    ([{"request": "?!", "tools": ["get_weather"], "calls": []}], 2, "request", "no words"),
    ([{"request": "weather in LISBON in fahrenheit", "tools": ["get_weather"], "calls": []}], 2, "request",
     "repeats line 1"),
    ([{"request": "Hi", "tools": ["get_weather"]}], 2, "calls", "write [] for 'no call'"),
    ([{"request": "Hi", "tools": ["get_weather"], "calls": [], "expected": []}], 2, "expected", "unknown key"),
    ([{"request": "Hi", "calls": []}], 2, "tools", "lists no tools"),
    (["{not json"], 2, None, "not valid JSON"),
]


@pytest.mark.parametrize("rows, line, field, phrase", BAD_ROWS, ids=[b[3] for b in BAD_ROWS])
def test_bad_rows_are_refused_with_line_and_field_and_nothing_is_stored(rows, line, field, phrase, tmp_path, store):
    nursery_golden_add("existing", "Tell me a joke", ["get_weather"], [])
    before = snapshot(store)
    f = jsonl(tmp_path / "bad.jsonl", [{"request": "Weather in Lisbon, in fahrenheit?", "tools": ["get_weather"],
                                        "calls": [WEATHER_CALL]}, *rows])
    for target in ("existing", "fresh"):  # appending to a set and creating one
        with pytest.raises(InvalidInput) as e:
            nursery_golden_import(f, name=target)
        assert phrase in str(e.value), str(e.value)
        assert e.value.file == str(f) and e.value.line == line and e.value.field == field, str(e.value)
        assert snapshot(store) == before


def test_duplicates_against_the_set_and_bad_single_rows_store_nothing(tmp_path, store):
    nursery_golden_add("g", "Tell me a joke", ["get_weather"], [])
    before = snapshot(store)
    with pytest.raises(InvalidInput, match="already has") as e:
        nursery_golden_import(jsonl(tmp_path / "g.jsonl", [{"request": "tell me a JOKE.", "tools": ["get_weather"],
                                                             "calls": []}]), name="g")
    assert e.value.line == 1 and e.value.field == "request"
    bad = [(dict(request="", tools=["get_weather"], calls=[]), "request"),
           (dict(request="Weather?", tools=["nope"], calls=[]), "tools[0]"),
           (dict(request="Weather?", tools=["get_weather"],
                 calls=[{"name": "get_weather", "arguments": {"city": "X", "days": 9}}]), "calls[0].arguments.days")]
    for kwargs, field in bad:
        for target in ("g", "brand-new"):
            with pytest.raises(InvalidInput) as e:
                nursery_golden_add(target, **kwargs)
            assert e.value.field == field, str(e.value)
    with pytest.raises(InvalidInput, match="already has") as e:
        nursery_golden_add("g", "TELL me a joke", ["get_weather"], [])
    assert e.value.field == "request"
    assert snapshot(store) == before


# -------------------------------------------------------------------------------- shared requests
def test_golden_refuses_a_request_a_training_dataset_holds(tmp_path, store):
    write_dataset("train-me", [training_rec("What's the weather in Paris?"), training_rec("Weather in Rome?", "Rome")],
                  source="test")
    before = snapshot(store)
    for request in ("What's the weather in Paris?", "  whats the WEATHER in paris  "):  # exact and normalised
        with pytest.raises(SharedRequest) as e:
            nursery_golden_add("g", request, ["get_weather"], [])
        assert e.value.golden == "g" and e.value.training == "train-me" and "What's the weather in Paris?" in str(e.value)
    f = jsonl(tmp_path / "g.jsonl", [{"request": "Fine request", "tools": ["get_weather"], "calls": []},
                                     {"request": "weather in rome", "tools": ["get_weather"], "calls": []}])
    with pytest.raises(SharedRequest) as e:
        nursery_golden_import(f, name="g")
    assert e.value.line == 2 and "'train-me'" in str(e.value) and "'g'" in str(e.value)
    assert snapshot(store) == before
    delete_dataset("train-me")  # the index follows deletes: the request is free now
    assert nursery_golden_add("g", "What's the weather in Paris?", ["get_weather"], [])["set"]["num_examples"] == 1


def test_training_data_refuses_a_golden_request(tmp_path, store):
    nursery_golden_add("g", "What's the weather in Paris?", ["get_weather"], [])
    before = snapshot(store)
    f = jsonl(tmp_path / "train.jsonl", [training_rec("Weather in Rome?", "Rome"),
                                         training_rec("what's the weather in PARIS")])
    with pytest.raises(SharedRequest) as e:
        nursery_import_dataset(f, name="train")
    assert e.value.golden == "g" and e.value.training == "train" and "PARIS" in str(e.value)
    assert snapshot(store) == before and not paths.dataset_path("train").exists()
    nursery_golden_delete("g")
    assert nursery_import_dataset(f, name="train")["num_examples"] == 2


def test_generator_draws_again_instead_of_a_golden_request(store):
    from nursery_core.data.generator import generate_examples, nursery_generate_data
    from nursery_core.overlap import example_requests

    first, _ = generate_examples("get_weather", 30, "low", seed=3)
    taken = [r for ex in first[:3] for r in example_requests(ex)]
    for i, request in enumerate(taken):
        nursery_golden_add("g", request, ["get_weather"], [])
    row = nursery_generate_data("get_weather", 30, "low", seed=3, name="w")
    assert row["report"]["golden_requests_avoided"] >= 1 and row["num_examples"] == 30
    made = {normal_request(r) for ex in load_examples("w") for r in example_requests(ex)}
    assert not made & {normal_request(t) for t in taken}


def test_training_refuses_golden_sets_and_datasets_sharing_a_request(store):
    from nursery_core.jobs.api import check_training_dataset, create_job
    from nursery_core.training.config import TrainConfig

    nursery_golden_add("g", "Forecast for Nairobi?", ["get_weather"], [])
    with pytest.raises(InvalidInput, match="'g' is a golden set"):
        check_training_dataset("g")
    with pytest.raises(InvalidInput, match="golden set"):
        create_job("local", "g", "smollm2-135m", "out", TrainConfig(max_steps=1))
    store_dataset("weather", n=8)
    check_training_dataset("weather")  # fine
    # a clash from before the index existed (written by an older version): training still refuses it
    store.db.conn.execute("insert into dataset_requests (dataset, norm, request) values (?, ?, ?)",
                          ["weather", normal_request("forecast for nairobi"), "forecast for nairobi"])
    with pytest.raises(SharedRequest) as e:
        check_training_dataset("weather")
    assert e.value.golden == "g" and e.value.training == "weather" and e.value.field == "dataset"
    with pytest.raises(SharedRequest):
        create_job("local", "weather", "smollm2-135m", "out", TrainConfig(max_steps=1))
    assert not paths.jobs_dir().exists() or not any(paths.jobs_dir().iterdir())


def test_the_migration_indexes_datasets_written_before_it(store, nursery_home):
    from nursery_core import store as store_mod

    store_dataset("weather", n=8)
    conn = store.db.conn
    conn.execute("drop table dataset_requests")
    conn.execute("alter table datasets drop column kind")
    conn.execute("delete from _migrations where name = 'm004_golden_sets'")
    store_mod.close_all()
    fresh = store_mod.get_store()
    assert fresh.get_dataset("weather")["kind"] == "training"
    hits = fresh.find_requests([normal_request("What's the weather in Paris?")])
    assert [h["dataset"] for h in hits] == ["weather"]
    with pytest.raises(SharedRequest):
        nursery_golden_add("g", "what's the weather in paris?", ["get_weather"], [])


# -------------------------------------------------------------------------------------------- CLI
def test_cli_add_list_show_edit_remove_and_errors(tmp_path, nursery_home):
    call = json.dumps(WEATHER_CALL)
    r = cli("golden", "add", "g", "--request", "Weather in Lisbon, in fahrenheit?", "--tool", "get_weather",
            "--call", call, "--json", home=nursery_home)
    assert r.returncode == 0, r.stderr
    row_id = json.loads(r.stdout)["row"]["id"]
    assert cli("golden", "add", "g", "--request", "Hi there", "--tool", "get_weather", home=nursery_home).returncode == 0
    r = cli("golden", "list", "--json", home=nursery_home)
    assert [(s["name"], s["num_examples"]) for s in json.loads(r.stdout)] == [("g", 2)]
    r = cli("golden", "show", "g", "--json", home=nursery_home)
    rows = json.loads(r.stdout)["rows"]
    assert rows[0]["calls"] == [WEATHER_CALL] and rows[1]["calls"] == [] and "example" not in rows[0]
    r = cli("golden", "edit", "g", row_id, "--no-call", "--json", home=nursery_home)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["row"]["meta"]["category"] == "no_call"
    r = cli("golden", "remove-row", "g", row_id, home=nursery_home)
    assert r.returncode == 0 and row_id in r.stdout
    # bad input: one line on stderr, exit 2, the field named, nothing stored
    before = sorted(os.listdir(paths.datasets_dir()))
    r = cli("golden", "add", "g", "--request", "Weather in Oslo?", "--tool", "get_weather", "--call",
            '{"name": "get_weather", "arguments": {"city": 7}}', home=nursery_home)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "calls[0].arguments.city" in r.stderr
    r = cli("golden", "add", "g", "--request", "Weather in Oslo?", "--tool", "teleport", home=nursery_home)
    assert r.returncode == 2 and "unknown tool 'teleport'" in r.stderr
    bad = jsonl(tmp_path / "bad.jsonl", [{"request": "ok", "tools": ["get_weather"], "calls": []},
                                         {"request": "", "tools": ["get_weather"], "calls": []}])
    r = cli("golden", "import", str(bad), "--name", "g", home=nursery_home)
    assert r.returncode == 2 and "bad.jsonl:2" in r.stderr and "field 'request'" in r.stderr
    assert sorted(os.listdir(paths.datasets_dir())) == before
    # a training dataset that shares a request is refused by import-dataset too
    train = jsonl(tmp_path / "t.jsonl", [training_rec("hi there!")])
    r = cli("import-dataset", str(train), "--name", "t", home=nursery_home)
    assert r.returncode == 2 and "golden set 'g'" in r.stderr and "training dataset 't'" in r.stderr
    r = cli("list-datasets", "--json", home=nursery_home)
    assert [(d["name"], d["kind"]) for d in json.loads(r.stdout)] == [("g", "golden")]
    r = cli("golden", "import", str(jsonl(tmp_path / "more.jsonl", [
        {"request": "Weather in Rome?", "calls": [{"name": "get_weather", "arguments": {"city": "Rome"}}]}])),
        "--name", "g", "--json", home=nursery_home)
    assert r.returncode == 0 and json.loads(r.stdout)["num_examples"] == 2


# ------------------------------------------------------------------------------------- evaluation
def _golden_for_cradle_tools():
    nursery_golden_add("gold", "Weather in Lisbon?", [TOOLS[0], TOOLS[1]],
                       [{"name": "get_weather", "arguments": {"city": "Lisbon"}}])
    nursery_golden_add("gold", "Start a 4 minute timer", [TOOLS[0], TOOLS[1]],
                       [{"name": "set_timer", "arguments": {"minutes": 4}}])
    nursery_golden_add("gold", "Sing me a song", [TOOLS[0], TOOLS[1]], [])


def test_scorecard_and_leaderboard_put_golden_beside_held_out(tmp_path, store):
    from nursery_core.evaluation.api import nursery_evaluate, nursery_leaderboard, nursery_scorecard
    from nursery_core.training.rendering import format_calls

    store_dataset("weather", n=8)
    _golden_for_cradle_tools()
    store.add_model({"name": "m", "path": str(tmp_path), "dataset": "weather", "tools": TOOLS})
    right = {ex["id"]: format_calls([{"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
                                     for m in ex["messages"] for c in m.get("tool_calls") or ()]) or "no"
             for ex in load_examples("gold")}
    p = tmp_path / "p.jsonl"
    p.write_text("\n".join(json.dumps({"id": k, "output": v}) for k, v in right.items()))
    g = nursery_evaluate("m", "gold", predictions=p)
    assert g["settings"]["dataset_kind"] == "golden" and g["metrics"]["ast_accuracy"] == 1.0
    assert g["metrics"]["ci95"]["ast_accuracy"] == [0.4385, 1.0] and g["metrics"]["small_sample"]
    q = tmp_path / "q.jsonl"
    q.write_text(json.dumps({"id": "ex0", "output": "nothing"}))
    nursery_evaluate("m", "weather", split="all", predictions=q)
    card = nursery_scorecard(["m"])["m"]
    assert card["held_out"]["dataset"] == "weather" and card["held_out"]["ast_accuracy"] == 0.0
    assert card["golden"]["gold"]["ci95"] == [0.4385, 1.0] and "under 30" in card["golden"]["gold"]["warning"]
    board = {r["dataset"]: r for r in nursery_leaderboard()}
    assert board["gold"]["dataset_kind"] == "golden" and board["weather"]["dataset_kind"] == "training"
    assert board["gold"]["ast_ci95"] == [0.4385, 1.0] and board["gold"]["warning"]


def test_evaluate_suite_scores_held_out_golden_and_the_base(tiny_model_dir, store, one_thread):
    from nursery_core.evaluation.api import nursery_evaluate_suite

    store_dataset("weather", n=8)
    _golden_for_cradle_tools()
    nursery_golden_add("other-tools", "What is 2+2?", ["calculator"], [{"name": "calculator",
                                                                        "arguments": {"expression": "2+2"}}])
    make_adapter("ada", tiny_model_dir, seed=1, dataset="weather")
    seen = []
    r = nursery_evaluate_suite("ada", limit=2, max_new_tokens=4, with_base=True,
                               progress=lambda tag, done, total: seen.append(tag))
    assert r["model"] == "ada" and r["dataset"] == "weather" and r["metrics"]["ci95"]  # the first run's shape
    assert r["decoding"] == "guarded"  # free and guarded by default: a run each, the guarded one first up
    got = [(x["is_base"], x["dataset"], x["dataset_kind"], x["num_examples"]) for x in r["runs"]]
    assert got == [(False, "weather", "training", 2)] * 2 + [(False, "gold", "golden", 2)] * 2 + [
        (True, "weather", "training", 2)] * 2 + [(True, "gold", "golden", 2)] * 2  # other-tools: not its tools
    assert [x["decoding"] for x in r["runs"]] == ["free", "guarded"] * 4
    assert r["runs"][4]["model"] == str(tiny_model_dir) and all(x["id"] for x in r["runs"])
    assert all(x["metrics"]["warning"] for x in r["runs"]) and len(set(seen)) == 4
    only = nursery_evaluate_suite("ada", golden=["other-tools"], limit=1, max_new_tokens=2, decoding="free")
    assert [x["dataset"] for x in only["runs"]] == ["weather", "other-tools"]
    with pytest.raises(InvalidInput, match="not a golden set"):
        nursery_evaluate_suite("ada", golden=["weather"])
    with pytest.raises(InvalidInput, match="base model already"):
        nursery_evaluate_suite(str(tiny_model_dir), dataset="weather", with_base=True)


def test_cli_evaluate_groups_runs(tiny_model_dir, nursery_home, one_thread, capsys):
    from nursery_core.cli import main  # in-process: the same parser and printing, without a second torch start

    store_dataset("weather", n=8)
    _golden_for_cradle_tools()
    make_adapter("ada", tiny_model_dir, seed=1, dataset="weather")
    assert main(["evaluate", "ada", "--limit", "1", "--max-new-tokens", "2", "--with-base", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dataset"] == "weather" and [(x["dataset"], x["is_base"]) for x in out["runs"]] == [
        ("weather", False), ("weather", False), ("gold", False), ("gold", False),
        ("weather", True), ("weather", True), ("gold", True), ("gold", True)]  # free and guarded each
    assert all("ast_accuracy" in x["metrics"]["ci95"] for x in out["runs"])
    assert main(["evaluate", "ada", "--limit", "1", "--max-new-tokens", "2", "--no-golden"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"ast_accuracy +\d\.\d{3}  \[\d\.\d{3}, \d\.\d{3}\]", text), text
    assert "warning: only 1 example" in text
    assert main(["leaderboard"]) == 0
    text = capsys.readouterr().out
    assert "golden" in text and "⚠ small sample" in text
    assert main(["evaluate", "ada", "--golden", "gold", "--no-golden"]) == 2
    assert "not both" in capsys.readouterr().err


def test_the_projects_own_golden_file_imports(store):
    f = ROOT / "bench" / "golden" / "default_tools.jsonl"
    if not f.is_file():
        pytest.skip("bench/golden/default_tools.jsonl is not in this checkout")
    r = nursery_golden_import(f, name="default-tools")
    n = sum(1 for line in f.read_text().splitlines() if line.strip())
    assert r["imported"] == r["num_examples"] == n and r["kind"] == "golden"
    from nursery_core.data.tools import DEFAULT_TOOL_NAMES
    assert golden_sets_for(DEFAULT_TOOL_NAMES) == ["default-tools"]
