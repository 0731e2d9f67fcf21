"""The Model Cradle's tabs: models, test, compare and evaluate (pages/3_Model_Cradle.py lays them out). Each
action calls one core function; nothing here holds state beyond st.session_state."""
from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from ..compare import OUTCOMES, check_compare_request, compare_tools, nursery_compare_models
from ..datasets import load_examples
from ..errors import NurseryError
from ..evaluation.api import (HEADLINE, decoding_of, evaluation_details, list_evaluations, nursery_evaluate,
                              nursery_evaluate_suite, nursery_leaderboard, nursery_scorecard)
from ..formatting import count, served_by, when
from ..inference import analyse_completion, build_messages, resolve_tools
from ..interactive import stream_test_model
from ..registry import delete_model
from . import scores, services, widgets

STATUS_COLOURS = {"same": "#e6f4ea", "different": "#fde7c8", "only in A": "#fbd3d0", "only in B": "#d6e4fb"}
STATUS_WORDS = {"only_a": "only in A", "only_b": "only in B"}  # the diff's codes, as people read them


def pick_model(model_names: list[str], label: str, key: str, index: int = 0, remember: bool = False) -> str:
    """A model from `model_names`, or a local base model directory typed in; `remember` keeps the choice in the
    page address (reloads and hand-off links such as "Test this model" open it)."""
    c1, c2 = st.columns([2, 1])
    name = c1.selectbox(label, model_names, index=min(index, max(0, len(model_names) - 1)), key=key,
                        bind="query-params" if remember else None)
    path = c2.text_input("…or a local model directory", key=f"{key}_path", placeholder="/path/to/hf-model")
    return path.strip() or name


GUARD_HELP = ("Constrain tool calls to the offered tools: each call names one of them, with arguments valid for "
              "its schema, in the layout the model was trained on. Plain-text answers stay free.")
DECODING_CHOICES = {"Free and guarded": "both", "Guarded": "guarded", "Free": "free"}


def generation_settings(prefix: str, batch: bool = False, guard: bool = True) -> dict:
    """The generation inputs (max tokens, sampling, seed, batch size, guard) as GenerationSettings keywords."""
    c = st.columns(5 if batch else 4)
    s: dict[str, Any] = {"max_new_tokens": int(c[0].number_input("Max new tokens", 1, 4096, 256, key=f"{prefix}_max_new"))}
    mode = c[1].radio("Sampling", ["greedy", "sample"], horizontal=True, key=f"{prefix}_decoding",
                      help="Greedy always picks the most likely token (repeatable); sample draws with the "
                           "temperature and top-p beside it.")
    s["temperature"] = float(c[2].slider("Temperature", 0.05, 2.0, 0.7, key=f"{prefix}_temp",
                                         disabled=mode == "greedy")) if mode == "sample" else 0.0
    s["top_p"] = float(c[3].slider("Top-p", 0.05, 1.0, 0.95, key=f"{prefix}_top_p", disabled=mode == "greedy"))
    s["seed"] = int(c[3].number_input("Seed", 0, 2**31 - 1, 0, key=f"{prefix}_seed"))
    if batch:
        s["batch_size"] = int(c[4].number_input("Batch size", 1, 64, 8, key=f"{prefix}_batch"))
    if guard:
        s["guarded"] = st.toggle("Guarded decoding", value=True, key=f"{prefix}_guarded", help=GUARD_HELP)
    return s


def decoding_caption(result: dict) -> None:
    notes = result.get("decoding_notes") or []
    served, engine_notes = served_by(result)
    notes = notes + engine_notes
    st.caption(f"Decoding: **{result.get('decoding')}**" + (f" · served by **{served}**" if served else "")
               + "".join(f"  \n{n}" for n in notes))


def diff_frame(diff: list[dict]) -> pd.DataFrame:
    rows = []
    for d in diff:
        if not d["arguments"]:
            rows.append({"tool": d["tool"], "argument": "", "A": "", "B": "",
                         "status": STATUS_WORDS.get(d["status"], d["status"])})
        for a in d["arguments"]:
            rows.append({"tool": d["tool"], "argument": a["argument"], "A": show_json(a["a"]), "B": show_json(a["b"]),
                         "status": STATUS_WORDS.get(d["status"], a["status"])})
    return pd.DataFrame(rows, columns=["tool", "argument", "A", "B", "status"])


