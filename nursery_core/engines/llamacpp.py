"""Interactive inference on llama.cpp: each pooled model (a base, or an adapter: merged into its base, or its
LoRA GGUF applied over its base's GGUF) runs as a GGUF copy (engines/gguf_cache.py) in llama.cpp's server engine,
kept warm in a small LRU of servers.

Same answers as the torch path, faster on a CPU: prompts are rendered and tokenized by the same HF tokenizer and
chat template (the adapter's own when it has one) and sent as token ids; greedy is argmax (top_k 1); a guarded
request sends the guard's own llguidance grammar (guard.grammar.plan_for), which llama.cpp's llguidance sampler
enforces exactly as the torch guard does; the answer's token ids are decoded by the HF tokenizer (llama.cpp's
own text drops control tokens). llama-server keeps the KV cache of the previous prompt (`cache_prompt`), so a
warm model only runs what differs from the last call (the system turn with the tools is shared).

A model can have two servers over the same GGUF (its weights mapped once): a solo server on every core
(solo_threads) for one streamed answer at a time (the Test tab, test-model, serve's streams), whose first token
needs the user turn computed fast, and a batch server on default_threads() for several prompts (a compare, a
batch): a compare's two models then answer at once, one core each, with no thread left waiting for a core (a
decode step reads every weight once, so two one-thread servers at once outrun two two-thread servers in turn).
Several prompts (a compare) are answered at once, one per server slot (SLOTS), decoded together in one batch;
a slot that lacks the prompts' shared prefix gets it copied from one that has it (or from one prefill), so the
system turn runs once per server, not once per slot; a computed prefix of prompt_kv.MIN_SAVE tokens or more is
saved to the prompt KV store (engines/prompt_kv.py), from which a new server of the same GGUF loads it instead
of computing it (after a dashboard restart or an eviction), and interactive.prepare puts a tool list's prefix
into a slot before any prompt needs it. Each answer is the same as alone: the same greedy tokens
from the same KV (tests/test_llamacpp_engine.py checks it against one-at-a-time answers).

What stays on torch (the caller falls back, and says so in the notes): an engine setting of "torch"
(NURSERY_ENGINE), missing bindings or converter, a model whose GGUF cannot be built, a prompt longer than the
server's context, and a guarded answer that llama.cpp cut at max_new_tokens inside a call: only the torch guard
steers an answer to close its call within the budget (guard/processor.py), so that prompt is run again there.
"""
from __future__ import annotations

import atexit
import os
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from ..errors import BackendError, InvalidConfig, NurseryError
from ..guard.processor import CLOSING_WINDOW

ENGINES = ("auto", "torch", "llama.cpp")
N_CTX = 4096  # tokens per slot: a tool-calling prompt and its answer with room to spare (about 90 MB of KV)
SLOTS = 4     # prompts a server answers at once (a compare's rows); each slot has its own N_CTX
SOLO_SLOTS = 2  # a solo server's: the answer's slot, and one a tool list or the grammar's warm-up can use
MIN_COPY = 16  # prefix tokens worth copying between slots rather than running again (a copy costs ~10 ms)


def engine_setting() -> str:
    """NURSERY_ENGINE: "auto" (llama.cpp when it can serve, else torch; the default), "torch" or "llama.cpp"."""
    e = os.environ.get("NURSERY_ENGINE", "auto").strip() or "auto"
    if e not in ENGINES:
        raise InvalidConfig(f"NURSERY_ENGINE must be one of {', '.join(ENGINES)}, not {e!r}")
    return e


def unavailable_reason() -> str | None:
    """Why llama.cpp cannot serve on this installation (None when it can)."""
    from ..export.gguf import converter_available
    from ..export.verify import bindings_available

    if engine_setting() == "torch":
        return "NURSERY_ENGINE is torch"
    if not bindings_available():
        return "llama.cpp's bindings (xllamacpp) are not installed: run `make setup`"
    if not converter_available():
        return "llama.cpp's GGUF converter is missing: run `make setup`"
    return None


