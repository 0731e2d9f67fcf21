"""Settings-page sections that edit stored settings: the Ollama host and the team's training defaults."""
from __future__ import annotations

import os

import streamlit as st

from ..errors import NurseryError
from ..settings import (OLLAMA_HOST_KEY, TRAINING_DEFAULTS_KEY, effective_training_defaults, save_ollama_host,
                        save_training_defaults)

# The fields the Settings form features first; every other hyper-parameter of TrainConfig follows under
# "More settings" (generated from the field metadata, webui/config_form.py).
SETTINGS_FIELDS = ("r", "alpha", "lora_layers", "learning_rate", "epochs", "batch_size", "grad_accum", "max_length",
                   "dropout", "seed")


def render_ollama_settings(store, user: str | None) -> None:
    env = os.environ.get("OLLAMA_HOST")
    stored = store.get_setting(OLLAMA_HOST_KEY)
    if env:
        st.info(f"`OLLAMA_HOST` is set in the environment: **{env}** (it takes precedence).")
    host = st.text_input("Ollama server URL", value=stored or "", key="settings_ollama_host",
                         placeholder="http://127.0.0.1:11434")
    if st.button("Save Ollama host", key="settings_ollama_save"):
        try:
            saved = save_ollama_host(store, host, user)
        except NurseryError as e:
            st.error(f"Not saved: {e}")
        else:
            st.success(f"Saved: deploys register with {saved}." if saved else
                       "Cleared: deploys only export files.")


def render_training_defaults(store, user: str | None) -> None:
    from ..training.config import TrainConfig, hyper_options
    from .config_form import config_form_body

    current = effective_training_defaults(store)
    st.caption("Defaults the Training Forge form starts from, for everyone using this dashboard.")
    with st.form("settings_training_form"):
        values = config_form_body(hyper_options(), SETTINGS_FIELDS, current, "settings_train")
        c1, c2 = st.columns(2)
        save = c1.form_submit_button("Save defaults")
        reset = c2.form_submit_button("Reset to Nursery's defaults")
    if save:
        nursery = TrainConfig().to_dict()
        try:  # only what differs from Nursery's own defaults is a team override
            save_training_defaults(store, {k: v for k, v in values.items() if nursery.get(k) != v}, user)
            st.success("Saved.")
        except NurseryError as e:
            st.error(str(e))
    if reset:
        store.set_setting(TRAINING_DEFAULTS_KEY, {}, by=user)
        st.success("Reset.")
