"""Nursery overview: datasets, models and jobs at a glance, and the three steps for a new user."""
from pathlib import Path

import streamlit as st

from nursery_core.webui import identity, services, widgets

st.set_page_config(page_title="Nursery", page_icon="🌱", layout="wide")
identity.sidebar_identity()
ROOT = Path(__file__).resolve().parent
STEPS = [("pages/1_Data_Garden.py", "1. Grow data in the Data Garden", "🌿",
          "Generate tool-calling examples for built-in or your own tools, or import chat history."),
         ("pages/2_Training_Forge.py", "2. Train in the Training Forge", "🔥",
          "Fine-tune a small model on a dataset, locally or on a rented GPU."),
         ("pages/3_Model_Cradle.py", "3. Test and deploy in the Model Cradle", "🍼",
          "Evaluate, compare and ship the trained model to Ollama.")]

st.title("🌱 Nursery")
st.caption("Turn a small open LLM into a reliable tool caller.")

store = services.store()
counts = store.overview_counts()
c1, c2, c3, c4 = st.columns(4)
c1.metric("Datasets", counts["datasets"])
c2.metric("Models", counts["models"])
c3.metric("Jobs", counts["jobs"])
c4.metric("Running now", counts["active_jobs"])


def step_links(only_first: bool = False) -> None:
    for page, label, icon, help_text in STEPS[:1] if only_first else STEPS:
        if (ROOT / page).exists():
            st.page_link(page, label=label, icon=icon, help=help_text)
        else:
            st.markdown(f"{icon} **{label}**: {help_text}")


if counts["datasets"] == 0 and counts["models"] == 0 and counts["jobs"] == 0:
    st.info("Welcome! Nursery is empty. Three steps take you from nothing to a model that calls your tools:")
    step_links()
else:
    left, right = st.columns(2)
    with left:
        st.subheader("Recent datasets")
        rows = store.list_datasets(limit=5)
        if rows:
            st.dataframe(widgets.datasets_frame(rows), hide_index=True, width="stretch")
        else:
            st.write("No datasets yet.")
            step_links(only_first=True)
    with right:
        st.subheader("Recent models")
        models = store.list_models(limit=5)
        if models:
            st.dataframe([{"name": m["name"], "base": m.get("base_model"), "dataset": m.get("dataset"),
                           "eval loss": m.get("eval_loss"), "created": (m.get("created_at") or "")[:16]}
                          for m in models], hide_index=True, width="stretch")
        else:
            st.write("No models yet: train one from a dataset.")
    st.subheader("Jobs")
    jobs = store.list_jobs(limit=10)
    if jobs:
        st.caption(" · ".join(f"{k}: {v}" for k, v in sorted(counts["jobs_by_status"].items())))
        st.dataframe([{"id": j["id"], "kind": j.get("kind"), "status": j.get("status"),
                       "dataset": j.get("dataset"), "progress": j.get("progress"),
                       "created": (j.get("created_at") or "")[:16], "by": j.get("created_by") or ""}
                      for j in jobs], hide_index=True, width="stretch")
    else:
        st.write("No training jobs yet.")
    with st.expander("Where to go next"):
        step_links()