@dataclass
class _Served:
    model_name: str
    stamp: str                      # the served files (gguf_path_if_cached): a retrained adapter has others
    runner: Any                     # GGUFRunner
    tokenizer: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    prepared_s: float = 0.0         # seconds spent building the GGUF (0 when cached) and starting the server
    grammar_ready: bool = False     # a guarded request ran in this server (llguidance's tokenizer is built)


def _tokenizer_for(ref) -> Any:
    from ..base_models import load_tokenizer
    from ..inference import adapter_chat_template

    tok = load_tokenizer(ref.base_ref if ref.kind == "adapter" else str(ref.base_dir))
    template = adapter_chat_template(ref.adapter_path) if ref.kind == "adapter" else None
    if template:
        tok.chat_template = template
    return tok


def _end_of_turn_id(tok) -> int | None:
    from ..training.rendering import end_of_turn

    tid = tok.convert_tokens_to_ids(end_of_turn(tok))
    return tid if isinstance(tid, int) and tid >= 0 and tid != tok.unk_token_id else None


def gguf_of(ref, tokenizer) -> dict:
    """{"path", "lora" (None or the LoRA GGUF applied over path), "built", "seconds"} of a resolved model's GGUF
    copy (built now unless cached), with the end-of-turn token of `tokenizer` (the model's, prepared for its
    family) recorded in the base's GGUF. An adapter is merged into one GGUF, or its base's GGUF with its own LoRA
    GGUF over it (gguf_cache.serves_unmerged)."""
    from .gguf_cache import adapter_gguf, base_gguf, lora_gguf, serves_unmerged

    eot = _end_of_turn_id(tokenizer)
    if ref.kind == "adapter" and not serves_unmerged(ref.adapter_path, ref.base_dir):
        return {**adapter_gguf(ref.name, ref.adapter_path, ref.base_dir, eot), "lora": None}
    base = base_gguf(ref.base_dir, eot)
    if ref.kind != "adapter":
        return {**base, "lora": None}
    lora = lora_gguf(ref.name, ref.adapter_path, ref.base_dir)
    return {"path": base["path"], "lora": lora["path"], "built": base["built"] or lora["built"],
            "seconds": round(base["seconds"] + lora["seconds"], 1)}


