"""Ollama Modelfiles: a Go TEMPLATE per chat family that renders conversations exactly like Nursery's Jinja
templates (training/rendering.py), stop parameters, SYSTEM; and parsing a Modelfile back into the fields of
Ollama's create API.

Two deliberate differences from the Jinja rendering, both Ollama conventions: a conversation that ends on an
assistant turn is left open (Ollama continues it), and a BOS token written by the Jinja template (llama3) is
left to the runtime's tokenizer, which adds it. JSON inside the text is Go's compact `json.Marshal` form.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from ..training.rendering import (DEFAULT_SYSTEM, END_OF_TURN, RENDERING_VERSION, TOOL_CALL_OPEN, TOOLS_INTRO,
                                  TOOLS_OUTRO)

# (open, close) literal markers per role, the same text rendering.TEMPLATES writes. Tool results use the
# family's tool role header ("ipython" for llama3, as its Jinja template does).
FAMILY_TURNS: dict[str, dict[str, tuple[str, str]]] = {
    "chatml": {r: (f"<|im_start|>{r}\n", "<|im_end|>\n") for r in ("system", "user", "assistant", "tool")},
    "zephyr": {r: (f"<|{r}|>\n", "</s>\n") for r in ("system", "user", "assistant", "tool")},
    "llama3": {r: (f"<|start_header_id|>{h}<|end_header_id|>\n\n", "<|eot_id|>")
               for r, h in (("system", "system"), ("user", "user"), ("assistant", "assistant"),
                            ("tool", "ipython"))},
}
# Text that ends generation in Ollama, besides the end-of-turn marker: the next turn's header.
EXTRA_STOPS = {"chatml": ["<|im_start|>"], "zephyr": ["<|user|>", "<|assistant|>", "<|system|>"],
               "llama3": ["<|start_header_id|>", "<|end_header_id|>"]}

# v1 rendering (adapters trained before the compact one): each tool as JSON inside <tools></tools>.
_TOOLS_PREAMBLE = ("\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
                   "You are provided with function signatures within <tools></tools> XML tags:\n<tools>")
_TOOLS_POSTAMBLE = ("\n</tools>\n\nFor each function call, return a json object with function name and arguments "
                    "within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, "
                    "\"arguments\": <args-json-object>}\n</tool_call>")


def supported_families() -> list[str]:
    return sorted(FAMILY_TURNS)


def _check_family(family: str) -> dict[str, tuple[str, str]]:
    if family not in FAMILY_TURNS:
        raise InvalidInput(f"no Ollama template for chat family {family!r}: Nursery can write Modelfiles for "
                           f"{', '.join(supported_families())}. Export the GGUF alone (its embedded Jinja "
                           f"template still works on Ollama >= 0.30) or train on one of those families",
                           field="family")
    return FAMILY_TURNS[family]


def _lit(text: str) -> str:
    """A literal for inside a Go template: only `{{` needs escaping (as an action printing the string)."""
    return text.replace("{{", '{{ "{{" }}')


def _param_lines(required: bool) -> str:
    """One pass over a tool's properties (Go ranges over the map in key order, as the Jinja's dictsort does):
    the required ones, or the others, each as `- name (type or enum[, required]): description`."""
    item_type = ('{{ $it := "" }}{{ if not .Enum }}{{ with .Items }}{{ if eq (printf "%T" .) "map[string]interface {}" }}'
                 '{{ with index . "type" }}{{ if eq (printf "%T" .) "string" }}{{ $it = . }}{{ end }}{{ end }}'
                 "{{ end }}{{ end }}{{ end }}")
    type_text = ("{{ if .Enum }}{{ range $i, $e := .Enum }}{{ if $i }}|{{ end }}{{ json $e }}{{ end }}{{ else }}"
                 "{{ range $i, $x := .Type }}{{ if $i }}|{{ end }}{{ $x }}{{ end }}"
                 "{{ if $it }} of {{ $it }}{{ end }}{{ end }}")
    if required:
        label = " (" + type_text + "{{ if $has }}, {{ end }}required)"
    else:
        label = "{{ if $has }} (" + type_text + "){{ end }}"
    return ("{{ range $k, $p := $fn.Parameters.Properties }}{{ $req := false }}"
            "{{ range $fn.Parameters.Required }}{{ if eq . $k }}{{ $req = true }}{{ end }}{{ end }}"
            "{{ if " + ("$req" if required else "not $req") + " }}" + item_type
            + "{{ $has := or .Enum .Type $it }}\n- {{ $k }}" + label
            + "{{ if .Description }}: {{ .Description }}{{ end }}{{ end }}{{ end }}")


def _tools_block(rendering: str) -> str:
    """The system turn's tool list, as rendering.py's template of that version writes it."""
    if rendering == "v1":
        return ("{{ if .Tools }}" + _lit(_TOOLS_PREAMBLE)
                + '{{ range .Tools }}\n{"type": "function", "function": {{ json .Function }}}{{ end }}'
                + _lit(_TOOLS_POSTAMBLE) + "{{ end }}")
    if rendering != RENDERING_VERSION:
        raise InvalidInput(f"unknown tool rendering {rendering!r} (known: v1, {RENDERING_VERSION})", field="rendering")
    return ("{{ if .Tools }}" + _lit(TOOLS_INTRO) + "{{ range .Tools }}{{ $fn := .Function }}\n\n"
            "{{ $fn.Name }}: {{ $fn.Description }}" + _param_lines(True) + _param_lines(False)
            + "{{ end }}" + _lit(TOOLS_OUTRO) + "{{ end }}")


def go_template(family: str, default_system: str = DEFAULT_SYSTEM, rendering: str = RENDERING_VERSION) -> str:
    """The Go text/template for a family (Ollama's TEMPLATE) and tool rendering version (the one the adapter
    trained with). `{{ if .ToolCalls }}` starts with the tool tag, so Ollama's parser (parseTag: first text
    node of that block, cut at '{') finds `<tool_call>`."""
    t = _check_family(family)
    so, sc = t["system"]
    uo, uc = t["user"]
    ao, ac = t["assistant"]
    to, tc = t["tool"]
    system = "{{ if .System }}{{ .System }}{{ else }}" + _lit(default_system) + "{{ end }}"
    tools = _tools_block(rendering)
    calls = ("{{ if .Content }}{{ range $j, $c := .ToolCalls }}{{ if eq $j 0 }}\n{{ end }}{{ end }}{{ end }}"
             "{{ if .ToolCalls }}" + TOOL_CALL_OPEN + "\n{{ range $j, $c := .ToolCalls }}{{ if $j }}\n"
             + TOOL_CALL_OPEN + '\n{{ end }}{"name": {{ json .Function.Name }}, "arguments": '
             '{{ json .Function.Arguments }}}\n</tool_call>{{ end }}{{ end }}')
    messages = (
        "{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}"
        '{{ if eq .Role "user" }}' + _lit(uo) + "{{ .Content }}" + _lit(uc)
        + '{{ else if eq .Role "assistant" }}' + _lit(ao) + "{{ .Content }}" + calls
        + "{{ if not $last }}" + _lit(ac) + "{{ end }}"
        + '{{ else if eq .Role "tool" }}' + _lit(to) + "<tool_response>\n{{ .Content }}\n</tool_response>"
        + _lit(tc) + "{{ end }}"
        + '{{ if and $last (ne .Role "assistant") }}' + _lit(ao) + "{{ end }}{{ end }}")
    legacy = ("{{ if .Prompt }}" + _lit(uo) + "{{ .Prompt }}" + _lit(uc) + "{{ end }}" + _lit(ao)
              + "{{ .Response }}{{ if .Response }}" + _lit(ac) + "{{ end }}")
    return ("{{ if .Messages }}" + _lit(so) + system + tools + _lit(sc) + messages
            + "{{ else }}" + _lit(so) + system + _lit(sc) + legacy + "{{ end }}")


def stop_tokens(family: str, eos_token: str | None = None) -> list[str]:
    """PARAMETER stop values: the end-of-turn marker, the next-turn headers, and the tokenizer's EOS."""
    _check_family(family)
    stops = [END_OF_TURN[family]] + EXTRA_STOPS.get(family, [])
    if eos_token and eos_token not in stops:
        stops.append(eos_token)
    return stops


