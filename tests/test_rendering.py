"""Rendering and label masking: loss only on assistant tokens (end-of-turn included); prompt, tool schemas and
tool replies masked; every family's template renders and is prefix-stable."""
from __future__ import annotations

import pytest

from nursery_core.training import rendering
from training_helpers import MEMORY_TOOL

MULTI = {"id": "m", "tools": [MEMORY_TOOL], "messages": [
    {"role": "user", "content": "Remember the garage code is 4821."},
    {"role": "assistant", "tool_calls": [{"id": "c0", "type": "function", "function": {
        "name": "memory_store", "arguments": {"content": "garage code 4821"}}}]},
    {"role": "tool", "tool_call_id": "c0", "name": "memory_store", "content": "{\"ok\": true}"},
    {"role": "assistant", "content": "Saved it."},
]}


@pytest.fixture(scope="module")
def tokenizer():
    from nursery_core.base_models import load_embedded_tokenizer
    return load_embedded_tokenizer()


@pytest.mark.parametrize("family", sorted(rendering.TEMPLATES))
def test_every_family_renders_tools_calls_and_is_prefix_stable(tokenizer, family):
    import copy

    tok = copy.deepcopy(tokenizer)
    tok.chat_template = None
    rendering.prepare_tokenizer(tok, family)
    full, spans = rendering.assistant_spans(tok, MULTI)
    assert "memory_store" in full and rendering.TOOL_CALL_OPEN in full
    assert len(spans) == 2
    first = full[spans[0][0]:spans[0][1]]
    assert first.startswith(rendering.format_calls([{"name": "memory_store",
                                                     "arguments": {"content": "garage code 4821"}}]))
    assert first.rstrip().endswith(rendering.END_OF_TURN[family].strip())
    prompt = rendering.render_prompt(tok, MULTI["messages"][:1], MULTI["tools"])
    assert full.startswith(prompt)


def test_labels_cover_only_assistant_turns_including_end_of_turn(tokenizer):
    rendering.prepare_tokenizer(tokenizer, "chatml")
    enc = rendering.encode_example(tokenizer, MULTI, max_length=2048)
    ids, labels = enc["input_ids"], enc["labels"]
    assert len(ids) == len(labels)
    kept = [t for t, lab in zip(ids, labels) if lab != -100]
    assert all(lab in (-100, t) for t, lab in zip(ids, labels))
    text = tokenizer.decode(kept)
    assert "memory_store" in text and "Saved it." in text and text.count("<|im_end|>") == 2
    masked = tokenizer.decode([t for t, lab in zip(ids, labels) if lab == -100])
    for prompt_part in ("Remember the garage code", "# Tools", "Store a fact", "<tool_response>", '"ok": true'):
        assert prompt_part in masked and prompt_part not in text
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    ends = [i for i, t in enumerate(ids) if t == im_end]
    # user/system/tool ends are masked; the two assistant ends carry labels
    assert sum(labels[i] != -100 for i in ends) == 2 and len(ends) == 5


def test_truncation_keeps_alignment(tokenizer):
    rendering.prepare_tokenizer(tokenizer, "chatml")
    enc = rendering.encode_example(tokenizer, MULTI, max_length=40)
    assert len(enc["input_ids"]) == len(enc["labels"]) == 40
    assert all(lab == -100 for lab in enc["labels"])  # the prompt alone fills 40 tokens


def test_compact_tool_list_is_a_third_of_the_json_one(tokenizer):
    """v2 lists each tool as name, description and one line per parameter; v1 (the JSON schemas) is kept for
    adapters trained on it."""
    import copy

    from nursery_core.data.tools import DEFAULT_TOOLS

    tok = copy.deepcopy(tokenizer)
    msgs = [{"role": "user", "content": "hi"}]
    tok.chat_template = rendering.TEMPLATES["chatml"]
    v2 = tok.apply_chat_template(msgs, tools=DEFAULT_TOOLS, tokenize=False, add_generation_prompt=True)
    tok.chat_template = rendering.TEMPLATES_V1["chatml"]
    v1 = tok.apply_chat_template(msgs, tools=DEFAULT_TOOLS, tokenize=False, add_generation_prompt=True)
    assert "<tools>" in v1 and "<tools>" not in v2
    assert "get_weather: Get the current weather or a short forecast for a city.\n- city (string, required): " in v2
    # required parameters first, each group sorted by name
    assert v2.index("- title (string, required)") < v2.index("- attendees (array of string)")
    assert v2.index("- date (string, required)") < v2.index("- start_time (string, required)")
    assert len(tok(v2)["input_ids"]) < 0.5 * len(tok(v1)["input_ids"])


