"""Interactive inference (the Model Cradle's Test and Compare, `test-model`, `compare` and the OpenAI-compatible
`serve`): served by llama.cpp when it can (engines/llamacpp.py), else by the torch pool (inference.py), with the
prompts llama.cpp leaves to torch run there. Evaluation calls inference.generate_batch directly (torch only).

Dependencies point one way: this module uses inference and engines; neither imports it.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Iterator, Sequence

from . import inference
from .engines import llamacpp
from .errors import BackendError, InvalidConfig
from .guard.grammar import decoding_summary
from .inference import (Completions, GenerationSettings, Prompt, _guard_plans, analyse_completion, build_messages,
                        resolve_tools)


ENGINE_CHOICES = ("torch", "auto")  # what callers ask for: evaluation stays on torch, interactive calls "auto"


def engine_for(model_name: str, engine: str = "auto") -> tuple[str, str | None]:
    """("llama.cpp" | "torch", why torch when llama.cpp was wanted) for a call asking for `engine` ("auto":
    llama.cpp when it can serve this model, see engines/llamacpp.py; "torch": always torch)."""
    if engine not in ENGINE_CHOICES:
        raise InvalidConfig(f"engine must be one of {', '.join(ENGINE_CHOICES)}, not {engine!r}")
    if engine == "torch":
        return "torch", None
    reason = llamacpp.unavailable_reason() or llamacpp.get_llamacpp_pool().failure(model_name)
    return ("torch", reason) if reason else ("llama.cpp", None)


def _torch_batch(model_name: str, prompts: Sequence[Prompt], s: GenerationSettings,
                 progress: Callable[[int, int], object] | None = None) -> Completions:
    return inference.generate_batch(model_name, prompts, s, progress=progress)


def _llamacpp_batch(model_name: str, prompts: Sequence[Prompt], s: GenerationSettings,
                    progress: Callable[[int, int], object] | None = None) -> Completions:
    """llama.cpp's answers, with the prompts it leaves to torch (engines/llamacpp.py) run there."""

    plans = _guard_plans(prompts, s)
    texts, usage, notes = llamacpp.generate(model_name, prompts, s, plans, progress)
    left = [i for i, t in enumerate(texts) if t is None]
    runtime_errors: dict[int, str] = {}
    closed = 0
    if left:
        redo = _torch_batch(model_name, [prompts[i] for i in left], s)
        for k, i in enumerate(left):
            texts[i], usage[i] = redo[k], redo.usage[k]
        closed = redo.guard.get("closed", 0)
        runtime_errors = {left[k]: why for k, why in redo.guard.get("errors", {}).items()}
        if progress:
            progress(len(prompts), len(prompts))
    out = Completions(texts)
    out.usage = usage
    out.decoding = decoding_summary(s.guarded, plans, runtime_errors, closed)
    out.engine = {"engine": "llama.cpp", "notes": list(dict.fromkeys(notes))}
    return out


def generate_batch(model_name: str, prompts: Sequence[Prompt], settings: GenerationSettings | dict | None = None,
                   progress: Callable[[int, int], object] | None = None, engine: str = "auto",
                   **overrides: Any) -> Completions:
    """Raw completions of a model (adapter or base) for many prompts (`.decoding`: what ran; `.engine`:
    {"engine": "llama.cpp" | "torch", "notes"}). engine "auto" (the default) serves from llama.cpp when it can;
    "torch" batches on the torch pool (inference.generate_batch)."""
    s = GenerationSettings.of(settings, **overrides)
    chosen, why = engine_for(model_name, engine)
    if chosen == "llama.cpp":
        try:
            return _llamacpp_batch(model_name, prompts, s, progress)
        except BackendError as e:
            why = f"llama.cpp could not serve {model_name} ({e})"
    out = _torch_batch(model_name, prompts, s, progress)
    out.engine = {"engine": "torch", "notes": [f"{why}: ran on torch"] if why else []}
    return out


def _labelled(progress: Callable[[str, int, int], object], label: str) -> Callable[[int, int], object]:
    """A generate_batch progress callback that reports under `label`."""
    return lambda done, total: progress(label, done, total)


def _finished(events: Any, label: str) -> Callable[[Any], None]:
    """A future's done-callback that tells the side-by-side loop `label` has ended."""
    return lambda _future: events.put((label, None, None))


