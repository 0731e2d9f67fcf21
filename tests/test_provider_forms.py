"""The Training Forge's provider choice is generated from the backend registry (cloud_providers()), and each
provider shows the settings its run_options metadata names; a missing key is a warning naming it."""
from __future__ import annotations

import pytest


def _app():
    import streamlit as st

    from nursery_core.webui.cloud_panel import render_cloud_training_options

    st.session_state["result"] = render_cloud_training_options("t")


@pytest.fixture
def keys(monkeypatch, tmp_path):
    monkeypatch.setenv("NURSERY_SECRETS_FILE", str(tmp_path / "none.toml"))
    for k in ("VAST_API_KEY", "RUNPOD_API_KEY", "TOGETHER_API_KEY", "REPLICATE_API_TOKEN", "MODAL_TOKEN_ID"):
        monkeypatch.delenv(k, raising=False)
    return monkeypatch


def test_every_registered_provider_is_offered_and_reads_its_own_settings(keys):
    from streamlit.testing.v1 import AppTest

    from nursery_core.jobs.backends import cloud_providers, get_provider

    at = AppTest.from_function(_app, default_timeout=30).run()
    assert not at.exception
    options = list(at.radio(key="t_provider").options)
    assert options[0] == "This machine" and len(options) == 1 + len(cloud_providers())
    for kind in ("runpod", "together", "replicate", "modal"):
        assert get_provider(kind).label in options
    # no key: a warning naming the variable, nothing to fill in
    at.radio(key="t_provider").set_value("RunPod").run()
    assert not at.exception and "RUNPOD_API_KEY" in at.warning[0].value
    assert at.session_state["result"] == {"provider": "runpod"}
    keys.setenv("RUNPOD_API_KEY", "rp-form-key")
    at.run()
    assert not at.exception and not at.warning
    labels = {w.label for w in at.number_input} | {w.label for w in at.text_input}
    assert {"GPUs", "Max $/hour", "Max hours", "Max $ for the run"} <= labels and "Trainer" not in labels
    at.text_input(key="t_runpod_gpu").input("RTX 4090").run()
    assert not at.exception
    res = at.session_state["result"]
    assert res["provider"] == "runpod" and res["gpu"] == "RTX 4090" and res["max_hours"] > 0
    keys.setenv("REPLICATE_API_TOKEN", "r8-form-key")
    at.radio(key="t_provider").set_value("Replicate").run()
    assert not at.exception
    labels = {w.label for w in at.text_input}
    assert {"Trainer", "Destination model"} <= labels and "GPU name (optional)" not in labels
    assert any("chat template" in c.value for c in at.caption)
    assert "rp-form-key" not in str(at.session_state["result"])


def _state_app():
    import streamlit as st

    from nursery_core.webui.cloud_panel import render_instance_state

    render_instance_state(st.session_state["job"])


@pytest.mark.parametrize("job,shown", [
    ({"kind": "runpod", "provider_state": {"phase": "training", "pod_id": "p0d1", "gpu_name": "RTX A5000",
                                           "dph_total": 0.27}}, ["training", "p0d1", "0.270"]),
    ({"kind": "together", "cost_usd": 0.0123, "provider_state": {
        "phase": "running", "fine_tune_id": "ft-1", "together_estimate_usd": 0.02,
        "mapping": ["max_steps 3 ignored"]}}, ["running", "ft-1", "$0.0200", "max_steps 3 ignored", "$0.0123"]),
    ({"kind": "modal", "provider_state": {"phase": "running", "call_id": "fc-9"}}, ["fc-9"]),
])
def test_the_run_panel_shows_each_providers_state(job, shown):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_state_app, default_timeout=30)
    at.session_state["job"] = job
    at.run()
    assert not at.exception
    text = " ".join([str(m.value) for m in at.metric] + [c.value for c in at.caption])
    for s in shown:
        assert s in text, (s, text)
