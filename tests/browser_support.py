"""The browser layer's harness: `streamlit run app.py` on a free port with its own NURSERY_HOME, Debian's
chromium through Playwright, and small helpers that find widgets by their keys (`.st-key-<key>`) and wait
for Streamlit's script state the way Streamlit's own e2e suite does."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
OUTPUT = ROOT / "test-output" / "browser"
APP_IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
APP_BUSY = "[data-testid='stApp'][data-test-script-state='running']"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StreamlitServer:
    """One `streamlit run app.py` child with the flags of Streamlit's e2e harness."""

    def __init__(self, home: Path, log_file: Path, env: dict[str, str] | None = None):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = log_file
        self.env = {**os.environ, "NURSERY_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                    "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0) -> "StreamlitServer":
        import httpx

        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(self.port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/_stcore/health", timeout=2).text.strip() == "ok":
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"streamlit did not become healthy in {timeout:.0f} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-8000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stops the server, then any training worker it left running in its NURSERY_HOME: workers are made to
        outlive a dashboard restart, so a test that fails before cancelling its run would leave one training
        (and taking a core from the rest of the suite)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        home = self.env.get("NURSERY_HOME")
        if home:
            kill_workers_under(home)


def kill_workers_under(home: str) -> list[int]:
    """SIGKILLs every `nursery_core.training.worker` process whose job directory is under `home`; their pids."""
    import signal

    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in cmd]
        if "nursery_core.training.worker" in args and any(a.startswith(str(home)) for a in args):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
            except OSError:
                pass
    return killed


@contextmanager
def chromium() -> Iterator[object]:
    """A headless Debian chromium driven by Playwright (Playwright's own browser download is not used)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


# ------------------------------------------------------------------------------------------- waiting
def wait_idle(page, timeout: float = 60.0) -> None:
    """Waits until the script run an action triggered has finished (it may take a moment to start)."""
    try:
        page.locator(APP_BUSY).wait_for(state="attached", timeout=1500)
    except Exception:  # noqa: BLE001 — the run was quick (or none was triggered): the idle check below decides
        pass
    page.locator(APP_IDLE).wait_for(state="attached", timeout=timeout * 1000)


def open_page(page, url: str, timeout: float = 60.0) -> None:
    page.goto(url)
    page.locator(APP_IDLE).wait_for(state="attached", timeout=timeout * 1000)
    page.locator("[data-testid='stMain']").wait_for(timeout=timeout * 1000)


def goto_nav(page, label: str, timeout: float = 60.0) -> None:
    """Moves to another page through the sidebar navigation (same session: the display name stays)."""
    page.locator("[data-testid='stSidebarNav'] a", has_text=label).first.click()
    wait_idle(page, timeout)


def key(page, widget_key: str):
    """The container Streamlit renders for the widget with that key."""
    return page.locator(f".st-key-{widget_key}").first


def fill(page, widget_key: str, value: str, submit: bool = True) -> None:
    """Types into a text/number input or text area and commits it (Enter for inputs, blur for areas)."""
    box = key(page, widget_key)
    field = box.locator("input, textarea").first
    field.wait_for(timeout=30000)
    field.fill(str(value))
    if submit:
        if field.evaluate("e => e.tagName") == "TEXTAREA":
            field.press("Control+Enter")
        else:
            field.press("Enter")
        wait_idle(page)


def click(page, widget_key: str, timeout: float = 60.0) -> None:
    btn = key(page, widget_key).locator("button").first
    btn.wait_for(timeout=30000)
    btn.click()
    wait_idle(page, timeout)


def choose(page, widget_key: str, option: str | re.Pattern, tries: int = 3) -> None:
    """Picks an option of a selectbox by its visible text, and checks the box shows it: a live page (a running
    job's panel refreshes itself) can rerun between opening the list and the click, which closes the list and
    drops the click, as it would a person's; then it picks again, up to `tries` times."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(tries):
        key(page, widget_key).locator("input").first.click()
        opts = page.locator("[role='option']")
        try:
            opts.first.wait_for(timeout=15000)
            opts.filter(has_text=option).first.click(timeout=15000)
        except PlaywrightTimeout:
            if attempt == tries - 1:
                raise
            page.keyboard.press("Escape")  # a rerun closed the list (or ate the click): open it again
            wait_idle(page)
            continue
        wait_idle(page)
        shown = selected(page, widget_key).input_value()
        if (option.search(shown) if isinstance(option, re.Pattern) else option in shown) or attempt == tries - 1:
            return


def selected(page, widget_key: str):
    """The input of a selectbox: its value is the option shown (use with expect(...).to_have_value)."""
    return key(page, widget_key).locator("input").first


def tab(page, label: str) -> None:
    """Opens a tab of st.tabs (client-side: no script run)."""
    t = page.locator("[data-testid='stTab']", has_text=label).first
    t.click()
    page.wait_for_function("e => e.getAttribute('aria-selected') === 'true'", arg=t.element_handle(),
                           timeout=15000)


def main_text(page) -> str:
    return page.locator("[data-testid='stMain']").inner_text()


def errors_on(page) -> list[str]:
    """The texts of st.error boxes and exception boxes now on the page."""
    boxes = page.locator("[data-testid='stAlertContentError'], [data-testid='stException']")
    return [b.inner_text() for b in boxes.all()]


def wait_for_text(page, text: str | re.Pattern, timeout: float = 120.0, where: str = "[data-testid='stMain']") -> None:
    """Polls until the text shows up; fails at once, with its message, when an error box appears instead."""
    area = page.locator(where)
    deadline = time.monotonic() + timeout
    while True:
        body = area.inner_text()
        if (text.search(body) if isinstance(text, re.Pattern) else text in body):
            return
        errs = errors_on(page)
        if errs:
            raise AssertionError(f"waiting for {text!r}, the page shows an error: {errs[0][:2000]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} did not appear within {timeout:.0f} s; the page says:\n{body[-3000:]}")
        page.wait_for_timeout(250)


def no_exception(page) -> None:
    """Fails when the page shows an uncaught exception box."""
    exc = page.locator("[data-testid='stException']")
    if exc.count():
        raise AssertionError(f"page shows an exception: {exc.first.inner_text()[:2000]}")


def screenshot(page, folder: Path, name: str, focus=None) -> Path | None:
    """A PNG of the page; `focus` (a locator) is scrolled into view first (the main area scrolls itself)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    try:
        if focus is not None:
            focus.scroll_into_view_if_needed(timeout=5000)
        page.screenshot(path=str(path), full_page=True)
        return path
    except Exception:  # noqa: BLE001 — a closed page cannot be photographed; the other artefacts still are
        return None
