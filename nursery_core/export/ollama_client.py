"""Registers an exported model with an Ollama server over its HTTP API (httpx): blobs are uploaded only when
the server lacks them (HEAD before POST), then `POST /api/create` with the Modelfile's fields, its streamed
status lines passed to a progress callback."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from ..errors import BackendError, InvalidInput
from .modelfile import read_modelfile

DEFAULT_PORT = 11434
Progress = Callable[[dict], None]


def normalise_host(host: str | None = None) -> str:
    """A base URL from OLLAMA_HOST-style values ("127.0.0.1", "0.0.0.0:11434", "http://box:8080", ...)."""
    raw = (host if host is not None else os.environ.get("OLLAMA_HOST", "")).strip()
    if not raw:
        raise InvalidInput("no Ollama host configured: set OLLAMA_HOST or pass --ollama-host", field="ollama_host")
    if "://" not in raw:
        raw = "http://" + raw
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in parts.netloc):
        raise InvalidInput(f"{raw!r} is not an Ollama address such as http://127.0.0.1:11434",
                           field="ollama_host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else DEFAULT_PORT)
    except ValueError:  # urllib: a port that is not a number, or outside 0-65535
        raise InvalidInput(f"{raw!r}: the port must be a number from 1 to 65535", field="ollama_host") from None
    hostname = "127.0.0.1" if parts.hostname in ("0.0.0.0", "::") else parts.hostname
    if ":" in hostname:
        hostname = f"[{hostname}]"
    return f"{parts.scheme}://{hostname}:{port}{parts.path.rstrip('/')}"


def file_digest(path: Path | str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            piece = fh.read(chunk)
            if not piece:
                break
            h.update(piece)
    return "sha256:" + h.hexdigest()


class OllamaClient:
    """The few Ollama endpoints Nursery uses; every failure is a BackendError with the server's message."""

    def __init__(self, host: str | None = None, timeout: float = 600.0):
        import httpx

        self.host = normalise_host(host)
        self._http = httpx.Client(base_url=self.host, timeout=httpx.Timeout(timeout, connect=10.0),
                                  trust_env=False)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "OllamaClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _request(self, method: str, path: str, **kw):
        import httpx

        try:
            r = self._http.request(method, path, **kw)
        except httpx.ConnectError:
            raise BackendError(f"cannot reach Ollama at {self.host}: is `ollama serve` running there? "
                               "(set OLLAMA_HOST or --ollama-host to its address)") from None
        except httpx.TimeoutException:
            raise BackendError(f"Ollama at {self.host} did not answer {method} {path} in time") from None
        except httpx.HTTPError as e:
            raise BackendError(f"Ollama at {self.host}: {method} {path} failed: {e}") from None
        return r

    @staticmethod
    def _error(r, what: str) -> BackendError:
        try:
            msg = r.json().get("error") or r.text
        except ValueError:
            msg = r.text
        return BackendError(f"Ollama refused {what} ({r.status_code}): {str(msg).strip()[:300]}")

    def version(self) -> str:
        r = self._request("GET", "/api/version")
        if r.status_code != 200:
            raise self._error(r, "the version request")
        return r.json().get("version", "")

    def has_blob(self, digest: str) -> bool:
        r = self._request("HEAD", f"/api/blobs/{digest}")
        if r.status_code == 200:
            return True
        if r.status_code == 404:
            return False
        raise self._error(r, f"the blob check for {digest}")

    def push_blob(self, path: Path | str, digest: str | None = None) -> dict:
        """Uploads a file unless the server has it; returns {"digest", "uploaded", "size"}."""
        path = Path(path)
        digest = digest or file_digest(path)
        if self.has_blob(digest):
            return {"digest": digest, "uploaded": False, "size": path.stat().st_size}
        with open(path, "rb") as fh:
            r = self._request("POST", f"/api/blobs/{digest}", content=fh,
                              headers={"Content-Length": str(path.stat().st_size),
                                       "Content-Type": "application/octet-stream"})
        if r.status_code not in (200, 201):
            raise self._error(r, f"the upload of {path.name}")
        return {"digest": digest, "uploaded": True, "size": path.stat().st_size}

    def create(self, request: dict, progress: Progress | None = None) -> list[dict]:
        """POST /api/create, streaming; returns every status line (the last is {"status": "success"})."""
        import httpx

        body = {**request, "stream": True}
        lines: list[dict] = []
        try:
            with self._http.stream("POST", "/api/create", json=body) as r:
                if r.status_code != 200:
                    r.read()
                    raise self._error(r, f"creating {request.get('model')!r}")
                for raw in r.iter_lines():
                    if not raw.strip():
                        continue
                    try:
                        line = json.loads(raw)
                    except ValueError:
                        continue
                    if line.get("error"):
                        raise BackendError(f"Ollama failed to create {request.get('model')!r}: {line['error']}")
                    lines.append(line)
                    if progress:
                        progress(line)
        except httpx.ConnectError:
            raise BackendError(f"cannot reach Ollama at {self.host}: is `ollama serve` running there?") from None
        except httpx.HTTPError as e:
            raise BackendError(f"Ollama at {self.host}: create failed: {e}") from None
        if not lines or lines[-1].get("status") != "success":
            raise BackendError(f"Ollama did not confirm creating {request.get('model')!r} "
                               f"(last status: {lines[-1].get('status') if lines else 'none'})")
        return lines

    def show(self, model: str) -> dict:
        r = self._request("POST", "/api/show", json={"model": model})
        if r.status_code != 200:
            raise self._error(r, f"showing {model!r}")
        return r.json()

    def list_models(self) -> list[dict]:
        r = self._request("GET", "/api/tags")
        if r.status_code != 200:
            raise self._error(r, "listing models")
        return r.json().get("models", [])


