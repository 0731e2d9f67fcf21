"""Chat-history importers: every supported format from our own fixtures, the report, inference, redaction,
and the real samples in ../shared/samples when they are there."""
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from nursery_core.data.importers import FORMATS, extract_examples, nursery_extract_conversations
from nursery_core.datasets import load_examples
from nursery_core.errors import AlreadyExists, InvalidInput
from nursery_core.records import call_errors, tools_by_name

FIX = Path(__file__).parent / "fixtures" / "imports"


def calls(ex):
    return [c["function"] for m in ex["messages"] for c in m.get("tool_calls") or ()]


def all_calls_valid(examples):
    for ex in examples:
        by = tools_by_name(ex["tools"])
        for fn in calls(ex):
            assert call_errors(by[fn["name"]], fn["arguments"]) == []


@pytest.mark.parametrize("file, fmt", [("chatgpt_conversations.json", "chatgpt"),
                                       ("claude_conversations.json", "claude"), ("openai_chat.jsonl", "openai"),
                                       ("sharegpt_tools.json", "sharegpt"), ("hermes.json", "hermes"),
                                       ("flat_rows.jsonl", "flat")])
def test_format_is_detected(file, fmt):
    exs, rep, _ = extract_examples(FIX / file)
    assert rep["format"] == fmt and exs
    all_calls_valid(exs)


def test_chatgpt_follows_current_node_and_infers_the_plugin_schema():
    exs, rep, _ = extract_examples(FIX / "chatgpt_conversations.json")
    assert rep["conversations_read"] == 2 and rep["examples"] == 1
    assert rep["skipped"] == {"plain conversation without tool calls (skipped unless plain conversations are kept)": 1}
    ex = exs[0]
    text = json.dumps(ex)
    assert "ABANDONED BRANCH" not in text
    assert calls(ex) == [{"name": "weather.get_weather", "arguments": {"city": "Oslo"}}]
    assert [m["role"] for m in ex["messages"]] == ["user", "assistant", "tool", "assistant", "user", "assistant"]
    assert ex["meta"]["inferred_tools"] == ["weather.get_weather"] and rep["inferred_tools"] == ["weather.get_weather"]
    assert "inferred" in ex["tools"][0]["function"]["description"]
    plain, rep2, _ = extract_examples(FIX / "chatgpt_conversations.json", keep_plain=True)
    assert rep2["examples"] == 2 and rep2["categories"] == {"multi_turn": 1, "no_call": 1}


def test_claude_uses_text_blocks_and_tool_blocks():
    exs, rep, _ = extract_examples(FIX / "claude_conversations.json", keep_plain=True)
    search = exs[0]
    assert "THINKING" not in json.dumps(search) and "I should search" not in json.dumps(search)
    assert calls(search) == [{"name": "web_search", "arguments": {"query": "solar news"}}]
    assert search["messages"][2] == {"role": "tool", "content": "Solar is up 20%", "tool_call_id": "toolu_1",
                                     "name": "web_search"}
    assert search["messages"][-1]["content"] == "Solar capacity grew 20% this year."
    assert exs[1]["messages"][-1]["content"] == "Hello! How can I help?"


def test_openai_jsonl_decodes_strings_double_encoding_and_legacy_functions():
    exs, rep, label = extract_examples(FIX / "openai_chat.jsonl")
    assert [calls(e)[0]["arguments"] for e in exs] == [{"city": "Paris"}, {"city": "Rome", "unit": "f"},
                                                       {"city": "Lima"}]
    assert rep["transformations"] == {"double_encoded_arguments": 1, "call_id_assigned": 1}  # the legacy function_call has no id
    assert rep["skipped"] == {"a tool call does not match its tool's schema": 1, "not valid JSON (Expecting property "
                              "name enclosed in double quotes)": 1}
    assert sorted(r["ref"] for r in rep["skipped_refs"]) == ["line 4", "line 5"]
    assert exs[1]["messages"][0] == {"role": "system", "content": "Be brief."}


def test_sharegpt_and_hermes():
    exs, rep, _ = extract_examples(FIX / "sharegpt_tools.json")
    assert calls(exs[0]) == [{"name": "convert_currency", "arguments": {"amount": 100, "from": "USD", "to": "EUR"}}]
    assert exs[0]["tools"][0]["function"]["description"] == "Convert money" and not rep["inferred_tools"]
    h, rep, _ = extract_examples(FIX / "hermes.json")
    assert calls(h[0]) == [{"name": "book_table", "arguments": {"guests": 4, "outdoor": True}}]
    assert h[0]["messages"][0]["role"] == "user"  # the Hermes boilerplate system prompt is replaced by `tools`
    assert json.loads(h[0]["messages"][2]["content"]) == {"name": "book_table", "content": {"ok": True}}


def test_flat_rows_infer_one_schema_per_tool():
    exs, rep, _ = extract_examples(FIX / "flat_rows.jsonl")
    assert rep["examples"] == 3 and rep["skipped"] == {"an empty user_query": 1}
    store = [e for e in exs if calls(e)[0]["name"] == "memory_store"]
    props = store[0]["tools"][0]["function"]["parameters"]
    assert props["required"] == ["content"] and set(props["properties"]) == {"content", "importance"}


