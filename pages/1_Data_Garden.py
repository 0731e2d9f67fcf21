"""Data Garden: generate tool-calling data, import chat history and datasets, and inspect every dataset."""

import streamlit as st

from nursery_core.data.generator import REQUESTS_PER_TOOL_SET, check_tool_schemas, nursery_generate_data
from nursery_core.data.hub import LOCAL_BUILDERS, nursery_import_hub
from nursery_core.data.importers import FORMATS, nursery_extract_conversations
from nursery_core.data.tools import DEFAULT_TOOL_NAMES
from nursery_core.datasets import (dataset_diversity, delete_dataset, example_lengths, nursery_import_dataset,
                                   nursery_list_datasets, show_dataset)
from nursery_core.base_models import REGISTRY
from nursery_core.errors import NurseryError
from nursery_core.formatting import things
from nursery_core.settings import effective_training_defaults
from nursery_core.training.config import TrainConfig
from nursery_core.training.preview import render_example
from nursery_core.webui import identity, navigation, services, widgets
from nursery_core.webui.golden_panel import render_golden_panel

navigation.page_setup("Data Garden · Nursery", "🌿")
user = identity.sidebar_identity()
st.title("🌿 Data Garden")
st.caption("Grow tool-calling training data: generate it from tool schemas, or import real conversations.")
PAGE_SIZE = 20
TRAINING_FORGE = "pages/2_Training_Forge.py"

tab_gen, tab_imp, tab_ds, tab_gold = st.tabs(["Generate", "Import", "Datasets", "Golden sets"])

# ------------------------------------------------------------------------------------------- generate
with tab_gen:
    picked = st.multiselect("Built-in tools", DEFAULT_TOOL_NAMES, default=["get_weather"], key="gen_tools",
                            help="Several tools make one combined dataset with parallel and multi-turn examples.")
    custom_tools = []
    with st.expander("Your own tool schema (no code needed)", expanded=False):
        st.caption("Paste an OpenAI function (`{\"type\": \"function\", \"function\": {...}}`), a bare "
                   "`{name, description, parameters}`, or a list of them. Or upload a .json file.")
        upload = st.file_uploader("Schema file", type=["json"], key="gen_schema_file")
        text = st.text_area("Schema JSON", height=220, key="gen_schema_text",
                            placeholder='{"name": "create_ticket", "description": "Creates a support ticket.", '
                                        '"parameters": {"type": "object", "properties": {"title": {"type": '
                                        '"string"}}, "required": ["title"]}}')
        source_text = upload.getvalue().decode("utf-8", errors="replace") if upload is not None else text
        if source_text and source_text.strip():
            try:
                check = check_tool_schemas(source_text, upload.name if upload is not None else "schema")
                custom_tools = check["tools"]
                st.success("Valid: " + ", ".join(f"`{t['function']['name']}`" for t in custom_tools)
                           + f" (a dry run generated {check['generated']} examples)")
                widgets.schema_check_notes(check)
            except NurseryError as e:
                st.error(str(e))
    queries = st.text_area("Example user queries (optional, one per line)", key="gen_queries", height=90,
                           help="They steer the phrasing. Write {param} to mark where an argument goes, "
                                "e.g. 'jot down that {content}'.")
    c1, c2, c3, c4, c5 = st.columns(5)
    count = c1.number_input("Examples", min_value=1, max_value=100000, value=200, step=50, key="gen_count")
    variation = c2.select_slider("Variation", ["low", "medium", "high"], value="medium", key="gen_variation",
                                 help="Every level asks each call in many shapes; higher levels add typos, casing "
                                      "and chatty openers, ask for optional arguments more often, offer distractor "
                                      "tools, hold more requests no offered tool can serve, and run longer "
                                      "conversations.")
    seed = c3.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="gen_seed")
    per_set = c4.number_input("Requests per tool list", min_value=1, max_value=1000, value=REQUESTS_PER_TOOL_SET,
                              step=1, key="gen_per_set",
                              help="How many examples in a row offer the same drawn tools, as an app sends many "
                                   "requests against one tool list. The model sees requests those tools serve "
                                   "and ones they do not, and training runs a shared tool list once per batch "
                                   "(several times more examples per minute). 1 = each example draws its own.")
    name = c5.text_input("Dataset name", key="gen_name", placeholder="from the tool names")
    if st.button("Generate dataset", type="primary", key="gen_go", disabled=not (picked or custom_tools)):
        try:
            with st.spinner("Generating…"):
                row = nursery_generate_data(
                    list(picked) + custom_tools, int(count), variation, seed=int(seed), name=name.strip() or None,
                    example_queries=[q for q in queries.splitlines() if q.strip()] or None, created_by=user,
                    requests_per_tool_set=int(per_set))
            st.session_state["dg_selected"] = row["name"]
            st.success(f"Dataset **{row['name']}** with {things(row['num_examples'], 'example')} is ready: see the "
                       "Datasets tab.")
            widgets.page_link(TRAINING_FORGE, "Train on this dataset", "🔥", {"tf_dataset": row["name"]})
            widgets.report_view(row["report"])
        except NurseryError as e:
            st.error(str(e))

