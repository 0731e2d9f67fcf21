"""The dashboard as a new user meets it, in a real browser (Debian's chromium through Playwright): a double click
on "Start training" makes one job; a failed job's bar is red, never green; the bar charts have a height per bar
and labels that do not overlap (asserted on the rendered SVG); the rendered-prompt view highlights the trained
tokens; hand-off links carry the selection; testing a model says "Loading model …" before its first token; the
Deploy tab names a missing converter with a button that fetches it. Screenshots land in test-output/browser/."""
from __future__ import annotations

import json
import re
import time

import pytest

from browser_support import (CHROMIUM, StreamlitServer, choose, fill, key, no_exception, open_page, selected, tab,
                             wait_for_text, wait_idle)
from conftest import require
from test_browser import _playwright_ready, artefacts, expect, main, new_user, pages  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser


@pytest.fixture
def server(nursery_home, artefacts, tmp_path):
    """The dashboard as right after `make run` where llama.cpp's converter could not be fetched (an empty tools
    folder), so the Deploy tab's own fix is what a user sees."""
    require(CHROMIUM.exists(), "chromium (/usr/bin/chromium)")
    require(_playwright_ready(), "playwright (python)")
    (tmp_path / "no-llamacpp").mkdir()
    srv = StreamlitServer(nursery_home, artefacts / "streamlit.log",
                          env={"NURSERY_LLAMACPP_DIR": str(tmp_path / "no-llamacpp")}).start()
    yield srv
    srv.stop()


def _dataset(name: str, tools=("get_weather", "calculator", "memory_store"), n: int = 40) -> dict:
    from nursery_core import nursery_generate_data

    return nursery_generate_data(list(tools), n, "low", name=name, created_by="setup")


def _boxes(page, selector: str) -> list[dict]:
    return page.locator(selector).evaluate_all(
        "els => els.map(e => { const r = e.getBoundingClientRect(); "
        "return {x: r.x, y: r.y, w: r.width, h: r.height, text: e.textContent}; })")


def _bar_chart_geometry(page, chart) -> tuple[list[dict], list[dict]]:
    """(bars, y-axis labels) of a rendered Vega-Lite bar chart (SVG renderer): their boxes on the page."""
    chart.locator("svg").first.wait_for(timeout=30_000)
    handle = chart.element_handle()
    bars = handle.evaluate(
        "c => [...c.querySelectorAll('g.mark-rect path')].map(e => { const r = e.getBoundingClientRect(); "
        "return {x: r.x, y: r.y, w: r.width, h: r.height}; })")
    labels = handle.evaluate(
        "c => [...c.querySelectorAll('g.role-axis-label text')].map(e => { const r = e.getBoundingClientRect(); "
        "return {x: r.x, y: r.y, w: r.width, h: r.height, text: e.textContent}; })")
    return bars, labels


def _readable(bars: list[dict], labels: list[dict], n: int, min_h: float = 12.0) -> None:
    assert len(bars) >= n, bars
    assert all(b["h"] >= min_h for b in bars), f"bars too thin: {[round(b['h'], 1) for b in bars]}"
    ys = sorted(bars, key=lambda b: b["y"])
    for a, b in zip(ys, ys[1:]):  # stacked, not overlapping
        assert b["y"] >= a["y"] + a["h"] - 0.5, (a, b)
    left = [lb for lb in labels if lb["x"] < min(b["x"] for b in bars)]  # the category axis, left of the bars
    assert len(left) >= n, labels
    left.sort(key=lambda lb: lb["y"])
    for a, b in zip(left, left[1:]):
        assert b["y"] >= a["y"] + a["h"] - 1, f"labels overlap: {a} / {b}"