def generate_side_by_side(models: Sequence[tuple[str, str]], prompts: Sequence[Prompt],
                          settings: GenerationSettings | dict | None = None,
                          progress: Callable[[str, int, int], object] | None = None,
                          engine: str = "auto") -> dict[str, Completions]:
    """{label: Completions} of each (label, model name) in `models` on the same prompts, as generate_batch.
    When llama.cpp serves every model (engine "auto") and their servers' threads fit the cores together, the
    models answer at once, each in its own server; otherwise one after the other (on torch they share the pool's
    base model; llama.cpp servers with more threads than the cores left oversubscribe them, and llama.cpp's
    threads spin). `progress(label, done, total)` is called on the caller's thread."""
    from .engines.llamacpp_server import default_threads

    s = GenerationSettings.of(settings)
    names = [name for _, name in models]
    together = (len(set(names)) == len(names) > 1
                and all(engine_for(name, engine)[0] == "llama.cpp" for name in names)
                and default_threads() * len(names) <= (os.cpu_count() or 1))
    if not together:
        return {label: generate_batch(name, prompts, s, engine=engine,
                                      progress=_labelled(progress, label) if progress else None)
                for label, name in models}
    import queue
    from concurrent.futures import ThreadPoolExecutor

    events: "queue.Queue[tuple[str, int | None, int | None]]" = queue.Queue()
    with ThreadPoolExecutor(len(models), thread_name_prefix="nursery-side") as pool:
        futures = {}
        for label, name in models:
            fut = pool.submit(generate_batch, name, prompts, s, engine=engine,
                              progress=_labelled(lambda lb, d, t: events.put((lb, d, t)), label))
            fut.add_done_callback(_finished(events, label))
            futures[label] = fut
        running = len(futures)
        while running:
            label, done, total = events.get()
            if done is None or total is None:
                running -= 1
            elif progress:
                progress(label, done, total)
    return {label: fut.result() for label, fut in futures.items()}


def stream_generate(model_name: str, prompt: Prompt, settings: GenerationSettings | dict | None = None,
                    report: dict | None = None, engine: str = "auto", **overrides: Any) -> Iterator[str]:
    """Text chunks of one answer; `report` gets the decoding summary and {"engine", "engine_notes"} (which
    engine served it) once the stream ends. engine as in generate_batch."""
    s = GenerationSettings.of(settings, **overrides)
    report = report if report is not None else {}

    def torch_stream() -> Iterator[str]:
        return inference.stream_generate(model_name, prompt, s, report=report)

    chosen, why = engine_for(model_name, engine)
    if chosen == "llama.cpp":
        return _llamacpp_stream(model_name, prompt, s, report, torch_stream)
    report.update(engine="torch", engine_notes=[f"{why}: ran on torch"] if why else [])
    return torch_stream()


def _llamacpp_stream(model_name: str, prompt: Prompt, s: GenerationSettings, report: dict,
                     torch_stream: Callable[[], Iterator[str]]) -> Iterator[str]:

    plans = _guard_plans([prompt], s)
    notes: list[str] = []
    used_torch = []

    def fallback() -> Iterator[str]:
        used_torch.append(True)
        return torch_stream()

    try:
        yield from llamacpp.stream(model_name, prompt, s, plans[0], fallback, notes)
    except BackendError as e:
        if used_torch:
            raise
        notes.append(f"llama.cpp could not serve {model_name} ({e}): ran on torch")
        yield from fallback()
    finally:
        if not used_torch:
            report.update(decoding_summary(s.guarded, plans))
        report.update(engine="torch" if used_torch and not any("continued on torch" in n for n in notes)
                      else "llama.cpp", engine_notes=notes)


def nursery_test_model(model_name: str, prompt: str, tools: Any = None, tools_from: str | None = None,
                       system: str | None = None, settings: GenerationSettings | dict | None = None,
                       **generation: Any) -> dict:
    """One prompt through a model with its tools: raw completion, parsed calls, JSON and schema validity, and
    `decoding` ("guarded" by default, "free" when turned off or when the tools' schemas cannot be guarded; the
    reason is in `decoding_notes`) and `engine` ("llama.cpp" when it served, else "torch"; why in
    `engine_notes`)."""
    s = GenerationSettings.of(settings, **{"stop_after_calls": True, **generation})
    tool_list, source = resolve_tools(model_name, tools, tools_from)
    messages = build_messages(prompt, system)
    out = generate_batch(model_name, [{"messages": messages, "tools": tool_list}], s)
    return {"model": model_name, "prompt": prompt, "tools": [t["function"]["name"] for t in tool_list],
            "tools_source": source, "settings": s.to_dict(), "decoding": out.decoding["decoding"],
            "decoding_notes": out.decoding["notes"], "engine": out.engine["engine"],
            "engine_notes": out.engine["notes"], **analyse_completion(out[0], tool_list)}


class TextStream:
    """The chunks of one streamed completion (iterate once, e.g. with st.write_stream) and `decoding`, the
    summary of what ran (with "engine" and "engine_notes"): known before the first chunk, updated when the
    stream ends."""

    def __init__(self, chunks: Callable[[dict], Iterator[str]], decoding: dict):
        self.decoding = decoding
        self._chunks = chunks(self.decoding)

    def __iter__(self) -> Iterator[str]:
        return iter(self._chunks)


