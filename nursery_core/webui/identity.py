"""Who is using this browser: a display name asked once and remembered in a browser cookie.

Streamlit can read cookies (`st.context.cookies`) but not set them, so the name is written by a tiny
same-origin script; until the next page load it lives in session_state. Stored on datasets, jobs and
deployments as `created_by`, so a shared dashboard shows who did what.
"""
from __future__ import annotations

import json
import re

import streamlit as st
import streamlit.components.v1 as components

COOKIE = "nursery_user"
_KEY = "nursery_user"
_VALID = re.compile(r"^[\w .@'-]{1,40}$")


def current_user() -> str | None:
    """The display name for this browser session, or None when not yet given."""
    name = st.session_state.get(_KEY)
    if not name:
        try:
            name = st.context.cookies.get(COOKIE)
        except Exception:  # AppTest and old clients have no cookies
            name = None
        if not isinstance(name, str):  # AppTest hands back a mock, old clients nothing
            name = None
        if name and _VALID.match(name):
            st.session_state[_KEY] = name
    return name or None


def _remember(name: str) -> None:
    st.session_state[_KEY] = name
    components.html(
        "<script>document.cookie = " + json.dumps(f"{COOKIE}=") + " + encodeURIComponent("
        + json.dumps(name) + ") + '; path=/; max-age=31536000; samesite=strict';</script>", height=0)


def sidebar_identity() -> str | None:
    """Renders the 'you are' box in the sidebar; asks for a name once."""
    name = current_user()
    with st.sidebar:
        if name:
            st.caption(f"Signed in as **{name}**")
            if st.button("Change name", key="identity_change"):
                st.session_state.pop(_KEY, None)
                st.session_state["identity_editing"] = True
                st.rerun()
        if not name or st.session_state.get("identity_editing"):
            with st.form("identity_form", border=False):
                typed = st.text_input("Your name (shown on what you create)", key="identity_name",
                                      max_chars=40, placeholder="e.g. Ada")
                if st.form_submit_button("Save name"):
                    typed = typed.strip()
                    if not _VALID.match(typed or ""):
                        st.error("Use 1–40 letters, digits, spaces, '.', '@', ''' or '-'.")
                    else:
                        st.session_state.pop("identity_editing", None)
                        _remember(typed)
                        name = typed
    return name
