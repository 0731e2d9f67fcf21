"""Training Forge: estimate what a run costs, launch local LoRA runs, and follow jobs live."""
import streamlit as st

from nursery_core.base_models import REGISTRY
from nursery_core.errors import DuplicateRun, NurseryError
from nursery_core.estimate import estimate_accuracy, nursery_estimate_cost, probe_description
from nursery_core.formatting import things
from nursery_core.jobs.api import nursery_cancel_job, nursery_job_status, nursery_list_jobs, nursery_train_local
from nursery_core.jobs.backends import cloud_providers
from nursery_core.jobs.train_cloud import nursery_price_quote, nursery_train_cloud
from nursery_core.run_options import train_command
from nursery_core.settings import effective_training_defaults
from nursery_core.status import ACTIVE
from nursery_core.training.config import TrainConfig
from nursery_core.training.preview import job_examples, render_example
from nursery_core.webui import cloud_panel, identity, navigation, services, widgets
from nursery_core.webui import training_widgets as tw

navigation.page_setup("Training Forge · Nursery", "🔥")
user = identity.sidebar_identity()
services.runner()  # starts the background runner once per process (and re-attaches orphaned runs)
st.title("🔥 Training Forge")
st.caption("Pick a dataset and a base model, see what it costs, and train a LoRA adapter in the background.")
PAGE_SIZE = 15
DEFAULTS = TrainConfig(**effective_training_defaults(services.store()))  # the team's saved defaults

datasets = services.store().dataset_names(kind="training")  # golden sets are never trained on
if not datasets:
    st.info("No datasets yet: create one in the Data Garden first.")
c1, c2 = st.columns(2)
dataset = c1.selectbox("Dataset", datasets, key="tf_dataset", bind="query-params",
                       help="Kept in the page address: a reload or a shared link opens the same dataset.")
base_alias = c2.selectbox("Base model", list(REGISTRY), key="tf_base",
                          help="smollm2-135m ships with Nursery; others need the hub or a local copy.")
base_path = c2.text_input("…or a local model directory", key="tf_base_path", placeholder="/path/to/hf-model")
base_model = base_path.strip() or base_alias

tab_est, tab_launch = st.tabs(["Estimate", "Launch"])
with tab_est:
    e1, e2 = st.columns([1, 3])
    epochs_est = e1.number_input("Epochs", min_value=0.1, max_value=100.0, value=float(DEFAULTS.epochs), step=1.0,
                                 key="tf_est_epochs")
    probe = e1.checkbox("Measure this machine", value=False, key="tf_est_probe",
                        help="The probe " + probe_description(base_model) + ".")
    remeasure = e1.checkbox("Measure again", value=False, key="tf_est_remeasure", disabled=not probe,
                            help="Times the steps again instead of reusing this machine's kept measurement.")
    if e1.button("Estimate", key="tf_est_go", disabled=not dataset):
        try:
            with st.spinner("Counting tokens, then timing a few training steps on this machine (seconds)…"
                            if probe else "Counting tokens…"):
                st.session_state["tf_estimate"] = nursery_estimate_cost(dataset, base_model, epochs_est, probe=probe,
                                                                        remeasure=probe and remeasure)
        except NurseryError as e:
            st.error(str(e))
    est = st.session_state.get("tf_estimate")
    if est:
        e2.markdown(f"**{est['tokens']['train_total']:,}** training tokens ({est['tokens']['method']}) · "
                    f"**{est['flops']['lora_total']:.3g}** FLOPs (LoRA; full fine-tune "
                    f"{est['flops']['full_total']:.3g}) · memory ≈ **{est['memory']['total_gb']:.1f} GB**")
        e2.dataframe(tw.gpu_frame(est), hide_index=True, key="tf_gpu_table")
        cpu = est["local_cpu"]
        e2.markdown(f"This machine (CPU): **{tw.duration(cpu['seconds'])}** ({cpu['method']})")
        if cpu.get("probe"):
            e2.caption(f"Probe {'kept from' if cpu['probe'].get('reused') else 'measured'} "
                       f"{tw.when(cpu['probe'].get('measured_at'))}: {cpu['probe']['tokens_per_s']:.0f} training "
                       f"tokens/s; it {cpu['probe'].get('what', 'timed a few training steps')}.")
    if e1.button("Ask Together.ai for its price", key="tf_est_together", disabled=not dataset,
                 help="Uploads the dataset's splits to Together.ai to price them, then deletes them."):
        try:
            with st.spinner("Asking Together.ai…"):
                st.session_state["tf_quote"] = nursery_price_quote(dataset, base_model, "together", epochs_est)
        except NurseryError as e:
            st.error(str(e))
    quote = st.session_state.get("tf_quote")
    if quote:
        e2.markdown(f"**Price on {quote['provider']}** ({quote['epochs']} epoch(s)):")
        for q in quote["estimates"]:
            usd = "n/a" if q["usd"] is None else f"${q['usd']:.4f}"
            e2.markdown(f"- {q['source']}'s estimate: **{usd}** ({q['how']})")
    acc = estimate_accuracy()
    if acc["count"]:
        st.caption(f"Past estimates were off by {acc['mean_abs_error_pct']}% on average ({things(acc['count'], 'run')}).")

