"""Streamlit helpers for the Training Forge: jobs table, loss chart, estimate tables, job detail."""
from __future__ import annotations

import html

import altair as alt
import pandas as pd
import streamlit as st

from ..formatting import duration, when
from ..status import ACTIVE, JobStatus
from .widgets import CRADLE_MODEL_KEYS, page_link  # noqa: F401  (pages call tw.duration)


STATUS_COLOURS: dict[str, str] = {
    JobStatus.QUEUED: "#8a9a91", JobStatus.RUNNING: "#2e7d4f", JobStatus.SUCCEEDED: "#2e7d4f",
    JobStatus.FAILED: "#c62828", JobStatus.CANCELLED: "#9e9e9e", JobStatus.INTERRUPTED: "#e08a00"}
STATUS_MARKS: dict[str, str] = {
    JobStatus.QUEUED: "⏳ queued", JobStatus.RUNNING: "▶ running", JobStatus.SUCCEEDED: "✓ succeeded",
    JobStatus.FAILED: "✗ failed", JobStatus.CANCELLED: "■ cancelled", JobStatus.INTERRUPTED: "⚠ interrupted"}


def status_label(status: str) -> str:
    """A status in words with a mark (never the mark alone)."""
    return STATUS_MARKS.get(status, status)


def jobs_frame(rows: list[dict]) -> pd.DataFrame:
    """The jobs table. The progress bar is only drawn for queued, running and succeeded jobs (a table cell has
    one colour, the theme's green): a job that failed or was cancelled says where it stopped in words."""
    out = []
    for r in rows:
        p = float(r["progress"] or 0)
        ok = r["status"] in (*ACTIVE, JobStatus.SUCCEEDED)
        out.append({
            "id": r["id"], "status": status_label(r["status"]) + ("" if ok else f" at {p:.0%}"),
            "where": r["kind"], "dataset": r["dataset"], "base": r["base_model"], "output": r["output_name"],
            "step": f"{r['step'] or 0}/{r['total_steps'] or '?'}", "progress": p if ok else None,
            "loss": r["last_loss"], "eval loss": r["eval_loss"], "tok/s": r["tokens_per_s"],
            "elapsed": duration(r.get("elapsed_s")), "created": when(r["created_at"]),
            "by": r.get("created_by") or ""})
    return pd.DataFrame(out)


def status_bar(progress: float | None, status: str, text: str) -> None:
    """A progress bar coloured by the job's status (failed red, cancelled grey, interrupted orange), with the
    text above it; `data-status` carries the status for tests and assistive tools."""
    colour = STATUS_COLOURS.get(status, "#2e7d4f")
    pct = max(0.0, min(1.0, float(progress or 0.0)))
    st.html(
        f'<div class="nursery-progress" data-status="{html.escape(status)}" role="progressbar" '
        f'aria-valuenow="{round(pct * 100)}" aria-valuemin="0" aria-valuemax="100" '
        f'aria-label="{html.escape(text)}" style="font-size:0.9rem">'
        f'<div style="margin-bottom:4px">{html.escape(text)}</div>'
        f'<div style="background:#e6ebe8;border-radius:6px;height:10px;overflow:hidden">'
        f'<div class="nursery-progress-fill" style="width:{pct * 100:.1f}%;height:100%;background:{colour}">'
        f'</div></div></div>')


def loss_chart(status: dict) -> alt.Chart | None:
    pts = [{"step": p["step"], "loss": p["loss"], "series": "train"} for p in status["loss_history"]]
    pts += [{"step": p["step"], "loss": p["eval_loss"], "series": "eval"} for p in status["eval_history"]]
    if not pts:
        return None
    return alt.Chart(pd.DataFrame(pts)).mark_line(point=True).encode(
        x=alt.X("step:Q", title="step"), y=alt.Y("loss:Q", title="loss", scale=alt.Scale(zero=False)),
        color=alt.Color("series:N", title=None), tooltip=["series", "step", "loss"]).properties(height=260)


def gpu_frame(est: dict) -> pd.DataFrame:
    return pd.DataFrame([{
        "GPU": r["gpu"], "memory": f"{r['memory_gb']} GB", "fits": "yes" if r["fits"] else "no",
        "time": duration(r["seconds"]), "$/hour": f"{r['usd_per_hour'][0]:.2f}–{r['usd_per_hour'][1]:.2f}",
        "estimated $": f"{r['usd'][0]:.3f}–{r['usd'][1]:.3f}"} for r in est["gpus"]])


def job_detail(status: dict) -> None:
    """Progress, metrics, loss curve and log tail of one job (no actions). A queued job says where it waits."""
    state = status["status"]
    step = f"step {status['step'] or 0}/{status['total_steps'] or '?'}"
    if state == JobStatus.QUEUED:
        q = status.get("queue") or {}
        waits = (f"waiting for {', '.join(q['running'])} to finish" if q.get("running") else "starting soon")
        status_bar(0.0, state, f"{status_label(state)} · #{q.get('position', 1)} in line · {waits}")
    else:
        status_bar(status["progress"], state, f"{status_label(state)} · {step}")
    c = st.columns(5)
    c[0].metric("loss", "–" if status["last_loss"] is None else f"{status['last_loss']:.4f}")
    c[1].metric("eval loss", "–" if status["eval_loss"] is None else f"{status['eval_loss']:.4f}")
    c[2].metric("tokens/s", "–" if not status["tokens_per_s"] else f"{status['tokens_per_s']:,.0f}")
    c[3].metric("time left", duration(status.get("eta_s")) if state == JobStatus.RUNNING else "–",
                help="Estimated from the steps so far.")
    c[4].metric("elapsed", duration(status.get("elapsed_s")),
                help="Wall time since the job started: loading the model, training and saving.")
    est, act = status.get("estimate") or {}, status.get("actual") or {}
    parts = [f"device: {status.get('device') or '–'}", f"training time: estimated {duration(est.get('seconds'))}"]
    if act.get("train_seconds") is not None:
        parts[-1] += f", measured {duration(act.get('train_seconds'))} (part of the elapsed time)"
    if status.get("cost_usd"):
        parts.append(f"cost ${status['cost_usd']:.3f}")
    st.caption(" · ".join(parts))
    chart = loss_chart(status)
    if chart is not None:
        st.altair_chart(chart, width="stretch")
    if status.get("error"):
        st.error(status["error"])
    if status.get("model_name"):
        st.success(f"Model **{status['model_name']}** is ready.")
    with st.expander("Log tail", expanded=bool(status.get("error"))):
        st.code(status.get("log_tail") or "(no log yet)", language="text")


