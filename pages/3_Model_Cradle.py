"""Model Cradle: see what a model does with tools — test it, compare two side by side, and evaluate them."""
import streamlit as st

from nursery_core.errors import NurseryError
from nursery_core.registry import nursery_list_models
from nursery_core.webui import cradle_panels as cradle
from nursery_core.webui import identity, navigation, services, widgets
from nursery_core.webui.deploy_panel import render_deploy_panel
from nursery_core.webui.serve_panel import render_serve_panel

navigation.page_setup("Model Cradle · Nursery", "🧪")
user = identity.sidebar_identity()
st.title("🧪 Model Cradle")
st.caption("Try a model on your own prompts, compare two side by side, and measure tool-call accuracy "
           "BFCL-style on held-out data.")

PAGE_SIZE = 25
ADAPTER_NAMES = services.store().model_names(kind="adapter")  # every adapter, for the pickers
n_pages = max(1, -(-len(ADAPTER_NAMES) // PAGE_SIZE))
table_page = st.session_state.get("mc_models_page", 1)
try:
    models = nursery_list_models(limit=PAGE_SIZE, offset=(min(table_page, n_pages) - 1) * PAGE_SIZE)
    if table_page > 1:  # base models come with the first page only
        models += [m for m in nursery_list_models(limit=0) if m.get("kind") == "base"]
except NurseryError as e:
    st.error(str(e))
    models = []
bases = [m for m in models if m.get("kind") == "base" and m.get("local")]
MODEL_NAMES = ADAPTER_NAMES + [b["name"] for b in bases]
DATASETS = services.store().dataset_names()
GOLDEN_SETS = services.store().dataset_names(kind="golden")
TABS = ["Models", "Test", "Compare", "Evaluate", "Deploy", "Serve"]
# hand-off links ("Test this model", …) open a tab through ?tab=
tab_models, tab_test, tab_compare, tab_eval, tab_deploy, tab_serve = st.tabs(
    TABS, default=st.query_params.get("tab") if st.query_params.get("tab") in TABS else None)

# -------------------------------------------------------------------------------------------- models
with tab_models:
    cradle.render_models_tab(ADAPTER_NAMES, models, n_pages)

# ---------------------------------------------------------------------------------------------- test
with tab_test:
    cradle.render_test_tab(MODEL_NAMES, DATASETS)

# ------------------------------------------------------------------------------------------- compare
with tab_compare:
    cradle.render_compare_tab(MODEL_NAMES, DATASETS)

# ------------------------------------------------------------------------------------------ evaluate
with tab_eval:
    cradle.render_evaluate_tab(MODEL_NAMES, DATASETS, GOLDEN_SETS, user)

# -------------------------------------------------------------------------------------------- deploy
with tab_deploy:
    dep_model = st.selectbox("Model", ADAPTER_NAMES, key=widgets.CRADLE_MODEL_KEYS["Deploy"], bind="query-params")
    if dep_model:
        render_deploy_panel(dep_model)
    else:
        st.caption("Train a model first.")

# --------------------------------------------------------------------------------------------- serve
with tab_serve:
    if MODEL_NAMES:
        render_serve_panel(st.selectbox("Model", MODEL_NAMES, key="mc_serve_model"))