def show_json(v) -> str:
    """A value as compact JSON for a table cell ("" for None)."""
    return "" if v is None else json.dumps(v, ensure_ascii=False)


def show_diff(diff: list[dict], key: str) -> None:
    if not diff:
        st.caption("Neither model called a tool.")
        return
    frame = diff_frame(diff)
    styled = frame.style.apply(lambda row: [f"background-color: {STATUS_COLOURS.get(row['status'], 'white')}"]
                               * len(row), axis=1)
    st.dataframe(styled, hide_index=True, width="stretch", key=key)


def badge(ok: bool, yes: str, no: str) -> str:
    return f":green-badge[{yes}]" if ok else f":red-badge[{no}]"


def show_calls(result: dict, key: str) -> None:
    st.markdown(badge(result["format_ok"], "format ok", "malformed output")
                + (f" — {'; '.join(result['parse_errors'])}" if result.get("parse_errors") else ""))
    if not result["calls"]:
        st.caption("No tool call.")
    for i, c in enumerate(result["calls"]):
        st.markdown(f"**{c['name']}** " + badge(c["json_valid"], "valid JSON", "invalid JSON") + " "
                    + badge(c["schema_valid"], "matches schema", "schema errors")
                    + ("" if c["known_tool"] else " :orange-badge[unknown tool]"))
        st.json(c["arguments"], expanded=True)
        if c["schema_errors"] and not c["schema_valid"]:
            st.caption("; ".join(c["schema_errors"]))


def render_models_tab(adapter_names: list[str], models: list[dict], n_pages: int) -> None:
    """The adapters with their scores, the base models, and deleting a model."""
    adapters = [m for m in models if m.get("kind") != "base"]
    if not adapter_names:
        st.info("No trained models yet: train one in the Training Forge. Base models are listed below.")
    elif n_pages > 1:
        st.number_input(f"Page (of {n_pages}, {len(adapter_names)} adapters)", 1, n_pages, key="mc_models_page")
    card = nursery_scorecard([m["name"] for m in adapters])
    rows = [{"name": m["name"], "base model": m.get("base_model"), "dataset": m.get("dataset"),
             "job": m.get("job_id"), "created": when(m.get("created_at")), "by": m.get("created_by"),
             "final loss": m.get("final_loss"), "eval loss": m.get("eval_loss"),
             "AST accuracy": ((card[m["name"]]["held_out"] or {}).get("ast_accuracy")
                              if card[m["name"]]["held_out"] else (m.get("evaluation") or {}).get("ast_accuracy")),
             "held-out AST (95% CI)": scores.cell(card[m["name"]]["held_out"]),
             "golden sets AST (95% CI)": scores.golden_cell(card[m["name"]]["golden"]),
             "evaluated on": (m.get("evaluation") or {}).get("dataset"),
             "decoding": (m.get("evaluation") or {}).get("decoding"),
             "deployments": len(m.get("deployments") or []), "tools": ", ".join(m.get("tools") or [])}
            for m in adapters]
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="mc_models_table")
    st.markdown("**Base models**")
    st.dataframe(pd.DataFrame([{"name": b["name"], "hub id": b.get("hf_id"), "parameters": count(b.get("params")),
                                "family": b.get("family"),
                                "on this machine": "✓ yes" if b.get("local") else "✗ no (from the hub)"}
                               for b in models if b.get("kind") == "base"]),
                 hide_index=True, width="stretch", key="mc_bases_table")
    if adapter_names:
        with st.expander("Delete a model", expanded=False):
            victim = st.selectbox("Model", adapter_names, key="mc_delete_pick")
            sure = st.checkbox(f"Yes, delete {victim} and its files", key="mc_delete_confirm")
            if st.button("Delete", key="mc_delete_go", disabled=not sure, type="primary"):
                try:
                    delete_model(victim)
                    from nursery_core.inference import get_pool
                    get_pool().forget(victim)
                    st.success(f"Deleted {victim}.")
                    st.rerun()
                except NurseryError as e:
                    st.error(str(e))


