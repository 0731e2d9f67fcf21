"""What the managed-training REST clients (Together, Replicate) share: Bearer auth with a key that is never
logged, tenacity retries on 408/429/5xx and dropped connections, a create that never runs twice, and safe
unpacking of the adapter archives they return.

Keys come from the caller, else the environment or `.streamlit/secrets.toml` (credentials.PROVIDER_KEYS).
Retry waits come from the constructor or NURSERY_CLOUD_RETRY_WAIT / NURSERY_CLOUD_RETRY_MAX_WAIT /
NURSERY_CLOUD_RETRY_ATTEMPTS (tests against the emulators keep them short).
"""
from __future__ import annotations

import io
import logging
import os
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Callable

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from ..errors import BackendError, InvalidConfig
from . import credentials

log = logging.getLogger(__name__)

RETRY_STATUSES = {408, 429, 500, 502, 503, 504}


class ProviderAPIError(BackendError):
    """A provider's API refused or failed a call; `status` is its HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None, body: Any = None):
        super().__init__(message)
        self.status, self.body = status, body

    @property
    def transient(self) -> bool:
        return self.status is None or self.status in RETRY_STATUSES


class ProviderAuthError(ProviderAPIError):
    """The API key was rejected (401/403)."""


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def provider_key(provider: str, label: str) -> str:
    """The provider's key from its environment variable or secrets.toml; raises InvalidConfig naming both."""
    env_name = credentials.PROVIDER_KEYS[provider][0]
    key = credentials.provider_secret(provider)
    if key is None:
        raise InvalidConfig(f"no {label} API key: set the {env_name} environment variable or add "
                            f"{env_name} = \"...\" to .streamlit/secrets.toml")
    return key


class JsonApiClient:
    """An httpx client for one provider; subclasses set `provider`, `label`, `url_env`, `default_url` and
    `error_text(response)`. Every `request` retries transient failures; `create_once` adopts instead."""

    provider = ""
    label = ""
    url_env = ""
    default_url = ""

    def __init__(self, api_key: str | None = None, base_url: str | None = None, *, attempts: int | None = None,
                 wait: float | None = None, max_wait: float | None = None, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None):
        key = api_key if api_key is not None else provider_key(self.provider, self.label)
        self.base_url = (base_url or os.environ.get(self.url_env) or self.default_url).rstrip("/")
        self.attempts = int(attempts if attempts is not None else _env_float("NURSERY_CLOUD_RETRY_ATTEMPTS", 6))
        self.wait = wait if wait is not None else _env_float("NURSERY_CLOUD_RETRY_WAIT", 1.0)
        self.max_wait = max_wait if max_wait is not None else _env_float("NURSERY_CLOUD_RETRY_MAX_WAIT", 30.0)
        self._secret, self._transport, self._timeout = key, transport, timeout
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport,
                                  headers={"Authorization": f"Bearer {key}",
                                           "User-Agent": f"nursery/0.1 ({self.provider} client)"})

    def __repr__(self) -> str:  # never shows the key
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----------------------------------------------------------------------------------- plumbing
    def redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def error_text(self, r: httpx.Response) -> str:
        return r.text

    def once(self, method: str, path: str, *, ok: tuple[int, ...] = (), **kw: Any) -> httpx.Response:
        """One call; returns the response for 2xx or a status in `ok`, raises ProviderAPIError otherwise."""
        headers = kw.pop("headers", None)
        try:
            r = self._http.request(method, path, headers=headers, **kw)
        except httpx.TransportError as e:
            raise ProviderAPIError(f"cannot reach the {self.label} API at {self.base_url} ({method} {path}): "
                                   f"{type(e).__name__}: {self.redact(str(e)) or 'connection failed'}") from None
        if 200 <= r.status_code < 300 or r.status_code in ok:
            return r
        try:
            body = r.json()
        except ValueError:
            body = None
        msg = self.redact(" ".join(self.error_text(r).split()))[:300]
        if r.status_code in (401, 403):
            env_name = credentials.PROVIDER_KEYS[self.provider][0]
            raise ProviderAuthError(f"{self.label} rejected the API key ({r.status_code}: {msg}): check "
                                    f"{env_name} or .streamlit/secrets.toml", r.status_code, body)
        raise ProviderAPIError(f"{self.label} API {method} {path} answered {r.status_code}: {msg}",
                               r.status_code, body)

    def unauthenticated(self, method: str, url: str, what: str, **kw: Any) -> httpx.Response:
        """A call to a signed URL (presigned upload, weights delivery): it authenticates itself, so the API
        key is not sent there. Same retries; anything but 200 is a ProviderAPIError naming `what`."""
        for attempt in self.retrying():
            with attempt:
                try:
                    with httpx.Client(timeout=self._timeout, transport=self._transport,
                                      follow_redirects=method == "GET") as c:
                        r = c.request(method, url, **kw)
                except httpx.TransportError as e:
                    raise ProviderAPIError(f"{what} failed: {type(e).__name__}") from None
                if r.status_code != 200:
                    raise ProviderAPIError(f"{what} answered {r.status_code}: {r.text[:200]}", r.status_code)
                return r
        raise AssertionError("unreachable")

    def retrying(self, attempts: int | None = None) -> Retrying:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("%s API call failed (attempt %d): %s; retrying", self.label, state.attempt_number, exc)

        return Retrying(stop=stop_after_attempt(max(1, attempts or self.attempts)),
                        wait=wait_exponential_jitter(initial=self.wait, max=self.max_wait, jitter=self.wait / 2),
                        retry=retry_if_exception(lambda e: isinstance(e, ProviderAPIError) and e.transient),
                        before_sleep=before_sleep, reraise=True)

    def request(self, method: str, path: str, *, attempts: int | None = None, **kw: Any) -> httpx.Response:
        """`once` with retries on 408/429/5xx/connection errors (for calls that are safe to repeat)."""
        for attempt in self.retrying(attempts):
            with attempt:
                return self.once(method, path, **kw)
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, **kw: Any) -> Any:
        r = self.request(method, path, **kw)
        try:
            return r.json()
        except ValueError:
            raise ProviderAPIError(f"{self.label} API {method} {path} answered {r.status_code} with a body that "
                                   f"is not JSON ({r.headers.get('content-type')})", r.status_code) from None

    def delete(self, path: str) -> bool:
        """DELETE with retries; True when deleted, False when the API says it is already gone (404)."""
        try:
            self.request("DELETE", path)
            return True
        except ProviderAPIError as e:
            if e.status == 404:
                return False
            raise

    def create_once(self, create: Callable[[], Any], find: Callable[[], Any | None]) -> Any:
        """Runs `create` until it succeeds; after a transient failure (the create may have happened although
        the answer was lost) `find()` is asked first and what it finds is adopted instead of a second one."""
        for attempt in self.retrying():
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    found = find()
                    if found is not None:
                        log.warning("%s: adopting the object a failed create made", self.label)
                        return found
                return create()
        raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------- archives