# --------------------------------------------------------------------------------- form and hand-offs
# The launch form: the fields it features first (in this order), every other hyper-parameter of TrainConfig
# under "More settings"; widgets, bounds and help come from TrainConfig's field metadata (webui/config_form.py).
FORGE_FIELDS = ("epochs", "max_steps", "learning_rate", "batch_size", "r", "alpha", "lora_layers", "max_length",
                "seed")
FORM_PREFIX = "tf"
NO_MIX = "(none)"


def launch_form_fields(defaults: dict, mix_choices: list[str]) -> dict:
    """The launch form's settings inside the caller's st.form, starting from `defaults`; returns the
    hyper-parameters to launch with. `mix_choices`: the stored datasets that may be mixed in."""
    from ..training.config import hyper_options
    from .config_form import config_form_body

    def mix_dataset(col, key, value):
        picked = col.selectbox("Mix in dataset", [NO_MIX] + mix_choices, key=key,
                               help=next(o.help for o in hyper_options() if o.name == "mix_dataset"))
        return "" if picked == NO_MIX else picked

    return config_form_body(hyper_options(), FORGE_FIELDS, defaults, FORM_PREFIX,
                            more_title="More settings: training-data recipe (function masking, mixing in another "
                                       "dataset), LoRA, optimiser, hardware",
                            custom={"mix_dataset": mix_dataset})


CRADLE = "pages/3_Model_Cradle.py"


def mark_submitting(flag: str) -> None:
    """on_click of a launch button: the rerun it starts renders the button disabled until the submit ends."""
    st.session_state[flag] = True


def load_job_settings(status: dict) -> None:
    """on_click of "Retrain with these settings": the launch form takes the job's dataset, base and settings
    (a callback, so the values are in place before the form's widgets are drawn)."""
    from ..base_models import REGISTRY

    from ..training.config import hyper_options
    from .config_form import load_into_form, option_key
    from .services import store

    cfg = status.get("config") or {}
    load_into_form(cfg, [o for o in hyper_options() if o.name != "mix_dataset"], FORM_PREFIX)
    st.session_state[option_key(FORM_PREFIX, "mix_dataset")] = cfg.get("mix_dataset") or NO_MIX
    st.session_state["tf_dataset"] = status.get("dataset")
    base = status.get("base_model") or ""
    if base in REGISTRY:
        st.session_state["tf_base"], st.session_state["tf_base_path"] = base, ""
    else:
        st.session_state["tf_base_path"] = base
    st.session_state["tf_output"] = ""
    st.session_state["tf_flash"] = ("info", f"The form holds the settings of job {status['id']}: give the new "
                                            "model a name and start it.")
    dataset = status.get("dataset")
    if dataset and not store().has_dataset(dataset):
        # the picker cannot show a deleted dataset and would quietly offer another one
        st.session_state["tf_flash"] = ("warning", f"Job {status['id']} trained on dataset {dataset}, which no "
                                                   "longer exists: its settings are in the form, but pick the data "
                                                   "to train on before starting.")


def model_handoffs(model: str, key: str) -> None:
    """Links that open the Model Cradle on this model (test, evaluate, deploy) and the adapter download."""
    from ..registry import adapter_zip

    cols = st.columns(4)
    for col, (verb, tab) in zip(cols, (("Test", "Test"), ("Evaluate", "Evaluate"), ("Deploy", "Deploy"))):
        page_link(CRADLE, f"{verb} this model", "🧪", {"tab": tab, CRADLE_MODEL_KEYS[tab]: model}, col)
    # the zip is built when the button is clicked, not on every refresh of the page
    cols[3].download_button("Download adapter (.zip)", lambda: adapter_zip(model), file_name=f"{model}-adapter.zip",
                            mime="application/zip", key=f"{key}_zip_{model}", on_click="ignore")


def loss_overlay(statuses: list[dict]) -> alt.Chart | None:
    """Training loss of several jobs on one chart, one colour per job (its model name)."""
    pts = [{"step": p["step"], "loss": p["loss"], "job": f"{s['output_name']} ({s['id']})"}
           for s in statuses for p in s["loss_history"]]
    if not pts:
        return None
    return alt.Chart(pd.DataFrame(pts)).mark_line().encode(
        x=alt.X("step:Q", title="step"), y=alt.Y("loss:Q", title="training loss", scale=alt.Scale(zero=False)),
        color=alt.Color("job:N", title=None, legend=alt.Legend(orient="bottom", labelLimit=400)),
        tooltip=["job", "step", "loss"]).properties(height=280)
