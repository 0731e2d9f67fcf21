"""A toast when a training job ends, on whatever page the user is: a sidebar fragment polls the store every
few seconds while jobs are queued or running, and says which of the jobs it saw live have finished."""
from __future__ import annotations

import streamlit as st

from ..status import ACTIVE, JobStatus
from . import services

_SEEN = "notify_live_jobs"  # ids of jobs this session saw queued or running
POLL_S = 3
_ICONS: dict[str, str] = {JobStatus.SUCCEEDED: "✅", JobStatus.FAILED: "❌", JobStatus.CANCELLED: "⏹️",
                          JobStatus.INTERRUPTED: "⚠️"}


def _live_ids() -> set[str]:
    return {j["id"] for j in services.store().list_jobs(status=list(ACTIVE), limit=200)}


def job_toasts() -> None:
    """Starts polling only when something is live at page load; each poll toasts the jobs that ended."""
    live = _live_ids()
    seen = st.session_state.setdefault(_SEEN, set())
    seen |= live
    if not live and not seen:
        return

    @st.fragment(run_every=POLL_S if live else None)
    def poll() -> None:
        now_live = _live_ids()
        seen_ids = st.session_state.setdefault(_SEEN, set())
        for job_id in sorted(seen_ids - now_live):
            seen_ids.discard(job_id)
            try:
                job = services.store().get_job(job_id)
            except Exception:  # noqa: BLE001 — deleted meanwhile: nothing to say
                continue
            what = job.get("model_name") or job.get("output_name")
            st.toast(f"Job {job_id} {job['status']}: {what}", icon=_ICONS.get(job["status"], "ℹ️"),
                     duration="long")
        seen_ids |= now_live

    with st.sidebar:
        poll()
