"""Shared fixtures: every test gets its own NURSERY_HOME; components a layer needs are required in CI."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SHARED = ROOT.parent / "shared"
SAMPLES = SHARED / "samples"
IN_CI = os.environ.get("CI", "").lower() == "true"
# Tests never reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def require(ok: bool, what: str) -> None:
    """Skips when a component is missing on a developer's machine; fails under CI=true, where
    `make test` must have installed it."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"{what} is missing under CI (make test should have installed it)")
    pytest.skip(f"{what} is not installed")


@pytest.fixture
def samples_dir() -> Path:
    """../shared/samples when present (a user's clone has none: the test skips cleanly)."""
    if not SAMPLES.is_dir():
        pytest.skip("../shared/samples is absent")
    return SAMPLES


@pytest.fixture(autouse=True)
def nursery_home(tmp_path, monkeypatch):
    """A fresh data directory per test; cached stores are closed afterwards."""
    home = tmp_path / "nursery_home"
    home.mkdir()
    monkeypatch.setenv("NURSERY_HOME", str(home))
    # Interactive calls default to llama.cpp when it can serve ("auto"); tests of other features run torch's
    # path so they build no GGUFs. tests/test_llamacpp_engine.py sets "auto" and checks the two agree.
    monkeypatch.setenv("NURSERY_ENGINE", "torch")
    yield home
    from nursery_core import store as store_mod
    if "streamlit" in sys.modules:
        import streamlit as st
        st.cache_resource.clear()
    store_mod.close_all()


@pytest.fixture
def store(nursery_home):
    from nursery_core.store import get_store
    return get_store()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer Llama with SmolLM2's tokenizer, built once per test session (no hub)."""
    from nursery_core.testing import make_tiny_model
    return make_tiny_model(tmp_path_factory.mktemp("tiny-model") / "tiny")


@pytest.fixture(scope="session")
def smollm2_session_dir(tmp_path_factory) -> Path:
    """The embedded SmolLM2 materialised once per session (slow tests link it into their NURSERY_HOME)."""
    from nursery_core.base_models import materialise_embedded
    return materialise_embedded(tmp_path_factory.mktemp("smollm2") / "smollm2-135m")


@pytest.fixture
def smollm2_home(nursery_home, smollm2_session_dir) -> Path:
    """NURSERY_HOME with the materialised embedded default already in base_models/ (a symlink)."""
    base = nursery_home / "base_models"
    base.mkdir(exist_ok=True)
    (base / "smollm2-135m").symlink_to(smollm2_session_dir, target_is_directory=True)
    return nursery_home


# The `ssh` layer's fixtures (a real OpenSSH sshd on 127.0.0.1): sshd, sshd_factory.
from sshd_fixture import sshd, sshd_factory  # noqa: E402,F401