def test_double_click_on_start_training_makes_one_job(server, pages, tiny_model_dir):
    from nursery_core.jobs.api import nursery_cancel_job
    from nursery_core.store import get_store

    _dataset("dbl", n=24)
    page = new_user(pages, server, "Ada")
    page.goto(server.url + "/Training_Forge")
    wait_idle(page)
    expect(selected(page, "tf_dataset")).to_have_value("dbl", timeout=60_000)
    fill(page, "tf_base_path", str(tiny_model_dir))
    tab(page, "Launch")
    fill(page, "tf_max_steps", "5000", submit=False)  # the output name is left to its (deterministic) default
    button = key(page, "FormSubmitter-tf_launch_form-Start-training").locator("button")
    button.dblclick()
    wait_idle(page, 180)
    wait_for_text(page, "queued → model", 120)
    no_exception(page)
    pages.shot("ada", "double-click")
    jobs = get_store().list_jobs()
    assert len(jobs) == 1, [(j["id"], j["output_name"]) for j in jobs]
    # a deliberate second submit of the same run is refused, naming the first job (the core's guard)
    button.click()
    wait_idle(page, 120)
    wait_for_text(page, f"Not started again: job {jobs[0]['id']}", 60)
    expect(main(page)).to_contain_text("already trains model")
    expect(selected(page, "tf_selected")).to_have_value(re.compile(jobs[0]["id"]))
    pages.shot("ada", "second-submit-refused")
    assert get_store().count_jobs() == 1
    nursery_cancel_job(jobs[0]["id"])


def _failed_and_cancelled_jobs() -> tuple[dict, dict]:
    from nursery_core.jobs import api
    from nursery_core.store import get_store
    from nursery_core.training.config import TrainConfig

    store = get_store()
    failed = api.create_job("local", "charts", "smollm2-135m", "trained-then-failed", TrainConfig(max_steps=4))
    store.update_job(failed["id"], step=4, total_steps=4, progress=1.0, started_at=failed["created_at"])
    store.finish_job(failed["id"], "failed", error="model 'trained-then-failed' appeared while the job ran")
    cancelled = api.create_job("local", "charts", "smollm2-135m", "stopped-early", TrainConfig(max_steps=4))
    store.update_job(cancelled["id"], step=1, total_steps=4, progress=0.25)
    store.finish_job(cancelled["id"], "cancelled", error="cancelled")
    return store.get_job(failed["id"]), store.get_job(cancelled["id"])


def _predictions_evaluations() -> None:
    """Two stored evaluations from predictions files (no model needed): a leaderboard with two lines."""
    from nursery_core.datasets import load_examples
    from nursery_core.evaluation.api import nursery_evaluate
    from nursery_core.training.rendering import eval_prompts
    from nursery_core import paths

    rows = list(load_examples("charts", "eval"))
    for label, keep in (("half-right", 2), ("all-wrong", 0)):
        f = paths.home() / f"{label}.jsonl"
        lines = []
        for i, ex in enumerate(rows):
            _, gold = eval_prompts(ex)
            out = "".join(f'<tool_call>\n{json.dumps(c)}\n</tool_call>' for c in gold) if i % 2 == 0 and keep \
                else "no idea"
            lines.append(json.dumps({"id": ex["id"], "output": out}))
        f.write_text("\n".join(lines) + "\n")
        nursery_evaluate(label, "charts", predictions=str(f))