# --------------------------------------------------------------------------------------------- import
with tab_imp:
    st.caption("ChatGPT or Claude exports (conversations.json or the .zip), OpenAI chat JSONL, ShareGPT, "
               "Hermes, glaive v2, xLAM/APIGen, flat rows (also as Parquet/Arrow, read by the datasets "
               "library), or a dataset already in Nursery's canonical JSONL.")
    up = st.file_uploader("File", type=["json", "jsonl", "zip", "parquet", "arrow"], key="imp_file")
    c1, c2 = st.columns(2)
    fmt = c1.selectbox("Format", ["auto", *FORMATS, "canonical"], key="imp_format",
                       help="auto detects chat exports and tool-call formats; canonical imports a Nursery dataset.")
    imp_name = c2.text_input("Dataset name", key="imp_name", placeholder="from the file name")
    keep_plain = st.checkbox("Keep conversations without tool calls (as no-call examples)", key="imp_keep_plain")
    redact = st.checkbox("Redact e-mail addresses and API keys", key="imp_redact")
    if st.button("Import", type="primary", key="imp_go", disabled=up is None):
        with widgets.uploaded_copy(up, "upload.json") as path:
            with st.spinner(f"Importing {up.name}…"):
                if fmt == "canonical":
                    row = nursery_import_dataset(path, name=imp_name.strip() or None, created_by=user)
                elif path.suffix in LOCAL_BUILDERS and path.suffix not in (".json", ".jsonl"):
                    row = nursery_import_hub(str(path), format=fmt, name=imp_name.strip() or None,
                                             keep_plain=keep_plain, redact=redact, created_by=user)
                else:
                    row = nursery_extract_conversations(path, format=fmt, name=imp_name.strip() or None,
                                                        keep_plain=keep_plain, redact=redact, created_by=user)
            st.session_state["dg_selected"] = row["name"]
            st.success(f"Dataset **{row['name']}** with {things(row['num_examples'], 'example')} imported from "
                       f"{up.name}.")
            widgets.page_link(TRAINING_FORGE, "Train on this dataset", "🔥", {"tf_dataset": row["name"]})
            widgets.report_view(row.get("report") or {})

