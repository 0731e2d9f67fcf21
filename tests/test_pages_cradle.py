"""AppTest of the Model Cradle page on tiny adapters: test a model, compare two, run an evaluation, delete."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cradle_helpers import make_adapter, one_thread, store_dataset  # noqa: F401 (fixture)

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "3_Model_Cradle.py")
TIMEOUT = 180


@pytest.fixture
def app(tiny_model_dir, one_thread, monkeypatch):
    from nursery_core import inference

    monkeypatch.setattr(inference, "_POOL", None)
    store_dataset("weather", n=8, eval_fraction=0.5)
    make_adapter("ada", tiny_model_dir, seed=1, dataset="weather")
    make_adapter("bob", tiny_model_dir, seed=2, dataset="weather")
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


def frame(at, *columns):
    """The first table showing all these columns (AppTest does not expose dataframe keys)."""
    for df in at.dataframe:
        if all(c in df.value.columns for c in columns):
            return df.value
    raise AssertionError(f"no table with columns {columns}")


def small(at, prefix):
    at.number_input(key=f"{prefix}_max_new").set_value(6)


def test_models_table_and_deploy_placeholder(app):
    table = frame(app, "name", "base model", "AST accuracy")
    assert set(table["name"]) == {"ada", "bob"} and set(table["dataset"]) == {"weather"}
    assert "not available" in " ".join(i.value for i in app.info) or app.selectbox(key="mc_deploy_model")


def test_test_a_model(app, monkeypatch):
    app.selectbox(key="mc_test_model").set_value("ada")
    app.text_area(key="mc_test_prompt").set_value("What's the weather in Oslo?")
    small(app, "mc_test")
    app.button(key="mc_test_go").click().run()
    assert not app.exception and not app.error, (app.exception, [e.value for e in app.error])
    result = app.session_state["mc_test_result"]
    assert result["model"] == "ada" and isinstance(result["completion"], str)
    assert [t["function"]["name"] for t in result["tools"]] == ["get_weather", "set_timer"]
    assert any("format" in m.value for m in app.markdown)
    # guarded by default; the toggle turns it off, and the result says which decoding ran
    assert result["decoding"] == "guarded" and any("Decoding: **guarded**" in c.value for c in app.caption)
    app.toggle(key="mc_test_guarded").set_value(False)
    app.button(key="mc_test_go").click().run()
    assert app.session_state["mc_test_result"]["decoding"] == "free"
    # an empty prompt is a clear error, not a traceback, said before the model loads (a fresh pool stays empty)
    from nursery_core import inference

    monkeypatch.setattr(inference, "_POOL", inference.ModelPool())
    app.text_area(key="mc_test_prompt").set_value("")
    app.button(key="mc_test_go").click().run()
    assert not app.exception and any("prompt is empty" in e.value for e in app.error)
    assert not inference.get_pool().is_loaded("ada")


def test_compare_two_models(app, monkeypatch):
    app.selectbox(key="mc_cmp_a").set_value("ada")
    app.selectbox(key="mc_cmp_b").set_value("bob")
    app.text_area(key="mc_cmp_prompts").set_value("Weather in Rome?\nStart a 5 minute timer")
    small(app, "mc_cmp")
    app.button(key="mc_cmp_go").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    res = app.session_state["mc_cmp_result"]
    assert res["mode"] == "interactive" and len(res["rows"]) == 2
    assert any("Weather in Rome?" in m.value for m in app.markdown)
    # batch mode over the dataset's eval split, filterable by outcome
    app.radio(key="mc_cmp_mode").set_value("A dataset (batch)").run()
    app.selectbox(key="mc_cmp_dataset").set_value("weather")
    small(app, "mc_cmp")
    app.button(key="mc_cmp_go").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    res = app.session_state["mc_cmp_result"]
    assert res["mode"] == "batch" and res["num_examples"] == 4
    app.multiselect(key="mc_cmp_filter").set_value(["both wrong"]).run()
    shown = frame(app, "outcome", "A calls")
    assert set(shown["outcome"]) <= {"both wrong"} and len(shown) == res["summary"]["both wrong"]
    # no prompts: said at once, before either model loads
    from nursery_core import inference

    monkeypatch.setattr(inference, "_POOL", inference.ModelPool())
    app.radio(key="mc_cmp_mode").set_value("Prompts").run()
    app.text_area(key="mc_cmp_prompts").set_value("")
    app.button(key="mc_cmp_go").click().run()
    assert not app.exception and any("give either prompts or a dataset" in e.value for e in app.error)
    assert not inference.get_pool().is_loaded("ada") and not inference.get_pool().is_loaded("bob")


def test_run_an_evaluation_and_drill_down(app):
    app.selectbox(key="mc_eval_dataset").set_value("weather")
    app.selectbox(key="mc_eval_model").set_value("ada")
    small(app, "mc_eval")
    app.button(key="mc_eval_go").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    board = frame(app, "Rank", "Model", "Examples")
    assert sorted(zip(board["Model"], board["Decoding"])) == [("ada", "free"), ("ada", "guarded")]
    assert list(board["Examples"]) == [4, 4]
    assert all(v.endswith(" %") for v in board["AST accuracy"])
    assert app.session_state["mc_eval_last"]
    app.radio(key="mc_drill_which").set_value("all").run()
    assert len(frame(app, "correct", "error", "format ok")) == 4


def test_delete_needs_confirmation(app, store):
    assert app.button(key="mc_delete_go").disabled
    app.selectbox(key="mc_delete_pick").set_value("bob")
    app.checkbox(key="mc_delete_confirm").check().run()
    app.button(key="mc_delete_go").click().run()
    assert not app.exception
    assert not store.has_model("bob") and store.has_model("ada")


def test_hand_off_links_open_each_tab_on_the_model_and_evaluate_on_its_training_data(tiny_model_dir, one_thread,
                                                                                    monkeypatch):
    """The Training Forge's "Test / Evaluate / Deploy this model" links set the picker of that tab (the Evaluate
    link used another key, so it opened on the first model), and Evaluate starts on the dataset the model was
    trained on, not the newest one."""
    from nursery_core.webui import training_widgets
    from nursery_core.webui.widgets import CRADLE_MODEL_KEYS

    store_dataset("weather", n=8, eval_fraction=0.5)
    make_adapter("ada", tiny_model_dir, seed=1, dataset="weather")
    make_adapter("bob", tiny_model_dir, seed=2, dataset="weather")
    store_dataset("newer", n=8, eval_fraction=0.5)  # the newest dataset: listed first
    links: list[dict] = []
    monkeypatch.setattr(training_widgets, "page_link", lambda page, label, icon, params, col: links.append(params))
    training_widgets.model_handoffs("bob", "k")  # the links exactly as the Training Forge draws them
    assert [p["tab"] for p in links] == ["Test", "Evaluate", "Deploy"]
    for params in links:
        tab = params["tab"]
        at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
        for k, v in params.items():
            at.query_params[k] = v
        at.run()
        assert not at.exception, at.exception
        assert at.selectbox(key=CRADLE_MODEL_KEYS[tab]).value == "bob", tab
        if tab == "Evaluate":
            assert at.selectbox(key="mc_eval_dataset").value == "weather"
            at.selectbox(key="mc_eval_dataset").set_value("newer").run()  # the user's own pick stays
            assert at.selectbox(key="mc_eval_dataset").value == "newer"
