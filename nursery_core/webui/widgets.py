"""Render helpers shared by pages: examples as chat bubbles, dataset tables and charts."""
from __future__ import annotations

import contextlib
import html
import json
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

import altair as alt
import pandas as pd
import streamlit as st

from ..formatting import when


def render_example(ex: dict, key: str) -> None:
    """One canonical example as chat bubbles; tool calls and tool replies as formatted JSON."""
    meta = ex.get("meta", {})
    tools = ", ".join(t["function"]["name"] for t in ex.get("tools", []))
    st.caption(f"`{ex.get('id', '')}` · {meta.get('category', '?')} · {meta.get('split', '')} · tools: {tools}")
    for i, m in enumerate(ex["messages"]):
        role = m["role"]
        if role == "system":
            st.caption(f"System: {m['content']}")
            continue
        avatar = {"user": "user", "assistant": "assistant", "tool": "🛠️"}[role]
        with st.chat_message("assistant" if role == "tool" else role, avatar=avatar):
            if role == "tool":
                st.caption(f"result of `{m.get('name')}`")
                try:
                    st.json(json.loads(m["content"]), expanded=False)
                except ValueError:
                    st.code(m["content"], language=None)
                continue
            if role == "assistant" and m.get("weight") == 0:
                st.caption("weight 0: kept as context, not trained on")
            if m.get("content"):
                st.markdown(m["content"])
            elif role == "assistant" and not m.get("tool_calls"):
                st.caption("no tool call")
            for c in m.get("tool_calls") or ():
                st.code(json.dumps({"name": c["function"]["name"], "arguments": c["function"]["arguments"]},
                                   ensure_ascii=False, indent=2), language="json")


def schema_check_notes(check: dict) -> None:
    """What a valid schema still loses: keywords the generator does not follow, fields the tool list omits."""
    for name, paths in (check.get("constructs") or {}).items():
        st.warning(f"`{name}`: the generator does not follow {', '.join(f'`{p}`' for p in paths)} "
                   "(validation still checks them)")
    for name, gaps in (check.get("not_rendered") or {}).items():
        st.caption(f"`{name}`: the compact tool list (and Ollama) does not show " + "; ".join(gaps))


def transformation_rows(counts: dict[str, int]) -> list[dict]:
    """[{change, count, code}] for an import report's transformation counts, described in words."""
    from ..records import TRANSFORMATIONS
    return [{"change": TRANSFORMATIONS.get(code, code), "count": n, "code": code}
            for code, n in sorted(counts.items(), key=lambda kv: -kv[1])]


def datasets_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{
        "name": r["name"], "kind": r.get("kind") or "training", "examples": r["num_examples"], "tools": ", ".join(r.get("tools") or []),
        "categories": ", ".join(f"{k} {v}" for k, v in (r.get("categories") or {}).items()),
        "source": r.get("source"), "train/eval": f"{(r.get('split') or {}).get('train', '?')}/"
                                                 f"{(r.get('split') or {}).get('eval', '?')}",
        "mean tokens": ((r.get("stats") or {}).get("approx_tokens") or {}).get("mean"),
        "created": when(r.get("created_at"), ""), "by": r.get("created_by") or ""}
        for r in rows])


BAR_STEP = 26  # px per bar (band), so a chart grows with its categories instead of squeezing them


def bar_chart(counts: dict[str, Any], label: str, title: str) -> alt.Chart:
    """Horizontal bars, one band of BAR_STEP px each, labels in full (up to 240 px) and the count at the bar's
    end. The height is a Vega-Lite step, not a total: Streamlit fits a fixed total height around title and
    axes, which left the plot 0 px high."""
    df = pd.DataFrame({label: list(counts), "count": list(counts.values())})
    base = alt.Chart(df, title=title).encode(
        y=alt.Y(f"{label}:N", sort="-x", title=None, axis=alt.Axis(labelLimit=240)),
        x=alt.X("count:Q", title="count"), tooltip=[label, "count"])
    bars = base.mark_bar()
    text = base.mark_text(align="left", dx=3).encode(text="count:Q")
    return (bars + text).properties(height=alt.Step(BAR_STEP))


def length_histogram(lengths: list[dict]) -> alt.Chart:
    df = pd.DataFrame(lengths)
    return (alt.Chart(df, title="Approx. tokens per example").mark_bar().encode(
        x=alt.X("approx_tokens:Q", bin=alt.Bin(maxbins=30), title="approx. tokens"),
        y=alt.Y("count():Q", title="examples"), color=alt.Color("category:N"),
        tooltip=["count()"]).properties(height=220))