class LlamaCppPool:
    """Warm llama.cpp servers, a batch and a solo one per model (LRU, at most `max_models` of each kind), and
    the models that could not be served (with why, until their files change)."""

    def __init__(self, max_models: int | None = None):
        from ..inference import _max_bases_default

        self.max_models = max_models or _max_bases_default()
        self._served: "OrderedDict[tuple[str, bool], _Served]" = OrderedDict()  # (model, solo) → server
        self._lock = threading.RLock()
        self._building: dict[str, threading.Lock] = {}
        self.failures: dict[str, tuple[str, str]] = {}   # model name → (files stamp, reason)
        self.loads = 0

    def _stamp(self, ref) -> str:
        from ..inference import _adapter_mtime

        return f"{ref.adapter_path}:{_adapter_mtime(ref.adapter_path)}" if ref.kind == "adapter" else str(ref.base_dir)

    def failure(self, model_name: str) -> str | None:
        from ..inference import resolve_model

        hit = self.failures.get(model_name)
        if hit is None:
            return None
        return hit[1] if hit[0] == self._stamp(resolve_model(model_name)) else None

    def warm(self, model_name: str, solo: bool = False) -> _Served | None:
        """The model's server (`solo` or batch) when it is up and serves the model's current files; else None.
        Builds and starts nothing."""
        from ..inference import resolve_model

        ref = resolve_model(model_name)
        with self._lock:
            served = self._served.get((model_name, solo))
        if served is None:
            return None
        try:
            return served if served.stamp == gguf_path_if_cached(ref) else None
        except NurseryError:
            return None

    def is_loaded(self, model_name: str, solo: bool = False) -> bool:
        return self.warm(model_name, solo) is not None

    def loaded(self) -> list[str]:
        """The models with a warm server (either kind), least recently used first."""
        with self._lock:
            return list(dict.fromkeys(name for name, _ in self._served))

    def served(self, model_name: str, solo: bool = False) -> _Served:
        """The warm server of `model_name` (`solo`: its solo server, on every core, for one streamed answer at a
        time; else its batch server), building its GGUF and starting it when needed. Raises BackendError
        (recorded as this model's failure) when llama.cpp cannot serve it."""
        from ..inference import resolve_model
        from .llamacpp_server import GGUFRunner, default_threads, solo_threads

        ref = resolve_model(model_name)
        key = (model_name, solo)
        with self._lock:
            gate = self._building.setdefault(model_name, threading.Lock())
        with gate:
            cached = gguf_path_if_cached(ref)
            with self._lock:
                hit = self._served.get(key)
                if hit is not None and hit.stamp == cached:
                    self._served.move_to_end(key)
                    return hit
            start = time.monotonic()
            try:
                tok = _tokenizer_for(ref)
                built = gguf_of(ref, tok)
                runner = GGUFRunner(built["path"], n_ctx=N_CTX, threads=solo_threads() if solo else default_threads(),
                                    slots=SOLO_SLOTS if solo else SLOTS, slot_files=True,
                                    loras=[built["lora"]] if built["lora"] else None)
            except NurseryError as e:
                self.failures[model_name] = (self._stamp(ref), str(e))
                raise BackendError(str(e)) from e
            served = _Served(model_name, _stamp_of(built["path"], built["lora"]), runner, tok,
                             prepared_s=time.monotonic() - start)
            with self._lock:
                old = self._served.pop(key, None)
                self._served[key] = served
                while sum(1 for _, kind in self._served if kind == solo) > self.max_models:
                    evict = next(k for k in self._served if k[1] == solo)
                    _close_later(self._served.pop(evict))
                self.loads += 1
                self.failures.pop(model_name, None)
            if old is not None:
                _close_later(old)
            return served

    def clear(self) -> None:
        with self._lock:
            items = list(self._served.values())
            self._served.clear()
        for s in items:
            _close_later(s)


def _stamp_of(gguf: str, lora: str | None) -> str:
    return f"{gguf}+{lora}" if lora else str(gguf)


def gguf_path_if_cached(ref) -> str:
    """What a resolved model is served from for its current files (once built): its GGUF's path, and for an
    adapter served unmerged its LoRA GGUF's after a "+"."""
    from .gguf_cache import adapter_target, base_target, lora_target, serves_unmerged

    if ref.kind == "adapter":
        if not serves_unmerged(ref.adapter_path, ref.base_dir):
            return str(adapter_target(ref.name, ref.adapter_path, ref.base_dir)[0])
        return _stamp_of(str(base_target(ref.base_dir)[0]),
                         str(lora_target(ref.name, ref.adapter_path, ref.base_dir)[0]))
    return str(base_target(ref.base_dir)[0])


def _close_later(served: _Served) -> None:
    """Stops a server once no generation holds it (a running stream keeps it until it ends)."""
    def close():
        with served.lock:
            served.runner.close()

    threading.Thread(target=close, name="nursery-llamacpp-close", daemon=True).start()


_POOL: LlamaCppPool | None = None
_POOL_LOCK = threading.Lock()


def get_llamacpp_pool() -> LlamaCppPool:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = LlamaCppPool()
        return _POOL


@atexit.register
def _close_all() -> None:
    pool = _POOL
    if pool is not None:
        with pool._lock:  # noqa: SLF001
            items = list(pool._served.values())  # noqa: SLF001
            pool._served.clear()  # noqa: SLF001
        for s in items:
            s.runner.close()


