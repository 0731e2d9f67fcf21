"""The diversity report: request skeletons, 3-grams per call, optional-argument and no-call shares."""
from nursery_core import datasets
from nursery_core.data.diversity import diversity_report, skeleton
from nursery_core.datasets import dataset_diversity, write_dataset

TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}}


def ex(text, args=None, category="call", **meta):
    msgs = [{"role": "user", "content": text}]
    if args is None:
        msgs.append({"role": "assistant", "content": "Sure."})
    else:
        msgs.append({"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": args}}]})
    return {"tools": [TOOL], "messages": msgs, "meta": {"category": category, **meta}}


def test_skeleton_takes_out_values_numbers_addresses_and_quotes():
    assert skeleton("What's the weather in Buenos Aires for 3 days?", [{"city": "Buenos Aires", "days": 3}]) == \
        "what's the weather in <v> for <n> days"
    assert skeleton('Email ana@x.io saying "hi there" at 15:30', []) == "email <v> saying <q> at <n>"
    assert skeleton("Weather in Oslo", [{"city": "Oslo"}]) == skeleton("weather in LIMA!!", [{"city": "Lima"}])


def test_report_counts_shapes_not_values():
    rows = [ex("Weather in Oslo?", {"city": "Oslo"}), ex("Weather in Rome?", {"city": "Rome"}),
            ex("Is it raining in Oslo for the next 3 days?", {"city": "Oslo", "days": 3}),
            ex("Write me a poem", None, "no_call", no_call_kind="chat")]
    d = diversity_report(rows)
    assert d["requests"] == 4 and d["skeletons"] == 3 and d["skeletons_per_100_requests"] == 75.0
    assert d["calls"] == 3 and d["optional_arg_share"] == round(1 / 3, 3)
    assert d["no_call_share"] == 0.25 and d["no_call_kinds"] == {"chat": 1}
    # "weather in <v>" has 1 trigram, the rain question 8, the poem 2
    assert d["trigrams"] == 11 and d["trigrams_per_call"] == round(11 / 3, 2)
    assert diversity_report([])["requests"] == 0


def test_stored_report_and_one_computed_for_older_datasets(store, monkeypatch):
    row = write_dataset("w", [ex("Weather in Oslo?", {"city": "Oslo"}), ex("Oslo weather pls", {"city": "Oslo"})],
                        source="test")
    assert dataset_diversity("w") == row["stats"]["diversity"] and row["stats"]["diversity"]["skeletons"] == 2
    legacy = dict(row, stats={k: v for k, v in row["stats"].items() if k != "diversity"})
    monkeypatch.setattr(datasets, "get_dataset", lambda name: legacy)
    assert dataset_diversity("w") == row["stats"]["diversity"]
