"""datasets.py: the only writer — validation before writing, atomic files, splits, stats, and refusing bad input
with nothing written."""
import json
import os

import pytest

from nursery_core import paths
from nursery_core.datasets import (CHARS_PER_TOKEN, assign_split, delete_dataset, load_examples,
                                   nursery_import_dataset, nursery_list_datasets, show_dataset, write_dataset)
from nursery_core.data.generator import generate_examples
from nursery_core.errors import AlreadyExists, InvalidInput, NotFound

TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def rec(city="Oslo", **over):
    r = {"tools": [TOOL], "messages": [{"role": "user", "content": f"Weather in {city}?"},
                                       {"role": "assistant", "tool_calls": [
                                           {"type": "function", "function": {"name": "get_weather",
                                                                             "arguments": {"city": city}}}]}]}
    r.update(over)
    return r


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def snapshot(store):
    return sorted(os.listdir(paths.datasets_dir())), store.count_datasets()


def test_import_round_trip_with_split_and_stats(tmp_path, store):
    f = write_jsonl(tmp_path / "weather.jsonl", [rec(c) for c in ["Oslo", "Rome", "Lima", "Pune", "Kyiv"] * 4])
    # 20 lines but only 5 distinct contents: ids stay unique
    row = nursery_import_dataset(f)
    assert row["name"] == "weather" and row["num_examples"] == 20 and row["tools"] == ["get_weather"]
    assert row["categories"] == {"call": 20} and row["source"] == "import:canonical"
    assert row["split"]["train"] + row["split"]["eval"] == 20 and row["split"]["eval"] == 2
    tok = row["stats"]["approx_tokens"]
    assert tok["min"] <= tok["p50"] <= tok["max"] and row["stats"]["chars_per_token"] == CHARS_PER_TOKEN
    assert row["stats"]["calls_per_tool"] == {"get_weather": 20}
    div = row["stats"]["diversity"]  # 20 requests, 5 distinct only by the city: one skeleton
    assert div["requests"] == 20 and div["skeletons"] == 1 and div["calls"] == 20
    assert div["optional_arg_share"] == 0 and div["no_call_share"] == 0
    everything = load_examples("weather")
    assert len({e["id"] for e in everything}) == 20
    train, ev = load_examples("weather", "train"), load_examples("weather", "eval")
    assert len(train) == 18 and len(ev) == 2 and not {e["id"] for e in train} & {e["id"] for e in ev}
    assert show_dataset("weather", limit=3)["examples"] == everything[:3]
    assert [d["name"] for d in nursery_list_datasets()] == ["weather"]


def test_split_is_deterministic_and_stratified():
    exs, _ = generate_examples(["get_weather", "calculator"], 300, "medium", seed=1)
    for i, e in enumerate(exs):
        e["id"] = f"x{i}"
    a = assign_split(exs, seed=3)
    first = [e["meta"]["split"] for e in exs]
    b = assign_split(exs, seed=3)
    assert a == b and first == [e["meta"]["split"] for e in exs]
    assign_split(exs, seed=4)
    assert first != [e["meta"]["split"] for e in exs]
    assign_split(exs, seed=3)
    for cat in ("call", "no_call"):
        group = [e for e in exs if e["meta"]["category"] == cat]
        n_eval = sum(e["meta"]["split"] == "eval" for e in group)
        assert int(len(group) * 0.1) <= n_eval <= int(len(group) * 0.1) + 1
    assert sum(e["meta"]["split"] == "eval" for e in exs) == 30
    with pytest.raises(InvalidInput, match="eval fraction"):
        assign_split(exs, eval_fraction=1.5)