def report_view(report: dict) -> None:
    """An import or generation report: the headline numbers, then what was skipped and why."""
    cols = st.columns(4)
    if "conversations_read" in report:
        cols[0].metric("Format", report.get("format", "?"))
        cols[1].metric("Read", report.get("conversations_read", 0))
        cols[2].metric("Examples", report.get("examples", 0))
        cols[3].metric("Skipped", sum((report.get("skipped") or {}).values()))
    elif "delivered" in report:  # a generation report (an import of canonical JSONL has none of these)
        cols[0].metric("Delivered", report.get("delivered", 0))
        cols[1].metric("Variation", report.get("variation", "?"))
        cols[2].metric("Duplicates dropped", report.get("near_duplicates_dropped", 0))
        cols[3].metric("Seed", report.get("seed", 0))
    if report.get("skipped"):
        st.dataframe(pd.DataFrame([{"reason": r, "count": n} for r, n in report["skipped"].items()]),
                     hide_index=True, width="stretch")
    if report.get("skipped_refs"):
        st.caption("First skipped: " + "; ".join(f"{x['ref']} ({x.get('detail') or x['reason']})"
                                                 for x in report["skipped_refs"][:5]))
    if report.get("transformations"):
        st.markdown("**What the import changed** (counted by reason; nothing else was changed)")
        st.dataframe(pd.DataFrame(transformation_rows(report["transformations"])), hide_index=True,
                     width="stretch")
    for note in report.get("notes") or []:
        st.info(note)
    if report.get("inferred_tools"):
        st.caption("Schemas inferred from the calls (the source had none): " + ", ".join(report["inferred_tools"]))



def page_link(page: str, label: str, icon: str | None = None, query_params: dict | None = None, container=None):
    """st.page_link carrying a selection in the address (?key=value); a plain link where the page is not
    registered (a page run on its own, as AppTest does)."""
    from urllib.parse import urlencode

    from streamlit.errors import StreamlitAPIException

    where = container or st
    try:
        return where.page_link(page, label=label, icon=icon, query_params=query_params)
    except StreamlitAPIException:
        slug = page.rsplit("/", 1)[-1].removesuffix(".py").split("_", 1)[-1]
        return where.markdown(f"[{icon + ' ' if icon else ''}{label}](/{slug}"
                              f"{'?' + urlencode(query_params) if query_params else ''})")


TRAINED_STYLE = "background:#c8ecd4;border-bottom:2px solid #2e7d4f"


def rendered_prompt(view: dict, key: str) -> None:
    """training.preview.render_example's result: the exact text, trained tokens highlighted (green, underlined)
    and the counts. Each trained stretch is a <mark class="nursery-trained"> (what tests and screen readers see)."""
    parts = []
    for seg in view["segments"]:
        text = html.escape(seg["text"])
        parts.append(f'<mark class="nursery-trained" style="{TRAINED_STYLE}">{text}</mark>' if seg["trained"]
                     else f"<span>{text}</span>")
    if view.get("truncated"):
        parts.append(f'<span style="color:#9e9e9e;text-decoration:line-through" title="cut by max length">'
                     f'{html.escape(view["cut_text"])}</span>')
    st.caption(f"**{view['num_tokens']:,} tokens**, of which **{view['trained_tokens']:,}** are trained on "
               f"(highlighted: the assistant's answers) · rendered for {view['base_model']} · max length "
               f"{view['max_length']:,}" + (" · ⚠ cut at the max length (struck-through text is not seen)"
                                             if view.get("truncated") else ""))
    st.html(f'<div class="nursery-rendered" data-key="{html.escape(key)}" style="white-space:pre-wrap;'
            f'font-family:monospace;font-size:0.8rem;line-height:1.45;border:1px solid #dfe5e1;border-radius:6px;'
            f'padding:8px;max-height:420px;overflow:auto">{"".join(parts)}</div>')


# The Model Cradle's model picker of each tab. Hand-off links ("Evaluate this model") fill them through the page
# address, so the links and the pickers must use these same keys.
CRADLE_MODEL_KEYS = {"Test": "mc_test_model", "Evaluate": "mc_eval_model", "Deploy": "mc_deploy_model"}


def shown_paths(message: str, names: dict[str, str]) -> str:
    """A message with server paths replaced by the names the user knows (an upload's own file name)."""
    for server, shown in sorted(names.items(), key=lambda kv: -len(kv[0])):
        if server:
            message = message.replace(server, shown)
    return message


