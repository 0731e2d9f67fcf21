"""What the HTTP emulators (Vast.ai, Together, Replicate) share: a threaded HTTP server on loopback, key auth
(bearer by default; a subclass decides per route), a request log, per-endpoint fault injection, a
`/_emulator/*` control plane, multipart parsing and the standalone `main` loop.

A fault answers the next `count` calls to an endpoint (after `skip` good ones) with `status`; status 0
drops the connection without a reply; `apply=True` performs the action first, so the client sees an error
for something that happened (the case that makes a blind retry of a create dangerous).
"""
from __future__ import annotations

import json
import re
import secrets
import signal
import threading
import time
from dataclasses import asdict, dataclass
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Protocol, TypeVar
from urllib.parse import parse_qs, urlsplit


@dataclass
class Fault:
    endpoint: str
    status: int
    count: int = 1
    body: Any = None
    apply: bool = False
    skip: int = 0

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "body"}


class ApiError(Exception):
    """Raised inside a route: the handler answers `status` with the provider's error body."""

    def __init__(self, status: int, message: str, headers: dict | None = None, **extra: Any):
        super().__init__(message)
        self.status, self.message, self.headers, self.extra = int(status), message, headers or {}, extra


@dataclass
class Reply:
    status: int
    body: Any = None                      # dict/list -> JSON; bytes/str as they are
    content_type: str = "application/json"
    headers: dict | None = None


# method, path regex (named groups become params), endpoint name, auth (falsy: open; else what `authorize` is
# given: True for the API key, or a subclass's own kind)
Route = tuple[str, str, str, Any]


def parse_multipart(content_type: str, raw: bytes) -> dict[str, dict]:
    """Form fields of a multipart/form-data body: name -> {"filename", "content_type", "data" (bytes)}.

    Raises ApiError(400) when the body is not multipart or has no boundary."""
    if "multipart/form-data" not in (content_type or "") or "boundary=" not in content_type:
        raise ApiError(400, f"expected a multipart/form-data body with a boundary, got {content_type!r}")
    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
    if not msg.is_multipart():
        raise ApiError(400, "the multipart body could not be parsed")
    out: dict[str, dict] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str) and name:
            out[name] = {"filename": part.get_filename(), "content_type": part.get_content_type(),
                         "data": part.get_payload(decode=True) or b""}
    return out