# ------------------------------------------------------------------------------------------- datasets
with tab_ds:
    total = services.store().count_datasets()
    if total == 0:
        st.info("No datasets yet. Generate one in the **Generate** tab or import chat history in **Import**.")
    else:
        pages = (total + PAGE_SIZE - 1) // PAGE_SIZE
        page = st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=1, key="ds_page") if pages > 1 else 1
        rows = nursery_list_datasets(limit=PAGE_SIZE, offset=(int(page) - 1) * PAGE_SIZE)
        st.dataframe(widgets.datasets_frame(rows), hide_index=True, width="stretch")
        names = [r["name"] for r in rows]
        wanted = st.session_state.pop("dg_selected", None)  # just generated or imported: open it
        for extra in (wanted, st.query_params.get("ds_pick")):  # the address may name one on another page
            if extra and extra not in names and services.store().has_dataset(extra):
                names = [extra] + names
        if wanted in names:
            st.session_state["ds_pick"] = wanted
        pick = st.selectbox("Open dataset", names, key="ds_pick", bind="query-params",
                            help="Kept in the page address: a reload or a shared link opens the same dataset.")
        widgets.page_link(TRAINING_FORGE, "Train on this dataset", "🔥", {"tf_dataset": pick})
        try:
            n_show = st.slider("Examples to show", 1, 50, 5, key="ds_show")
            ds = show_dataset(pick, limit=n_show)
            split = ds.get("split") or {}
            m1, m2, m3, m4 = st.columns(4)
            m1.metric("Examples", ds["num_examples"])
            m2.metric("Train / eval", f"{split.get('train', '?')} / {split.get('eval', '?')}")
            m3.metric("Mean tokens (approx.)", (ds.get("stats") or {}).get("approx_tokens", {}).get("mean", "?"))
            m4.metric("Source", ds.get("source") or "?")
            div = dataset_diversity(pick)
            d1, d2, d3, d4 = st.columns(4)
            d1.metric("Request skeletons per 100 requests", div["skeletons_per_100_requests"],
                      help=f"{div['skeletons']} distinct of {div['requests']} requests once argument values, numbers "
                           "and quoted text are taken out: how many sentence shapes the model sees.")
            d2.metric("Distinct 3-grams per call", div["trigrams_per_call"],
                      help=f"{div['trigrams']} distinct word 3-grams over those skeletons, per call.")
            d3.metric("Calls with optional arguments", f"{div['optional_arg_share']:.0%}",
                      help="Share of calls that carry at least one optional argument the request asked for.")
            kinds = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in div["no_call_kinds"].items())
            d4.metric("No-call examples", f"{div['no_call_share']:.0%}",
                      help="Examples whose answer must not call a tool" + (f" ({kinds})." if kinds else "."))
            ch1, ch2 = st.columns(2)
            calls = (ds.get("stats") or {}).get("calls_per_tool") or {}
            if calls:
                ch1.altair_chart(widgets.bar_chart(calls, "tool", "Calls per tool"), width="stretch")
            ch2.altair_chart(widgets.bar_chart(ds.get("categories") or {}, "category", "Category mix"),
                             width="stretch")
            st.altair_chart(widgets.length_histogram(example_lengths(pick, limit=5000)), width="stretch")
            if ds.get("report"):
                with st.expander("Report"):
                    widgets.report_view(ds["report"])
            st.subheader("Examples")
            v1, v2 = st.columns([2, 1])
            seen = v1.toggle("Show what the model sees", key="ds_rendered",
                             help="Each example as the chat template renders it for training: tools in the system "
                                  "turn, <tool_call> blocks in the answers, the token count, and the tokens the "
                                  "loss is computed on highlighted.")
            view_base = v2.selectbox("Rendered for", list(REGISTRY), key="ds_rendered_base", disabled=not seen)
            for i, ex in enumerate(ds["examples"]):
                with st.container(border=True):
                    if seen:
                        widgets.rendered_prompt(render_example(ex, TrainConfig(
                            **{**effective_training_defaults(services.store()), "base_model": view_base})),
                            key=f"ds_rendered_{i}")
                    else:
                        widgets.render_example(ex, key=f"ex_{i}")
            with st.expander("Delete this dataset"):
                sure = st.checkbox(f"Yes, delete {pick} and its file", key="ds_delete_confirm")
                if st.button("Delete", key="ds_delete", disabled=not sure):
                    delete_dataset(pick)
                    st.session_state.pop("dg_selected", None)
                    st.session_state.pop("ds_delete_confirm", None)
                    st.success(f"Deleted {pick}.")
                    st.rerun()
        except NurseryError as e:
            st.error(str(e))

# ---------------------------------------------------------------------------------------- golden sets
with tab_gold:
    render_golden_panel(user)