# ------------------------------------------------------------------------------------------ generation
def _body(ids: list[int], s, grammar: str | None) -> dict:
    # timings on every event: how many prompt tokens the server computed is known even when the answer is cut
    # early (stop after the calls), for the prompt KV store
    body: dict[str, Any] = {"prompt": ids, "n_predict": s.max_new_tokens, "cache_prompt": True,
                            "return_tokens": True, "repeat_penalty": 1.0, "timings_per_token": True}
    if s.greedy:
        body.update(temperature=0.0, top_k=1, samplers=["top_k"])
    else:
        body.update(temperature=float(s.temperature), top_p=float(s.top_p), top_k=0, min_p=0.0,
                    samplers=["top_p", "temperature"])
    body["seed"] = int(s.seed) if s.seed is not None else -1
    if grammar is not None:
        body["grammar"] = grammar
    return body


class _NeedsTorch(Exception):
    """This prompt must run on torch (the reason is the message)."""


@dataclass
class _Run:
    """One answer from llama.cpp: token ids, how it ended, and the text shown so far while streaming."""

    ids: list[int] = field(default_factory=list)
    stop_type: str | None = None
    prompt_tokens: int = 0
    computed: int = 0  # prompt tokens the server computed (the rest came from the slot's KV): timings.prompt_n


def _open_call(text: str) -> bool:
    from ..training.rendering import TOOL_CALL_CLOSE, TOOL_CALL_OPEN

    return text.count(TOOL_CALL_OPEN) > text.count(TOOL_CALL_CLOSE)


def _prompt_ids(served: _Served, prompt) -> list[int]:
    from ..inference import _render

    tok = served.tokenizer
    return tok(_render(tok, prompt), add_special_tokens=False)["input_ids"]


def _events(served: _Served, ids: list[int], s, grammar: str | None, run: _Run, slot: int) -> Iterator[str]:
    """Streams one answer to the prompt `ids` (in server slot `slot`) as text (the tokenizer's decoding without
    special tokens, as torch's streamer), and fills `run`. Stops early once the answer's calls are complete when
    `s.stop_after_calls`. A guarded answer is checked token by token against the guard's own grammar (Python
    llguidance): one that leaves it raises _NeedsTorch, as does a prompt that does not fit the context."""
    from ..guard.grammar import llamacpp_grammar
    from ..guard.processor import new_matcher
    from ..inference import StopAfterCalls, _stop_ids, is_text_answer

    tok = served.tokenizer
    if len(ids) + s.max_new_tokens > served.runner.n_ctx:
        raise _NeedsTorch(f"the prompt ({len(ids)} tokens) and max_new_tokens do not fit llama.cpp's context of "
                          f"{served.runner.n_ctx} tokens")
    stop_ids = set(_stop_ids(tok))
    matcher = None
    if grammar is not None:
        matcher, err = new_matcher(tok, sorted(stop_ids), grammar)
        if matcher is None:
            raise _NeedsTorch(err)
    run.prompt_tokens = len(ids)
    served.grammar_ready |= grammar is not None
    shown = ""
    events = served.runner.stream(_body(ids, s, llamacpp_grammar(grammar) if grammar is not None else None),
                                  slot=slot)
    try:
        for ev in events:
            run.computed = int((ev.get("timings") or {}).get("prompt_n", run.computed))
            new = [int(t) for t in ev.get("tokens") or []]
            for t in new:
                if matcher is not None and t not in stop_ids and not matcher.consume_token(t):
                    raise _NeedsTorch("llama.cpp's answer left the guard's grammar")
            run.ids += [t for t in new if t not in stop_ids]
            text = tok.decode(run.ids, skip_special_tokens=True)
            # the torch guard may steer an answer in its last CLOSING_WINDOW tokens: held back until the end,
            # so a torch rerun (see stream) only ever continues text that both engines write
            held = grammar is not None and len(run.ids) > s.max_new_tokens - CLOSING_WINDOW
            if not held and not text.endswith("\ufffd") and len(text) > len(shown) and text.startswith(shown):
                yield text[len(shown):]
                shown = text
            if ev.get("stop"):
                run.stop_type = ev.get("stop_type") or "eos"
                break
            if s.stop_after_calls and StopAfterCalls.finished(text):
                run.stop_type = "calls"
                break
            if grammar is not None and s.text_tokens and len(run.ids) >= s.text_tokens \
                    and is_text_answer(tok.decode(run.ids, skip_special_tokens=False)):
                run.stop_type = "text"
                break
    finally:
        events.close()
    if matcher is not None and run.stop_type == "eos" and not matcher.is_accepting():
        raise _NeedsTorch("llama.cpp's answer ended where the guard's grammar does not allow it")
    text = tok.decode(run.ids, skip_special_tokens=True)
    if _cut_at_limit_in_call(run, grammar, text):
        return  # left to torch (or, sampled, to stream's own ending)
    if len(text) > len(shown) and text.startswith(shown):
        yield text[len(shown):]