BAD_CASES = {
    "malformed line": ([rec(), "{oops"], r"bad\.jsonl:2: not valid JSON"),
    "invalid schema": ([rec(), rec(tools=[{"name": "get_weather", "parameters": {"type": "object", "properties": {
        "city": {"type": "text"}}}}])], r"bad\.jsonl:2, field 'tools\[0\]\.function\.parameters\.properties\.city\.type'"),
    "call not matching schema": ([rec(), rec(), {**rec(), "messages": [
        {"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": 7}}}]}]}],
        r"bad\.jsonl:3, field 'messages\[1\]\.tool_calls\[0\]\.function\.arguments'"),
    "flat row given to canonical import": ([{"user_query": "x", "tool_name": "y", "tool_arguments": {}}],
                                           r"bad\.jsonl:1, field 'messages': this looks like flat rows"),
    "only blank lines": (["", "  "], r"bad\.jsonl: the file has no examples"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_names_file_line_field_and_writes_nothing(tmp_path, store, case):
    rows, pattern = BAD_CASES[case]
    nursery_import_dataset(write_jsonl(tmp_path / "good.jsonl", [rec()]))
    before = snapshot(store)
    with pytest.raises(InvalidInput, match=pattern):
        nursery_import_dataset(write_jsonl(tmp_path / "bad.jsonl", rows))
    assert snapshot(store) == before


def test_unknown_format_empty_file_too_large_and_traversal(tmp_path, store, monkeypatch):
    good = write_jsonl(tmp_path / "good.jsonl", [rec()])
    before = snapshot(store)
    with pytest.raises(InvalidInput, match=r"good\.jsonl, field 'format': unknown format 'parquet'"):
        nursery_import_dataset(good, format="parquet")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InvalidInput, match=r"empty\.jsonl: the file is empty"):
        nursery_import_dataset(empty)
    monkeypatch.setenv("NURSERY_MAX_IMPORT_MB", "0.0001")
    with pytest.raises(InvalidInput, match=r"good\.jsonl: the file is .* over the .* import limit"):
        nursery_import_dataset(good)
    monkeypatch.delenv("NURSERY_MAX_IMPORT_MB")
    with pytest.raises(InvalidInput, match=r"field 'dataset name': dataset name '\.\./\.\./etc/passwd' is not allowed"):
        nursery_import_dataset(good, name="../../etc/passwd")
    with pytest.raises(InvalidInput, match="file not found"):
        nursery_import_dataset(tmp_path / "missing.jsonl")
    assert snapshot(store) == before
    assert not (tmp_path.parent / "etc").exists()


def test_never_overwrites_silently(tmp_path, store):
    f = write_jsonl(tmp_path / "a.jsonl", [rec()])
    nursery_import_dataset(f, name="mine")
    original = paths.dataset_path("mine").read_bytes()
    with pytest.raises(AlreadyExists, match="already exists"):
        nursery_import_dataset(write_jsonl(tmp_path / "b.jsonl", [rec("Rome")]), name="mine")
    assert paths.dataset_path("mine").read_bytes() == original
    # a stray file without a row is not overwritten either
    paths.dataset_path("stray").write_text("keep me\n")
    with pytest.raises(AlreadyExists, match="not a registered dataset"):
        write_dataset("stray", [rec()], source="test")
    assert paths.dataset_path("stray").read_text() == "keep me\n"


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path, store):
    exs, _ = generate_examples(["read_file"], 50, seed=2)
    row = write_dataset("files", exs, source="synthetic")
    assert sorted(os.listdir(paths.datasets_dir())) == ["files.jsonl"]
    lines = paths.dataset_path("files").read_text().splitlines()
    assert len(lines) == row["num_examples"] == 50
    import hashlib
    assert hashlib.sha256(paths.dataset_path("files").read_bytes()).hexdigest() == row["sha256"]


def test_delete_and_not_found(tmp_path, store):
    nursery_import_dataset(write_jsonl(tmp_path / "d.jsonl", [rec()]))
    assert delete_dataset("d")["deleted"] == "d"
    assert snapshot(store) == ([], 0)
    with pytest.raises(NotFound):
        delete_dataset("d")
    with pytest.raises(NotFound):
        load_examples("d")
    with pytest.raises(InvalidInput, match="split"):
        nursery_import_dataset(write_jsonl(tmp_path / "e.jsonl", [rec()]))
        load_examples("e", split="test")
