"""Registration against the stub Ollama server: HEAD before POST, uploads only what is missing, the create
request carries the Modelfile's template/system/stop parameters and the GGUF's digest, statuses stream to the
progress callback, and errors are clear."""
from __future__ import annotations

import hashlib

import pytest

from nursery_core.emulators.ollama import OllamaEmulator
from nursery_core.errors import BackendError, InvalidInput
from nursery_core.export.modelfile import build_modelfile, go_template
from nursery_core.export.ollama_client import OllamaClient, file_digest, normalise_host, register_modelfile


@pytest.fixture
def emu():
    e = OllamaEmulator().start()
    yield e
    e.stop()


@pytest.fixture
def export(tmp_path):
    gguf = tmp_path / "smol-q8_0.gguf"
    gguf.write_bytes(b"GGUF" + b"\x00\x01" * 50_000)
    (tmp_path / "Modelfile").write_text(build_modelfile(gguf.name, "chatml", eos_token="<|endoftext|>"))
    return tmp_path


def test_register_uploads_then_creates(emu, export):
    seen = []
    res = register_modelfile(export / "Modelfile", "smol-tools", emu.url, progress=seen.append)
    gguf = export / "smol-q8_0.gguf"
    d = "sha256:" + hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert file_digest(gguf) == d
    order = [(r["method"], r["path"]) for r in emu.requests]
    assert order == [("GET", "/api/version"), ("HEAD", f"/api/blobs/{d}"), ("POST", f"/api/blobs/{d}"),
                     ("POST", "/api/create")]
    assert emu.calls("POST", "/api/blobs/")[0]["bytes"] == gguf.stat().st_size
    create = emu.calls("POST", "/api/create")[0]["json"]
    assert create["model"] == "smol-tools" and create["files"] == {"smol-q8_0.gguf": d}
    assert create["template"] == go_template("chatml")
    assert create["parameters"] == {"stop": ["<|im_end|>", "<|im_start|>", "<|endoftext|>"]}
    assert create["system"] == "You are a helpful assistant." and create["stream"] is True
    assert "quantize" not in create
    assert [s["status"] for s in seen][0] == "uploading smol-q8_0.gguf"
    assert seen[-1] == {"status": "success"} and res["statuses"][-1] == "success"
    assert res["uploads"][0]["uploaded"] is True and "smol-tools:latest" in emu.models


def test_second_registration_skips_the_upload(emu, export):
    register_modelfile(export / "Modelfile", "a", emu.url)
    res = register_modelfile(export / "Modelfile", "b:q4", emu.url, quantize="q4_K_M")
    assert res["uploads"][0]["uploaded"] is False
    assert len(emu.calls("POST", "/api/blobs/")) == 1 and len(emu.calls("HEAD")) == 2
    assert emu.calls("POST", "/api/create")[-1]["json"]["quantize"] == "q4_K_M"
    assert "quantizing F16 model to Q4_K_M" in res["statuses"]


def test_server_side_errors_surface(emu, export):
    with pytest.raises(BackendError, match="invalid model name"):
        register_modelfile(export / "Modelfile", "Bad Name", emu.url)
    with OllamaClient(emu.url) as c:
        with pytest.raises(BackendError, match="not found"):
            c.create({"model": "x", "files": {"x.gguf": "sha256:" + "a" * 64}})
        with pytest.raises(BackendError, match="not found"):
            c.show("missing")
    with pytest.raises(InvalidInput, match="quantize must be one of"):
        register_modelfile(export / "Modelfile", "x", emu.url, quantize="q2_K")


def test_digest_mismatch_is_refused(emu, tmp_path):
    f = tmp_path / "x.gguf"
    f.write_bytes(b"real bytes")
    with OllamaClient(emu.url) as c:
        with pytest.raises(BackendError, match="digest mismatch"):
            c.push_blob(f, digest="sha256:" + hashlib.sha256(b"other").hexdigest())


def test_unreachable_host_is_a_clear_error(export):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BackendError, match=f"cannot reach Ollama at http://127.0.0.1:{port}"):
        register_modelfile(export / "Modelfile", "x", f"127.0.0.1:{port}")


def test_missing_gguf_named_in_error(emu, export):
    (export / "smol-q8_0.gguf").unlink()
    with pytest.raises(InvalidInput, match="does not exist"):
        register_modelfile(export / "Modelfile", "x", emu.url)


@pytest.mark.parametrize("raw,url", [
    ("127.0.0.1", "http://127.0.0.1:11434"), ("0.0.0.0:8080", "http://127.0.0.1:8080"),
    ("http://box.local:11434/", "http://box.local:11434"), ("https://ollama.example", "https://ollama.example:443"),
])
def test_normalise_host(raw, url):
    assert normalise_host(raw) == url


def test_host_from_environment(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "localhost:9999")
    assert normalise_host() == "http://localhost:9999"
    monkeypatch.delenv("OLLAMA_HOST")
    with pytest.raises(InvalidInput, match="OLLAMA_HOST"):
        normalise_host()
