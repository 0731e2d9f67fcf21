"""The dashboard in a real browser: `streamlit run app.py` on a free port with its own NURSERY_HOME, driven by
Debian's chromium through Playwright. One test walks the main flow (name → dataset → estimate → train a tiny
model to 100% → test → compare with the base → evaluate); one has two users launch runs at once and checks
that they share one queue and see the same truth. Screenshots of every step land in test-output/browser/."""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from browser_support import (CHROMIUM, OUTPUT, StreamlitServer, choose, chromium, click, fill, goto_nav, key,
                             no_exception, open_page, screenshot, selected, tab, wait_for_text,
                             wait_idle)
from conftest import require

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parent.parent
SIDEBAR = "[data-testid='stSidebar']"
TRAIN_TIMEOUT = 420  # seconds: a child process imports torch and trains a tiny model on a busy 2-core box


def _playwright_ready() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture
def artefacts(request) -> Path:
    folder = OUTPUT / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def server(nursery_home, artefacts):
    require(CHROMIUM.exists(), "chromium (/usr/bin/chromium)")
    require(_playwright_ready(), "playwright (python)")
    srv = StreamlitServer(nursery_home, artefacts / "streamlit.log").start()
    yield srv
    srv.stop()


class Pages:
    """The browser pages of a test, photographed step by step, and all of them when the test fails."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.pages: dict[str, object] = {}
        self.n = 0

    def add(self, name: str, page) -> object:
        self.pages[name] = page
        return page

    def shot(self, name: str, label: str, focus=None) -> None:
        self.n += 1
        screenshot(self.pages[name], self.folder, f"{self.n:02d}-{name}-{label}", focus=focus)


@pytest.fixture
def pages(request, artefacts, server):
    with chromium() as browser:
        reg = Pages(artefacts)
        reg.browser = browser
        failed_before = request.session.testsfailed
        yield reg
        if request.session.testsfailed > failed_before:
            for name, page in reg.pages.items():
                screenshot(page, artefacts, f"failure-{name}")
            print(f"screenshots and the server log are in {artefacts}\n--- server log tail ---\n{server.log()}")


def new_user(pages: Pages, server: StreamlitServer, name: str):
    """A fresh browser context (its own cookies) on the overview, with its display name saved."""
    ctx = pages.browser.new_context(viewport={"width": 1440, "height": 1000})
    ctx.set_default_timeout(60_000)
    page = pages.add(name.lower(), ctx.new_page())
    open_page(page, server.url)
    fill(page, "identity_name", name, submit=False)
    click(page, "FormSubmitter-identity_form-Save-name")
    expect(page.locator(SIDEBAR)).to_contain_text(f"Signed in as {name}", timeout=30_000)
    return page


def expect(locator):
    from playwright.sync_api import expect as pw_expect

    return pw_expect(locator)


def main(page):
    return page.locator("[data-testid='stMain']")


def progress_of(page):
    """The job-detail progress bar of the Training Forge (coloured by the job's status)."""
    return page.locator(".nursery-progress").last


def test_main_flow_in_a_real_browser(server, pages, tiny_model_dir, nursery_home):
    """Name → Data Garden → estimate → train → 100% → test → compare with the base → evaluate, and the
    overview tells the story with the user's name on what they made."""
    from nursery_core.store import get_store

    page = new_user(pages, server, "Ada")
    wait_for_text(page, "Three steps", 30)
    pages.shot("ada", "overview-empty")

    # --- Data Garden: generate a dataset (through the overview's first-step button)
    click(page, "overview_step_1")
    expect(page.locator("h1")).to_contain_text("Data Garden", timeout=30_000)
    expect(page.locator(SIDEBAR)).to_contain_text("Signed in as Ada")
    fill(page, "gen_count", "40")
    fill(page, "gen_name", "weather-e2e")
    click(page, "gen_go", timeout=180)
    wait_for_text(page, "Dataset weather-e2e with 40 examples is ready", 120)
    no_exception(page)
    pages.shot("ada", "data-garden")
    assert get_store().get_dataset("weather-e2e")["created_by"] == "Ada"

    # --- Training Forge: a local base-model directory, the estimate, then a short run
    goto_nav(page, "Training Forge")
    expect(page.locator("h1")).to_contain_text("Training Forge", timeout=60_000)
    expect(selected(page, "tf_dataset")).to_have_value("weather-e2e")
    fill(page, "tf_base_path", str(tiny_model_dir))
    tab(page, "Estimate")
    click(page, "tf_est_go", timeout=180)
    wait_for_text(page, "training tokens", 120)
    no_exception(page)
    pages.shot("ada", "estimate")

    tab(page, "Launch")
    fill(page, "tf_output", "weather-tiny", submit=False)
    fill(page, "tf_max_steps", "4", submit=False)
    click(page, "FormSubmitter-tf_launch_form-Start-training", timeout=180)
    wait_for_text(page, "model weather-tiny", 120)
    no_exception(page)
    pages.shot("ada", "launched")
    # the live fragment follows the run until the bar is full and the job succeeded (a failed run's error
    # box ends the wait at once, with its message)
    wait_for_text(page, "Model weather-tiny is ready", TRAIN_TIMEOUT)
    bar = progress_of(page)
    expect(bar).to_contain_text("succeeded · step 4/4", timeout=30_000)
    expect(bar).to_have_attribute("aria-valuenow", "100")
    expect(bar).to_have_attribute("data-status", "succeeded")
    pages.shot("ada", "trained", focus=bar)
    job = get_store().list_jobs(limit=1)[0]
    assert (job["status"], job["created_by"], job["model_name"]) == ("succeeded", "Ada", "weather-tiny")
    assert job["total_steps"] == 4 and job["progress"] == 1.0

    # --- Model Cradle: test the adapter, compare it with its base, evaluate it
    goto_nav(page, "Model Cradle")
    expect(page.locator("h1")).to_contain_text("Model Cradle", timeout=60_000)
    tab(page, "Test")
    expect(selected(page, "mc_test_model")).to_have_value("weather-tiny")
    fill(page, "mc_test_prompt", "What's the weather in Oslo tomorrow?")
    fill(page, "mc_test_max_new", "12")
    click(page, "mc_test_go", timeout=TRAIN_TIMEOUT)
    wait_for_text(page, "Result of weather-tiny", TRAIN_TIMEOUT)
    no_exception(page)
    pages.shot("ada", "cradle-test")

    tab(page, "Compare")
    expect(selected(page, "mc_cmp_a")).to_have_value("weather-tiny")
    fill(page, "mc_cmp_b_path", str(tiny_model_dir))
    fill(page, "mc_cmp_prompts", "What's the weather in Oslo tomorrow?\nIs it raining in Lima?")
    fill(page, "mc_cmp_max_new", "12")
    click(page, "mc_cmp_go", timeout=TRAIN_TIMEOUT)
    wait_for_text(page, "A · weather-tiny", TRAIN_TIMEOUT)
    expect(main(page)).to_contain_text("Is it raining in Lima?")
    expect(main(page)).to_contain_text("B · ")  # the bare base answered the same prompts beside it
    no_exception(page)
    pages.shot("ada", "cradle-compare")

    tab(page, "Evaluate")
    expect(selected(page, "mc_eval_dataset")).to_have_value("weather-e2e")
    fill(page, "mc_eval_limit", "4")
    fill(page, "mc_eval_max_new", "12")
    click(page, "mc_eval_go", timeout=TRAIN_TIMEOUT)
    wait_for_text(page, "AST accuracy", TRAIN_TIMEOUT)
    expect(main(page)).to_contain_text("on 4 examples")
    no_exception(page)
    pages.shot("ada", "cradle-evaluate")
    # the drill-down opens on the guarded run and says why its prose answers stop after 48 tokens
    note = main(page).get_by_text("Text answers cut after 48 tokens")
    expect(note).to_be_visible()
    pages.shot("ada", "cradle-drill-down", focus=note)
    evals = get_store().list_evaluations(model="weather-tiny")
    # one click scores free and guarded decoding: two stored evaluations of the same examples
    assert sorted((e.get("settings") or {}).get("decoding") for e in evals) == ["free", "guarded"]
    assert all(e["num_examples"] == 4 and e["created_by"] == "Ada" for e in evals)

    # --- the overview now tells the story
    open_page(page, server.url)
    expect(page.locator(SIDEBAR)).to_contain_text("Signed in as Ada")  # remembered by the browser
    # retrying assertions: the first paint after navigation can precede the script's output
    expect(main(page)).to_contain_text("Nothing is training right now.", timeout=30_000)
    expect(main(page)).not_to_contain_text("Three steps", timeout=30_000)
    values = page.locator("[data-testid='stMetricValue']")
    for i in range(3):  # datasets, models, jobs
        expect(values.nth(i)).to_have_text("1", timeout=30_000)
    pages.shot("ada", "overview-after")


def test_two_users_launch_at_once_share_one_queue_and_see_the_same_truth(server, pages, tiny_model_dir):
    """Ada and Grace (two browser contexts) start a run each at the same moment: one runs, one waits queued;
    both overviews show who is running what, identically; each cancels their own run from their page."""
    from nursery_core import nursery_generate_data
    from nursery_core.store import get_store

    nursery_generate_data(["calculator"], 24, "low", name="calc-shared", created_by="setup")
    users = {"Ada": "ada-long", "Grace": "grace-long"}
    tabs = {}
    for name, output in users.items():
        page = new_user(pages, server, name)
        goto_nav(page, "Training Forge")
        expect(selected(page, "tf_dataset")).to_have_value("calc-shared", timeout=60_000)
        fill(page, "tf_base_path", str(tiny_model_dir))
        tab(page, "Launch")
        fill(page, "tf_output", output, submit=False)
        fill(page, "tf_max_steps", "5000", submit=False)
        tabs[name] = page
    # both click "Start training" without waiting for the other
    for page in tabs.values():
        key(page, "FormSubmitter-tf_launch_form-Start-training").locator("button").click()
    for name, page in tabs.items():
        wait_idle(page, 180)
        wait_for_text(page, f"model {users[name]}", 180)
        no_exception(page)
        pages.shot(name.lower(), "launched")

    store = get_store()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        jobs = {j["output_name"]: j for j in store.list_jobs()}
        if sorted(j["status"] for j in jobs.values()) == ["queued", "running"]:
            break
        time.sleep(0.5)
    assert sorted(j["status"] for j in jobs.values()) == ["queued", "running"], jobs
    running = next(j for j in jobs.values() if j["status"] == "running")
    queued = next(j for j in jobs.values() if j["status"] == "queued")
    assert {running["created_by"], queued["created_by"]} == {"Ada", "Grace"}

    # the same truth on both overviews: who runs what, who waits
    want_running = f"{running['created_by']} · {running['output_name']} · local · running"
    want_queued = f"{queued['created_by']} · {queued['output_name']} · local · queued (#1 in line)"
    who = (f"{running['created_by']}: {running['output_name']} (running)",
           f"{queued['created_by']}: {queued['output_name']} (queued)")
    for name, page in tabs.items():
        open_page(page, server.url)
        for want in (want_running, want_queued, *who):
            expect(main(page)).to_contain_text(want, timeout=30_000)
        expect(page.locator("[data-testid='stMetricValue']").nth(3)).to_have_text("1")  # running now
        expect(page.locator("[data-testid='stMetricValue']").nth(4)).to_have_text("1")  # queued
        pages.shot(name.lower(), "overview-shared")
    assert store.get_job(queued["id"])["status"] == "queued"  # still one at a time

    # each user cancels their own run from the Training Forge: first the runner, then the one that moved up
    for job in (running, queued):
        page = tabs[job["created_by"]]
        goto_nav(page, "Training Forge")
        choose(page, "tf_selected", job["id"])
        expect(progress_of(page)).to_contain_text(re.compile("running|queued"), timeout=120_000)
        deadline = time.monotonic() + 180
        while store.get_job(job["id"])["status"] == "queued" and time.monotonic() < deadline:
            time.sleep(0.5)  # the queued one is cancelled once it runs: the cancel path of a live child
        click(page, "tf_cancel")
        expect(progress_of(page)).to_contain_text("cancelled", timeout=60_000)
        pages.shot(job["created_by"].lower(), "cancelled")
    final = {j["output_name"]: j["status"] for j in store.list_jobs()}
    assert final == {"ada-long": "cancelled", "grace-long": "cancelled"}
    for page in tabs.values():
        open_page(page, server.url)
        wait_for_text(page, "Nothing is training right now.", 30)
