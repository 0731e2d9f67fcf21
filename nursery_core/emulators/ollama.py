"""A local stub of the Ollama server's model-management API (no inference) for tests and demos.

It implements what registration uses, with Ollama's status codes: `HEAD/POST /api/blobs/sha256:<hex>` (the
upload's digest is checked: 400 on mismatch, 201 when created), `POST /api/create` (referenced blobs must
exist; streams `{"status": ...}` lines ending with success, or one object with `stream: false`),
`GET /api/tags`, `POST /api/show`, `GET /api/version` and `DELETE /api/delete`. Every request is logged in
`.requests` so tests can assert on order and payloads.

Standalone: `python -m nursery_core.emulators.ollama --port 11434 [--blobs-dir DIR]`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import signal
import tempfile
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

VERSION = "0.12.0"
_DIGEST_RE = re.compile(r"^sha256[:-]([0-9a-f]{64})$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}(?::[A-Za-z0-9._-]{1,80})?$")
QUANTIZE_TYPES = ("q4_K_M", "q4_K_S", "q8_0")


def full_name(name: str) -> str:
    """Ollama's canonical model name: a missing tag means `latest`."""
    return name if ":" in name else f"{name}:latest"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class OllamaEmulator:
    """In-process server: `OllamaEmulator().start()`, then `.url`, `.requests`, `.models`, `.stop()`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, blobs_dir: Path | str | None = None):
        self.host, self._port = host, port
        self._own_dir = blobs_dir is None
        self.blobs_dir = Path(blobs_dir) if blobs_dir else Path(tempfile.mkdtemp(prefix="ollama-emulator-"))
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        self.requests: list[dict] = []
        self.models: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------ lifecycle
    def start(self) -> "OllamaEmulator":
        emulator = self

        class Handler(_Handler):
            pass

        Handler.emulator = emulator
        self._server = ThreadingHTTPServer((self.host, self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="ollama-emulator", daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._own_dir:
            shutil.rmtree(self.blobs_dir, ignore_errors=True)

    def __enter__(self) -> "OllamaEmulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---------------------------------------------------------------------------------------- state
    def blob_path(self, hexdigest: str) -> Path:
        return self.blobs_dir / f"sha256-{hexdigest}"

    def has_blob(self, digest: str) -> bool:
        m = _DIGEST_RE.match(digest)
        return m is not None and self.blob_path(m.group(1)).exists()

    def log(self, entry: dict) -> None:
        with self._lock:
            self.requests.append(entry)

    def calls(self, method: str | None = None, path_prefix: str = "") -> list[dict]:
        with self._lock:
            return [r for r in self.requests
                    if (method is None or r["method"] == method) and r["path"].startswith(path_prefix)]


class _HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class _Handler(BaseHTTPRequestHandler):
    emulator: OllamaEmulator
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # tests read emulator.requests instead
        pass

    # ----------------------------------------------------------------------------------- plumbing
    def _body_chunks(self, size: int = 1 << 20):
        """The request body in pieces (Content-Length or chunked transfer encoding), never all in memory."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                n = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    self.rfile.readline()
                    return
                while n:
                    piece = self.rfile.read(min(n, size))
                    if not piece:
                        return
                    n -= len(piece)
                    yield piece
                self.rfile.readline()
        left = int(self.headers.get("Content-Length") or 0)
        while left > 0:
            piece = self.rfile.read(min(left, size))
            if not piece:
                return
            left -= len(piece)
            yield piece

    def _read_body(self) -> bytes:
        return b"".join(self._body_chunks())

    def _json_body(self, raw: bytes) -> dict:
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise _HttpError(400, "invalid JSON body") from None
        if not isinstance(data, dict):
            raise _HttpError(400, "the body must be a JSON object")
        return data

    def _send(self, status: int, body: Any = None, content_type: str = "application/json") -> None:
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD" and data:
            self.wfile.write(data)

    def _stream(self, lines: list[dict]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for line in lines:
            chunk = (json.dumps(line) + "\n").encode()
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _dispatch(self) -> None:
        path = self.path.split("?", 1)[0]
        entry: dict[str, Any] = {"method": self.command, "path": path}
        try:
            if path.startswith("/api/blobs/"):
                reply = self._blob(path[len("/api/blobs/"):], entry)
            else:
                raw = b"" if self.command in ("GET", "HEAD") else self._read_body()
                body = self._json_body(raw) if self.command in ("POST", "DELETE") else {}
                entry["json"] = body
                route = {("POST", "/api/create"): self._create, ("GET", "/api/tags"): self._tags,
                         ("POST", "/api/show"): self._show, ("GET", "/api/version"): self._version,
                         ("HEAD", "/"): self._root, ("GET", "/"): self._root,
                         ("DELETE", "/api/delete"): self._delete}.get((self.command, path))
                if route is None:
                    raise _HttpError(404, f"{self.command} {path} not found")
                reply = route(body)
        except _HttpError as e:
            reply = (e.status, {"error": e.message})
        entry["status"] = reply[0]
        # Logged before answering, so a client that got its answer always finds its request in the log.
        self.emulator.log(entry)
        if len(reply) == 3 and reply[2] == "stream":
            self._stream(reply[1])
        else:
            self._send(*reply)

    do_GET = do_POST = do_HEAD = do_DELETE = _dispatch

    # ------------------------------------------------------------------------------------- routes
    def _root(self, body: dict) -> tuple:
        return 200, b"Ollama is running", "text/plain"

    def _version(self, body: dict) -> tuple:
        return 200, {"version": VERSION}

    def _blob(self, digest: str, entry: dict) -> tuple:
        m = _DIGEST_RE.match(digest)
        if not m:
            if self.command == "POST":
                entry["bytes"] = sum(len(c) for c in self._body_chunks())
            raise _HttpError(400, f"invalid digest format {digest!r}")
        target = self.emulator.blob_path(m.group(1))
        if self.command == "HEAD":
            return (200 if target.exists() else 404), None
        if self.command != "POST":
            raise _HttpError(405, "method not allowed")
        h, size = hashlib.sha256(), 0
        tmp = target.with_name(target.name + f".partial-{threading.get_ident()}")
        with open(tmp, "wb") as fh:
            for piece in self._body_chunks():
                h.update(piece)
                size += len(piece)
                fh.write(piece)
        entry["bytes"] = size
        if h.hexdigest() != m.group(1):
            tmp.unlink(missing_ok=True)
            raise _HttpError(400, f'digest mismatch, expected "sha256:{m.group(1)}", got "sha256:{h.hexdigest()}"')
        if target.exists():
            tmp.unlink(missing_ok=True)
            return 200, None
        tmp.rename(target)
        return 201, None

    def _create(self, body: dict) -> tuple:
        name = body.get("model") or body.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise _HttpError(400, f"invalid model name {name!r}")
        files = body.get("files") or {}
        adapters = body.get("adapters") or {}
        if not files and not body.get("from"):
            raise _HttpError(400, "neither 'from' or 'files' was specified")
        for group in (files, adapters):
            if not isinstance(group, dict):
                raise _HttpError(400, "files and adapters must map file names to digests")
            for fname, digest in group.items():
                if not isinstance(digest, str) or not self.emulator.has_blob(digest):
                    raise _HttpError(400, f"blob {digest!r} for {fname!r} not found: upload it first")
        if files and not any(f.endswith(".gguf") for f in files) and "config.json" not in files:
            raise _HttpError(400, "files must contain a .gguf file or a safetensors model directory")
        quantize = body.get("quantize")
        if quantize is not None and quantize not in QUANTIZE_TYPES:
            raise _HttpError(400, f"unsupported quantization type {quantize}")
        for key in ("template", "system"):
            if key in body and not isinstance(body[key], str):
                raise _HttpError(400, f"{key} must be a string")
        params = body.get("parameters") or {}
        if not isinstance(params, dict) or not isinstance(params.get("stop", []), list):
            raise _HttpError(400, "parameters must be an object and stop a list of strings")
        statuses = [{"status": "parsing GGUF"}]
        if quantize:
            statuses.append({"status": f"quantizing F16 model to {quantize.upper()}"})
        for digest in list(files.values()) + list(adapters.values()):
            statuses.append({"status": f"using existing layer {digest}"})
        for key in ("template", "system", "parameters"):
            if body.get(key):
                blob = json.dumps(body[key]) if key == "parameters" else body[key]
                statuses.append({"status": "creating new layer sha256:"
                                           + hashlib.sha256(blob.encode()).hexdigest()})
        statuses += [{"status": "writing manifest"}, {"status": "success"}]
        size = sum(self.emulator.blob_path(d.split(":", 1)[1]).stat().st_size for d in files.values())
        with self.emulator._lock:
            self.emulator.models[full_name(name)] = {
                "request": body, "modified_at": _now(), "size": size,
                "digest": hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()}
        if body.get("stream") is False:
            return 200, statuses[-1]
        return 200, statuses, "stream"

    def _model(self, body: dict) -> tuple[str, dict]:
        name = body.get("model") or body.get("name")
        if not isinstance(name, str) or not name:
            raise _HttpError(400, "model is required")
        found = self.emulator.models.get(full_name(name))
        if found is None:
            raise _HttpError(404, f"model '{name}' not found")
        return full_name(name), found

    def _tags(self, body: dict) -> tuple:
        models = [{"name": n, "model": n, "modified_at": m["modified_at"], "size": m["size"],
                   "digest": m["digest"], "details": {"format": "gguf"}}
                  for n, m in sorted(self.emulator.models.items())]
        return 200, {"models": models}

    def _show(self, body: dict) -> tuple:
        name, m = self._model(body)
        req = m["request"]
        params = req.get("parameters") or {}
        param_lines = [f"{k} {json.dumps(x) if isinstance(x, str) else x}"
                       for k, v in params.items() for x in (v if isinstance(v, list) else [v])]
        template = req.get("template") or "{{ .Prompt }}"
        caps = ["completion"] + (["tools"] if ".Tools" in template else [])
        return 200, {"modelfile": f"# emulated\nFROM {name}\n", "parameters": "\n".join(param_lines),
                     "template": template, "system": req.get("system", ""),
                     "details": {"format": "gguf", "quantization_level": req.get("quantize") or ""},
                     "capabilities": caps, "modified_at": m["modified_at"]}

    def _delete(self, body: dict) -> tuple:
        name, _ = self._model(body)
        with self.emulator._lock:
            del self.emulator.models[name]
        return 200, None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nursery_core.emulators.ollama",
                                 description="A stub Ollama server (blobs, create, tags, show, delete).")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=11434)
    ap.add_argument("--blobs-dir", help="where uploaded blobs are kept (default: a temporary directory)")
    args = ap.parse_args(argv)
    emu = OllamaEmulator(args.host, args.port, args.blobs_dir).start()
    print(json.dumps({"url": emu.url, "blobs_dir": str(emu.blobs_dir)}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    stop.wait()
    emu.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