def render_test_tab(model_names: list[str], datasets: list[str]) -> None:
    """One prompt through one model with its tools: the streamed answer and its parsed calls."""
    if not model_names:
        st.info("No model available yet.")
    model = pick_model(model_names, "Model", widgets.CRADLE_MODEL_KEYS["Test"], remember=True)
    prompt = st.text_area("Prompt", key="mc_test_prompt", placeholder="What's the weather in Lisbon tomorrow?")
    source = st.radio("Tools", ["The model's training tools", "A dataset's tools", "Paste tools"],
                      horizontal=True, key="mc_test_tools_source")
    tools_from = tools_text = None
    if source == "A dataset's tools":
        tools_from = st.selectbox("Dataset", datasets, key="mc_test_tools_dataset")
    elif source == "Paste tools":
        tools_text = st.text_area("Tool schemas (JSON)", key="mc_test_tools_text", height=160,
                                  placeholder='[{"name": "get_weather", "description": "…", "parameters": {…}}]')
    system = st.text_input("System message (optional)", key="mc_test_system")
    settings = generation_settings("mc_test")
    running = widgets.action_button("Run", key="mc_test_go", type="primary", disabled=not model)
    if model and not running:
        # a warm model reads a newly chosen tool list while the user types the prompt
        try:
            widgets.tools_status(model, resolve_tools(model, tools_text, tools_from)[0], system or None, ahead=True,
                                 solo=True)
        except NurseryError:
            pass  # a tool list still being typed: Run reports what is wrong with it
    if running:
        try:
            build_messages(prompt, system or None)  # an empty prompt is said now, not after the model loads
            tools, where = resolve_tools(model, tools_text, tools_from)
            st.caption(f"Tools: {', '.join(t['function']['name'] for t in tools) or 'none'} ({where})")
            widgets.loading_status(model, solo=True)  # "Loading model …" until it is ready, then streams
            widgets.tools_status(model, tools, system or None, solo=True)
            with st.container(border=True):
                stream = stream_test_model(model, prompt, tools, system or None, **settings)
                text = st.write_stream(stream)
            st.session_state["mc_test_result"] = {
                "model": model, "tools": tools, "decoding": stream.decoding["decoding"],
                "decoding_notes": stream.decoding["notes"], "engine": stream.decoding.get("engine"),
                "engine_notes": stream.decoding.get("engine_notes") or [],
                **analyse_completion(text if isinstance(text, str) else "", tools)}
        except NurseryError as e:
            st.session_state["mc_test_error"] = str(e)
        finally:
            widgets.action_done("mc_test_go")
        st.rerun()
    if st.session_state.get("mc_test_error"):
        st.error(st.session_state.pop("mc_test_error"))
    result = st.session_state.get("mc_test_result")
    if result:
        st.markdown(f"**Result of {result['model']}**")
        decoding_caption(result)
        st.code(result["completion"] or "(empty)", language=None)
        show_calls(result, "mc_test_calls")


