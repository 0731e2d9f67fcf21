"""Every page (the overview and pages/*.py) renders in AppTest without an exception, on an empty store and on a
small seeded one; bad input on a page is an st.error with a message, never a traceback; the empty overview
offers the three steps as buttons that open the pages."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["app.py"] + sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pages").glob("*.py"))
TIMEOUT = 120  # the first render of a page in a process pays its imports (pandas, altair, the core)


@pytest.fixture(autouse=True)
def full_error_details():
    """The project's config redacts errors in the browser; tests want the real message when a page breaks."""
    from streamlit import config

    before = config.get_option("client.showErrorDetails")
    config.set_option("client.showErrorDetails", "full")
    yield
    config.set_option("client.showErrorDetails", before)


def frame_with(at: AppTest, *columns: str):
    """The dataframe that has these columns (AppTest does not expose a dataframe's key)."""
    for df in at.dataframe:
        if set(columns) <= set(df.value.columns):
            return df.value
    raise AssertionError(f"no dataframe with columns {columns}")


def render(page: str, user: str | None = "ada", **state) -> AppTest:
    at = AppTest.from_file(str(ROOT / page), default_timeout=TIMEOUT)
    if user:
        at.session_state["nursery_user"] = user
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, f"{page}: {[e.message for e in at.exception]}"
    return at


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def seed_small_store() -> None:
    """A dataset, a finished job with events, a failed job, a queued one, a model with an evaluation row,
    a cloud run with a cost and a deployment: one of everything the pages list."""
    from nursery_core import nursery_generate_data, paths
    from nursery_core.store import get_store

    store = get_store()
    nursery_generate_data(["get_weather", "calculator"], 30, "medium", name="mixed", created_by="ada")
    done = store.create_job({"kind": "local", "dataset": "mixed", "base_model": "smollm2-135m", "output_name": "mixed-a",
                             "created_by": "ada", "total_steps": 4, "config": {"r": 8}})
    for step in range(1, 5):
        store.record_event(done["id"], {"kind": "progress", "step": step, "total_steps": 4, "loss": 1.0 / step,
                                        "lr": 1e-4, "tokens_per_s": 50.0})
    store.record_event(done["id"], {"kind": "eval", "step": 4, "eval_loss": 0.4})
    store.finish_job(done["id"], "succeeded", model_name="mixed-a")
    failed = store.create_job({"kind": "local", "dataset": "mixed", "base_model": "smollm2-135m",
                               "output_name": "mixed-b", "created_by": "grace"})
    store.finish_job(failed["id"], "failed", error="RuntimeError: out of memory")
    store.create_job({"kind": "vast", "dataset": "mixed", "base_model": "qwen2.5-0.5b", "output_name": "mixed-c",
                      "created_by": "grace", "cost_usd": 0.42, "status": "cancelled"})
    model_dir = paths.model_dir("mixed-a")
    model_dir.mkdir(parents=True)
    (model_dir / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": "x"}))
    store.add_model({"name": "mixed-a", "path": str(model_dir), "base_model": "smollm2-135m", "dataset": "mixed",
                     "job_id": done["id"], "created_by": "ada", "final_loss": 0.25, "eval_loss": 0.4,
                     "tools": ["get_weather", "calculator"], "metrics": {"train_seconds": 3.0, "steps": 4}})
    from nursery_core.datasets import load_examples
    from nursery_core.evaluation.api import nursery_evaluate

    preds = paths.home() / "preds.jsonl"  # scored without running a model: a predictions file
    preds.write_text("".join(json.dumps({"id": ex["id"], "output": "I cannot help with that."}) + "\n"
                             for ex in load_examples("mixed", "eval")))
    nursery_evaluate("mixed-a", "mixed", predictions=preds, created_by="ada")
    store.add_deployment({"model": "mixed-a", "status": "exported", "created_by": "ada"})


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_on_an_empty_store(page):
    at = render(page)
    assert not errors(at), errors(at)
    assert at.title, f"{page} has no title"


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_on_a_small_seeded_store(page):
    seed_small_store()
    at = render(page)
    assert not errors(at) or page.endswith("Training_Forge.py"), errors(at)  # the Forge may show a failed job


def test_page_renders_without_a_display_name():
    for page in PAGES:
        at = render(page, user=None)
        assert at.text_input(key="identity_name") is not None


def test_empty_overview_offers_the_three_steps_as_buttons_that_open_each_page():
    at = render("app.py")
    assert any("Three steps" in i.value for i in at.info)
    steps = [b for b in at.button if b.key and b.key.startswith("overview_step_")]
    existing = [p for p in ("pages/1_Data_Garden.py", "pages/2_Training_Forge.py", "pages/3_Model_Cradle.py")
                if (ROOT / p).exists()]
    assert len(steps) == len(existing) >= 1
    titles = []
    for i in range(1, len(existing) + 1):
        at = render("app.py")
        at.button(key=f"overview_step_{i}").click().run()
        assert not at.exception, at.exception
        titles.append(at.title[0].value)
    assert any("Data Garden" in t for t in titles)
    if (ROOT / "pages/2_Training_Forge.py").exists():
        assert any("Training Forge" in t for t in titles)
    if (ROOT / "pages/3_Model_Cradle.py").exists():
        assert any("Model Cradle" in t for t in titles)


def test_seeded_overview_shows_people_jobs_and_spend():
    seed_small_store()
    at = render("app.py")
    assert not any("Three steps" in i.value for i in at.info)
    assert [m.value for m in at.metric][:3] == ["1", "1", "3"]
    jobs = frame_with(at, "by", "model", "where", "status")
    assert set(jobs["by"]) == {"ada", "grace"}
    spend = frame_with(at, "person", "spent ($)")
    assert spend.to_dict("records") == [{"person": "grace", "cloud runs": 1, "spent ($)": 0.42}]


def test_overview_shows_who_is_running_what():
    from nursery_core.store import get_store

    seed_small_store()
    store = get_store()
    # One local run at a time: the running row (its runner looks alive: a fresh heartbeat) keeps the queued
    # one waiting, so the overview's own runner leaves both alone while the page renders.
    store.create_job({"kind": "local", "dataset": "mixed", "base_model": "smollm2-135m",
                                "output_name": "grace-run", "created_by": "grace", "status": "running",
                                "step": 3, "total_steps": 10, "progress": 0.3, "last_loss": 0.9,
                                "runner_id": "elsewhere", "heartbeat_at": "2999-01-01T00:00:00.000Z"})
    store.create_job({"kind": "local", "dataset": "mixed", "base_model": "smollm2-135m", "output_name": "ada-next",
                      "created_by": "ada"})
    at = render("app.py")
    bars = [p for p in at.get("progress")]
    assert len(bars) == 1 and "grace · grace-run · local · running · step 3/10" in bars[0].proto.text
    md = " ".join(m.value for m in at.markdown)
    assert "ada · ada-next · local · queued (#1 in line)" in md
    assert "grace: grace-run (running)" in md and "ada: ada-next (queued)" in md


def test_bad_input_on_the_data_garden_is_an_error_message():
    at = render("pages/1_Data_Garden.py")
    at.text_input(key="gen_name").set_value("../../etc/passwd")
    at.number_input(key="gen_count").set_value(10)
    at.button(key="gen_go").click().run()
    assert not at.exception
    assert errors(at) and "name" in errors(at)[0].lower()
    at.text_area(key="gen_schema_text").set_value('{"name": "t", "parameters": ').run()
    assert not at.exception and errors(at)


@pytest.mark.skipif(not (ROOT / "pages/2_Training_Forge.py").exists(), reason="Training Forge not in this tree")
def test_bad_input_on_the_training_forge_is_an_error_message(tmp_path):
    from nursery_core import nursery_generate_data

    nursery_generate_data(["calculator"], 12, "low", name="calc")
    at = render("pages/2_Training_Forge.py")
    at.text_input(key="tf_base_path").set_value(str(tmp_path / "no-such-model")).run()
    at.button(key="tf_est_go").click().run()
    assert not at.exception, at.exception
    assert errors(at), "a missing base-model directory must be reported"


@pytest.mark.skipif(not (ROOT / "pages/3_Model_Cradle.py").exists(), reason="Model Cradle not in this tree")
def test_bad_input_on_the_model_cradle_is_an_error_message(tmp_path):
    at = render("pages/3_Model_Cradle.py")
    at.text_input(key="mc_test_model_path").set_value(str(tmp_path / "no-such-model"))
    at.text_area(key="mc_test_prompt").set_value("What's the weather in Oslo?")
    at.button(key="mc_test_go").click().run()
    assert not at.exception, at.exception
    assert errors(at), "a missing model directory must be reported"


def test_bad_input_on_settings_is_an_error_message():
    at = render("pages/4_Settings.py")
    at.text_input(key="settings_ollama_host").set_value("ftp://example")
    at.button(key="settings_ollama_save").click().run()
    assert not at.exception
    assert any("http://" in e for e in errors(at))
    # a port out of range (urllib raises ValueError for it) is refused here, not later inside a deploy
    at.text_input(key="settings_ollama_host").set_value("http://example:99999/x")
    at.button(key="settings_ollama_save").click().run()
    assert not at.exception and any("port must be a number from 1 to 65535" in e for e in errors(at)), errors(at)
    from nursery_core.settings import OLLAMA_HOST_KEY
    from nursery_core.store import get_store

    assert get_store().get_setting(OLLAMA_HOST_KEY) is None  # nothing bad was stored
    at.text_input(key="settings_ollama_host").set_value("box:8080")
    at.button(key="settings_ollama_save").click().run()
    assert get_store().get_setting(OLLAMA_HOST_KEY) == "http://box:8080"


def test_display_name_is_asked_once_validated_and_used_on_what_the_page_creates(store):
    """The sidebar asks for a name; a bad one is an error; a good one is shown and stored as created_by."""
    at = render("pages/1_Data_Garden.py", user=None)
    at.text_input(key="identity_name").set_value("<script>")
    at.button(key="FormSubmitter:identity_form-Save name").click().run()
    assert not at.exception and any("letters" in e for e in errors(at))
    at.text_input(key="identity_name").set_value("Ada Lovelace")
    at.button(key="FormSubmitter:identity_form-Save name").click().run()
    assert not at.exception
    assert at.session_state["nursery_user"] == "Ada Lovelace"
    assert any("Signed in as **Ada Lovelace**" in c.value for c in at.sidebar.caption)
    at.number_input(key="gen_count").set_value(12)
    at.text_input(key="gen_name").set_value("by-ada")
    at.button(key="gen_go").click().run()
    assert not at.exception and not errors(at), errors(at)
    assert store.get_dataset("by-ada")["created_by"] == "Ada Lovelace"


def test_settings_checks_the_device_when_asked():
    """The environment tab imports torch only on request (or when the process already has it)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file("../pages/4_Settings.py", default_timeout=60).run()
    assert not at.exception
    if "settings_device_check" in [b.key for b in at.button]:  # torch not yet imported in this process
        at.button(key="settings_device_check").click().run()
    assert not at.exception
    labels = [m.label for m in at.metric]
    assert "Device" in labels and "CUDA available" in labels