class EmulatorServer:
    """Base of an emulated API; `start()` serves it on `host` in a daemon thread (`.url`), `stop()` ends it.

    Subclasses set `name`, `routes`, implement `route(endpoint, method, params, query, request)` returning
    a Reply, `error_reply(status, message, **extra)` in the provider's error shape, and may extend
    `authorize()`, `auth_failure()`, `fault_reply()`, `control()` and `state()`."""

    name = "emulator"
    routes: list[Route] = []

    def __init__(self, api_keys: list[str] | str = "emulator-key", *, host: str = "127.0.0.1", port: int = 0):
        self.api_keys = {api_keys} if isinstance(api_keys, str) else set(api_keys)
        self.faults: list[Fault] = []
        self.requests: list[dict] = []            # method, path (no query), endpoint, status, ts
        self._lock = threading.RLock()
        self._host, self._port = host, port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes_re = [(m, re.compile("^" + p + "/?$"), n, a) for m, p, n, a in self.routes]

    # ---------------------------------------------------------------------------------- lifecycle
    def start(self):
        emu = self

        class Handler(_Handler):
            emulator = emu

        self._server = ThreadingHTTPServer((self._host, self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name=f"{self.name}-emulator", daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------------------- test controls
    def add_fault(self, endpoint: str, status: int, count: int = 1, body: Any = None, apply: bool = False,
                  skip: int = 0) -> None:
        """Answers the next `count` calls to `endpoint` ("*" for any) after `skip` good ones with `status`."""
        with self._lock:
            self.faults.append(Fault(endpoint, int(status), int(count), body, bool(apply), int(skip)))

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def calls(self, endpoint: str) -> list[dict]:
        """The logged requests to one endpoint, oldest first."""
        with self._lock:
            return [r for r in self.requests if r["endpoint"] == endpoint]

    def state(self) -> dict:
        with self._lock:
            return {"faults": [f.to_dict() for f in self.faults], "requests": list(self.requests)}

    # ------------------------------------------------------------------------------- for subclasses
    def check_key(self, key: str | None) -> bool:
        return key is not None and any(secrets.compare_digest(key, k) for k in self.api_keys)

    def authorize(self, auth: Any, params: dict, query: dict, request: "_Handler") -> bool:
        """Whether a request to a route whose auth is `auth` (truthy) may go on: by default its bearer key."""
        return self.check_key(request.bearer())

    def auth_failure(self) -> ApiError:
        """What a request that fails `authorize` is answered with."""
        return ApiError(401, "invalid API key")

    def route(self, endpoint: str, method: str, params: dict, query: dict, request: "_Handler") -> Reply:
        """Answers one authorised, fault-free request: each provider's emulator implements its own API here
        (together.py, replicate.py); the base only serves, authenticates, logs and injects faults."""
        raise NotImplementedError(f"{type(self).__name__} does not answer {method} {endpoint}")

    def error_reply(self, status: int, message: str, **extra: Any) -> Reply:
        return Reply(status, {"error": {"message": message}})

    def fault_reply(self, fault: Fault) -> Reply:
        if fault.body is not None:
            return Reply(fault.status, fault.body)
        names = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
                 503: "Service Unavailable", 504: "Gateway Timeout"}
        reply = self.error_reply(fault.status, names.get(fault.status, "injected fault"))
        if fault.status == 429:
            reply.headers = {**(reply.headers or {}), "Retry-After": "0"}
        return reply

    def control(self, method: str, path: str, body: Any) -> Reply:
        """`/_emulator/faults` (GET, POST one or a list, DELETE) and `/_emulator/state`."""
        if path.rstrip("/") == "/_emulator/faults":
            if method == "POST":
                for f in body if isinstance(body, list) else [body]:
                    self.add_fault(f["endpoint"], f["status"], f.get("count", 1), f.get("body"),
                                   f.get("apply", False), f.get("skip", 0))
            elif method == "DELETE":
                self.clear_faults()
            return Reply(200, {"success": True, "faults": [f.to_dict() for f in self.faults]})
        if path.rstrip("/") == "/_emulator/state":
            return Reply(200, self.state())
        return Reply(404, {"error": "unknown emulator control path"})

    def _take_fault(self, endpoint: str) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.endpoint in (endpoint, "*") and f.count > 0:
                    if f.skip > 0:
                        f.skip -= 1
                        continue
                    f.count -= 1
                    if f.count <= 0:
                        self.faults.remove(f)
                    return f
        return None


class _Handler(BaseHTTPRequestHandler):
    emulator: EmulatorServer
    _endpoint: str = "unknown"
    _recorded: bool = False
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "nginx"
    sys_version = ""

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet: tests read emulator.requests instead
        return

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    # ------------------------------------------------------------------------------------- helpers
    @property
    def raw(self) -> bytes:
        return self._raw

    def json_body(self) -> Any:
        if not self._raw.strip():
            return {}
        try:
            return json.loads(self._raw)
        except ValueError:
            raise ApiError(400, "the request body is not JSON") from None

    def form(self) -> dict[str, dict]:
        return parse_multipart(self.headers.get("Content-Type") or "", self._raw)

    def bearer(self) -> str | None:
        auth = (self.headers.get("Authorization") or "").strip()
        scheme, _, value = auth.partition(" ")
        return value.strip() if scheme.lower() in ("bearer", "token") and value.strip() else None

    # ------------------------------------------------------------------------------------ plumbing
    def _send(self, reply: Reply) -> None:
        body = reply.body
        data = body if isinstance(body, bytes) else (
            body.encode() if isinstance(body, str) else b"" if body is None else json.dumps(body).encode())
        self._record(reply.status)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        for k, v in (reply.headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _record(self, status: int) -> None:
        """Logs the call before replying, so a client that got its answer finds it in `requests`."""
        if self._recorded:
            return
        self._recorded = True
        with self.emulator._lock:
            self.emulator.requests.append({"method": self.command, "path": urlsplit(self.path).path,
                                           "endpoint": self._endpoint, "status": status, "ts": time.time()})

    def _dispatch(self, method: str) -> None:
        emu = self.emulator
        # read the body first, whatever happens next, so a keep-alive connection stays in sync
        n = int(self.headers.get("Content-Length") or 0)
        self._raw = self.rfile.read(n) if n else b""
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        self._endpoint, self._recorded = "unknown", False
        try:
            if path.startswith("/_emulator/"):
                self._endpoint = "control"
                self._send(emu.control(method, path, self.json_body()))
                return
            for m, rx, name, auth in emu._routes_re:
                match = rx.match(path)
                if m == method and match:
                    endpoint, params = name, match.groupdict()
                    self._endpoint = endpoint
                    break
            else:
                raise ApiError(404, f"no route for {method} {path}")
            if auth and not emu.authorize(auth, params, query, self):
                raise emu.auth_failure()
            fault = emu._take_fault(endpoint)
            if fault is not None and fault.apply:
                emu.route(endpoint, method, params, query, self)  # it happened, but the reply is an error
            if fault is not None:
                if fault.status == 0:
                    self._record(0)
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self._send(emu.fault_reply(fault))
                return
            self._send(emu.route(endpoint, method, params, query, self))
        except ApiError as e:
            reply = emu.error_reply(e.status, e.message, **e.extra)
            reply.headers = {**(reply.headers or {}), **e.headers}
            self._send(reply)


class _Servable(Protocol):
    def start(self) -> Any: ...

    def stop(self) -> None: ...


_E = TypeVar("_E", bound=_Servable)


def serve_forever(emu: _E, banner: Callable[[_E], str]) -> int:
    """Starts `emu`, prints `banner(emu)`, and serves until SIGTERM or Ctrl-C (the standalone entry points)."""
    emu.start()
    print(banner(emu), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    emu.stop()
    return 0


def query_value(query: dict, name: str, default: str | None = None) -> str | None:
    vals = query.get(name)
    return vals[0] if vals else default