def render_compare_tab(model_names: list[str], datasets: list[str]) -> None:
    """Two models on prompts or on a dataset, their calls diffed."""
    a = pick_model(model_names, "Model A", "mc_cmp_a", 0)
    b = pick_model(model_names, "Model B", "mc_cmp_b", 1)
    mode = st.radio("Compare on", ["Prompts", "A dataset (batch)"], horizontal=True, key="mc_cmp_mode")
    kwargs: dict = {}
    if mode == "Prompts":
        typed = st.text_area("Prompts, one per line", key="mc_cmp_prompts")
        pick_ds = st.selectbox("…or pick prompts from a dataset", [""] + datasets, key="mc_cmp_pick_ds")
        picked: list[str] = []
        if pick_ds:
            try:
                choices = [next(m["content"] for m in ex["messages"] if m["role"] == "user")
                           for ex in load_examples(pick_ds, "eval", limit=50)]
            except NurseryError as e:
                st.error(str(e))
                choices = []
            picked = st.multiselect("Prompts from the dataset", choices, key="mc_cmp_picked")
        kwargs["prompts"] = [p for p in typed.splitlines() if p.strip()] + picked
        if pick_ds:
            kwargs["tools_from"] = pick_ds
    else:
        c1, c2, c3 = st.columns(3)
        kwargs["dataset"] = c1.selectbox("Dataset", datasets, key="mc_cmp_dataset")
        kwargs["split"] = c2.selectbox("Split", ["eval", "all", "train"], key="mc_cmp_split")
        kwargs["limit"] = int(c3.number_input("At most", 1, 10000, 50, key="mc_cmp_limit"))
    settings = generation_settings("mc_cmp", batch=True)
    running = widgets.action_button("Compare", key="mc_cmp_go", type="primary", disabled=not (a and b))
    tools = None
    if mode == "Prompts" and a and b:
        try:
            tools = compare_tools(a, b, tools_from=kwargs.get("tools_from"))[0]
        except NurseryError:
            pass  # Compare reports it
    if tools is not None and not running:
        for m in dict.fromkeys((a, b)):
            widgets.tools_status(m, tools, ahead=True)  # warm models read the tool list before the click
    if running:
        try:
            # missing prompts are said now, not after both models load
            check_compare_request(a, b, kwargs.get("prompts"), kwargs.get("dataset"))
            for m in dict.fromkeys((a, b)):
                widgets.loading_status(m)
                if tools is not None:
                    widgets.tools_status(m, tools)
            bar = st.progress(0.0, text="Generating…")
            answered: dict[str, tuple[int, int]] = {}

            def show(which: str, done: int, total: int) -> None:
                # the two models answer at once on llama.cpp: the bar is their answers together
                answered[which] = (done, total)
                bar.progress(sum(d for d, _ in answered.values()) / (2 * total),
                             text=" · ".join(f"Model {w}: {d}/{t} answers" for w, (d, t) in sorted(answered.items())))

            st.session_state["mc_cmp_result"] = nursery_compare_models(a, b, **kwargs, **settings, progress=show)
        except NurseryError as e:
            st.session_state["mc_cmp_error"] = str(e)
        finally:
            widgets.action_done("mc_cmp_go")
        st.rerun()
    if st.session_state.get("mc_cmp_error"):
        st.error(st.session_state.pop("mc_cmp_error"))
    res = st.session_state.get("mc_cmp_result")
    if res:
        decoding_caption(res)
    if res and res["mode"] == "interactive":
        for i, row in enumerate(res["rows"]):
            st.markdown(f"**Prompt:** {row['prompt']}")
            ca, cb = st.columns(2)
            with ca:
                st.markdown(f"A · `{res['model_a']}`")
                st.code(row["a"]["completion"] or "(empty)", language=None)
                show_calls(row["a"], f"mc_cmp_a_{i}")
            with cb:
                st.markdown(f"B · `{res['model_b']}`")
                st.code(row["b"]["completion"] or "(empty)", language=None)
                show_calls(row["b"], f"mc_cmp_b_{i}")
            show_diff(row["diff"], f"mc_cmp_diff_{i}")
            st.divider()
    elif res and res["mode"] == "batch":
        m1, m2, m3 = st.columns(3)
        m1.metric(f"A · {res['model_a']}", f"{100 * (res['a_ast_accuracy'] or 0):.1f}%")
        m2.metric(f"B · {res['model_b']}", f"{100 * (res['b_ast_accuracy'] or 0):.1f}%")
        m3.markdown("  \n".join(f"{k}: **{v}**" for k, v in res["summary"].items()))
        shown = st.multiselect("Show", list(OUTCOMES), default=[o for o in OUTCOMES if o != "both right"],
                               key="mc_cmp_filter")
        rows = [r for r in res["rows"] if r["outcome"] in shown]
        st.dataframe(pd.DataFrame([{"id": r["id"], "category": r["category"], "outcome": r["outcome"],
                                    "prompt": r["prompt"], "A calls": show_json(r["a"]["calls"]),
                                    "B calls": show_json(r["b"]["calls"])} for r in rows],
                                  columns=["id", "category", "outcome", "prompt", "A calls", "B calls"]),
                     hide_index=True, width="stretch", key="mc_cmp_table")
        if rows:
            pick = st.selectbox("Example", [r["id"] for r in rows], key="mc_cmp_example")
            row = next(r for r in rows if r["id"] == pick)
            st.markdown(f"**Expected:** `{show_json(row['gold'])}`")
            ca, cb = st.columns(2)
            ca.code(row["a"]["completion"] or "(empty)", language=None)
            ca.caption(row["a"]["error"] or "correct")
            cb.code(row["b"]["completion"] or "(empty)", language=None)
            cb.caption(row["b"]["error"] or "correct")
            show_diff(row["diff"], "mc_cmp_example_diff")