def _safe_name(name: str) -> str:
    p = Path(name)
    if p.is_absolute() or ".." in p.parts or not name.strip("./"):
        raise ProviderAPIError(f"the archive holds an unsafe path {name!r}; nothing was unpacked")
    return str(p)


def unpack_archive(data: bytes, dest: Path | str, *, require: str | None = None, what: str = "the archive") -> list[str]:
    """Unpacks a zstd/gzip/plain tar or a zip (detected by its magic bytes) into `dest`, which must not
    exist yet; returns the file names. Refuses absolute or `..` paths, links, and an archive without the
    file `require` (nothing is written then). When every file sits under one top folder, that folder's
    content is what lands in `dest`."""
    dest = Path(dest)
    if dest.exists():
        raise ProviderAPIError(f"{dest} already exists; the adapter was not unpacked over it")
    if data[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    members: list[tuple[str, bytes]] = []
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    members.append((_safe_name(info.filename), zf.read(info)))
    else:
        try:
            tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
        except tarfile.TarError as e:
            raise ProviderAPIError(f"the downloaded archive is not a tar, tar.gz, tar.zst or zip ({e})") from None
        with tar:
            for m in tar.getmembers():
                if m.isdir():
                    continue
                if not m.isfile():
                    raise ProviderAPIError(f"the archive holds a link or device {m.name!r}; nothing was unpacked")
                fh = tar.extractfile(m)
                if fh is None:  # a regular member always has a file object; kept explicit for the type checker
                    raise ProviderAPIError(f"the archive member {m.name!r} could not be read; nothing was unpacked")
                members.append((_safe_name(m.name), fh.read()))
    if not members:
        raise ProviderAPIError("the downloaded archive is empty")
    tops = {Path(n).parts[0] for n, _ in members}
    if len(tops) == 1 and all(len(Path(n).parts) > 1 for n, _ in members):
        members = [(str(Path(*Path(n).parts[1:])), b) for n, b in members]
    if require and require not in {n for n, _ in members}:
        raise ProviderAPIError(f"{what} holds no {require} ({sorted(n for n, _ in members)[:5]}); nothing was "
                               "unpacked")
    tmp = dest.with_name(dest.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    for name, blob in members:
        out = tmp / name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(blob)
    tmp.rename(dest)
    return sorted(n for n, _ in members)
