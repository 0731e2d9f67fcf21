"""A toast when a training job ends, on whatever page the user is (the sidebar fragment every page starts)."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest

from training_helpers import store_dataset


def _app():
    from nursery_core.webui.notify import job_toasts

    job_toasts()


def test_a_job_seen_running_is_toasted_when_it_ends(store):
    from nursery_core.jobs import api
    from nursery_core.training.config import TrainConfig

    store_dataset("lockers", n=6)
    job = api.create_job("local", "lockers", "smollm2-135m", "toasted", TrainConfig(max_steps=1))
    at = AppTest.from_function(_app, default_timeout=30).run()
    assert not at.exception and not at.toast
    store.finish_job(job["id"], "failed", error="boom")
    at.run()
    assert [t.value for t in at.toast] == [f"Job {job['id']} failed: toasted"]
    at.run()
    assert not at.toast  # said once


def test_nothing_polls_when_nothing_runs(store):
    at = AppTest.from_function(_app, default_timeout=30).run()
    assert not at.exception and not at.toast
