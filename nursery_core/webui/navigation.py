"""Every page's first call: the page's config, and app.py's navigation even when a page was opened first.

Streamlit keeps a process-wide flag from its first multipage design: while a `pages/` folder sits beside the
main script and no session has run `st.navigation` yet, a request for a page's URL (a bookmark, a shared link,
a browser tab reconnecting after `make run` restarted the dashboard) runs that page alone under an automatic
sidebar: the overview listed as "app", no icons. app.py's `st.navigation` clears the flag, so a page that finds
it set clears it and reruns: the rerun goes through app.py, which opens the same page under the real navigation
(streamlit/runtime/pages_manager.py, `PagesManager.uses_pages_directory`; commands/navigation.py clears it)."""
from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager


def page_setup(title: str, icon: str) -> None:
    """st.set_page_config for one of Nursery's pages (wide layout), after making sure app.py's navigation is the
    one that runs it (see the module docstring)."""
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
    st.set_page_config(page_title=title, page_icon=icon, layout="wide")