def test_redaction_of_emails_and_keys():
    exs, rep, _ = extract_examples(FIX / "chatgpt_conversations.json", redact=True)
    text = exs[0]["messages"][0]["content"]
    assert "jane.doe@example.com" not in text and "sk-abc" not in text
    assert "[REDACTED_EMAIL]" in text and "[REDACTED_SECRET]" in text
    assert rep["redactions"] == {"email": 1, "secret": 1}
    from nursery_core.data.importers.common import Redactor
    r = Redactor()
    out = r.text("a AKIAABCDEFGHIJKLMNOP b ghp_abcdefghijklmnopqrstuvwxyz0123 c "
                 "0123456789abcdef0123456789abcdef d https://example.com/a/very/long/path/that/is/not/a/secret/at/all")
    assert out.count("[REDACTED_SECRET]") == 3 and "https://example.com/a/very/long/path" in out


def test_zip_and_folder_sources(tmp_path):
    z = tmp_path / "export.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(FIX / "claude_conversations.json", "data/conversations.json")
    assert extract_examples(z)[1]["format"] == "claude"
    d = tmp_path / "export"
    d.mkdir()
    shutil.copy(FIX / "chatgpt_conversations.json", d / "conversations.json")
    assert extract_examples(d)[1]["format"] == "chatgpt"


def test_errors_name_the_file_and_store_nothing(tmp_path, store):
    unknown = tmp_path / "odd.json"
    unknown.write_text(json.dumps([{"foo": 1}]))
    with pytest.raises(InvalidInput, match="odd.json, field 'format': unknown format"):
        nursery_extract_conversations(unknown)
    with pytest.raises(InvalidInput, match="field 'format'"):
        extract_examples(FIX / "hermes.json", format="xml")
    plain = FIX / "claude_conversations.json"
    only_plain = tmp_path / "plain.json"
    only_plain.write_text(json.dumps([json.loads(plain.read_text())[1]]))
    with pytest.raises(InvalidInput, match="no examples could be extracted .*unless plain conversations are kept"):
        nursery_extract_conversations(only_plain)
    empty = tmp_path / "empty.json"
    empty.write_text("")
    with pytest.raises(InvalidInput, match="empty"):
        nursery_extract_conversations(empty)
    assert store.count_datasets() == 0


def test_extract_stores_a_dataset_with_report(store):
    row = nursery_extract_conversations(FIX / "openai_chat.jsonl", name="drone")
    assert row["num_examples"] == 3 and row["source"] == "import:openai"
    assert row["report"]["conversations_read"] == 5 and sum(row["report"]["skipped"].values()) == 2
    assert len(load_examples("drone")) == 3
    with pytest.raises(AlreadyExists):
        nursery_extract_conversations(FIX / "openai_chat.jsonl", name="drone")


def test_formats_list_matches_cli():
    assert set(FORMATS) == {"chatgpt", "claude", "openai", "sharegpt", "hermes", "flat", "glaive", "xlam"}


SAMPLES = [("chatgpt_export/conversations_excerpt.json", "chatgpt", 3),
           ("function_calling/openai_cookbook_drone_training_excerpt.jsonl", "openai", 13),
           ("function_calling/llamafactory_glaive_toolcall_en_demo_first50.json", "sharegpt", 20),
           ("function_calling/llamafactory_reason_tool_use_demo_first34.jsonl", "openai", 20),
           ("function_calling/hermes_function_calling_v1_card_examples.json", "hermes", 1)]


@pytest.mark.parametrize("rel, fmt, at_least", SAMPLES)
def test_real_samples_import_with_sensible_reports(samples_dir, rel, fmt, at_least):
    path = samples_dir / rel
    if not path.exists():
        pytest.skip(f"{rel} is not among the samples")
    exs, rep, _ = extract_examples(path, keep_plain=True)
    assert rep["format"] == fmt
    assert rep["examples"] >= at_least
    assert rep["examples"] + sum(rep["skipped"].values()) == rep["conversations_read"]
    assert all(isinstance(r, str) and r for r in rep["skipped"])
    all_calls_valid(exs)
    if fmt == "openai" and "drone" in rel:
        assert rep["transformations"].get("double_encoded_arguments", 0) >= 1
    if fmt in ("hermes", "sharegpt"):  # the samples give their tools: none may be replaced by an inferred one
        assert rep["inferred_tools"] == [] and "tool_schemas_inferred" not in rep["transformations"]
        assert all("inferred" not in t["function"]["description"] for ex in exs for t in ex["tools"])


def test_flat_rows_keep_a_supplied_schema_given_as_text(tmp_path):
    schema = {"name": "memory_store", "description": "Store a fact", "parameters": {
        "type": "object", "properties": {"content": {"type": "string"}}, "required": ["content"]}}
    p = tmp_path / "flat.jsonl"
    p.write_text(json.dumps({"user_query": "remember milk", "tool_name": "memory_store",
                             "tool_arguments": {"content": "milk"}, "tool_schema": json.dumps(schema)}) + "\n")
    exs, rep, _ = extract_examples(p)
    assert exs[0]["tools"][0]["function"]["description"] == "Store a fact" and rep["inferred_tools"] == []
