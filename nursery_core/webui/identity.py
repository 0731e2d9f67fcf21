"""Who is using this browser: a display name asked once and remembered in a browser cookie.

Streamlit can read cookies (`st.context.cookies`, fixed when the session connects) but not set them, so the
name is written by a tiny same-origin script, rendered on every run of this session until a later session
reads the cookie back. Stored on datasets, jobs and deployments as `created_by`, so a shared dashboard
shows who did what.
"""
from __future__ import annotations

import json
import re
from urllib.parse import unquote

import streamlit as st

COOKIE = "nursery_user"
_KEY = "nursery_user"
_PENDING = "nursery_user_cookie_pending"  # a name saved in this session whose cookie may not be written yet
_EDITING = "identity_editing"
_VALID = re.compile(r"^[\w .@'-]{1,40}$")


def valid_name(name: str | None) -> bool:
    return bool(name and _VALID.match(name))


def _cookie_name() -> str | None:
    try:
        raw = st.context.cookies.get(COOKIE)
    except Exception:  # noqa: BLE001 — AppTest and old clients have no cookies
        return None
    if not isinstance(raw, str):  # AppTest hands back a mock, old clients nothing
        return None
    name = unquote(raw).strip()  # the script stores it URL-encoded (spaces, apostrophes)
    return name if valid_name(name) else None


def current_user() -> str | None:
    """The display name for this browser session, or None when not yet given."""
    name = st.session_state.get(_KEY)
    if not name:
        name = _cookie_name()
        if name:
            st.session_state[_KEY] = name
    return name or None


def set_user(name: str) -> str:
    """Sets this session's display name (validated) and asks the browser to remember it."""
    name = (name or "").strip()
    if not valid_name(name):
        raise ValueError("Use 1–40 letters, digits, spaces, '.', '@', ''' or '-'.")
    st.session_state[_KEY] = name
    st.session_state[_PENDING] = name
    st.session_state.pop(_EDITING, None)
    return name


def _write_cookie(name: str) -> None:
    # The name passed valid_name() and is JSON-encoded into the script, so it cannot break out of it.
    st.iframe("<script>window.parent.document.cookie = " + json.dumps(f"{COOKIE}=") + " + encodeURIComponent("
              + json.dumps(name) + ") + '; path=/; max-age=31536000; samesite=strict';</script>", height=1)


def sidebar_identity() -> str | None:
    """Renders the 'you are' box in the sidebar; asks for a name once. Every page calls it, so it also starts
    the finished-job toasts (notify.job_toasts)."""
    from .notify import job_toasts

    job_toasts()
    name = current_user()
    with st.sidebar:
        pending = st.session_state.get(_PENDING)
        if pending and pending != _cookie_name():
            _write_cookie(pending)
        if name and not st.session_state.get(_EDITING):
            st.caption(f"Signed in as **{name}**")
            if st.button("Change name", key="identity_change"):
                st.session_state[_EDITING] = True
                st.rerun()
            return name
        with st.form("identity_form", border=False):
            typed = st.text_input("Your name (shown on what you create)", key="identity_name",
                                  max_chars=40, placeholder="e.g. Ada")
            saved = st.form_submit_button("Save name")
        if saved:
            try:
                set_user(typed)
            except ValueError as e:
                st.error(str(e))
            else:
                st.rerun()
        if name:
            st.caption(f"Still signed in as **{name}** until you save a new name.")
    return name