@contextlib.contextmanager
def uploaded_copy(upload, default_name: str) -> Iterator[Path]:
    """A temporary copy of a `st.file_uploader` upload, under a safe form of its own name, for a core function
    that reads a path. A NurseryError raised inside is shown with st.error and not raised further. Its message
    names the file as the user knows it (`bad.csv:2`), never the server's temporary copy."""
    from ..errors import NurseryError

    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", upload.name) or default_name
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / safe
        path.write_bytes(upload.getvalue())
        try:
            yield path
        except NurseryError as e:
            st.error(shown_paths(str(e), {str(path): upload.name, tmp + "/": ""}))


def _raise_flag(flag: str) -> None:
    st.session_state[flag] = True


def action_button(label: str, key: str, *, disabled: bool = False, where=None, **kw) -> bool:
    """A button drawn disabled from its click until the action it starts ends (Streamlit discards clicks on a
    disabled widget, so a double click starts one action). True in the run that must do the action; the page
    calls action_done(key) when it is over, then st.rerun() to draw the button enabled again."""
    flag = f"{key}__busy"
    busy = bool(st.session_state.get(flag))
    (where or st).button(label, key=key, disabled=disabled or busy, on_click=_raise_flag, args=(flag,), **kw)
    return busy


def action_done(key: str) -> None:
    st.session_state[f"{key}__busy"] = False


def loading_status(model: str, solo: bool = False) -> None:
    """A visible status while a model is made ready (the first use in this dashboard process): on llama.cpp,
    building its GGUF copy (once per model version) and starting its server (`solo`: the one streamed answers
    use); on torch, reading its weights. Nothing when it is already warm. The engine that will serve is named
    either way."""
    import time

    from ..engines.llamacpp import get_llamacpp_pool
    from ..interactive import engine_status
    from ..errors import NurseryError
    from ..inference import get_pool

    status = engine_status(model, solo=solo)
    if status["loaded"]:
        st.caption(f"Served by {status['label']}")
        return
    start = time.monotonic()
    if status["engine"] == "llama.cpp":
        with st.status(f"Preparing model {model} for llama.cpp… (first use: a GGUF copy is built once per model "
                       "version, then its server starts)", expanded=False) as box:
            try:
                get_llamacpp_pool().served(model, solo=solo)
                box.update(label=f"Model {model} ready on llama.cpp in {time.monotonic() - start:.0f} s; it stays "
                                 "warm for the next calls", state="complete")
                return
            except NurseryError as e:
                box.update(label=f"llama.cpp cannot serve {model} ({e}); using torch", state="error")
    pool = get_pool()
    if pool.is_loaded(model):
        return
    with st.status(f"Loading model {model}… (first use since the dashboard started: reading its weights)",
                   expanded=False) as box:
        start = time.monotonic()
        pool.warm(model)
        box.update(label=f"Model {model} loaded in {time.monotonic() - start:.0f} s; it stays in memory for the "
                         "next calls", state="complete")


def tools_status(model: str, tools: list[dict], system: str | None = None, *, ahead: bool = False,
                 solo: bool = False) -> None:
    """A visible status while the system turn with `tools` is read into the model's llama.cpp server
    (interactive.prepare: once per tool list; restored from the prompt KV store when a server saw it before), so
    the next prompt runs only its user turn. `ahead`: only when the model's server is already warm (a page
    render never starts a server); `solo`: into the server streamed answers use (the Test tab's). Nothing on
    torch; a failure is shown, never raised (the call falls back)."""
    from ..errors import NurseryError
    from ..interactive import engine_status, is_prepared, prepare

    try:
        status = engine_status(model, solo=solo)
        if status["engine"] != "llama.cpp" or (ahead and not status["loaded"]):
            return
        if is_prepared(model, tools, system, solo=solo):
            return  # nothing to wait for: no box on every rerun
    except NurseryError:
        return  # the action itself reports a bad model or setting
    with st.status(f"Reading the tool list into {model}… (once per tool list)", expanded=False) as box:
        try:
            done = prepare(model, tools, system, solo=solo)
        except NurseryError as e:
            box.update(label=f"Could not read the tool list into {model} ahead ({e}); it is read with the prompt",
                       state="error")
            return
        if done["source"] is None:
            label = f"The tool list is read with the prompt ({done['reason']})"
        else:
            label = {"warm": f"Tool list of {model} ready",
                     "store": f"Tool list of {model} loaded from the prompt store in {done['seconds']:.1f} s",
                     "prefill": f"Tool list read into {model} in {done['seconds']:.1f} s ({done['tokens']} tokens); "
                                "kept for next time"}[done["source"]]
        box.update(label=label, state="complete")
