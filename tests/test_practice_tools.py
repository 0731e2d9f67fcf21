"""The practice tools: real schemas, distinct from the built-in ones, and data over them that is valid, honours
formats, and asks for absent practice tools in its no-call requests."""
import re

from nursery_core.data.generator import generate_examples
from nursery_core.data.practice_tools import PRACTICE_TOOL_NAMES, PRACTICE_TOOLS
from nursery_core.data.recipe import apply_recipe
from nursery_core.data.tools import DEFAULT_TOOL_NAMES, resolve_tools
from nursery_core.records import call_errors, tools_by_name


def _calls(examples):
    return [(ex, c["function"]) for ex in examples for m in ex["messages"] for c in m.get("tool_calls") or ()]


def test_practice_tools_are_real_distinct_schemas():
    assert len(PRACTICE_TOOLS) >= 30 and len(set(PRACTICE_TOOL_NAMES)) == len(PRACTICE_TOOL_NAMES)
    assert not set(PRACTICE_TOOL_NAMES) & set(DEFAULT_TOOL_NAMES)
    assert [t["function"]["name"] for t in resolve_tools(PRACTICE_TOOLS)] == PRACTICE_TOOL_NAMES
    for t in PRACTICE_TOOLS:
        fn = t["function"]
        props = fn["parameters"]["properties"]
        assert fn["description"] and props and set(fn["parameters"]["required"]) <= set(props)
        assert all(p.get("description") for p in props.values()), fn["name"]


def test_generated_practice_data_is_valid_and_honours_formats():
    examples, report = generate_examples(PRACTICE_TOOLS, 320, "low", seed=0)
    assert len(examples) == 320 and set(report["categories"]) == {"call", "no_call", "parallel", "multi_turn"}
    calls = _calls(examples)
    by_tool = {name for _, fn in calls for name in [fn["name"]]}
    assert len(by_tool) >= 25                      # most of the bank is asked for, not a few tools
    for ex, fn in calls:
        assert call_errors(tools_by_name(ex["tools"])[fn["name"]], fn["arguments"]) == [], (fn, ex["messages"])
        args = fn["arguments"]
        codes = {"search_flights": ("origin", "destination"), "convert_currency": ("from_currency", "to_currency"),
                 "get_exchange_history": ("base", "quote")}.get(fn["name"], ())
        for key in codes:
            if key in args:
                assert re.fullmatch(r"[A-Z]{3}", args[key]), (key, args[key])
        for key in ("date", "check_in", "due_date"):
            if key in args:
                assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", args[key]), (key, args[key])
    # the description is never pasted into a request
    descriptions = {t["function"]["description"].lower().rstrip(".") for t in PRACTICE_TOOLS}
    for ex in examples:
        text = " ".join(m["content"] for m in ex["messages"] if m["role"] == "user").lower()
        assert not any(d in text for d in descriptions)


def test_no_call_practice_requests_ask_for_a_tool_that_is_not_offered():
    examples, _ = generate_examples(PRACTICE_TOOLS, 320, "low", seed=4)
    absent = [e for e in examples if e["meta"].get("no_call_kind") == "absent_tool"]
    assert len(absent) >= 20
    wanted = set()
    for e in absent:
        offered = {t["function"]["name"] for t in e["tools"]}
        tool, _, operation = e["meta"]["requested_tool"].partition(":")
        # another practice tool that is not offered, or what an offered one does not do ("cancel the table")
        assert (tool not in offered) if not operation else (tool in offered and operation not in tool)
        assert not e["messages"][-1].get("tool_calls")
        wanted.add(e["meta"]["requested_tool"])
    assert len(wanted) >= 10                       # many different tools asked for, each absent


def test_practice_data_mixes_into_a_training_split():
    default, _ = generate_examples(DEFAULT_TOOL_NAMES, 40, "low", seed=0)
    practice, _ = generate_examples(PRACTICE_TOOLS, 20, "low", seed=1)
    train, report = apply_recipe(default, [], seed=0, mix=practice, mix_fraction=0.5, mix_name="practice")
    assert report["mixed"] == 20 and len(train) == 60
    assert sum(1 for e in train if {t["function"]["name"] for t in e["tools"]} & set(PRACTICE_TOOL_NAMES)) == 20


def test_a_job_adds_practice_examples_to_its_training_split_only(store):
    import json

    from nursery_core import paths
    from nursery_core.data.generator import nursery_generate_data
    from nursery_core.jobs import api
    from nursery_core.training.config import TrainConfig

    own_tool = {**PRACTICE_TOOLS[0]["function"], "description": "My own currency tool."}
    nursery_generate_data([{"type": "function", "function": own_tool}, "get_weather"], 50, "low", seed=0,
                          name="own", eval_fraction=0.2)
    job = api.create_job("local", "own", "smollm2-135m", "practised", TrainConfig(practice_fraction=0.5, max_steps=1))
    data = paths.job_dir(job["id"]) / "data"
    train = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    evals = [json.loads(line) for line in (data / "eval.jsonl").read_text().splitlines()]
    recipe = json.loads((data / "recipe.json").read_text())
    added = [e for e in train if e["meta"].get("practice")]
    assert recipe["practice_added"] == len(added) == 20 and len(train) == 40 + 20
    assert not any(e["meta"].get("practice") for e in evals)
    # the dataset's own convert_currency keeps its schema: no practice example offers the other one
    assert all(t["function"]["name"] != "convert_currency" for e in added for t in e["tools"])
    again = api.create_job("local", "own", "smollm2-135m", "practised-2", TrainConfig(practice_fraction=0.5,
                                                                                      max_steps=1))
    assert (paths.job_dir(again["id"]) / "data" / "train.jsonl").read_text() == (data / "train.jsonl").read_text()
