"""Settings: data directory, providers and keys (set or not), Ollama host, training defaults, environment."""
import sys

import streamlit as st

from nursery_core import doctor
from nursery_core.webui import identity, navigation, services
from nursery_core.webui.settings_panel import render_ollama_settings, render_training_defaults

navigation.page_setup("Settings · Nursery", "⚙️")
user = identity.sidebar_identity()
st.title("⚙️ Settings")

report = doctor.report(with_sizes=False, with_device=False)  # torch is imported once, in the Environment tab
store = services.store()


@st.cache_resource(show_spinner="Checking torch and the GPU (once per dashboard process)…")
def device_report() -> dict:
    """The device never changes while the dashboard runs; importing torch costs seconds, so do it once."""
    return doctor.report(with_sizes=False)["device"]


st.subheader("Data directory")
st.code(report["data_dir"], language=None)
st.caption(f"From {report['data_dir_from']}. Set `NURSERY_HOME` before `make run` to use another folder.")

tab_providers, tab_ollama, tab_training, tab_env = st.tabs(
    ["Providers", "Ollama", "Training defaults", "Environment"])

with tab_providers:
    from nursery_core.webui.cloud_panel import render_provider_settings
    render_provider_settings()

with tab_ollama:
    render_ollama_settings(store, user)

with tab_training:
    render_training_defaults(store, user)

with tab_env:
    # Importing torch costs seconds; do it when asked, or at once when this process already has it.
    if "torch" in sys.modules or st.session_state.get("settings_device_checked"):
        dev = device_report()
        c1, c2, c3 = st.columns(3)
        c1.metric("Device", dev.get("device", "?"))
        c2.metric("CUDA available", "yes" if dev.get("cuda_available") else "no")
        c3.metric("torch", dev.get("torch") or "missing")
    elif st.button("Check torch, device and CUDA", key="settings_device_check"):
        st.session_state["settings_device_checked"] = True
        st.rerun()
    st.markdown("**Components**")
    st.dataframe([{"component": k.replace("_", " "), "ready": "✅ ready" if v["ok"] else "❌ missing",
                   "how to install": "" if v["ok"] else v["fix"]}
                  for k, v in report["components"].items()], hide_index=True, width="stretch")
    st.markdown("**Packages**")
    st.dataframe([{"package": k, "version": v or "not installed"} for k, v in report["packages"].items()],
                 hide_index=True, width="stretch")
    st.caption(f"Nursery {report['nursery_version']} · Python {report['python']} · {report['platform']}. "
               "The same report: `python -m nursery_core doctor --json`.")
