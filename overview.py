"""Nursery overview (the first page of app.py's navigation): who is running what right now, recent datasets,
models and jobs, cloud spend per person, and the three steps for a new user when nothing exists yet."""
from pathlib import Path

import streamlit as st

from nursery_core.evaluation.api import nursery_scorecard
from nursery_core.formatting import when
from nursery_core.webui import identity, navigation, scores, services, widgets
from nursery_core.webui.training_widgets import status_label

navigation.page_setup("Nursery", "🌱")
user = identity.sidebar_identity()
services.runner()  # the queue moves (and orphaned runs are recovered) even if nobody opens the Forge
ROOT = Path(__file__).resolve().parent
STEPS = [("pages/1_Data_Garden.py", "Data Garden", "🌿", "Grow data",
          "Generate tool-calling examples for built-in or your own tools, or import chat history."),
         ("pages/2_Training_Forge.py", "Training Forge", "🔥", "Train",
          "Fine-tune a small model on a dataset, locally or on a rented GPU."),
         ("pages/3_Model_Cradle.py", "Model Cradle", "🧪", "Test and compare",
          "Try the trained model, compare it with its base, and measure its tool-call accuracy.")]
ACTIVE_SHOWN = 20  # live rows on the overview; the Training Forge pages through all jobs

st.title("🌱 Nursery")
st.caption("Turn a small open LLM into a reliable tool caller.")

store = services.store()
counts = store.overview_counts()
c1, c2, c3, c4, c5 = st.columns(5)
c1.metric("Datasets", counts["datasets"])
c2.metric("Models", counts["models"])
c3.metric("Jobs", counts["jobs"])
c4.metric("Running now", counts["jobs_by_status"].get("running", 0))
c5.metric("Queued", counts["jobs_by_status"].get("queued", 0))


def step_buttons() -> None:
    """The three steps as cards with a button each (a plain line for a page this installation lacks)."""
    cols = st.columns(len(STEPS))
    for i, (col, (page, name, icon, verb, help_text)) in enumerate(zip(cols, STEPS), start=1):
        with col.container(border=True):
            st.markdown(f"**{i}. {verb} in the {name}** {icon}")
            st.caption(help_text)
            if (ROOT / page).exists():
                if st.button(f"Open the {name}", key=f"overview_step_{i}", type="primary" if i == 1 else "secondary",
                             icon=icon):
                    st.switch_page(page)


if counts["datasets"] == 0 and counts["models"] == 0 and counts["jobs"] == 0:
    st.info("Welcome! Nursery is empty. Three steps take you from nothing to a model that calls your tools:")
    step_buttons()
    if not user:
        st.caption("Tip: tell Nursery your name in the sidebar, so your teammates see who made what.")
    st.stop()


def _running_line(j: dict) -> str:
    step = f"step {j.get('step') or 0}/{j['total_steps']}" if j.get("total_steps") else "starting"
    loss = f" · loss {j['last_loss']:.3f}" if j.get("last_loss") is not None else ""
    return f"{j.get('created_by') or 'someone'} · {j.get('output_name')} · {j['kind']} · running · {step}{loss}"


@st.fragment(run_every=3 if counts["active_jobs"] else None)
def running_now(initially_active: int) -> None:
    """Live while something runs: the running jobs with progress, the queue in order, who runs what."""
    live = services.store()
    running = live.list_jobs(status="running", limit=ACTIVE_SHOWN)
    queued = live.list_jobs(status="queued", limit=ACTIVE_SHOWN, order="created_at, rowid")
    st.subheader("Running now")
    if not running and not queued:
        st.write("Nothing is training right now.")
        if initially_active:
            st.rerun()  # something just finished: refresh the counts and lists once, then stop polling
        return
    for j in running:
        st.progress(min(1.0, float(j.get("progress") or 0.0)), text=_running_line(j))
    for pos, j in enumerate(queued, start=1):
        st.markdown(f"⏳ {j.get('created_by') or 'someone'} · {j.get('output_name')} · {j['kind']} · "
                    f"queued (#{pos} in line)")
    people: dict[str, dict[str, list[str]]] = {}
    for j in running + queued:
        people.setdefault(j.get("created_by") or "someone", {"running": [], "queued": []})[j["status"]].append(
            j.get("output_name") or j["id"])
    st.markdown("**Who is running what:** " + " · ".join(
        f"{who}: " + ", ".join([*(f"{m} (running)" for m in w["running"]), *(f"{m} (queued)" for m in w["queued"])])
        for who, w in sorted(people.items())))


running_now(counts["active_jobs"])

left, right = st.columns(2)
with left:
    st.subheader("Recent datasets")
    rows = store.list_datasets(limit=5)
    if rows:
        st.dataframe(widgets.datasets_frame(rows), hide_index=True, width="stretch", key="overview_datasets")
    else:
        st.write("No datasets yet: grow one in the Data Garden.")
with right:
    st.subheader("Recent models")
    models = store.list_models(limit=5)
    if models:
        card = nursery_scorecard([m["name"] for m in models])
        st.dataframe([{"name": m["name"], "base": m.get("base_model"), "dataset": m.get("dataset"),
                       "held-out AST (95% CI)": scores.cell(card[m["name"]]["held_out"]),
                       "golden sets AST (95% CI)": scores.golden_cell(card[m["name"]]["golden"]),
                       "eval loss": m.get("eval_loss"), "by": m.get("created_by") or "",
                       "created": when(m.get("created_at"))} for m in models],
                     hide_index=True, width="stretch", key="overview_models")
        if any(s.get("warning") for c in card.values() for s in [c["held_out"] or {}, *c["golden"].values()]):
            st.caption("⚠ marks a score measured on fewer than 30 examples: its 95% interval is wide.")
    else:
        st.write("No models yet: train one from a dataset in the Training Forge.")

st.subheader("Recent jobs")
jobs = store.list_jobs(limit=10)
if jobs:
    st.caption(" · ".join(f"{k}: {v}" for k, v in sorted(counts["jobs_by_status"].items()))
               + " — all jobs, with details, are in the Training Forge.")
    # a table cell has one colour (the theme's green): only live and succeeded jobs get a bar, a job that
    # failed or was cancelled says where it stopped in words
    st.dataframe([{"id": j["id"], "by": j.get("created_by") or "", "model": j.get("output_name"),
                   "where": j.get("kind"),
                   "status": status_label(j["status"]) + ("" if j["status"] in ("queued", "running", "succeeded")
                                                          else f" at {float(j.get('progress') or 0):.0%}"),
                   "dataset": j.get("dataset"),
                   "progress": float(j.get("progress") or 0.0) if j["status"] in ("queued", "running", "succeeded")
                   else None, "created": when(j.get("created_at"))}
                  for j in jobs], hide_index=True, width="stretch", key="overview_jobs",
                 column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0,
                                                                            max_value=1.0)})
else:
    st.write("No training jobs yet.")

spend = [r for r in store.spend_by_person() if r["jobs"]]
if spend:
    st.subheader("Cloud spend per person")
    st.dataframe([{"person": r["person"] or "(no name)", "cloud runs": r["jobs"], "spent ($)": round(r["cost_usd"], 2)}
                  for r in spend], hide_index=True, width="stretch", key="overview_spend")

with st.expander("Where to go next"):
    step_buttons()
