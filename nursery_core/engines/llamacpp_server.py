"""One GGUF in llama.cpp's server engine (xllamacpp's embedded llama-server, in a child process, on a free
loopback port): tokenize, greedy completion and streamed completion over its HTTP API, in one or several slots.

Export verification and interactive inference (engines/llamacpp.py) both run GGUFs through it. Request fields
are llama-server's /completion API and its /slots save/restore actions (github.com/ggml-org/llama.cpp,
tools/server/README.md). Slots decode together in one batch: on this project's 2-core CPU a step for 2 answers
took 1.3x and for 4 answers 1.9x the time of a step for one (SmolLM2-135M, f16, one thread).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any, Iterator

from ..errors import BackendError


def _threads_from(variable: str, default: int) -> int:
    """A thread count from the environment variable `variable` (at least 1), else `default`. Raises
    BackendError when it is not a whole number."""
    env = os.environ.get(variable, "").strip()
    if not env:
        return default
    try:
        return max(1, int(env))
    except ValueError:
        raise BackendError(f"{variable} must be a whole number, not {env!r}") from None


def default_threads() -> int:
    """Threads of a batch server: NURSERY_LLAMACPP_THREADS, else half the cores (at least 1, at most 8).
    llama.cpp's threads spin while they wait, so on a shared machine more threads than free cores is many times
    slower."""
    return _threads_from("NURSERY_LLAMACPP_THREADS", max(1, min(8, (os.cpu_count() or 2) // 2)))


def solo_threads() -> int:
    """Threads of a model's solo server (one streamed answer at a time, engines/llamacpp.py): every core (at most
    8), since the user turn of a prompt is computed before its first token; NURSERY_LLAMACPP_SOLO_THREADS
    overrides. On this project's 2-core CPU a 20-token user turn took ~140 ms on two threads, ~270 ms on one
    (f16)."""
    return _threads_from("NURSERY_LLAMACPP_SOLO_THREADS", max(1, min(8, os.cpu_count() or 1)))


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading token ids `a` and `b` share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class GGUFRunner:
    """A GGUF loaded in llama.cpp's server engine (a child process of its own, see _llamacpp_child.py, on a free
    loopback port) for tokenize/complete.

    `loras`: LoRA GGUFs (export.gguf.convert_lora) applied over the model at scale 1 to every request; `identity`
    is the file that names the weights served (the last LoRA, else the GGUF), which the prompt KV store keys by.
    `slots` requests run at once, each in its own slot of `n_ctx` tokens. `cached[k]` is the prompt slot k last
    ran (its KV cache, kept by `cache_prompt`, holds a prefix of it) when every request names its slot. It is a
    hint for placing prompts and copying prefixes only: llama-server itself finds what a slot can reuse."""

    def __init__(self, gguf_path: Path | str, n_ctx: int = 4096, threads: int | None = None, slots: int = 1,
                 slot_files: bool | None = None, loras: list[Path | str] | None = None):
        import importlib.util

        if importlib.util.find_spec("xllamacpp") is None:
            raise BackendError("llama.cpp's Python bindings (xllamacpp) are not installed: run `make setup`")
        import httpx

        threads = threads or max(1, os.cpu_count() or 1)
        # the server's log, and where copy_slot passes a slot's KV to another
        self._dir = tempfile.mkdtemp(prefix="nursery-llamacpp-")
        self._proc = None
        # each slot gets a whole n_ctx of its own (a unified cache would let one long prompt starve the others);
        # llama-server joins slot_save_path and a file name unseparated. Slot files (copy_slot, save_slot,
        # restore_slot) are on by default with several slots
        self._slot_files = slots > 1 if slot_files is None else slot_files
        loras = [str(p) for p in loras or []]
        cfg = {"path": str(gguf_path), "n_ctx": n_ctx * slots, "slots": slots, "threads": threads,
               "slot_save_path": self._dir + os.sep if self._slot_files else "", "loras": loras}
        name = Path(gguf_path).name
        try:
            with open(Path(self._dir, "server.log"), "wb") as log:
                self._proc = subprocess.Popen(
                    [sys.executable, str(Path(__file__).with_name("_llamacpp_child.py")), json.dumps(cfg)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
            assert self._proc.stdout is not None  # stdout=PIPE
            line = self._proc.stdout.readline()
            started = json.loads(line) if line.strip() else {"error": f"it stopped ({self._log_tail()})"}
        except (OSError, ValueError) as e:
            started = {"error": str(e)}
        if "url" not in started:
            self.close()
            raise BackendError(f"llama.cpp could not load {name}: {started.get('error')}")
        self.path = Path(gguf_path)
        self.loras = [Path(p) for p in loras]
        self.identity = self.loras[-1] if self.loras else self.path
        self.n_ctx = n_ctx
        self.slots = slots
        self.cached: list[list[int]] = [[] for _ in range(slots)]
        self._cached_lock = threading.Lock()
        self.threads = threads
        self.url = started["url"]
        # no kept-alive connections: llama-server closes idle ones after a few seconds, and a request sent on one
        # as it closes fails ("disconnected without sending a response"); a loopback connect costs microseconds
        self._http = httpx.Client(base_url=self.url, timeout=600, trust_env=False,
                                  limits=httpx.Limits(max_keepalive_connections=0))

    def _post(self, path: str, body: dict) -> Any:
        import httpx

        try:
            return self._http.post(path, json=body)
        except httpx.HTTPError as e:
            raise self._failed(e) from e

    def _failed(self, e: Exception) -> BackendError:
        proc = self._proc
        why = f"its server stopped ({self._log_tail()})" if proc is None or proc.poll() is not None else str(e)
        return BackendError(f"llama.cpp could not answer with {self.path.name}: {why}")

    def _log_tail(self) -> str:
        try:
            text = Path(self._dir, "server.log").read_text(errors="replace").strip()
        except OSError:
            return "no log"
        return text[-300:] or "no log"

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        r = self._post("/tokenize", {"content": text, "add_special": add_special, "parse_special": True})
        r.raise_for_status()
        return list(r.json()["tokens"])

    def complete(self, prompt: str | list[int], max_new_tokens: int) -> list[int]:
        """Greedy token ids (argmax each step) after the prompt, until an end-of-generation token or the limit."""
        body = {"prompt": prompt, "n_predict": max_new_tokens, "temperature": 0.0, "top_k": 1,
                "samplers": ["top_k"], "repeat_penalty": 1.0, "return_tokens": True, "cache_prompt": False,
                "seed": 0}
        r = self._post("/completion", body)
        if r.status_code >= 400:
            raise BackendError(f"llama.cpp completion failed ({r.status_code}): {r.text[:200]}")
        return list(r.json().get("tokens") or [])

    def stream(self, body: dict[str, Any], slot: int | None = None) -> Iterator[dict]:
        """The events of a streamed /completion (`stream` is set here), in `slot` when given (token-id prompts
        are then recorded in `cached`): each a dict with `content`, `tokens` (with return_tokens) and, on the
        last, `stop`, `stop_type` ("eos" | "limit" | "word") and `timings`. Closing the generator early drops
        the connection, which makes the server stop that generation. Raises BackendError."""
        if slot is not None:
            body = {**body, "id_slot": slot}
            self._record(slot, body.get("prompt"))
        import httpx

        try:
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
        except Exception as e:
            if slot is not None:
                self._record(slot, None)
            if isinstance(e, httpx.HTTPError):
                raise self._failed(e) from e
            raise

    def _record(self, slot: int, prompt: Any) -> None:
        with self._cached_lock:
            self.cached[slot] = list(prompt) if isinstance(prompt, list) else []

    def best_slot(self, ids: list[int], among: list[int] | None = None) -> int:
        """The slot (of `among`, default all) whose cached prompt shares the longest prefix with `ids`."""
        with self._cached_lock:
            return max(among if among is not None else range(self.slots),
                       key=lambda k: common_prefix(self.cached[k], ids))

    def place(self, ids: list[int]) -> int:
        """The slot for a prompt run alone: the one where running it costs least, counting the tokens it must
        compute (those its cache does not share) and the cached tokens it discards (another prompt's prefix,
        e.g. another tool list, that a later prompt may want): a warm slot when one shares the prompt's
        prefix, else an empty one rather than one holding another tool list."""
        with self._cached_lock:
            return max(range(self.slots),
                       key=lambda k: 2 * common_prefix(self.cached[k], ids) - len(self.cached[k]))

    def prefill(self, ids: list[int], slot: int) -> int:
        """Runs `ids` into `slot`'s KV cache (what it already holds of them is kept) and nothing more; returns
        how many of them llama-server computed (its `timings.prompt_n`)."""
        body = {"prompt": ids, "n_predict": 0, "cache_prompt": True, "id_slot": slot, "temperature": 0.0,
                "top_k": 1, "samplers": ["top_k"]}
        self._record(slot, None)
        r = self._post("/completion", body)
        if r.status_code >= 400:
            raise BackendError(f"llama.cpp prefill failed ({r.status_code}): {r.text[:200]}")
        self._record(slot, ids)
        try:
            return int((r.json().get("timings") or {}).get("prompt_n", len(ids)))
        except (ValueError, TypeError, AttributeError):
            return len(ids)

    def warm_grammar(self, grammar: str, slot: int, token: int) -> None:
        """Runs one token (`token` as the prompt) under `grammar` in `slot`, which is emptied, so this process
        builds llguidance's tokenizer now rather than on its first guarded answer (llama.cpp builds it once
        per process: about a second for SmolLM2's vocabulary). Raises BackendError."""
        body = {"prompt": [token], "n_predict": 1, "grammar": grammar, "id_slot": slot, "cache_prompt": False,
                "temperature": 0.0, "top_k": 1, "samplers": ["top_k"]}
        self._record(slot, None)
        r = self._post("/completion", body)
        if r.status_code >= 400:
            raise BackendError(f"llama.cpp could not run a grammar ({r.status_code}): {r.text[:200]}")

    def save_slot(self, slot: int, dest: Path) -> None:
        """Writes `slot`'s KV cache (llama-server's slot file: its cached token ids and their KV) to `dest`,
        which appears whole or not at all (a temporary name beside it, then a rename). Raises BackendError."""
        if not self._slot_files:
            raise BackendError("this llama.cpp server was started without a slot folder: nothing to save")
        name = f"save-{uuid.uuid4().hex}.bin"
        dest = Path(dest)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
        try:
            self._slot_action(slot, "save", name)
            shutil.move(str(Path(self._dir, name)), tmp)  # a rename when both are on one file system
            os.replace(tmp, dest)
        except OSError as e:
            raise BackendError(f"could not store the KV of slot {slot}: {e}") from e
        finally:
            Path(self._dir, name).unlink(missing_ok=True)
            tmp.unlink(missing_ok=True)

    def restore_slot(self, slot: int, src: Path, ids: list[int]) -> None:
        """Loads a file save_slot wrote (for this same GGUF) into `slot`; `ids` (a prefix of the tokens it
        holds) become `cached[slot]`. On failure (a corrupt file, another llama.cpp version) the slot holds
        nothing and BackendError is raised."""
        if not self._slot_files:
            raise BackendError("this llama.cpp server was started without a slot folder: nothing to restore")
        name = f"restore-{uuid.uuid4().hex}.bin"
        here = Path(self._dir, name)
        self._record(slot, None)
        try:
            try:
                os.link(src, here)  # llama-server reads slot files from its own folder only
            except OSError:
                shutil.copyfile(src, here)
            self._slot_action(slot, "restore", name)
        except OSError as e:
            raise BackendError(f"could not read the stored KV {Path(src).name}: {e}") from e
        finally:
            here.unlink(missing_ok=True)
        self._record(slot, ids)

    def _slot_action(self, slot: int, action: str, name: str) -> None:
        r = self._post(f"/slots/{slot}?action={action}", {"filename": name})
        if r.status_code >= 400:
            raise BackendError(f"llama.cpp could not {action} slot {slot} ({r.status_code}): {r.text[:200]}")

    def copy_slot(self, src: int, dst: int) -> None:
        """Gives slot `dst` the KV cache of slot `src` (through a file in a private folder: milliseconds for a
        few hundred tokens), so a prompt sharing `src`'s prefix skips it in `dst` too. Raises BackendError."""
        if self.slots < 2:
            raise BackendError("this llama.cpp server has one slot: nothing to copy to")
        name = f"slot-{uuid.uuid4().hex}.bin"
        self._record(dst, None)
        try:
            for slot, action in ((src, "save"), (dst, "restore")):
                self._slot_action(slot, action, name)
        finally:
            Path(self._dir, name).unlink(missing_ok=True)
        with self._cached_lock:
            self.cached[dst] = list(self.cached[src])

    def close(self) -> None:
        """Stops the server process (closing its input ends it; killed if it lingers). Idempotent."""
        http = getattr(self, "_http", None)
        if http is not None:
            http.close()
        proc, self._proc = getattr(self, "_proc", None), None
        if proc is not None:
            for pipe in (proc.stdin, proc.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if getattr(self, "_dir", None):
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "GGUFRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
