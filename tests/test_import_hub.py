"""import-hub and the raw glaive-v2 / xLAM rows: local Parquet files in xLAM, glaive and ShareGPT shapes, built
here, read through the datasets library and the same importers; --limit, progress, errors. Nothing is
downloaded (conftest sets HF_HUB_OFFLINE)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nursery_core.data.hub import load_rows, nursery_import_hub
from nursery_core.data.importers import extract_examples
from nursery_core.datasets import load_examples
from nursery_core.errors import InvalidInput
from nursery_core.records import call_errors, tools_by_name

ROOT = Path(__file__).resolve().parent.parent
XLAM_TOOLS = [{"name": "convert_length", "description": "Convert a length.", "parameters": {
    "value": {"description": "The amount", "type": "float"},
    "unit": {"description": "Target unit", "type": "str, optional", "default": "km"}}}]


def xlam_row(i: int) -> dict:
    answers = [{"name": "convert_length", "arguments": {"value": float(i + 1), "unit": "mi"}}]
    if i % 3 == 0:
        answers.append({"name": "convert_length", "arguments": {"value": float(i + 2)}})
    return {"id": i, "query": f"Convert {i + 1} km to miles" + (f" and also {i + 2}" if i % 3 == 0 else ""),
            "tools": json.dumps(XLAM_TOOLS), "answers": json.dumps(answers)}


GLAIVE_SYSTEM = ("SYSTEM: You are a helpful assistant with access to the following functions. Use them if required -\n"
                 + json.dumps({"name": "get_quote", "description": "A stock quote", "parameters": {
                     "type": "object", "properties": {"symbol": {"type": "string", "description": "Ticker"}},
                     "required": ["symbol"]}}, indent=4) + "\n")


def glaive_row(i: int, plain: bool = False) -> dict:
    if plain:
        return {"system": "SYSTEM: You are a helpful assistant, with no access to external functions.",
                "chat": f"USER: Tell me a fact number {i}\n\n\nASSISTANT: Water is wet. <|endoftext|>\n\n\n"}
    sym = f"AB{i}"
    chat = (f"USER: What's {sym} trading at? It's urgent\n\n\n"
            f"ASSISTANT: <functioncall> {{\"name\": \"get_quote\", \"arguments\": '{{\"symbol\": \"{sym}\"}}'}} "
            f"<|endoftext|>\n\n\nFUNCTION RESPONSE: {{\"price\": {i}.5}}\n\n\n"
            f"ASSISTANT: {sym} trades at {i}.5 - it's up. <|endoftext|>\n\n\n")
    return {"system": GLAIVE_SYSTEM, "chat": chat}


def sharegpt_row(i: int) -> dict:
    tool = {"name": "add_note", "description": "Add a note", "parameters": {
        "type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}
    return {"conversations": [
        {"from": "human", "value": f"Note that meeting {i} moved"},
        {"from": "function_call", "value": json.dumps({"name": "add_note", "arguments": {"text": f"meeting {i} moved"}})},
        {"from": "observation", "value": "{\"ok\": true}"}, {"from": "gpt", "value": "Noted."}],
        "tools": json.dumps([tool])}


def parquet(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def valid(examples):
    for ex in examples:
        by = tools_by_name(ex["tools"])
        for m in ex["messages"]:
            for c in m.get("tool_calls") or ():
                assert call_errors(by[c["function"]["name"]], c["function"]["arguments"]) == []


# ------------------------------------------------------------------------ raw rows in files, auto-detected
def test_raw_glaive_v2_rows_are_detected_and_read(tmp_path):
    src = tmp_path / "glaive.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in [glaive_row(1), glaive_row(2, plain=True), glaive_row(3)]))
    exs, rep, _ = extract_examples(src)
    assert rep["format"] == "glaive" and rep["examples"] == 2
    assert rep["skipped"] == {"plain conversation without tool calls (skipped unless plain conversations are kept)": 1}
    ex = exs[0]
    assert [m["role"] for m in ex["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert ex["messages"][0]["content"] == "What's AB1 trading at? It's urgent"
    assert ex["messages"][1]["tool_calls"][0]["function"]["arguments"] == {"symbol": "AB1"}
    assert ex["messages"][3]["content"] == "AB1 trades at 1.5 - it's up."
    assert ex["tools"][0]["function"]["description"] == "A stock quote" and not rep["inferred_tools"]
    valid(exs)


def test_xlam_rows_are_detected_and_their_flat_parameters_become_json_schema(tmp_path):
    src = tmp_path / "xlam.json"
    src.write_text(json.dumps([xlam_row(i) for i in range(4)]))
    exs, rep, _ = extract_examples(src)
    assert rep["format"] == "xlam" and rep["categories"] == {"parallel": 2, "call": 2}
    params = exs[0]["tools"][0]["function"]["parameters"]
    assert params["required"] == ["value"] and params["properties"]["unit"]["default"] == "km"
    assert params["properties"]["value"]["type"] == "number"
    assert rep["transformations"]["xlam_parameters_converted"] == 4
    valid(exs)


# ------------------------------------------------------------------------------------------ import-hub
@pytest.mark.parametrize("shape, make, fmt", [("xlam", xlam_row, "xlam"), ("glaive", glaive_row, "glaive"),
                                              ("sharegpt", sharegpt_row, "sharegpt")])
def test_import_hub_reads_local_parquet_in_each_shape_with_limit_and_progress(tmp_path, store, shape, make, fmt):
    path = parquet(tmp_path / f"{shape}.parquet", [make(i) for i in range(30)])
    seen = []
    row = nursery_import_hub(str(path), limit=12, name=shape, progress=seen.append)
    assert row["num_examples"] == 12 and row["source"] == f"hub:{fmt}"
    rep = row["report"]
    assert rep["format"] == fmt and rep["conversations_read"] == 12
    assert rep["hub"] == {"dataset": str(path), "split": "train", "revision": None, "limit": 12, "rows": 12}
    assert seen[-1] == {"stage": "converting", "read": 12, "kept": 12, "skipped": 0, "total": 12}
    stored = load_examples(shape)
    assert len(stored) == 12
    valid(stored)


def test_import_hub_reads_a_folder_of_parquet_shards_and_reports_reading_progress(tmp_path, store, monkeypatch):
    from nursery_core.data import hub
    monkeypatch.setattr(hub, "READ_PROGRESS_EVERY", 10)
    folder = tmp_path / "shards"
    folder.mkdir()
    parquet(folder / "part-0.parquet", [xlam_row(i) for i in range(15)])
    parquet(folder / "part-1.parquet", [xlam_row(i) for i in range(15, 25)])
    seen = []
    row = nursery_import_hub(str(folder), name="shards", progress=seen.append)
    assert row["num_examples"] == 25
    assert [p["read"] for p in seen if p["stage"] == "reading"] == [10, 20]


def test_import_hub_errors_are_clear_and_store_nothing(tmp_path, store):
    with pytest.raises(InvalidInput, match="cannot load 'nobody/no-such-dataset'"):
        load_rows("nobody/no-such-dataset")
    odd = tmp_path / "rows.csv"
    odd.write_text("a,b\n1,2\n")
    with pytest.raises(InvalidInput, match="not a data file"):
        load_rows(str(odd))
    bad = parquet(tmp_path / "bad.parquet", [{"query": "hi", "answers": "not json", "tools": "[]"}])
    with pytest.raises(InvalidInput, match="no examples could be extracted from 1 row"):
        nursery_import_hub(str(bad))
    with pytest.raises(InvalidInput, match="revision applies to Hub datasets"):
        load_rows(str(bad), revision="main")
    assert store.count_datasets() == 0


def test_cli_import_hub_prints_progress_on_stderr(tmp_path, nursery_home):
    path = parquet(tmp_path / "xlam.parquet", [xlam_row(i) for i in range(1200)])
    env = {**os.environ, "NURSERY_HOME": str(nursery_home), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "nursery_core", "import-hub", str(path), "--limit", "600",
                        "--name", "x", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["num_examples"] == 600 and out["report"]["hub"]["limit"] == 600
    assert "converting: 500/600 rows read" in r.stderr and "converting: 600/600 rows read, 600 kept, 0 skipped" in r.stderr
