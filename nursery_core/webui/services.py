"""Process-wide services for pages, held by st.cache_resource so every session and rerun shares them."""
from __future__ import annotations

import streamlit as st

from .. import paths
from ..store import Store, get_store


@st.cache_resource(show_spinner=False)
def _store_for(db_file: str) -> Store:
    return get_store(db_file)


def store() -> Store:
    """The shared Store for the current NURSERY_HOME."""
    return _store_for(str(paths.db_path()))


@st.cache_resource(show_spinner=False, on_release=lambda r: r.shutdown())
def _runner_for(db_file: str):
    """One JobRunner per process and data directory; it first re-attaches or interrupts orphaned runs,
    then rented machines that no live job owns are destroyed (when a Vast.ai key is configured)."""
    from ..jobs.reaper import reap_on_start
    from ..jobs.runner import JobRunner

    runner = JobRunner(get_store(db_file)).start(recover=True)
    reap_on_start()
    return runner


def runner():
    """The shared JobRunner (started on first use; survives reruns and browser tabs)."""
    return _runner_for(str(paths.db_path()))
