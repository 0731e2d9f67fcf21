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
# One call block is CALL_BEGIN + json(name) + CALL_ARGUMENTS + json(arguments, JSON_SEPARATORS) + CALL_END, blocks
# joined by CALL_SEPARATOR: what the templates' _CALLS writes, format_calls returns and guarded decoding enforces.
CALL_BEGIN = TOOL_CALL_OPEN + '\n{"name": '
CALL_ARGUMENTS = ', "arguments": '
CALL_END = "}\n" + TOOL_CALL_CLOSE
CALL_SEPARATOR = "\n"
JSON_SEPARATORS = (", ", ": ")  # json.dumps' and Jinja's tojson defaults
DEFAULT_SYSTEM = "You are a helpful assistant."
# Every template Nursery installs carries "nursery-tools-<version>"; adapters keep the version they trained on.
MARKER_PREFIX = "nursery-tools-"
RENDERING_VERSION = "v2"
NURSERY_MARKER = MARKER_PREFIX + RENDERING_VERSION

# v1 (adapters trained before the compact rendering): every tool's whole JSON Schema inside <tools></tools>,
# about 200 tokens a tool with SmolLM2's tokenizer.
_TOOLS_BLOCK_V1 = (
    "{%- if tools %}"
    "{{- '\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}"
    "{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\"name\": <function-name>, \"arguments\": "
    "<args-json-object>}\\n</tool_call>' }}"
    "{%- endif %}"
)
# v2, the compact rendering: a tool is its name and description, then one line per parameter (required ones
# first, each group sorted by name as Go ranges over a map) with its type or enum and description. It keeps
# exactly what Ollama's tool types keep (type, items' type, enum, description, required), so the Ollama
# TEMPLATE renders the same text; about 60 tokens a tool, a third of v1's (bench/QUALITY.md).
TOOLS_INTRO = "\n\n# Tools\n\nYou can call these functions:"
TOOLS_OUTRO = ("\n\nTo call functions, answer with one block per call:\n" + TOOL_CALL_OPEN
               + '\n{"name": <function-name>, "arguments": <args-json-object>}\n' + TOOL_CALL_CLOSE)


def _jinja_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("\n", "\\n").replace("'", "\\'") + "'"


def _param_lines(required: bool) -> str:
    cond = "k in req" if required else "k not in req"
    return (
        "{%- for k, p in props | dictsort(true) %}{%- if " + cond + " %}"
        "{%- if p.enum is defined and p.enum %}{%- set ns.t = p.enum | map('tojson') | join('|') %}"
        "{%- elif p.type is string %}{%- set ns.t = p.type %}"
        "{%- elif p.type is defined and p.type %}{%- set ns.t = p.type | join('|') %}"
        "{%- else %}{%- set ns.t = '' %}{%- endif %}"
        "{%- if not (p.enum is defined and p.enum) and p['items'] is mapping and p['items'].type is string %}"
        "{%- set ns.t = ns.t + ' of ' + p['items'].type %}{%- endif %}"
        + ("{%- set ns.t = ns.t + ', required' if ns.t else 'required' %}" if required else "")
        + "{{- '\\n- ' + k + (' (' + ns.t + ')' if ns.t else '') + (': ' + p.description if p.description else '') }}"
        "{%- endif %}{%- endfor %}"
    )


