"""Streamlit helpers for the Training Forge: jobs table, loss chart, estimate tables, job detail."""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from ..formatting import duration  # noqa: F401  (pages call tw.duration)


def jobs_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{
        "id": r["id"], "status": r["status"], "where": r["kind"], "dataset": r["dataset"],
        "base": r["base_model"], "output": r["output_name"],
        "step": f"{r['step'] or 0}/{r['total_steps'] or '?'}", "progress": float(r["progress"] or 0),
        "loss": r["last_loss"], "eval loss": r["eval_loss"], "tok/s": r["tokens_per_s"],
        "elapsed": duration(r.get("elapsed_s")), "created": r["created_at"], "by": r.get("created_by") or "",
    } for r in rows])


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
    """Progress, metrics, loss curve and log tail of one job (no actions)."""
    st.progress(float(status["progress"] or 0.0),
                text=f"{status['status']} · step {status['step'] or 0}/{status['total_steps'] or '?'}")
    c = st.columns(5)
    c[0].metric("loss", "–" if status["last_loss"] is None else f"{status['last_loss']:.4f}")
    c[1].metric("eval loss", "–" if status["eval_loss"] is None else f"{status['eval_loss']:.4f}")
    c[2].metric("tokens/s", "–" if not status["tokens_per_s"] else f"{status['tokens_per_s']:.0f}")
    c[3].metric("ETA", duration(status.get("eta_s")) if status["active"] else "–")
    c[4].metric("elapsed", duration(status.get("elapsed_s")))
    est, act = status.get("estimate") or {}, status.get("actual") or {}
    st.caption(f"device: {status.get('device') or '–'} · estimated {duration(est.get('seconds'))} · actual "
               f"{duration(act.get('train_seconds'))}"
               + (f" · cost ${status['cost_usd']:.3f}" if status.get("cost_usd") else ""))
    chart = loss_chart(status)
    if chart is not None:
        st.altair_chart(chart, width="stretch")
    if status.get("error"):
        st.error(status["error"])
    if status.get("model_name"):
        st.success(f"Model **{status['model_name']}** is ready.")
    with st.expander("Log tail", expanded=bool(status.get("error"))):
        st.code(status.get("log_tail") or "(no log yet)", language="text")