def _dataset_follows_model(datasets: list[str]) -> None:
    """When the Evaluate tab's model changes (a pick, or a hand-off link), its Dataset starts at the dataset that
    model was trained on, as `evaluate` does without --dataset. A dataset the user picks for that model stays."""
    key = widgets.CRADLE_MODEL_KEYS["Evaluate"]
    model = st.session_state.get(key) or st.query_params.get(key)
    if not model or model == st.session_state.get("mc_eval_dataset_for"):
        return
    st.session_state["mc_eval_dataset_for"] = model
    store = services.store()
    trained_on = store.get_model(model).get("dataset") if store.has_model(model) else None
    if trained_on in datasets:
        st.session_state["mc_eval_dataset"] = trained_on


def render_evaluate_tab(model_names: list[str], datasets: list[str], golden_sets: list[str], user: str | None) -> None:
    """Evaluate a model or a predictions file, the leaderboard and the per-example drill-down."""
    source = st.radio("Score", ["A model", "A predictions file"], horizontal=True, key="mc_eval_source")
    _dataset_follows_model(datasets)
    c1, c2, c3 = st.columns(3)
    ev_dataset = c1.selectbox("Dataset", datasets, key="mc_eval_dataset")
    ev_split = c2.selectbox("Split", ["eval", "all", "train"], key="mc_eval_split")
    ev_limit = int(c3.number_input("At most (0 = all)", 0, 100000, 0, key="mc_eval_limit")) or None
    upload = None
    golden_pick, no_golden, with_base = [], False, False
    if source == "A model":
        ev_model = pick_model(model_names, "Model", widgets.CRADLE_MODEL_KEYS["Evaluate"], remember=True)
        g1, g2, g3 = st.columns([2, 1, 1.3])
        golden_pick = g1.multiselect("Golden sets", golden_sets, key="mc_eval_golden",
                                     placeholder="every golden set whose tools the model was trained on")
        no_golden = g2.checkbox("Held-out only", key="mc_eval_no_golden")
        with_base = g3.checkbox("Score the base model too", key="mc_eval_with_base",
                                help="The same data through the bare base model (without the adapter): the "
                                     "baseline the adapter is compared with.")
        settings = generation_settings("mc_eval", batch=True, guard=False)
        settings["decoding"] = DECODING_CHOICES[st.radio(
            "Guarded decoding", list(DECODING_CHOICES), horizontal=True, key="mc_eval_guard",
            help="Free and guarded stores one evaluation each. " + GUARD_HELP)]
    else:
        upload = st.file_uploader('Predictions: one {"id", "output"} per line', type=["jsonl", "json"],
                                  key="mc_eval_upload")
        ev_model = st.text_input("Name for these predictions", key="mc_eval_label", placeholder="my-external-model")
        settings = {}
    if widgets.action_button("Evaluate", key="mc_eval_go", type="primary", disabled=not ev_dataset):
        with st.status("Evaluating…", expanded=True):
            bar = st.progress(0.0)
            try:
                if source == "A model":
                    widgets.loading_status(ev_model)
                    r = nursery_evaluate_suite(
                        ev_model, ev_dataset, split=ev_split, limit=ev_limit, created_by=user,
                        golden=[] if no_golden else (golden_pick or None), with_base=with_base, **settings,
                        progress=lambda tag, done, total: bar.progress(done / total, text=f"{tag}: {done}/{total}"))
                else:
                    r = nursery_evaluate(ev_model or None, ev_dataset, split=ev_split, limit=ev_limit,
                                         predictions=upload, created_by=user, **settings,
                                         progress=lambda done, total: bar.progress(done / total, text=f"{done}/{total}"))
                st.session_state["mc_eval_last"] = r["id"]
                st.session_state["mc_eval_runs"] = r.get("runs") or [r]
                st.session_state["mc_eval_summary"] = ("success", scores.summary_line(r))
            except NurseryError as e:
                st.session_state["mc_eval_summary"] = ("error", f"Evaluation failed: {e}")
            finally:
                widgets.action_done("mc_eval_go")
        st.rerun()
    if st.session_state.get("mc_eval_summary"):
        kind, text = st.session_state["mc_eval_summary"]
        getattr(st, kind)(text)
    runs = st.session_state.get("mc_eval_runs")
    if runs:
        st.dataframe(scores.runs_frame(runs), hide_index=True, width="stretch", key="mc_eval_runs_table")
        scores.warn_small(runs)

    st.subheader("Leaderboard")
    b1, b2 = st.columns(2)
    board_ds = b1.selectbox("Dataset", [""] + datasets, key="mc_board_dataset",
                            format_func=lambda d: d or "all datasets")
    board_dec = b2.selectbox("Show decoding", ["", "guarded", "free"], key="mc_board_decoding",
                             format_func=lambda d: d or "all decodings")
    board = nursery_leaderboard(board_ds or None, board_dec or None)
    if not board:
        st.caption("No evaluations yet.")
    else:
        st.altair_chart(scores.leaderboard_chart(board), width="stretch", key="mc_board_chart")
        st.dataframe(scores.leaderboard_frame(board, HEADLINE), hide_index=True, width="stretch",
                     key="mc_board_table")
        st.markdown("**Held-out vs golden sets** (AST accuracy, Wilson 95% interval; ⚠ under 30 examples; the "
                    "newest evaluation of each)")
        st.dataframe(scores.scorecard_frame(nursery_scorecard(sorted({r["model"] for r in board}))),
                     hide_index=True, width="stretch", key="mc_board_scorecard")

    st.subheader("Per-example drill-down")
    evals = list_evaluations(dataset=board_ds or None, limit=100)
    if evals:
        ids = [e["id"] for e in evals]
        last = st.session_state.get("mc_eval_last")
        pick = st.selectbox("Evaluation", ids, index=ids.index(last) if last in ids else 0, key="mc_drill_eval",
                            format_func=lambda i: next(f"{e['model']} on {e['dataset']} ({e['split']}) · "
                                                       f"{decoding_of(e.get('settings')) or 'predictions'} · "
                                                       f"{100 * (e['ast_accuracy'] or 0):.1f}% · {when(e['created_at'])}"
                                                       for e in evals if e["id"] == i))
        try:
            details = evaluation_details(pick)
        except NurseryError as e:
            st.error(str(e))
            details = []
        ev = next(e for e in evals if e["id"] == pick)
        for note in (ev.get("settings") or {}).get("decoding_notes") or []:  # e.g. why prose answers look cut
            st.caption(note[:1].upper() + note[1:] + ("" if note.endswith((".", "!", "?", ")")) else "."))
        per = (ev.get("metrics") or {}).get("per_category") or {}
        if per:
            st.dataframe(scores.categories_frame(per, HEADLINE), hide_index=True, width="stretch",
                         key="mc_drill_categories")
        f1, f2 = st.columns(2)
        which = f1.radio("Show", ["failed", "passed", "all"], horizontal=True, key="mc_drill_which")
        cats = sorted({d["category"] for d in details})
        cat = f2.selectbox("Category", ["all"] + cats, key="mc_drill_cat")
        shown = [d for d in details if (which == "all" or d["ast_ok"] == (which == "passed"))
                 and (cat == "all" or d["category"] == cat)]
        st.dataframe(pd.DataFrame([{"id": d["id"], "category": d["category"], "correct": d["ast_ok"],
                                    "error": d["ast_error"], "format ok": d["format_ok"],
                                    "calls": show_json(d["calls"])} for d in shown],
                                  columns=["id", "category", "correct", "error", "format ok", "calls"]),
                     hide_index=True, width="stretch", key="mc_drill_table")
        if shown:
            ex_id = st.selectbox("Example", [d["id"] for d in shown], key="mc_drill_example")
            d = next(x for x in shown if x["id"] == ex_id)
            c1, c2 = st.columns(2)
            c1.markdown("**Model output**")
            c1.code(d["output"] or "(empty)", language=None)
            c2.markdown("**Expected calls**")
            c2.json(d["gold"], expanded=True)
            st.caption(d["ast_error"] or "correct")
