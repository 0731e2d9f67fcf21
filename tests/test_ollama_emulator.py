"""The stub Ollama server: blob digests checked (400 on mismatch, 201 created), create validates blobs and
streams statuses, tags/show/delete/version, and the standalone entry point."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

import httpx
import pytest

from nursery_core.emulators.ollama import OllamaEmulator


@pytest.fixture
def emu():
    e = OllamaEmulator().start()
    yield e
    e.stop()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_blob_upload_checks_digest(emu):
    data = b"GGUF" + bytes(range(256)) * 10
    d = digest(data)
    with httpx.Client(base_url=emu.url) as c:
        assert c.head(f"/api/blobs/{d}").status_code == 404
        bad = c.post(f"/api/blobs/{d}", content=data + b"x")
        assert bad.status_code == 400 and "digest mismatch" in bad.json()["error"]
        assert c.head(f"/api/blobs/{d}").status_code == 404  # nothing kept from the bad upload
        assert c.post(f"/api/blobs/{d}", content=data).status_code == 201
        assert c.head(f"/api/blobs/{d}").status_code == 200
        assert c.post(f"/api/blobs/{d}", content=data).status_code == 200  # already there
        assert c.head("/api/blobs/sha256:1234").status_code == 400
    assert emu.blob_path(d.split(":")[1]).read_bytes() == data


def test_chunked_upload_is_accepted(emu):
    data = b"chunk" * 100_000

    def gen():
        for i in range(0, len(data), 65536):
            yield data[i:i + 65536]

    with httpx.Client(base_url=emu.url) as c:
        assert c.post(f"/api/blobs/{digest(data)}", content=gen()).status_code == 201
    assert emu.calls("POST", "/api/blobs/")[0]["bytes"] == len(data)


def _upload(emu, data: bytes) -> str:
    d = digest(data)
    httpx.post(f"{emu.url}/api/blobs/{d}", content=data).raise_for_status()
    return d


def test_create_streams_statuses_and_records(emu):
    d = _upload(emu, b"GGUF fake model")
    req = {"model": "smol", "files": {"smol.gguf": d}, "template": "{{ .Prompt }}{{ .Tools }}",
           "system": "Be nice.", "parameters": {"stop": ["<|im_end|>"]}, "quantize": "q4_K_M"}
    with httpx.stream("POST", f"{emu.url}/api/create", json=req) as r:
        assert r.status_code == 200
        lines = [json.loads(x) for x in r.iter_lines() if x.strip()]
    statuses = [x["status"] for x in lines]
    assert statuses[0] == "parsing GGUF" and statuses[-1] == "success"
    assert "quantizing F16 model to Q4_K_M" in statuses and f"using existing layer {d}" in statuses
    assert emu.models["smol:latest"]["request"]["system"] == "Be nice."
    tags = httpx.get(f"{emu.url}/api/tags").json()["models"]
    assert [t["name"] for t in tags] == ["smol:latest"] and tags[0]["size"] == len(b"GGUF fake model")
    show = httpx.post(f"{emu.url}/api/show", json={"model": "smol"}).json()
    assert show["system"] == "Be nice." and "tools" in show["capabilities"]
    assert 'stop "<|im_end|>"' in show["parameters"]


def test_create_without_stream_returns_one_object(emu):
    d = _upload(emu, b"model bytes")
    r = httpx.post(f"{emu.url}/api/create", json={"model": "m:v1", "files": {"m.gguf": d}, "stream": False})
    assert r.status_code == 200 and r.json() == {"status": "success"}


@pytest.mark.parametrize("body,match", [
    ({"model": "m", "files": {"m.gguf": "sha256:" + "0" * 64}}, "not found"),
    ({"model": "m"}, "neither 'from' or 'files'"),
    ({"model": "bad name!", "from": "x"}, "invalid model name"),
    ({"model": "m", "from": "x", "quantize": "q3_bogus"}, "unsupported quantization"),
])
def test_create_rejects_bad_requests(emu, body, match):
    r = httpx.post(f"{emu.url}/api/create", json=body)
    assert r.status_code == 400 and match in r.json()["error"]
    assert emu.models == {}


def test_delete_version_and_missing_models(emu):
    d = _upload(emu, b"x")
    httpx.post(f"{emu.url}/api/create", json={"model": "gone", "files": {"g.gguf": d}, "stream": False})
    assert httpx.get(f"{emu.url}/api/version").json()["version"]
    assert httpx.request("DELETE", f"{emu.url}/api/delete", json={"model": "gone"}).status_code == 200
    assert httpx.request("DELETE", f"{emu.url}/api/delete", json={"model": "gone"}).status_code == 404
    assert httpx.post(f"{emu.url}/api/show", json={"model": "gone"}).status_code == 404
    assert [r["status"] for r in emu.calls("DELETE")] == [200, 404]


def test_standalone_server(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "nursery_core.emulators.ollama", "--port", str(port),
                             "--blobs-dir", str(tmp_path / "blobs")], stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        assert info["url"] == f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                assert httpx.get(f"{info['url']}/api/version").status_code == 200
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert httpx.post(f"{info['url']}/api/blobs/{digest(b'abc')}", content=b"abc").status_code == 201
        assert (tmp_path / "blobs" / f"sha256-{hashlib.sha256(b'abc').hexdigest()}").exists()
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
