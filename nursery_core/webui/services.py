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
