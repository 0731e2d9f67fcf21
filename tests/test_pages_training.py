"""AppTest of the Training Forge page: launch a run on the tiny model from the form and see it finish."""
from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

from provider_fixtures import together  # noqa: F401
from training_helpers import store_dataset

PAGE = str(__import__("pathlib").Path(__file__).resolve().parent.parent / "pages" / "2_Training_Forge.py")


def test_page_launches_a_run_and_shows_it_finished(tiny_model_dir):
    store_dataset("lockers", n=10)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    at.text_input(key="tf_base_path").set_value(str(tiny_model_dir))
    at.text_input(key="tf_output").set_value("page-model")
    at.number_input(key="tf_max_steps").set_value(2)
    at.number_input(key="tf_batch_size").set_value(4)
    at.button(key="FormSubmitter:tf_launch_form-Start training").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert any("page-model" in s.value for s in at.success)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        at.run()
        if any("is ready" in s.value for s in at.success):
            break
        time.sleep(1)
    assert not at.exception
    assert any("Model **page-model** is ready" in s.value for s in at.success), [s.value for s in at.success]
    from nursery_core.store import get_store
    assert get_store().get_model("page-model")["dataset"] == "lockers"


def test_page_shows_bad_input_as_an_error_not_a_traceback(tiny_model_dir):
    store_dataset("lockers", n=10)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.text_input(key="tf_base_path").set_value(str(tiny_model_dir))
    at.text_input(key="tf_output").set_value("Bad Name/..")
    at.button(key="FormSubmitter:tf_launch_form-Start training").click().run()
    assert not at.exception
    assert any("not allowed" in e.value for e in at.error)


def test_estimate_panel_shows_the_gpu_table(tiny_model_dir):
    store_dataset("lockers", n=10)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.text_input(key="tf_base_path").set_value(str(tiny_model_dir))
    at.button(key="tf_est_go").click().run()
    assert not at.exception and not at.error
    frames = [d.value for d in at.dataframe]
    gpu = [f for f in frames if "GPU" in f.columns]
    assert gpu and list(gpu[0]["GPU"])[:2] == ["RTX 3080 Ti", "RTX 4090"]
    assert any("This machine (CPU)" in m.value for m in at.markdown)


def test_estimate_panel_shows_togethers_price_beside_nurserys(together, tiny_model_dir):
    store_dataset("lockers", n=10)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.text_input(key="tf_base_path").set_value(str(tiny_model_dir))
    at.button(key="tf_est_together").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    lines = [m.value for m in at.markdown]
    assert any(m.startswith("- Nursery's estimate: **$") and "docs.together.ai" in m for m in lines), lines
    assert any(m.startswith("- Together's estimate: **$") and "estimate-price API" in m for m in lines), lines
    assert together.files == {} and together.jobs == {}


def test_recipe_inputs_reach_the_config_and_bad_ones_are_an_error():
    store_dataset("lockers", n=10)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert at.selectbox(key="tf_mix_dataset").options == ["(none)"]  # never the dataset being trained
    at.text_input(key="tf_output").set_value("mixed-model")
    at.number_input(key="tf_mix_fraction").set_value(0.5)
    at.button(key="FormSubmitter:tf_launch_form-Start training").click().run()
    assert not at.exception
    assert any("mix_dataset is empty" in e.value for e in at.error), [e.value for e in at.error]