with tab_launch:
    cloud = cloud_panel.render_cloud_training_options("tf_cloud")  # None = this machine
    with st.form("tf_launch_form"):
        output = st.text_input("Output model name", key="tf_output", placeholder="derived from the dataset")
        hyper = tw.launch_form_fields(DEFAULTS.to_dict(), [d for d in datasets if d != dataset])
        st.form_submit_button("Start training", type="primary",
                                   disabled=not dataset or st.session_state.get("tf_submitting", False),
                                   on_click=tw.mark_submitting, args=("tf_submitting",))
    with st.expander("Copy as command line"):
        st.code(train_command(dataset or "DATASET", base_model, output.strip() or None, hyper, DEFAULTS.to_dict(),
                              cloud=cloud),
                language="bash", wrap_lines=True)
        st.caption("The same run from a terminal (the dashboard's runner picks it up; add --wait to run and "
                   "follow it there instead).")
    if st.session_state.get("tf_submitting"):
        # One submit at a time: the click's callback raised the flag, so this run draws the button disabled
        # (Streamlit then discards clicks on it) and submits once; the core refuses a second job writing the
        # same model (a click that still got through, another tab, the CLI).
        try:
            if cloud is None:
                started = nursery_train_local(dataset, base_model, output.strip() or None, created_by=user, **hyper)
            else:
                started = nursery_train_cloud(dataset, base_model, output.strip() or None, created_by=user,
                                              **cloud, **hyper)
            st.session_state["tf_selected"] = started["id"]
            st.session_state["tf_flash"] = ("success", f"Job {started['id']} queued → model "
                                                       f"**{started['output_name']}**")
        except DuplicateRun as e:
            st.session_state["tf_selected"] = e.other["id"]
            st.session_state["tf_flash"] = ("warning", f"Not started again: {e}")
        except NurseryError as e:
            st.session_state["tf_flash"] = ("error", str(e))
        finally:
            st.session_state["tf_submitting"] = False
        st.rerun()  # re-enables the button
    flash = st.session_state.pop("tf_flash", None)
    if flash:
        getattr(st, flash[0])(flash[1])

st.divider()
st.subheader("Jobs")
ACTIVE_AT_LOAD = services.store().count_jobs(status=list(ACTIVE))


@st.fragment(run_every=2 if ACTIVE_AT_LOAD else None)
def jobs_area(was_live: bool) -> None:
    """The jobs table and the selected job's panel, refreshed together every 2 s while anything is queued or
    running (the table is never older than the panel)."""
    jobs_total = services.store().count_jobs()
    page = st.number_input("Page", 1, max(1, -(-jobs_total // PAGE_SIZE)), 1, key="tf_jobs_page") if \
        jobs_total > PAGE_SIZE else 1
    jobs = nursery_list_jobs(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    if not jobs:
        st.caption("No jobs yet.")
        return
    st.dataframe(tw.jobs_frame(jobs), hide_index=True, key="tf_jobs_table", column_config={
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0)})
    ids = [j["id"] for j in jobs]
    if st.session_state.get("tf_selected") not in ids:
        st.session_state["tf_selected"] = ids[0]
    # the label names the job only: a selectbox keeps the labels it was first drawn with while its options stay
    # the same, so a status in it went stale ("running" beside a finished job); the panel below has the status
    selected = st.selectbox("Job", ids, key="tf_selected",
                            format_func=lambda i: next(f"{i} · {j['output_name']}" for j in jobs if j["id"] == i))
    status = nursery_job_status(selected)
    tw.job_detail(status)
    if status.get("kind") in cloud_providers():
        cloud_panel.render_instance_state(services.store().get_job(selected))
    b1, b2 = st.columns([1, 3])
    if status["active"] and b1.button("Cancel job", key="tf_cancel"):
        try:
            nursery_cancel_job(selected)
            st.toast(f"Cancelling {selected}…")
        except NurseryError as e:
            st.error(str(e))
    if not status["active"]:
        b1.button("Retrain with these settings", key="tf_retrain", on_click=tw.load_job_settings,
                  args=(status,), help="Fills the launch form above with this job's dataset and settings.")
    if status.get("model_name"):
        with b2:
            tw.model_handoffs(status["model_name"], "tf")
    live_now = any(j["status"] in ACTIVE for j in jobs)
    if was_live and not live_now:
        st.rerun()  # the last run finished: refresh the whole page once and stop polling


jobs_area(bool(ACTIVE_AT_LOAD))

recent = nursery_list_jobs(limit=50)
with st.expander("Compare loss curves of several jobs"):
    picked = st.multiselect("Jobs", [j["id"] for j in recent], key="tf_overlay",
                            format_func=lambda i: next(f"{j['output_name']} ({i})" for j in recent if j["id"] == i))
    if picked:
        chart = tw.loss_overlay([nursery_job_status(i) for i in picked])
        if chart is None:
            st.caption("No loss recorded for these jobs yet.")
        else:
            st.altair_chart(chart, width="stretch", key="tf_overlay_chart")

with st.expander("What the model sees: a job's training data, rendered"):
    seen_job = st.selectbox("Job", [j["id"] for j in recent], key="tf_seen_job", index=None,
                            placeholder="choose a job to render its training examples",
                            format_func=lambda i: next(f"{j['output_name']} ({i})" for j in recent if j["id"] == i))
    if seen_job:
        try:
            rows, job_cfg = job_examples(seen_job, "train", limit=50)
            if rows:
                k = st.number_input(f"Example (of the first {len(rows)} trained on)", 1, len(rows), 1,
                                    key="tf_seen_index")
                widgets.rendered_prompt(render_example(rows[int(k) - 1], job_cfg), key="tf_seen")
            else:
                st.caption("This job has no training examples on disk.")
        except NurseryError as e:
            st.error(str(e))

with st.expander("Rented machines: find and destroy orphans", expanded=False):
    cloud_panel.render_reaper_panel("tf_reaper")