def test_installed_templates_are_upgraded_unless_kept(tokenizer):
    import copy

    tok = copy.deepcopy(tokenizer)
    tok.chat_template = rendering.TEMPLATES_V1["chatml"]
    assert rendering.installed_version(tok.chat_template) == "v1"
    rendering.prepare_tokenizer(tok, "chatml", keep_installed=True)  # an adapter's own tokenizer
    assert rendering.installed_version(tok.chat_template) == "v1"
    rendering.prepare_tokenizer(tok, "chatml")  # a base model: always the current rendering
    assert rendering.installed_version(tok.chat_template) == rendering.RENDERING_VERSION
    assert rendering.installed_version("{{ messages }}") is None


def test_pool_renders_an_adapter_with_the_template_it_trained_on(tmp_path):
    from nursery_core.inference import adapter_chat_template

    assert adapter_chat_template(tmp_path) is None
    (tmp_path / "chat_template.jinja").write_text(rendering.TEMPLATES_V1["chatml"])
    assert adapter_chat_template(tmp_path) == rendering.TEMPLATES_V1["chatml"]
    (tmp_path / "chat_template.jinja").write_text("{{ messages }}")  # not Nursery's: the base's is used
    assert adapter_chat_template(tmp_path) is None


WEIGHTED = {"id": "w", "tools": [MEMORY_TOOL], "messages": [
    {"role": "user", "content": "Remember the garage code is 4821."},
    {"role": "assistant", "content": "I cannot remember things.", "weight": 0},
    {"role": "user", "content": "You can: use the tool."},
    {"role": "assistant", "tool_calls": [{"id": "c0", "type": "function", "function": {
        "name": "memory_store", "arguments": {"content": "garage code 4821"}}}]},
]}


def test_a_weight_0_turn_is_rendered_as_context_but_not_trained_on(tokenizer):
    rendering.prepare_tokenizer(tokenizer, "chatml")
    enc = rendering.encode_example(tokenizer, WEIGHTED, max_length=2048)
    ids, labels = enc["input_ids"], enc["labels"]
    full = tokenizer.decode(ids)
    kept = tokenizer.decode([t for t, lab in zip(ids, labels) if lab != -100])
    assert "I cannot remember things." in full  # the context is kept...
    assert "I cannot remember things." not in kept  # ...but the loss never sees it
    assert "memory_store" in kept and kept.count("<|im_end|>") == 1
    # the same example without the weight trains on both answers: the weight alone makes the difference
    unweighted = {**WEIGHTED, "messages": [{k: v for k, v in m.items() if k != "weight"} for m in WEIGHTED["messages"]]}
    enc2 = rendering.encode_example(tokenizer, unweighted, max_length=2048)
    assert enc2["input_ids"] == ids
    assert "I cannot remember things." in tokenizer.decode([t for t, lab in zip(ids, enc2["labels"]) if lab != -100])


def test_evaluation_prompts_skip_weight_0_turns():
    prompt, gold = rendering.eval_prompts(WEIGHTED)
    assert [m["role"] for m in prompt] == ["user", "assistant", "user"]
    assert gold == [{"name": "memory_store", "arguments": {"content": "garage code 4821"}}]


def test_the_trainer_keeps_weighted_examples_and_drops_those_with_nothing_to_learn(tokenizer):
    from nursery_core.training.trainer import encode_all
    rendering.prepare_tokenizer(tokenizer, "chatml")
    nothing = {**WEIGHTED, "messages": [{**m, "weight": 0} if m["role"] == "assistant" else m
                                        for m in WEIGHTED["messages"]]}
    kept, dropped = encode_all(tokenizer, [WEIGHTED, nothing], max_length=2048)
    assert len(kept) == 1 and dropped == 1
    assert kept[0] == rendering.encode_example(tokenizer, WEIGHTED, 2048)