def _quote(value: str) -> str:
    if '"""' in value:
        raise InvalidInput('a Modelfile value cannot contain """', field="modelfile")
    return '"""' + value + '"""'


def build_modelfile(gguf_name: str, family: str, *, system: str | None = DEFAULT_SYSTEM,
                    eos_token: str | None = None, parameters: dict[str, Any] | None = None,
                    rendering: str = RENDERING_VERSION) -> str:
    """The Modelfile text next to `gguf_name` (FROM ./<file>, TEMPLATE, PARAMETER stop..., SYSTEM)."""
    if "/" in gguf_name or not gguf_name.endswith(".gguf"):
        raise InvalidInput(f"{gguf_name!r} must be a .gguf file name in the export folder", field="gguf")
    lines = [f"FROM ./{gguf_name}", f"TEMPLATE {_quote(go_template(family, system or DEFAULT_SYSTEM, rendering))}"]
    for stop in stop_tokens(family, eos_token):
        lines.append(f"PARAMETER stop {json.dumps(stop)}")
    for key, value in (parameters or {}).items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            lines.append(f"PARAMETER {key} {json.dumps(v) if isinstance(v, str) else v}")
    if system:
        lines.append(f"SYSTEM {_quote(system)}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------- parsing back
_COMMANDS = {"from", "parameter", "template", "system", "adapter", "license", "message", "requires"}
_ROLES = {"system", "user", "assistant", "tool"}


def _value(text: str, pos: int, lineno: int) -> tuple[str, int]:
    """Reads a value at pos: \"\"\"multi-line\"\"\", "quoted" or bare to end of line; returns (value, new pos)."""
    if text.startswith('"""', pos):
        end = text.find('"""', pos + 3)
        if end < 0:
            raise InvalidInput('unterminated """ string', file="Modelfile", line=lineno)
        return text[pos + 3:end], end + 3
    eol = text.find("\n", pos)
    eol = len(text) if eol < 0 else eol
    raw = text[pos:eol].strip()
    if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
        try:
            return json.loads(raw), eol
        except ValueError:
            return raw[1:-1], eol
    return raw, eol


def _typed(value: str) -> Any:
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def parse_modelfile(text: str) -> dict[str, Any]:
    """Fields of Ollama's create API from a Modelfile: from, template, system, parameters (stop is a list),
    adapters, license, messages, requires. Unknown instructions raise InvalidInput with the line."""
    out: dict[str, Any] = {"parameters": {}}
    pos, n = 0, len(text)
    while pos < n:
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        if pos >= n:
            break
        lineno = text.count("\n", 0, pos) + 1
        if text[pos] == "#":
            eol = text.find("\n", pos)
            pos = n if eol < 0 else eol
            continue
        m = re.compile(r"([A-Za-z]+)[ \t]+").match(text, pos)
        if not m:
            raise InvalidInput(f"expected an instruction, found {text[pos:pos + 20]!r}", file="Modelfile",
                               line=lineno)
        cmd = m.group(1).lower()
        if cmd not in _COMMANDS:
            raise InvalidInput(f"unknown instruction {m.group(1)!r}", file="Modelfile", line=lineno)
        pos = m.end()
        if cmd == "parameter":
            pm = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)[ \t]+").match(text, pos)
            if not pm:
                raise InvalidInput("PARAMETER needs a name and a value", file="Modelfile", line=lineno)
            value, pos = _value(text, pm.end(), lineno)
            name = pm.group(1).lower()
            if name == "stop":
                out["parameters"].setdefault("stop", []).append(value)
            else:
                out["parameters"][name] = _typed(value)
        elif cmd == "message":
            rm = re.compile(r"([A-Za-z]+)[ \t]+").match(text, pos)
            if not rm or rm.group(1).lower() not in _ROLES:
                raise InvalidInput(f"MESSAGE role must be one of {', '.join(sorted(_ROLES))}", file="Modelfile",
                                   line=lineno)
            value, pos = _value(text, rm.end(), lineno)
            out.setdefault("messages", []).append({"role": rm.group(1).lower(), "content": value})
        elif cmd == "adapter":
            value, pos = _value(text, pos, lineno)
            out.setdefault("adapters", []).append(value)
        else:
            value, pos = _value(text, pos, lineno)
            out[cmd] = value
    if "from" not in out:
        raise InvalidInput("a Modelfile needs a FROM line", file="Modelfile")
    if not out["parameters"]:
        out.pop("parameters")
    return out


def read_modelfile(path: Path | str) -> dict[str, Any]:
    p = Path(path)
    try:
        return parse_modelfile(p.read_text(encoding="utf-8"))
    except InvalidInput as e:
        raise InvalidInput(e.detail, file=str(p), line=e.line, field=e.field) from None
