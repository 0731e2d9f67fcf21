"""The Deploy panel (AppTest): a stored deployment shows its verification table, Modelfile, the ollama create
command and downloads; the Deploy button runs the steps with live status and shows errors without tracebacks."""
from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from nursery_core import paths


def _app():
    from nursery_core.webui.deploy_panel import render_deploy_panel
    render_deploy_panel("tiny-tools")


ROWS = [{"index": 0, "id": "ex0", "prompt": "Remember locker 0", "same_call": True, "same_tokens": True,
         "hf_calls": [{"name": "memory_store", "arguments": {"content": "locker 0"}}],
         "gguf_calls": [{"name": "memory_store", "arguments": {"content": "locker 0"}}],
         "hf_output": "<tool_call>…", "gguf_output": "<tool_call>…"},
        {"index": 1, "id": "ex1", "prompt": "Hi there", "same_call": False, "same_tokens": True,
         "hf_calls": [], "gguf_calls": [{"name": "web_search", "arguments": {"query": "hi"}}],
         "hf_output": "Hello!", "gguf_output": "<tool_call>…"}]


@pytest.fixture
def deployed(store):
    store.add_model({"name": "tiny-tools", "path": "/nonexistent", "base_model": "smollm2-135m"})
    folder = paths.exports_dir() / "tiny-tools"
    folder.mkdir()
    (folder / "Modelfile").write_text('FROM ./tiny-tools-f16.gguf\nTEMPLATE """{{ .Prompt }}"""\n')
    (folder / "tiny-tools-f16.gguf").write_bytes(b"GGUF" + b"\0" * 100)
    ver = {"score": 0.5, "passed": False, "tokenization_ok": True, "prompts": 2, "with_calls": 2,
           "threshold": 0.95, "same_text": 0.5, "rows": ROWS}
    (folder / "verification.json").write_text(json.dumps(ver))
    dep = store.add_deployment({"model": "tiny-tools", "status": "failed_verification", "path": str(folder),
                                "gguf_path": str(folder / "tiny-tools-f16.gguf"), "gguf_size": 104,
                                "outtype": "f16", "score": 0.5, "verification": ver, "ollama_name": "tiny-tools",
                                "registered": 0})
    return dep


def test_shows_a_stored_deployment(deployed, monkeypatch):
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    at = AppTest.from_function(_app, default_timeout=60).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["same call"]) == [True, False] and "web_search" in table["GGUF calls"][1]
    assert any("ollama create tiny-tools -f" in c.value for c in at.code)
    assert any("FROM ./tiny-tools-f16.gguf" in c.value for c in at.code)
    assert [m.value for m in at.metric][:2] == ["50.0%", "identical"]
    assert at.checkbox(key="deploy_register_tiny-tools").disabled  # no Ollama host configured
    # verification decoded free, as Ollama does: the panel says so
    assert any("free (unconstrained) greedy" in c.value and "Ollama" in c.value for c in at.caption)


def test_deploy_button_runs_with_status_and_reports_errors(deployed, monkeypatch):
    from nursery_core.errors import BackendError
    from nursery_core.export import deploy

    calls = []

    def fake_deploy(model_name, progress=None, **options):
        calls.append((model_name, options))
        progress({"step": "merge", "state": "done", "message": "merged (chatml family)"})
        raise BackendError("llama.cpp's GGUF converter is missing: run `make setup`")

    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.setattr(deploy, "nursery_deploy_ollama", fake_deploy)
    _tools_present(monkeypatch, True)
    at = AppTest.from_function(_app, default_timeout=60).run()
    at.selectbox(key="deploy_outtype_tiny-tools").select("f16").run()
    at.selectbox(key="deploy_quant_tiny-tools").select("q4_K_M").run()
    at.button(key="deploy_go_tiny-tools").click().run()
    assert not at.exception
    assert calls == [("tiny-tools", {"outtype": "f16", "name": "tiny-tools", "skip_register": True,
                                     "force": False, "fallback": True, "quantize": "q4_K_M",
                                     "ollama_host": None, "created_by": None})]
    assert any("run `make setup`" in e.value for e in at.error)


def _tools_present(monkeypatch, present: bool) -> None:
    from nursery_core.export import gguf, verify

    monkeypatch.setattr(gguf, "converter_available", lambda: present)
    monkeypatch.setattr(verify, "bindings_available", lambda: present)


def test_missing_converter_is_named_and_fetched_with_one_click(deployed, monkeypatch):
    """Right after `make run` on a machine where the fetch failed (or an old checkout), the Deploy tab says what
    is missing and the button runs the same set-up script `make setup` runs."""
    from nursery_core.export import gguf

    _tools_present(monkeypatch, False)
    fetched = []
    monkeypatch.setattr(gguf, "install_converter", lambda: fetched.append(1) or {"ok": True, "seconds": 3.0})
    at = AppTest.from_function(_app, default_timeout=60).run()
    assert not at.exception
    assert any("llama.cpp's GGUF converter" in w.value and "make setup" in w.value for w in at.warning)
    assert at.button(key="deploy_go_tiny-tools").disabled
    at.button(key="deploy_fetch_tools").click().run()
    assert fetched == [1] and not at.exception


def test_make_run_fetches_the_converter_like_make_test():
    """`make run` depends on `setup`, which runs scripts/setup_llamacpp.sh (no root needed): deploy works after
    the README's first command, and every hint that says `make setup` is true."""
    import shutil
    import subprocess

    from conftest import require

    require(shutil.which("make") is not None, "make")
    root = paths.PROJECT_ROOT
    for target in ("run", "test", "setup"):
        out = subprocess.run(["make", "-n", "-B", target], cwd=root, capture_output=True, text=True, timeout=60)
        assert "scripts/setup_llamacpp.sh" in out.stdout, (target, out.stdout, out.stderr)


def test_a_deployment_that_failed_before_measuring_shows_dashes_not_zeros(deployed, store, monkeypatch):
    """A deploy that failed before its verification stored no score, tokenization or GGUF size: its card says
    "–" for them, never "0%", "differs" or "0 MB" as if they had been measured."""
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    failed = store.add_deployment({"model": "tiny-tools", "status": "error",
                                   "path": str(paths.exports_dir() / "tiny-tools"),
                                   "error": "merge failed: the adapter's base is missing", "ollama_name": "tiny-tools",
                                   "registered": 0})
    at = AppTest.from_function(_app, default_timeout=60).run()
    # both rows may carry the same created_at second: pick the failed one rather than rely on the order
    at.selectbox(key="deploy_pick_tiny-tools").set_value(failed["id"]).run()
    assert not at.exception
    assert [m.value for m in at.metric][:4] == ["–", "–", "–", "error"], [m.value for m in at.metric]
    assert any("the adapter's base is missing" in e.value for e in at.error)
