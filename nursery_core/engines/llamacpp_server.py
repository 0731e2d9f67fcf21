"""One GGUF in llama.cpp's server engine (xllamacpp's embedded llama-server, in-process, on a free loopback
port): tokenize, greedy completion and streamed completion over its HTTP API.

Export verification and interactive inference (engines/llamacpp.py) both run GGUFs through it. Request fields
are llama-server's /completion API (github.com/ggml-org/llama.cpp, tools/server/README.md).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from ..errors import BackendError


def default_threads() -> int:
    """Threads per server: NURSERY_LLAMACPP_THREADS, else half the cores (at least 1, at most 8). llama.cpp's
    threads spin while they wait, so on a shared machine more threads than free cores is many times slower."""
    env = os.environ.get("NURSERY_LLAMACPP_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise BackendError(f"NURSERY_LLAMACPP_THREADS must be a whole number, not {env!r}") from None
    return max(1, min(8, (os.cpu_count() or 2) // 2))


class GGUFRunner:
    """A GGUF loaded in llama.cpp's server engine (in-process, on a free loopback port) for tokenize/complete."""

    def __init__(self, gguf_path: Path | str, n_ctx: int = 4096, threads: int | None = None):
        try:
            import xllamacpp as xlc
        except ImportError:
            raise BackendError("llama.cpp's Python bindings (xllamacpp) are not installed: run `make setup`") from None
        import httpx

        p = xlc.CommonParams()
        p.model.path = str(gguf_path)
        p.n_ctx = n_ctx
        p.n_parallel = 1
        p.warmup = False
        p.verbosity = 0
        threads = threads or max(1, os.cpu_count() or 1)
        p.cpuparams.n_threads = threads
        p.cpuparams_batch.n_threads = threads
        try:
            self._server = xlc.Server(p)
        except Exception as e:
            raise BackendError(f"llama.cpp could not load {Path(gguf_path).name}: {e}") from e
        self.path = Path(gguf_path)
        self.n_ctx = n_ctx
        self.threads = threads
        self.url = self._server.listening_address
        self._http = httpx.Client(base_url=self.url, timeout=600, trust_env=False)

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        r = self._http.post("/tokenize", json={"content": text, "add_special": add_special, "parse_special": True})
        r.raise_for_status()
        return list(r.json()["tokens"])

    def complete(self, prompt: str | list[int], max_new_tokens: int) -> list[int]:
        """Greedy token ids (argmax each step) after the prompt, until an end-of-generation token or the limit."""
        body = {"prompt": prompt, "n_predict": max_new_tokens, "temperature": 0.0, "top_k": 1,
                "samplers": ["top_k"], "repeat_penalty": 1.0, "return_tokens": True, "cache_prompt": False,
                "seed": 0}
        r = self._http.post("/completion", json=body)
        if r.status_code >= 400:
            raise BackendError(f"llama.cpp completion failed ({r.status_code}): {r.text[:200]}")
        return list(r.json().get("tokens") or [])

    def stream(self, body: dict[str, Any]) -> Iterator[dict]:
        """The events of a streamed /completion (`stream` is set here): each a dict with `content`, `tokens`
        (with return_tokens) and, on the last, `stop`, `stop_type` ("eos" | "limit" | "word") and `timings`.
        Closing the generator early drops the connection, which makes the server stop that generation."""
        with self._http.stream("POST", "/completion", json={**body, "stream": True}) as r:
            if r.status_code >= 400:
                r.read()
                raise BackendError(f"llama.cpp completion failed ({r.status_code}): {r.text[:200]}")
            for line in r.iter_lines():
                if not line.startswith("data: "):
                    continue
                event = json.loads(line[len("data: "):])
                if "error" in event:
                    raise BackendError(f"llama.cpp completion failed: {event['error']}")
                yield event

    def close(self) -> None:
        self._http.close()
        server, self._server = getattr(self, "_server", None), None
        del server

    def __enter__(self) -> "GGUFRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