def create_request(modelfile_path: Path | str, name: str, quantize: str | None = None) -> tuple[dict, dict]:
    """(create request without digests, {file name: local path}) from a Modelfile whose FROM is a local file."""
    mf_path = Path(modelfile_path)
    fields = read_modelfile(mf_path)
    src = fields["from"]
    local = (mf_path.parent / src).resolve() if not Path(src).is_absolute() else Path(src)
    files: dict[str, Path] = {}
    req: dict[str, Any] = {"model": name}
    if local.is_file():
        files[local.name] = local
    elif local.is_dir():
        raise InvalidInput(f"FROM {src} is a directory: Nursery registers GGUF files", file=str(mf_path))
    elif src.startswith((".", "/")) or src.endswith(".gguf"):
        raise InvalidInput(f"FROM {src}: the file does not exist next to the Modelfile", file=str(mf_path))
    else:
        req["from"] = src
    adapters: dict[str, Path] = {}
    for a in fields.get("adapters", []):
        ap = (mf_path.parent / a).resolve()
        if not ap.is_file():
            raise InvalidInput(f"ADAPTER {a}: the file does not exist", file=str(mf_path))
        adapters[ap.name] = ap
    for key in ("template", "system", "license", "parameters", "messages"):
        if key in fields:
            req[key] = fields[key]
    if quantize:
        req["quantize"] = quantize
    return req, {"files": files, "adapters": adapters}


def register_modelfile(modelfile_path: Path | str, name: str, host: str | None = None,
                       quantize: str | None = None, progress: Progress | None = None) -> dict:
    """Uploads the Modelfile's files and creates `name` on the server; returns what happened."""
    from .gguf import OLLAMA_QUANTIZE

    if quantize and quantize not in OLLAMA_QUANTIZE:
        raise InvalidInput(f"quantize must be one of {', '.join(OLLAMA_QUANTIZE)}", field="quantize")
    req, local = create_request(modelfile_path, name, quantize)
    progress = progress or (lambda line: None)
    with OllamaClient(host) as client:
        version = client.version()
        uploads = []
        for group in ("files", "adapters"):
            digests = {}
            for fname, path in local[group].items():
                progress({"status": f"uploading {fname}", "step": "upload"})
                res = client.push_blob(path)
                uploads.append({"file": fname, **res})
                digests[fname] = res["digest"]
            if digests:
                req[group] = digests
        statuses = client.create(req, progress=progress)
        return {"host": client.host, "server_version": version, "model": name, "uploads": uploads,
                "statuses": [s.get("status") for s in statuses], "request": req}