def test_failed_bar_is_red_and_bar_charts_read(server, pages):
    _dataset("charts", n=60)
    failed, cancelled = _failed_and_cancelled_jobs()
    _predictions_evaluations()
    page = new_user(pages, server, "Grace")

    # Training Forge: the failed job's bar is red, the cancelled one's grey; neither is green
    page.goto(server.url + "/Training_Forge")
    wait_idle(page)
    for job, colour, label in ((failed, "rgb(198, 40, 40)", "failed"), (cancelled, "rgb(158, 158, 158)", "cancelled")):
        choose(page, "tf_selected", job["id"])
        bar = page.locator(f".nursery-progress[data-status='{label}']").first
        expect(bar).to_contain_text(label, timeout=30_000)
        fill_colour = bar.locator(".nursery-progress-fill").evaluate("e => getComputedStyle(e).backgroundColor")
        assert fill_colour == colour, (label, fill_colour)
        assert fill_colour != "rgb(46, 125, 79)"  # the theme's green
        pages.shot("grace", f"forge-{label}", focus=bar)
    expect(main(page)).to_contain_text("✗ failed at 100%")  # the jobs table says it in words, no green bar

    # the overview's job table too
    open_page(page, server.url)
    expect(main(page)).to_contain_text("✗ failed at 100%", timeout=30_000)
    expect(main(page)).to_contain_text("■ cancelled at 25%")
    expect(page.locator("[data-testid='stSidebarNav']")).to_contain_text("Overview")
    pages.shot("grace", "overview")

    # Data Garden: Calls per tool and Category mix have a height per bar and labels that do not overlap
    page.goto(server.url + "/Data_Garden")
    wait_idle(page)
    tab(page, "Datasets")
    charts = page.locator("[data-testid='stVegaLiteChart']")
    expect(charts.first).to_be_visible(timeout=30_000)
    for i, n in ((0, 3), (1, 3)):
        bars, labels = _bar_chart_geometry(page, charts.nth(i))
        _readable(bars, labels, n)
    pages.shot("grace", "data-garden-charts", focus=charts.first)

    # Model Cradle: the leaderboard, one bar per model and decoding, each with room to read
    page.goto(server.url + "/Model_Cradle?tab=Evaluate")
    wait_idle(page)
    board = page.locator("[data-testid='stVegaLiteChart']:visible").first
    expect(board).to_be_visible(timeout=60_000)
    bars, labels = _bar_chart_geometry(page, board)
    _readable(bars, labels, 2)
    assert {lb["text"] for lb in labels} >= {"half-right", "all-wrong"}
    no_exception(page)
    pages.shot("grace", "leaderboard", focus=board)