def _cut_at_limit_in_call(run: _Run, grammar: str | None, text: str) -> bool:
    return grammar is not None and run.stop_type == "limit" and _open_call(text)


def _final_text(served: _Served, run: _Run, s) -> str:
    from ..inference import StopAfterCalls, _cut

    text = _cut(served.tokenizer, served.tokenizer.decode(run.ids, skip_special_tokens=False))
    return StopAfterCalls.cut(text) if s.stop_after_calls else text


def _shared_prefix(all_ids: list[list[int]]) -> list[int]:
    """The token prefix every prompt in `all_ids` begins with ([] for none)."""
    from .llamacpp_server import common_prefix

    shared = all_ids[0] if all_ids else []
    for ids in all_ids[1:]:
        shared = shared[:common_prefix(shared, ids)]
    return shared


def _share_prefix(runner, first: list[list[int]]) -> None:
    """Before slots 0..n-1 start on the prompts `first` (one each): every slot that lacks their shared prefix
    gets it copied from the slot that has most of it, after that slot runs the rest of it (one prefill, not one
    per slot). A prefix shorter than MIN_COPY is left to each slot."""
    from .llamacpp_server import common_prefix

    shared = _shared_prefix(first)
    # the last prompt token is always run again by llama-server (it yields the first logits): not shareable
    shared = shared[:min(len(x) for x in first) - 1]
    slots = list(range(len(first)))
    needy = [k for k in slots if len(shared) - common_prefix(runner.cached[k], shared) >= MIN_COPY]
    if len(shared) < MIN_COPY or not needy:
        return
    # any slot that holds the prefix (prepare() may have put it in one these prompts do not use), else the one
    # of theirs that holds most of it
    src = runner.best_slot(shared)
    if len(shared) - common_prefix(runner.cached[src], shared) >= MIN_COPY:
        src = runner.best_slot(shared, slots)
    fill_prefix(runner, src, shared)
    for k in needy:
        if k != src:
            runner.copy_slot(src, k)


def fill_prefix(runner, slot: int, ids: list[int]) -> str:
    """Gets `ids` into `slot`'s KV: "warm" (it held them but for fewer than MIN_COPY tokens), "store" (loaded
    from the prompt KV store, engines/prompt_kv.py) or "prefill" (computed, then saved to the store when it
    took prompt_kv.MIN_SAVE tokens or more)."""
    from . import prompt_kv
    from .llamacpp_server import common_prefix

    have = common_prefix(runner.cached[slot], ids)
    if len(ids) - have < MIN_COPY:
        return "warm"
    if len(ids) - prompt_kv.restore(runner, slot, ids, have) < MIN_COPY:
        return "store"
    if runner.prefill(ids, slot) >= prompt_kv.MIN_SAVE:
        prompt_kv.save(runner, slot, ids)
    return "prefill"


def _from_store(runner, slot: int, ids: list[int]) -> None:
    """Before one prompt runs alone in `slot`: loads a stored prefix of it when that beats the slot's KV."""
    from . import prompt_kv
    from .llamacpp_server import common_prefix

    prompt_kv.restore(runner, slot, ids, common_prefix(runner.cached[slot], ids))


def _to_store(runner, slot: int, ids: list[int], run: _Run) -> None:
    """After one prompt ran alone in `slot`: stores its KV when the server computed MIN_SAVE tokens of it."""
    from . import prompt_kv

    if run.computed >= prompt_kv.MIN_SAVE:
        prompt_kv.save(runner, slot, ids)