def stream_test_model(model_name: str, prompt: str, tools: list[dict], system: str | None = None,
                      settings: GenerationSettings | dict | None = None, **generation: Any) -> TextStream:
    """The streamed counterpart of nursery_test_model (tools already resolved); pair with analyse_completion."""
    s = GenerationSettings.of(settings, **{"stop_after_calls": True, **generation})
    item = {"messages": build_messages(prompt, system), "tools": tools}
    engine, why = engine_for(model_name, "auto")
    return TextStream(lambda report: stream_generate(model_name, item, s, report=report),
                      {**decoding_summary(s.guarded, _guard_plans([item], s)), "engine": engine,
                       "engine_notes": [f"{why}: ran on torch"] if why else []})


def _probes(tools: list[dict], system: str | None) -> list[dict]:
    """Two prompts that differ only in the user's words: what they share, rendered by the model's own chat
    template, is the system turn with `tools` (and the user turn's opening)."""
    return [{"messages": build_messages(q, system), "tools": tools} for q in ("a", "b")]


def is_prepared(model_name: str, tools: list[dict], system: str | None = None, solo: bool = False) -> bool:
    """Whether prepare() would find the system turn with `tools` already in the model's warm llama.cpp server
    ("warm"), so a page draws no status for it. False on torch, or when that server is not warm or cannot serve.
    It starts and computes nothing. Raises NotFound for an unknown model."""
    engine, _ = engine_for(model_name, "auto")
    if engine == "torch":
        return False
    try:
        return llamacpp.is_prepared(model_name, _probes(tools, system), solo=solo)
    except BackendError:
        return False


def prepare(model_name: str, tools: list[dict], system: str | None = None, solo: bool = False) -> dict:
    """Gets the system turn with `tools` (and `system`, as Test and Compare render it) into the KV of the model's
    llama.cpp server (`solo`: the one streamed answers use, the Test tab's; else the batch one, the Compare tab's)
    before any prompt needs it, starting the server when needed, so the next call runs only its user turn. Returns {"model", "engine": "llama.cpp" | "torch", "source": "warm" (already there) | "store"
    (loaded from the prompt KV store, engines/prompt_kv.py) | "prefill" (computed, then stored) | None (torch:
    nothing to prepare), "tokens": the prefix's length, "seconds", "reason": why torch (else None)}. Raises
    NotFound for an unknown model, InvalidConfig for a bad engine setting; a model llama.cpp cannot serve is
    reported, not raised (its calls run on torch)."""
    import time

    start = time.monotonic()
    out: dict[str, Any] = {"model": model_name, "engine": "torch", "source": None, "tokens": 0, "seconds": 0.0,
                           "reason": None}
    engine, why = engine_for(model_name, "auto")
    if engine == "torch":
        return {**out, "reason": why}
    probes = _probes(tools, system)
    # the guard's grammar for these tools (Test and Compare guard by default), compiled ahead too
    plan = _guard_plans(probes[:1], GenerationSettings.of(None))[0]
    try:
        done = llamacpp.prepare(model_name, probes, plan.grammar, solo=solo)
    except BackendError as e:
        return {**out, "reason": f"llama.cpp could not serve {model_name} ({e})",
                "seconds": round(time.monotonic() - start, 2)}
    return {**out, "engine": "llama.cpp", **done, "seconds": round(time.monotonic() - start, 2)}


def engine_status(model_name: str, solo: bool = False) -> dict:
    """Which engine an interactive call on `model_name` gets now: {"engine": "llama.cpp" | "torch", "reason":
    why torch (None on llama.cpp), "loaded": whether that engine has the model warm (`solo`: llama.cpp's server
    for streamed answers, else its batch server), "label": one line for people}. Raises InvalidConfig for a bad
    NURSERY_ENGINE, NotFound for an unknown model."""
    from .engines.gguf_cache import served_type, serves_unmerged

    engine, reason = engine_for(model_name, "auto")
    if engine == "llama.cpp":
        loaded = llamacpp.get_llamacpp_pool().is_loaded(model_name, solo=solo)
        ref = inference.resolve_model(model_name)
        unmerged = ref.adapter_path is not None and serves_unmerged(ref.adapter_path, ref.base_dir)
        kind = served_type(ref.base_dir) + (" + LoRA" if unmerged else "")
        label = f"llama.cpp (GGUF {kind}, {'warm' if loaded else 'starts on the first call'})"
    else:
        loaded = inference.get_pool().is_loaded(model_name)
        label = f"torch ({reason})" if reason else "torch"
    return {"engine": engine, "reason": reason, "loaded": loaded, "label": label}
