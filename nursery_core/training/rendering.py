"""One rendering of tool conversations for training, inference, evaluation and the Ollama TEMPLATE.

A model whose own chat template already renders tools with `<tool_call>` tags (Qwen2.5) keeps it; every
other model gets Nursery's Hermes-style template for its family installed on the tokenizer, so
`tokenizer.apply_chat_template(messages, tools=tools)` is the single source of truth everywhere, and the
template travels with adapters, merged models and the GGUF.
"""
from __future__ import annotations

import json
from typing import Any

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
DEFAULT_SYSTEM = "You are a helpful assistant."
NURSERY_MARKER = "nursery-tools-v1"  # found in templates Nursery installed

# The tool preamble (system turn) and the call block, shared by every family's template.
_TOOLS_BLOCK = (
    "{%- if tools %}"
    "{{- '\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}"
    "{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\"name\": <function-name>, \"arguments\": "
    "<args-json-object>}\\n</tool_call>' }}"
    "{%- endif %}"
)
_CALLS = (
    "{%- if message.content %}{{- message.content }}{%- endif %}"
    "{%- for tc in message.tool_calls or [] %}"
    "{%- if not loop.first or message.content %}{{- '\\n' }}{%- endif %}"
    "{%- set fn = tc.function if tc.function is defined else tc %}"
    "{{- '<tool_call>\\n{\"name\": ' + (fn.name | tojson) + ', \"arguments\": ' + "
    "(fn.arguments if fn.arguments is string else (fn.arguments | tojson)) + '}\\n</tool_call>' }}"
    "{%- endfor %}"
)
_SYSTEM = (
    "{%- if messages[0].role == 'system' %}{%- set system = messages[0].content %}"
    "{%- set loop_messages = messages[1:] %}"
    "{%- else %}{%- set system = '" + DEFAULT_SYSTEM + "' %}{%- set loop_messages = messages %}{%- endif %}"
)


def _family_template(bos: str, system: tuple[str, str], user: tuple[str, str], assistant: tuple[str, str],
                     tool: tuple[str, str]) -> str:
    """Builds a family's template from its (open, close) turn markers; the bodies are shared."""
    return (
        "{#- " + NURSERY_MARKER + " -#}" + _SYSTEM + bos
        + "{{- '" + system[0] + "' + system }}" + _TOOLS_BLOCK + "{{- '" + system[1] + "' }}"
        "{%- for message in loop_messages %}"
        "{%- if message.role == 'user' %}{{- '" + user[0] + "' + message.content + '" + user[1] + "' }}"
        "{%- elif message.role == 'assistant' %}{{- '" + assistant[0] + "' }}" + _CALLS
        + "{{- '" + assistant[1] + "' }}"
        "{%- elif message.role == 'tool' %}{{- '" + tool[0] + "<tool_response>\\n' + message.content + "
        "'\\n</tool_response>" + tool[1] + "' }}"
        "{%- endif %}{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '" + assistant[0] + "' }}{%- endif %}"
    )


def _chatml(role: str) -> tuple[str, str]:
    return f"<|im_start|>{role}\\n", "<|im_end|>\\n"


def _llama3(role: str) -> tuple[str, str]:
    return f"<|start_header_id|>{role}<|end_header_id|>\\n\\n", "<|eot_id|>"


TEMPLATES: dict[str, str] = {
    "chatml": _family_template("", _chatml("system"), _chatml("user"), _chatml("assistant"), _chatml("tool")),
    "zephyr": _family_template("", ("<|system|>\\n", "</s>\\n"), ("<|user|>\\n", "</s>\\n"),
                               ("<|assistant|>\\n", "</s>\\n"), ("<|tool|>\\n", "</s>\\n")),
    "llama3": _family_template("{{- bos_token }}", _llama3("system"), _llama3("user"), _llama3("assistant"),
                               _llama3("ipython")),
    "llama2": _family_template("{{- bos_token }}", ("[INST] <<SYS>>\\n", "\\n<</SYS>> [/INST]"),
                               ("[INST] ", " [/INST]"), (" ", " </s>"), ("[INST] ", " [/INST]")),
}
# The text that ends an assistant turn, per family (generation stops there; Ollama's PARAMETER stop).
END_OF_TURN = {"chatml": "<|im_end|>", "zephyr": "</s>", "llama3": "<|eot_id|>", "llama2": "</s>"}