def _answer(served: _Served, ids: list[int], s, plan, slot: int,
            alone: bool = False) -> tuple[str | None, dict, list[str]]:
    """(text | None when torch must answer, usage, notes) of one prompt in one slot; `alone` (no other prompt
    shares the server): its prompt's KV is loaded from and saved to the prompt KV store."""
    run = _Run()
    if alone:
        _from_store(served.runner, slot, ids)
    try:
        for _ in _events(served, ids, s, plan.grammar, run, slot):
            pass
    except _NeedsTorch as e:
        return None, {}, [f"{e}: run on torch"]
    finally:
        if alone:
            _to_store(served.runner, slot, ids, run)
    text = _final_text(served, run, s)
    if _cut_at_limit_in_call(run, plan.grammar, text):
        return None, {}, ["an answer reached max_new_tokens inside a tool call: run on torch, whose guard "
                          "steers it to close the call"]
    notes = []
    if run.stop_type == "text":
        from ..inference import text_cut_note

        notes.append(text_cut_note(s.text_tokens))
    return text, {"prompt_tokens": run.prompt_tokens, "completion_tokens": len(run.ids),
                  "stopped": run.stop_type != "limit"}, notes


def generate(model_name: str, prompts: Sequence, s, plans: list,
             progress: Callable[[int, int], object] | None = None) -> tuple[list[str | None], list[dict], list[str]]:
    """(texts, usage, notes) for prompts on llama.cpp, answered SLOTS at a time in one batch; a None text is a
    prompt that must run on torch (its reason is in notes). `progress(done, total)` is called on the caller's
    thread as answers finish. Raises BackendError when the model cannot be served at all."""
    served = get_llamacpp_pool().served(model_name)
    n = len(prompts)
    results: list[tuple[str | None, dict, list[str]] | None] = [None] * n
    with served.lock:
        all_ids = [_prompt_ids(served, p) for p in prompts]  # on this thread: one tokenizer, used by one thread
        width = min(served.runner.slots, n)
        if width > 1:
            _share_prefix(served.runner, all_ids[:width])
            slots = list(range(width))
        else:
            slots = [served.runner.place(all_ids[0])] if n else []
        finished: "queue.Queue[tuple[int, BaseException | None]]" = queue.Queue()
        todo = iter(range(n))
        take = threading.Lock()
        failed = threading.Event()

        def worker(slot: int) -> None:
            while not failed.is_set():
                with take:
                    k = next(todo, None)
                if k is None:
                    return
                try:
                    results[k] = _answer(served, all_ids[k], s, plans[k], slot, alone=n == 1)
                    finished.put((k, None))
                except BaseException as e:  # noqa: BLE001 (re-raised on the caller's thread)
                    failed.set()
                    finished.put((k, e))
                    return

        threads = [threading.Thread(target=worker, args=(slot,), name=f"nursery-llamacpp-slot{slot}", daemon=True)
                   for slot in slots]
        for t in threads:
            t.start()
        done, error = 0, None
        try:
            for _ in range(n):
                k, e = finished.get()
                if e is not None:
                    error = e
                    break
                r = results[k]
                if r is not None and r[0] is not None:
                    done += 1
                    if progress:
                        progress(done, n)
        finally:
            failed.set()  # a failing progress callback, too, stops the workers before the server is let go
            for t in threads:
                t.join()
        if error is not None:
            raise error
    answered = [r for r in results if r is not None]  # every prompt, once no worker failed
    texts = [r[0] for r in answered]
    usage = [r[1] for r in answered]
    notes = [note for r in answered for note in r[2]]
    return texts, usage, notes