_TOOLS_BLOCK = (
    "{%- if tools %}{{- " + _jinja_literal(TOOLS_INTRO) + " }}"
    "{%- set ns = namespace(t='') %}"
    "{%- for tool in tools %}{%- set fn = tool.function if tool.function is defined else tool %}"
    "{{- '\\n\\n' + fn.name + ': ' + (fn.description or '') }}"
    "{%- set params = fn.parameters or {} %}{%- set props = params.properties or {} %}"
    "{%- set req = params.required or [] %}"
    + _param_lines(True) + _param_lines(False)
    + "{%- endfor %}{{- " + _jinja_literal(TOOLS_OUTRO) + " }}{%- endif %}"
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
                     tool: tuple[str, str], version: str = RENDERING_VERSION) -> str:
    """Builds a family's template from its (open, close) turn markers; the bodies are shared."""
    return (
        "{#- " + MARKER_PREFIX + version + " -#}" + _SYSTEM + bos
        + "{{- '" + system[0] + "' + system }}" + (_TOOLS_BLOCK_V1 if version == "v1" else _TOOLS_BLOCK) + "{{- '" + system[1] + "' }}"
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


def _templates(version: str) -> dict[str, str]:
    return {
        "chatml": _family_template("", _chatml("system"), _chatml("user"), _chatml("assistant"), _chatml("tool"),
                                   version),
        "zephyr": _family_template("", ("<|system|>\\n", "</s>\\n"), ("<|user|>\\n", "</s>\\n"),
                                   ("<|assistant|>\\n", "</s>\\n"), ("<|tool|>\\n", "</s>\\n"), version),
        "llama3": _family_template("{{- bos_token }}", _llama3("system"), _llama3("user"), _llama3("assistant"),
                                   _llama3("ipython"), version),
        "llama2": _family_template("{{- bos_token }}", ("[INST] <<SYS>>\\n", "\\n<</SYS>> [/INST]"),
                                   ("[INST] ", " [/INST]"), (" ", " </s>"), ("[INST] ", " [/INST]"), version),
    }


TEMPLATES: dict[str, str] = _templates(RENDERING_VERSION)
TEMPLATES_V1: dict[str, str] = _templates("v1")
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
    except Exception:  # noqa: BLE001 — a template that cannot render a tool call does not support tool calls
        return False
    return "probe_fn" in text.split(TOOL_CALL_OPEN)[0] and TOOL_CALL_OPEN in text


def installed_version(template: str | None) -> str | None:
    """The rendering version of a template Nursery installed ("v1", "v2"), None for any other template."""
    t = template or ""
    at = t.find(MARKER_PREFIX)
    if at < 0:
        return None
    rest = t[at + len(MARKER_PREFIX):]
    return rest[:rest.find(" ")] if " " in rest else rest


def prepare_tokenizer(tokenizer, family: str = "chatml", keep_installed: bool = False):
    """Installs the current tool-aware template when needed and makes sure a pad token exists.

    keep_installed: keep a template an earlier Nursery version installed (an adapter's own tokenizer, which
    must render prompts as its training did); otherwise such a template is upgraded to the current version."""
    tmpl = tokenizer.chat_template or ""
    version = installed_version(tmpl)
    if version is not None:
        install = version != RENDERING_VERSION and not keep_installed
    else:
        install = not _probe_renders_tool_calls(tokenizer)
    if install:
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
    return CALL_SEPARATOR.join(
        CALL_BEGIN + json.dumps(c["name"], ensure_ascii=False) + CALL_ARGUMENTS
        + json.dumps(c["arguments"], ensure_ascii=False, separators=JSON_SEPARATORS) + CALL_END for c in calls)


def trained(message: dict) -> bool:
    """Whether an assistant turn is a training target: its OpenAI fine-tuning `weight` is not 0."""
    return message["role"] == "assistant" and message.get("weight", 1) != 0


def assistant_spans(tokenizer, example: dict) -> tuple[str, list[tuple[int, int]]]:
    """The full rendered text and the character spans of every trained assistant turn (what the loss sees);
    a turn with weight 0 is rendered as context but has no span."""
    msgs, tools = example["messages"], example.get("tools")
    full = render(tokenizer, msgs, tools, add_generation_prompt=False)
    spans = []
    for k, m in enumerate(msgs):
        if not trained(m):
            continue
        before = render(tokenizer, msgs[:k], tools, add_generation_prompt=True)
        upto = render(tokenizer, msgs[:k + 1], tools, add_generation_prompt=False)
        if not (upto.startswith(before) and full.startswith(upto)):
            raise ValueError("chat template is not prefix-stable; cannot mask the prompt reliably")
        spans.append((len(before), len(upto)))
    return full, spans


def encode_example(tokenizer, example: dict, max_length: int, with_text: bool = False) -> dict:
    """input_ids and labels with the loss on trained assistant tokens only (prompt, tools, tool replies and
    weight-0 assistant turns masked), and `decisions`: the positions of each trained turn's first token, where
    the model decides between a tool call and a plain answer (TrainConfig.decision_weight weighs them).

    Truncated to max_length tokens; no padding (the collator pads per batch). `with_text` adds the rendered
    `text` and each token's character `offsets` in it (the rendered-prompt view shows these)."""
    full, spans = assistant_spans(tokenizer, example)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True, truncation=True,
                    max_length=max_length)
    labels: list[int] = []
    decisions: list[int] = []
    for pos, (tok_id, (start, end)) in enumerate(zip(enc["input_ids"], enc["offset_mapping"])):
        inside = any(s <= start < e for s, e in spans) and end > start
        if inside and (not labels or labels[-1] == -100):
            decisions.append(pos)  # the first token of a trained turn: call (`<tool_call>`) or answer in words
        labels.append(tok_id if inside else -100)
    out: dict[str, Any] = {"input_ids": list(enc["input_ids"]), "labels": labels, "decisions": decisions}
    if with_text:
        out.update(text=full, offsets=[tuple(o) for o in enc["offset_mapping"]])
    return out


def eval_prompts(example: dict) -> tuple[list[dict], list[dict]]:
    """(messages before the first trained assistant turn, that turn's gold calls) — [] gold for no_call.
    A weight-0 turn is context, not a reference answer, so it stays in the prompt."""
    msgs = example["messages"]
    target = next((k for k, m in enumerate(msgs) if trained(m)), None)
    if target is None:  # every turn has weight 0: the first answer, as before weights existed
        target = next((k for k, m in enumerate(msgs) if m["role"] == "assistant"), None)
    for k, m in enumerate(msgs):
        if k == target:
            gold = [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
                    for c in m.get("tool_calls") or []]
            return msgs[:k], gold
    return msgs, []