def _probe_renders_tool_calls(tokenizer) -> bool:
    """True when the tokenizer's own template renders tools and `<tool_call>` blocks (e.g. Qwen2.5)."""
    if not tokenizer.chat_template:
        return False
    tools = [{"type": "function", "function": {"name": "probe_fn", "description": "d",
                                               "parameters": {"type": "object", "properties": {}}}}]
    msgs = [{"role": "user", "content": "hi"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "probe_fn", "arguments": {}}}]}]
    try:
        text = tokenizer.apply_chat_template(msgs, tools=tools, tokenize=False)
    except Exception:
        return False
    return "probe_fn" in text.split(TOOL_CALL_OPEN)[0] and TOOL_CALL_OPEN in text


def prepare_tokenizer(tokenizer, family: str = "chatml"):
    """Installs the tool-aware template when needed and makes sure a pad token exists."""
    tmpl = tokenizer.chat_template or ""
    if NURSERY_MARKER not in tmpl and not _probe_renders_tool_calls(tokenizer):
        if family not in TEMPLATES:
            raise ValueError(f"no tool template for chat family {family!r}")
        tokenizer.chat_template = TEMPLATES[family]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.init_kwargs["nursery_family"] = family
    return tokenizer


def end_of_turn(tokenizer) -> str:
    """The end-of-assistant-turn text for this tokenizer's family."""
    return END_OF_TURN.get(tokenizer.init_kwargs.get("nursery_family", "chatml"), tokenizer.eos_token)


def _clean_messages(messages: list[dict]) -> list[dict]:
    out = []
    for m in messages:
        m2: dict[str, Any] = {"role": m["role"], "content": m.get("content") or ""}
        if m.get("tool_calls"):
            m2["tool_calls"] = [{"id": c.get("id"), "type": "function",
                                 "function": {"name": c["function"]["name"],
                                              "arguments": c["function"]["arguments"]}}
                                for c in m["tool_calls"]]
        if m["role"] == "tool":
            m2["tool_call_id"] = m.get("tool_call_id")
            m2["name"] = m.get("name")
        out.append(m2)
    return out


def render(tokenizer, messages: list[dict], tools: list[dict] | None, add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(_clean_messages(messages), tools=tools or None, tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def render_prompt(tokenizer, messages: list[dict], tools: list[dict] | None) -> str:
    """The text a model continues from: the conversation so far plus the assistant header."""
    return render(tokenizer, messages, tools, add_generation_prompt=True)


def render_conversation(tokenizer, example: dict) -> str:
    return render(tokenizer, example["messages"], example.get("tools"), add_generation_prompt=False)


def format_calls(calls: list[dict]) -> str:
    """An assistant answer made of calls, exactly as the templates render it (for targets and previews)."""
    return "\n".join(
        f'{TOOL_CALL_OPEN}\n{{"name": {json.dumps(c["name"], ensure_ascii=False)}, "arguments": '
        f'{json.dumps(c["arguments"], ensure_ascii=False)}}}\n{TOOL_CALL_CLOSE}' for c in calls)


def assistant_spans(tokenizer, example: dict) -> tuple[str, list[tuple[int, int]]]:
    """The full rendered text and the character spans of every assistant turn (what the loss sees)."""
    msgs, tools = example["messages"], example.get("tools")
    full = render(tokenizer, msgs, tools, add_generation_prompt=False)
    spans = []
    for k, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        before = render(tokenizer, msgs[:k], tools, add_generation_prompt=True)
        upto = render(tokenizer, msgs[:k + 1], tools, add_generation_prompt=False)
        if not (upto.startswith(before) and full.startswith(upto)):
            raise ValueError("chat template is not prefix-stable; cannot mask the prompt reliably")
        spans.append((len(before), len(upto)))
    return full, spans


def encode_example(tokenizer, example: dict, max_length: int) -> dict:
    """input_ids and labels with the loss on assistant tokens only (prompt, tools and tool replies masked).

    Truncated to max_length tokens; no padding (the collator pads per batch)."""
    full, spans = assistant_spans(tokenizer, example)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True, truncation=True,
                    max_length=max_length)
    labels = []
    for tok_id, (start, end) in zip(enc["input_ids"], enc["offset_mapping"]):
        inside = any(s <= start < e for s, e in spans) and end > start
        labels.append(tok_id if inside else -100)
    return {"input_ids": list(enc["input_ids"]), "labels": labels}


def eval_prompts(example: dict) -> tuple[list[dict], list[dict]]:
    """(messages before the first assistant turn, that turn's gold calls) — [] gold for no_call."""
    msgs = example["messages"]
    for k, m in enumerate(msgs):
        if m["role"] == "assistant":
            gold = [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
                    for c in m.get("tool_calls") or []]
            return msgs[:k], gold
    return msgs, []