def is_prepared(model_name: str, prompts: Sequence, solo: bool = False) -> bool:
    """Whether the shared prefix of `prompts` is already in a slot of the model's warm server, but for fewer than
    MIN_COPY tokens (what prepare() would report as "warm"). False when that server is not warm. It starts and
    computes nothing, so a page can ask on every rerun before it draws a status."""
    from .llamacpp_server import common_prefix

    served = get_llamacpp_pool().warm(model_name, solo=solo)
    if served is None:
        return False
    with served.lock:
        shared = _shared_prefix([_prompt_ids(served, p) for p in prompts])
        return len(shared) < MIN_COPY or any(len(shared) - common_prefix(cached, shared) < MIN_COPY
                                             for cached in served.runner.cached)


def prepare(model_name: str, prompts: Sequence, grammar: str | None = None, solo: bool = False) -> dict:
    """Gets the shared prefix of `prompts` (rendered as the model's own, e.g. two prompts that differ only in
    the user turn: the system turn with the tools) into a slot of the model's server, starting it when needed;
    with `grammar` (the guard's plan.grammar) it is compiled for the answers' check here (once per tokenizer
    and grammar) and a server that has run no grammar yet runs one token under it in another slot (llama.cpp
    builds llguidance's tokenizer once per process), so the first guarded answer pays neither; in the model's solo
    server with `solo` (where stream answers), else its batch server. Returns {"source": "warm" | "store" |
    "prefill" (fill_prefix), "tokens": the prefix's length}. Raises BackendError when llama.cpp cannot serve the
    model."""
    served = get_llamacpp_pool().served(model_name, solo=solo)
    with served.lock:
        runner = served.runner
        shared = _shared_prefix([_prompt_ids(served, p) for p in prompts])
        slot = runner.place(shared)
        source = "warm" if len(shared) < MIN_COPY else fill_prefix(runner, slot, shared)
        if grammar is not None:
            from ..guard.grammar import llamacpp_grammar
            from ..guard.processor import new_matcher
            from ..inference import _stop_ids

            new_matcher(served.tokenizer, sorted(set(_stop_ids(served.tokenizer))), grammar)
        if grammar is not None and not served.grammar_ready and shared and runner.slots > 1:
            spare = min((k for k in range(runner.slots) if k != slot), key=lambda k: len(runner.cached[k]))
            try:
                runner.warm_grammar(llamacpp_grammar(grammar), spare, shared[0])
                served.grammar_ready = True
            except BackendError:
                pass  # the first guarded answer builds it instead
    return {"source": source, "tokens": len(shared)}


def stream(model_name: str, prompt, s, plan, torch_stream: Callable[[], Iterator[str]],
           notes: list[str]) -> Iterator[str]:
    """Text chunks of one answer on llama.cpp, from the model's solo server. Where llama.cpp cannot finish it (see the module docstring) the
    torch stream `torch_stream()` runs instead: before the first chunk, or, for a greedy answer cut at the
    budget inside a call, again from the start with only what was not shown yet passed on."""
    served = get_llamacpp_pool().served(model_name, solo=True)
    shown = ""
    with served.lock:
        started = _Run()
        run: _Run | None = started
        ids = _prompt_ids(served, prompt)
        slot = served.runner.place(ids)
        _from_store(served.runner, slot, ids)
        try:
            for chunk in _events(served, ids, s, plan.grammar, started, slot):
                shown += chunk
                yield chunk
        except _NeedsTorch as e:
            notes.append(f"{e}: run on torch")
            run = None
        _to_store(served.runner, slot, ids, started)
    if run is not None:
        text = served.tokenizer.decode(run.ids, skip_special_tokens=True)
        if not _cut_at_limit_in_call(run, plan.grammar, text):
            return
        if not s.greedy:
            notes.append("the answer reached max_new_tokens inside a tool call (sampled on llama.cpp, so it "
                         "cannot be continued on torch)")
            if text.startswith(shown):
                yield text[len(shown):]
            return
        notes.append("the answer reached max_new_tokens inside a tool call: continued on torch, whose guard "
                     "steers it to close the call")
    again = ""
    for chunk in torch_stream():
        again += chunk
        if len(again) > len(shown):
            yield again[max(len(shown), len(again) - len(chunk)):]