def test_rendered_prompt_hand_offs_loading_status_and_deploy_tools(server, pages, smollm2_home, tiny_model_dir,
                                                                 tmp_path):
    from export_helpers import make_adapter
    from nursery_core import paths
    from nursery_core.jobs import api
    from nursery_core.store import get_store
    from nursery_core.training.config import TrainConfig

    _dataset("older-data", tools=("get_weather",), n=20)
    time.sleep(0.05)
    _dataset("newer-data", tools=("calculator",), n=20)
    page = new_user(pages, server, "Lin")

    # Data Garden: open the older dataset, see what the model sees, hand it to the Training Forge
    page.goto(server.url + "/Data_Garden")
    wait_idle(page)
    tab(page, "Datasets")
    choose(page, "ds_pick", "older-data")
    assert "ds_pick=older-data" in page.url  # kept in the address: a reload opens it again
    page.reload()
    wait_idle(page)
    tab(page, "Datasets")
    expect(selected(page, "ds_pick")).to_have_value("older-data", timeout=30_000)
    key(page, "ds_rendered").locator("label").first.click()
    wait_idle(page, 180)
    marks = page.locator(".nursery-rendered mark.nursery-trained")
    expect(marks.first).to_be_visible(timeout=120_000)
    trained = " ".join(marks.all_inner_texts())
    assert "<tool_call>" in trained and "get_weather" in trained
    rendered = page.locator(".nursery-rendered").first.inner_text()
    assert "<|im_start|>system" in rendered and "<|im_start|>user" in rendered
    user_turn = rendered.split("<|im_start|>user", 1)[1].split("<|im_end|>", 1)[0]
    assert user_turn.strip() and user_turn.strip() not in trained  # the request is not trained on
    expect(main(page)).to_contain_text("are trained on")
    pages.shot("lin", "rendered-prompt", focus=marks.first)
    page.locator("a", has_text="Train on this dataset").first.click()
    wait_idle(page)
    expect(page.locator("h1")).to_contain_text("Training Forge", timeout=60_000)
    expect(selected(page, "tf_dataset")).to_have_value("older-data", timeout=30_000)  # not the newest
    pages.shot("lin", "forge-from-hand-off")

    # a finished job hands its model to the Model Cradle (test / evaluate / deploy)
    adapter = make_adapter(tiny_model_dir, paths.model_dir("handed-model"))
    get_store().add_model({"name": "handed-model", "kind": "adapter", "path": str(adapter),
                           "base_model": str(tiny_model_dir), "dataset": "older-data"})
    job = api.create_job("local", "older-data", str(tiny_model_dir), "handed-model", TrainConfig(max_steps=2))
    get_store().finish_job(job["id"], "succeeded", model_name="handed-model")
    page.reload()
    wait_idle(page)
    choose(page, "tf_selected", job["id"])
    link = page.locator("a", has_text="Test this model").first
    expect(link).to_have_attribute("href", re.compile("mc_test_model=handed-model"), timeout=30_000)
    pages.shot("lin", "forge-handoffs", focus=link)
    link.click()
    wait_idle(page)
    expect(page.locator("h1")).to_contain_text("Model Cradle", timeout=60_000)
    expect(selected(page, "mc_test_model")).to_have_value("handed-model", timeout=30_000)
    expect(page.locator("[data-testid='stTab'][aria-selected='true']")).to_have_text("Test")

    # Test: "Loading model …" shows before the first token, then the answer
    fill(page, "mc_test_prompt", "What's the weather in Oslo?", submit=False)
    fill(page, "mc_test_max_new", "8")
    key(page, "mc_test_go").locator("button").click()
    saw_loading = saw_result_first = False
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        text = main(page).inner_text()
        if "Loading model handed-model" in text:
            saw_loading = True
            pages.shot("lin", "loading-model")
            break
        if "Result of handed-model" in text:
            saw_result_first = True
            break
        page.wait_for_timeout(100)
    assert saw_loading and not saw_result_first
    wait_for_text(page, "Result of handed-model", 300)
    no_exception(page)
    pages.shot("lin", "cradle-test")

    # Evaluate: the two controls have distinct, whole labels
    tab(page, "Evaluate")
    expect(main(page)).to_contain_text("Score the base model too")
    labels = page.locator("[data-testid='stWidgetLabel']").all_inner_texts()
    assert labels.count("Decoding") == 0 and "Sampling" in labels and "Guarded decoding" in labels
    pages.shot("lin", "cradle-evaluate")

    # Deploy right after `make run` on a machine without the converter: said, with one button that fetches it
    tab(page, "Deploy")
    expect(main(page)).to_contain_text("Deploying needs llama.cpp's GGUF converter", timeout=30_000)
    expect(key(page, "deploy_fetch_tools").locator("button")).to_be_enabled()
    pages.shot("lin", "cradle-deploy-tools")


def test_a_page_opened_first_by_its_link_runs_under_the_app_navigation(server, pages):
    """A bookmark or a shared link opened on a dashboard that has just started, before anybody has loaded the
    overview, shows the same page with its query parameters, under app.py's navigation ("Overview", with
    icons). Streamlit's automatic sidebar for a pages/ folder, which names the overview "app", must not appear."""
    ctx = pages.browser.new_context(viewport={"width": 1440, "height": 1000})
    page = pages.add("ben", ctx.new_page())
    open_page(page, f"{server.url}/Model_Cradle?tab=Evaluate")
    wait_idle(page, 60)
    expect(page.locator("h1")).to_contain_text("Model Cradle", timeout=60_000)
    links = page.locator("[data-testid='stSidebarNav'] a")
    expect(links).to_have_count(5, timeout=30_000)
    assert [" ".join(t.split()) for t in links.all_inner_texts()] == [
        "🌱 Overview", "🌿 Data Garden", "🔥 Training Forge", "🧪 Model Cradle", "⚙️ Settings"], links.all_inner_texts()
    selected_tab = page.locator("[data-testid='stTab'][aria-selected='true']")
    expect(selected_tab).to_contain_text("Evaluate")  # ?tab= survived the rerun through app.py
    assert page.url.endswith("/Model_Cradle?tab=Evaluate"), page.url
    no_exception(page)
    pages.shot("ben", "opened-by-link")
