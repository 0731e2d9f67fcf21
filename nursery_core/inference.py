"""Running models: a process-wide pool (one base in memory serves its adapters through peft's named adapters,
bases evicted least-recently-used), batched left-padded generation, streaming, and `nursery_test_model`.

Every page session, the CLI and evaluation share the pool, so an adapter is loaded once per process. A lock per
base serialises generation on it (switching the active adapter is global state on the model).
"""
from __future__ import annotations

import functools
import gc
import json
import os
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from . import paths
from .errors import InvalidConfig, InvalidInput, NotFound
from .rows import ModelRow
from .datasets import dataset_tools
from .store import get_store

DEFAULT_MAX_NEW_TOKENS = 256
DEFAULT_BATCH_SIZE = 8
# A guarded answer that has begun as plain text can call no tool (the guard's grammar allows no call after text),
# so where only its calls count (compare diffs them, evaluation scores them) it is cut after this many tokens
# instead of written on to max_new_tokens: the scores are the same, the wait is shorter.
TEXT_ANSWER_TOKENS = 48


def text_cut_note(tokens: int) -> str:
    """What a result says when guarded text answers were cut after `tokens` (compare and evaluation alike)."""
    return (f"text answers cut after {tokens} tokens: a guarded answer that begins as text can call no tool, so "
            "the rest changes no call")


# ----------------------------------------------------------------------------------------- settings
@dataclass
class GenerationSettings:
    """How to generate: greedy when temperature is 0, else sampling with temperature/top_p and a seed; guarded
    (the default) constrains tool calls to the offered tools' schemas (nursery_core/guard)."""

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = 0
    batch_size: int = DEFAULT_BATCH_SIZE
    guarded: bool = True
    # interactive calls (test, compare) stop a row once its tool calls are complete and anything else starts,
    # instead of writing on to max_new_tokens; evaluation keeps the whole completion
    stop_after_calls: bool = False
    # compare and guarded evaluation: a guarded answer that has begun as plain text is cut after this many tokens
    # (TEXT_ANSWER_TOKENS) instead of written on (None: never)
    text_tokens: int | None = None

    def validate(self) -> "GenerationSettings":
        if not isinstance(self.max_new_tokens, int) or not 1 <= self.max_new_tokens <= 8192:
            raise InvalidConfig(f"max_new_tokens must be an integer from 1 to 8192, not {self.max_new_tokens!r}")
        if not isinstance(self.temperature, (int, float)) or not 0 <= self.temperature <= 5:
            raise InvalidConfig(f"temperature must be between 0 (greedy) and 5, not {self.temperature!r}")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            raise InvalidConfig(f"top_p must be above 0 and at most 1, not {self.top_p!r}")
        if not isinstance(self.batch_size, int) or not 1 <= self.batch_size <= 512:
            raise InvalidConfig(f"batch_size must be an integer from 1 to 512, not {self.batch_size!r}")
        if not isinstance(self.guarded, bool):
            raise InvalidConfig(f"guarded must be true or false, not {self.guarded!r}")
        if self.text_tokens is not None and (not isinstance(self.text_tokens, int) or self.text_tokens < 1):
            raise InvalidConfig(f"text_tokens must be a positive integer or none, not {self.text_tokens!r}")
        if not isinstance(self.stop_after_calls, bool):
            raise InvalidConfig(f"stop_after_calls must be true or false, not {self.stop_after_calls!r}")
        return self

    @property
    def greedy(self) -> bool:
        return not self.temperature

    def to_dict(self) -> dict:
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "top_p": self.top_p,
                "seed": self.seed, "batch_size": self.batch_size, "greedy": self.greedy, "guarded": self.guarded,
                "stop_after_calls": self.stop_after_calls, "text_tokens": self.text_tokens}

    @classmethod
    def of(cls, settings: "GenerationSettings | dict | None" = None, **overrides: Any) -> "GenerationSettings":
        base = settings.to_dict() if isinstance(settings, GenerationSettings) else dict(settings or {})
        base.pop("greedy", None)
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**{k: v for k, v in base.items() if k in cls.__dataclass_fields__}).validate()


# ------------------------------------------------------------------------------------- model lookup
@dataclass
class ModelRef:
    """What a model name points at: an adapter over a base, or a bare base."""

    name: str
    kind: str                      # "adapter" | "base"
    base_dir: Path
    base_ref: str                  # what load_base gets (alias or directory)
    adapter_path: Path | None = None
    row: ModelRow | dict = field(default_factory=dict)


def _adapter_base(row: ModelRow | dict, adapter: Path) -> str:
    """The adapter's base: its run config's local base_model_dir when that exists here, else the alias."""
    for cfg_name in ("config.json", "nursery_run.json"):
        cfg = adapter / cfg_name
        if cfg.is_file():
            try:
                data = json.loads(cfg.read_text())
            except ValueError:
                continue
            d = data.get("base_model_dir")
            if d and Path(d).is_dir() and (Path(d) / "config.json").exists():
                return str(d)
    base = row.get("base_model")
    if base:
        return str(base)
    raise NotFound(f"model {row['name']!r} does not say which base model it adapts")


def resolve_model(name: str) -> ModelRef:
    """An adapter from the models table, else a base model alias or local directory."""
    from .base_models import ensure_local, resolve

    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("choose a model", field="model")
    name = name.strip()
    store = get_store()
    if store.has_model(name):
        row = store.get_model(name)
        p = Path(row["path"]) if row.get("path") else paths.models_dir() / name
        if not p.is_absolute():
            p = paths.home() / p
        if not (p / "adapter_config.json").exists():
            if row.get("kind") == "base" and (p / "config.json").exists():
                return ModelRef(name, "base", p.resolve(), str(p), row=row)
            raise NotFound(f"the files of model {name!r} are missing ({p}); delete it and train it again")
        base_ref = _adapter_base(row, p)
        return ModelRef(name, "adapter", ensure_local(base_ref).resolve(), base_ref, p.resolve(), row)
    try:
        spec = resolve(name)
    except NotFound:
        raise NotFound(f"no model named {name!r}: not a trained model (see list-models) nor a base model "
                       "alias or directory") from None
    return ModelRef(spec.alias, "base", ensure_local(name).resolve(), name)


# --------------------------------------------------------------------------------------------- pool
def _max_bases_default() -> int:
    try:
        return max(1, int(os.environ.get("NURSERY_MAX_LOADED_BASES", "2")))
    except ValueError:
        return 2


@dataclass
class _Base:
    key: str
    model: Any
    tokenizer: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    # model name → (peft adapter name, adapter dir, files' mtime): a changed dir or mtime means reload
    adapters: "OrderedDict[str, tuple[str, str, float]]" = field(default_factory=OrderedDict)
    # model name → PrefixCache: the KV of prompt prefixes (system turn with the tools) already computed
    prefixes: dict = field(default_factory=dict)


def _adapter_mtime(path: Path) -> float:
    files = [path / "adapter_model.safetensors", path / "adapter_model.bin", path / "adapter_config.json"]
    return max((f.stat().st_mtime for f in files if f.exists()), default=0.0)


def adapter_chat_template(path: Path | None) -> str | None:
    """The chat template an adapter trained with, when Nursery installed it (its rendering version may differ
    from the base's current one: prompts for that adapter must be rendered as its training data was)."""
    from .training.rendering import installed_version

    if path is None:
        return None
    text = None
    if (path / "chat_template.jinja").is_file():
        text = (path / "chat_template.jinja").read_text(encoding="utf-8")
    elif (path / "tokenizer_config.json").is_file():
        try:
            text = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8")).get("chat_template")
        except ValueError:
            text = None
    return text if isinstance(text, str) and installed_version(text) else None


def _peft_name(model_name: str, taken: set[str]) -> str:
    base = "a_" + "".join(ch if ch.isalnum() else "_" for ch in model_name)  # peft names are module keys
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name


class ModelPool:
    """Loaded bases (LRU, at most `max_bases`) each with up to `max_adapters` named adapters."""

    def __init__(self, max_bases: int | None = None, max_adapters: int = 8):
        self.max_bases = max_bases or _max_bases_default()
        self.max_adapters = max_adapters
        self._bases: "OrderedDict[str, _Base]" = OrderedDict()
        self._lock = threading.RLock()
        self.loads = 0  # base loads so far (tests and the UI show it)

    # -- state for tests and the UI
    def loaded(self) -> list[dict]:
        with self._lock:
            return [{"base": k, "adapters": list(b.adapters)} for k, b in self._bases.items()]

    def clear(self) -> None:
        with self._lock:
            self._bases.clear()
        gc.collect()

    def forget(self, model_name: str) -> None:
        """Drops a deleted or retrained adapter from every base."""
        with self._lock:
            entries = list(self._bases.values())
        for entry in entries:
            with entry.lock:
                hit = entry.adapters.pop(model_name, None)
                entry.prefixes.pop(model_name, None)
                if hit is not None:
                    entry.model.delete_adapter(hit[0])

    def is_loaded(self, model_name: str) -> bool:
        """True when a call on `model_name` starts generating at once (its base, and adapter, are in memory)."""
        ref = resolve_model(model_name)
        with self._lock:
            entry = self._bases.get(str(ref.base_dir))
        if entry is None:
            return False
        if ref.kind != "adapter":
            return True
        hit = entry.adapters.get(ref.name)
        return (hit is not None and ref.adapter_path is not None
                and tuple(hit[1:]) == (str(ref.adapter_path), _adapter_mtime(ref.adapter_path)))

    def warm(self, model_name: str) -> float:
        """Loads `model_name` (base and adapter) without generating; returns the seconds it took."""
        start = time.monotonic()
        with self._active(model_name):
            pass
        return time.monotonic() - start

    def _base(self, ref: ModelRef) -> _Base:
        from .base_models import load_base

        key = str(ref.base_dir)
        with self._lock:
            entry = self._bases.get(key)
            if entry is not None:
                self._bases.move_to_end(key)
                return entry
            while len(self._bases) >= self.max_bases:
                self._bases.popitem(last=False)  # a generation still running keeps its own reference
                gc.collect()
            model, tok, _ = load_base(ref.base_ref if ref.kind == "adapter" else str(ref.base_dir))
            model.eval()
            entry = _Base(key, model, tok)
            self._bases[key] = entry
            self.loads += 1
            return entry

    def _activate(self, entry: _Base, ref: ModelRef) -> None:
        """Called with entry.lock held: loads the adapter if needed and makes it (or the bare base) active."""
        from peft import PeftModel

        if ref.kind != "adapter" or ref.adapter_path is None:
            return
        stamp = (str(ref.adapter_path), _adapter_mtime(ref.adapter_path))
        hit = entry.adapters.get(ref.name)
        if hit is not None and hit[1:] != stamp:  # retrained, or another home's model of that name
            entry.model.delete_adapter(hit[0])
            entry.adapters.pop(ref.name)
            entry.prefixes.pop(ref.name, None)
            hit = None
        if hit is None:
            pname = _peft_name(ref.name, {h[0] for h in entry.adapters.values()})
            if isinstance(entry.model, PeftModel):
                entry.model.load_adapter(str(ref.adapter_path), adapter_name=pname, is_trainable=False)
            else:
                entry.model = PeftModel.from_pretrained(entry.model, str(ref.adapter_path), adapter_name=pname,
                                                        is_trainable=False)
                entry.model.eval()
            entry.adapters[ref.name] = (pname, *stamp)
            while len(entry.adapters) > self.max_adapters:
                old, (old_p, *_) = next(iter(entry.adapters.items()))
                if old == ref.name:
                    break
                entry.adapters.pop(old)
                entry.model.delete_adapter(old_p)
        entry.adapters.move_to_end(ref.name)
        entry.model.set_adapter(entry.adapters[ref.name][0])

    @contextmanager
    def _active(self, model_name: str) -> Iterator[tuple[Any, Any]]:
        """(model, tokenizer) with `model_name` active and its own chat template, its base locked meanwhile."""
        ref = resolve_model(model_name)
        entry = self._base(ref)
        with entry.lock:
            self._activate(entry, ref)
            bare = ref.kind != "adapter" and _is_peft(entry.model)
            template = adapter_chat_template(ref.adapter_path) if ref.kind == "adapter" else None
            saved = entry.tokenizer.chat_template
            if template:
                entry.tokenizer.chat_template = template
            try:
                with (entry.model.disable_adapter() if bare else nullcontext()):
                    yield entry.model, entry.tokenizer
            finally:
                entry.tokenizer.chat_template = saved

    def run(self, model_name: str, fn: Callable[[Any, Any], Any]) -> Any:
        """Calls fn(model, tokenizer) with `model_name` active, holding its base's lock."""
        with self._active(model_name) as (model, tokenizer):
            return fn(model, tokenizer)

    def stream(self, model_name: str, fn: Callable[..., Iterator[str]]) -> Iterator[str]:
        """Like run, for a generator: the base stays locked until the stream ends or is closed. fn gets
        (model, tokenizer, prefix cache of this model)."""
        with self._active(model_name) as (model, tokenizer):
            yield from fn(model, tokenizer, self.prefix_cache(model_name))

    def prefix_cache(self, model_name: str) -> "PrefixCache":
        """The prompt-prefix KV cache of a loaded model (dropped with its adapter or base)."""
        ref = resolve_model(model_name)
        with self._lock:
            entry = self._bases.get(str(ref.base_dir))
        if entry is None:
            return PrefixCache()
        return entry.prefixes.setdefault(model_name, PrefixCache())


class PrefixCache:
    """The KV cache of a few prompt prefixes of one model: the system turn with the tools is the same from one
    call to the next, so a warm model only runs the new user turn before its first token (LRU, `size`)."""

    def __init__(self, size: int = 4):
        self.size = size
        self._items: "OrderedDict[str, tuple[list[int], Any]]" = OrderedDict()
        self.hits = self.misses = 0

    def past_for(self, model, tokenizer, prompt: Prompt, ids: list[int]):
        """A copy of the cached KV for the longest cached prefix of `ids` (computed and kept on a miss), or None
        when the prompt has no reusable prefix (a rendered string, no earlier turns, a tokenizer boundary)."""
        import copy

        import torch

        prefix_text = _prefix_text(tokenizer, prompt)
        if not prefix_text:
            return None
        hit = self._items.get(prefix_text)
        if hit is None:
            pids = tokenizer(prefix_text, add_special_tokens=False)["input_ids"]
            if len(pids) < 8 or len(pids) >= len(ids) or ids[:len(pids)] != pids:
                return None
            device = next(model.parameters()).device
            with torch.inference_mode():
                out = model(input_ids=torch.tensor([pids], device=device), use_cache=True)
            hit = (pids, out.past_key_values)
            self._items[prefix_text] = hit
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            self.misses += 1
        else:
            if ids[:len(hit[0])] != hit[0]:
                return None
            self._items.move_to_end(prefix_text)
            self.hits += 1
        return copy.deepcopy(hit[1])  # generate() extends the cache it is given


_SENTINEL = "\x00nursery-prefix\x00"


def _prefix_text(tokenizer, prompt: Prompt) -> str | None:
    """The rendered text before the last user message's own words: the system turn with the tools, earlier
    turns and the last user turn's header (found by rendering a sentinel in place of that message)."""
    from .training.rendering import render

    if isinstance(prompt, str):
        return None
    messages, tools = (prompt["messages"], prompt.get("tools")) if isinstance(prompt, dict) else prompt
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    if last_user is None:
        return None
    probe = [*messages[:last_user], {"role": "user", "content": _SENTINEL}]
    try:
        text = render(tokenizer, probe, tools, add_generation_prompt=False)
    except Exception:  # noqa: BLE001 — a template that refuses the probe: no reusable prefix
        return None
    at = text.find(_SENTINEL)
    before = text[:at] if at > 0 else ""
    return before if before and _render(tokenizer, prompt).startswith(before) else None


class StopAfterCalls:
    """A stopping criterion per row: once a row's answer holds complete <tool_call> blocks and the text after
    the last one is neither blank nor the start of another block, that row is done (a small model that keeps
    writing after its calls is not waited for). `cut` drops that trailing start from the decoded answer."""

    def __init__(self, tokenizer, prompt_len: int):
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len

    @staticmethod
    def finished(text: str) -> bool:
        from .training.rendering import TOOL_CALL_CLOSE, TOOL_CALL_OPEN

        at = text.rfind(TOOL_CALL_CLOSE)
        if at < 0 or text.count(TOOL_CALL_OPEN) > text.count(TOOL_CALL_CLOSE):
            return False
        rest = text[at + len(TOOL_CALL_CLOSE):].lstrip()
        return bool(rest) and not (TOOL_CALL_OPEN.startswith(rest) or rest.startswith(TOOL_CALL_OPEN))

    @staticmethod
    def cut(text: str) -> str:
        from .training.rendering import TOOL_CALL_CLOSE

        if StopAfterCalls.finished(text):
            return text[:text.rfind(TOOL_CALL_CLOSE) + len(TOOL_CALL_CLOSE)]
        return text

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        new = input_ids[:, self.prompt_len:]
        done = [self.finished(self.tokenizer.decode(row, skip_special_tokens=True)) for row in new]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def is_text_answer(text: str) -> bool:
    """True once a guarded answer has taken the grammar's plain-text branch (guard.grammar.tool_grammar: text,
    which never holds a call, or calls, each opening with TOOL_CALL_OPEN after at most MAX_GAP whitespace)."""
    from .guard.grammar import MAX_GAP
    from .training.rendering import TOOL_CALL_OPEN

    body = text.lstrip()
    if not body:
        return False
    if len(text) - len(body) > MAX_GAP:
        return True
    return not (body.startswith(TOOL_CALL_OPEN) or TOOL_CALL_OPEN.startswith(body))


class StopTextAnswers:
    """A stopping criterion per row for guarded rows (settings.text_tokens): a row that has written `limit`
    tokens of an answer that began as plain text is done, since the guard allows it no call any more."""

    def __init__(self, tokenizer, prompt_len: int, limit: int, guarded_rows: list[bool]):
        self.tokenizer, self.prompt_len, self.limit, self.guarded_rows = tokenizer, prompt_len, limit, guarded_rows

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        new = input_ids[:, self.prompt_len:]
        done = [bool(g) and new.shape[1] >= self.limit
                and is_text_answer(self.tokenizer.decode(row, skip_special_tokens=False))
                for g, row in zip(self.guarded_rows, new)]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class RowProgress:
    """Never stops anything: reports how many rows of a batch have ended (an end-of-turn token), each time that
    number grows, so a batch of answers shows progress answer by answer."""

    def __init__(self, prompt_len: int, stop_ids: list[int], report: Callable[[int], None]):
        self.prompt_len, self.stop_ids, self.report = prompt_len, stop_ids, report
        self.finished = 0

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        new = input_ids[:, self.prompt_len:]
        ended = int(torch.isin(new, torch.tensor(self.stop_ids, device=new.device)).any(dim=1).sum()) \
            if self.stop_ids and new.shape[1] else 0
        if ended > self.finished:
            self.finished = ended
            self.report(ended)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def _is_peft(model) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


_POOL: ModelPool | None = None
_POOL_LOCK = threading.Lock()


def get_pool() -> ModelPool:
    """The process-wide pool (pages hold it through st.cache_resource too, so it survives reruns)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ModelPool()
        return _POOL


# ----------------------------------------------------------------------------------------- generation
Prompt = Any  # {"messages", "tools", optional "tool_choice"} | (messages, tools) | a rendered string


class Completions(list):
    """Completions in prompt order, plus `decoding`: what ran ({"decoding": "guarded" | "free" | "mixed",
    "guarded_prompts", "prompts", "notes"}; see guard.grammar.decoding_summary), and `usage`: per prompt
    {"prompt_tokens", "completion_tokens", "stopped"} (stopped: False when max_new_tokens ended it), and
    `engine`: {"engine": "llama.cpp" | "torch", "notes"} (which engine served, and what it left to torch)."""

    decoding: dict = {}
    usage: list = []
    engine: dict = {}
    guard: dict = {}   # {"errors": {prompt index: why it decoded free}, "closed": answers steered to close}


def _prompt_tools(prompt: Prompt) -> list[dict] | None:
    """The tools a prompt offers; None for an already-rendered string (its tools are unknown)."""
    if isinstance(prompt, str):
        return None
    if isinstance(prompt, dict):
        return prompt.get("tools") or []
    return prompt[1] or []


def _guard_plans(prompts: Sequence[Prompt], s: GenerationSettings) -> list:
    """A guard per prompt; a dict prompt may carry OpenAI's `tool_choice` (guard.grammar.select_tools)."""
    from .guard.grammar import GuardPlan, plan_for, select_tools

    if not s.guarded:
        return [GuardPlan.free("guarded decoding is off") for _ in prompts]
    plans = []
    for p in prompts:
        tools = _prompt_tools(p)
        if tools is None:
            plans.append(GuardPlan.free("the prompt was given as rendered text, so its tools are unknown: "
                                        "decoded free"))
            continue
        allowed, required = select_tools(tools, p.get("tool_choice") if isinstance(p, dict) else None)
        plans.append(plan_for(allowed, require_call=required))
    return plans


def _guard(tokenizer, grammars: list[str | None], s: GenerationSettings):
    """A LogitsProcessorList with one ToolCallGuard over these rows, or (None, None) when none is guarded."""
    if not any(g is not None for g in grammars):
        return None, None
    from transformers import LogitsProcessorList

    from .guard.processor import ToolCallGuard

    guard = ToolCallGuard.for_rows(tokenizer, _stop_ids(tokenizer), grammars, greedy=s.greedy,
                                   max_new_tokens=s.max_new_tokens)
    return guard, LogitsProcessorList([guard])


def _render(tokenizer, prompt: Prompt) -> str:
    from .training.rendering import render_prompt

    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, dict):
        return render_prompt(tokenizer, prompt["messages"], prompt.get("tools"))
    messages, tools = prompt
    return render_prompt(tokenizer, messages, tools)


def _row_progress(progress: Callable[[int, int], object], base: int, total: int, finished: int) -> None:
    """RowProgress's report for a batch starting at answer `base` of `total`."""
    progress(base + finished, total)


def _stop_ids(tokenizer) -> list[int]:
    from .training.rendering import end_of_turn

    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    eot = tokenizer.encode(end_of_turn(tokenizer), add_special_tokens=False)
    if len(eot) == 1 and eot[0] not in ids:
        ids.append(eot[0])
    return ids


def _cut(tokenizer, text: str) -> str:
    from .training.rendering import end_of_turn

    for stop in (end_of_turn(tokenizer), tokenizer.eos_token, tokenizer.pad_token):
        if stop and stop in text:
            text = text.split(stop, 1)[0]
    return text.strip()


def _gen_config(tokenizer, s: GenerationSettings):
    from transformers import GenerationConfig

    kw: dict[str, Any] = {"max_new_tokens": s.max_new_tokens, "eos_token_id": _stop_ids(tokenizer),
                          "pad_token_id": tokenizer.pad_token_id}
    if s.greedy:
        kw.update(do_sample=False)
    else:
        kw.update(do_sample=True, temperature=float(s.temperature), top_p=float(s.top_p), top_k=0)
    return GenerationConfig(**kw)


def generate_with(model, tokenizer, prompts: Sequence[Prompt], settings: GenerationSettings | dict | None = None,
                  progress: Callable[[int, int], object] | None = None, **overrides: Any) -> Completions:
    """Raw completions for already-loaded (model, tokenizer): several prompts per forward pass, left-padded,
    each cut at the family's end of turn; guarded rows each get their own grammar matcher. `.decoding` of the
    result says what ran."""
    import torch
    from .guard.grammar import decoding_summary

    s = GenerationSettings.of(settings, **overrides)
    texts = [_render(tokenizer, p) for p in prompts]
    plans = _guard_plans(prompts, s)
    runtime_errors: dict[int, str] = {}
    closed = 0
    if not texts:
        empty = Completions()
        empty.decoding = decoding_summary(s.guarded, [])
        return empty
    # Similar lengths share a batch: less padding, same results.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list[str] = [""] * len(texts)
    usage: list[dict] = [{} for _ in texts]
    stop_ids = set(_stop_ids(tokenizer))
    gen_cfg = _gen_config(tokenizer, s)
    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        if s.seed is not None:
            torch.manual_seed(int(s.seed))
        done = 0
        for start in range(0, len(order), s.batch_size):
            idx = order[start:start + s.batch_size]
            enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(device) for k, v in enc.items()}
            guard, processors = _guard(tokenizer, [plans[i].grammar for i in idx], s)
            stops = _stops(tokenizer, enc["input_ids"].shape[1], s, [plans[i].grammar is not None for i in idx])
            if progress and len(idx) > 1:  # per answer inside a batch, not only per batch
                from transformers import StoppingCriteriaList

                stops = StoppingCriteriaList([*(stops or []), RowProgress(
                    enc["input_ids"].shape[1], _stop_ids(tokenizer),
                    functools.partial(_row_progress, progress, done, len(texts)))])
            with torch.inference_mode():
                gen = model.generate(**enc, generation_config=gen_cfg, logits_processor=processors,
                                     stopping_criteria=stops)
            new = gen[:, enc["input_ids"].shape[1]:]
            for row, i in enumerate(idx):
                out[i] = _cut(tokenizer, tokenizer.decode(new[row], skip_special_tokens=False))
                if s.stop_after_calls:
                    out[i] = StopAfterCalls.cut(out[i])
                ids = new[row].tolist()
                end = next((k + 1 for k, t in enumerate(ids) if t in stop_ids), None)
                usage[i] = {"prompt_tokens": int(enc["attention_mask"][row].sum()),
                            "completion_tokens": end if end is not None else len(ids), "stopped": end is not None}
                if guard is not None and row in guard.errors:
                    runtime_errors[i] = guard.errors[row]
            closed += len(guard.steered) if guard is not None else 0
            done += len(idx)
            if progress:
                progress(done, len(texts))
    finally:
        tokenizer.padding_side = side
    result = Completions(out)
    result.decoding = decoding_summary(s.guarded, plans, runtime_errors, closed)
    result.usage = usage
    result.guard = {"errors": runtime_errors, "closed": closed}
    return result


def _stops(tokenizer, prompt_len: int, s: GenerationSettings, guarded_rows: list[bool] | None = None):
    from transformers import StoppingCriteriaList

    stops: list[Any] = [StopAfterCalls(tokenizer, prompt_len)] if s.stop_after_calls else []
    if s.text_tokens and guarded_rows and any(guarded_rows):
        stops.append(StopTextAnswers(tokenizer, prompt_len, s.text_tokens, guarded_rows))
    return StoppingCriteriaList(stops) if stops else None


def stream_with(model, tokenizer, prompt: Prompt, settings: GenerationSettings | dict | None = None,
                report: dict | None = None, prefix_cache: PrefixCache | None = None,
                **overrides: Any) -> Iterator[str]:
    """Text chunks of one completion as they are generated (for st.write_stream); `report`, when given, is
    updated with what ran (the decoding summary) once the stream ends. With `prefix_cache` the prompt's
    prefix (system turn and tools) is not run again when the cache holds it."""
    import torch
    from transformers import TextIteratorStreamer

    from .guard.grammar import decoding_summary

    s = GenerationSettings.of(settings, **overrides)
    text = _render(tokenizer, prompt)
    plans = _guard_plans([prompt], s)
    guard, processors = _guard(tokenizer, [plans[0].grammar], s)
    enc = tokenizer([text], return_tensors="pt", add_special_tokens=False)
    device = next(model.parameters()).device
    enc = {k: v.to(device) for k, v in enc.items()}
    extra: dict[str, Any] = {}
    if prefix_cache is not None:
        past = prefix_cache.past_for(model, tokenizer, prompt, enc["input_ids"][0].tolist())
        if past is not None:
            extra["past_key_values"] = past
    stops = _stops(tokenizer, enc["input_ids"].shape[1], s, [plans[0].grammar is not None])
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
    if s.seed is not None:
        torch.manual_seed(int(s.seed))
    errors: list[BaseException] = []

    def work():
        try:
            with torch.inference_mode():
                model.generate(**enc, generation_config=_gen_config(tokenizer, s), streamer=streamer,
                               logits_processor=processors, stopping_criteria=stops, **extra)
        except BaseException as e:  # noqa: BLE001 — surfaced to the reader below
            errors.append(e)
            streamer.end()

    t = threading.Thread(target=work, name="nursery-stream", daemon=True)
    t.start()
    try:
        for chunk in streamer:
            if chunk:
                yield chunk
    finally:
        t.join()
        if report is not None:
            report.update(decoding_summary(s.guarded, plans, dict(guard.errors) if guard is not None else {},
                                           len(guard.steered) if guard is not None else 0))
    if errors:
        raise errors[0]


def generate_batch(model_name: str, prompts: Sequence[Prompt], settings: GenerationSettings | dict | None = None,
                   progress: Callable[[int, int], object] | None = None, **overrides: Any) -> Completions:
    """Raw completions of a pooled torch model (adapter or base) for many prompts, batched (`.decoding`: what
    ran; `.engine`: {"engine": "torch", "notes": []}). Interactive calls go through interactive.py, which serves
    them from llama.cpp when it can."""
    s = GenerationSettings.of(settings, **overrides)
    out = get_pool().run(model_name, lambda m, t: generate_with(m, t, prompts, s, progress=progress))
    out.engine = {"engine": "torch", "notes": []}
    return out


def stream_generate(model_name: str, prompt: Prompt, settings: GenerationSettings | dict | None = None,
                    report: dict | None = None, **overrides: Any) -> Iterator[str]:
    """Text chunks of one answer of a pooled torch model; `report` gets the decoding summary at the end."""
    s = GenerationSettings.of(settings, **overrides)
    return get_pool().stream(model_name, lambda m, t, cache: stream_with(m, t, prompt, s, report=report,
                                                                         prefix_cache=cache))


# ------------------------------------------------------------------------------------------- tools
def resolve_tools(model_name: str | None = None, tools: Any = None, tools_from: str | None = None) -> tuple[list[dict], str]:
    """(tools, where they came from): pasted/given tools, else a dataset's, else the model's training tools."""
    from .data.tools import parse_tool_schemas, tools_from_data

    if tools is not None and tools != "" and tools != []:
        if isinstance(tools, str):
            return parse_tool_schemas(tools), "pasted"
        return tools_from_data(tools, "<tools>"), "given"
    if tools_from:
        return dataset_tools(tools_from), f"dataset {tools_from}"
    if model_name:
        store = get_store()
        if store.has_model(model_name):
            row = store.get_model(model_name)
            if row.get("tools"):
                return tools_from_data(row["tools"], f"model {model_name}"), f"training tools of {model_name}"
            held = row.get("dataset")
            if held and get_store().has_dataset(held):
                return dataset_tools(held), f"dataset {held}"
    return [], "none"


def analyse_completion(completion: str, tools: list[dict]) -> dict:
    """Parsed calls of a raw completion, each with JSON validity and schema validity against its tool."""
    from .evaluation.checker import find_tool
    from .evaluation.metrics import schema_errors
    from .evaluation.parser import parse_tool_calls

    parsed = parse_tool_calls(completion)
    calls = []
    for c in parsed.calls:
        tool = find_tool(tools, c["name"])
        errs = schema_errors(tool, c["arguments"]) if tools else []
        calls.append({"name": c["name"], "arguments": c["arguments"], "json_valid": True,
                      "known_tool": tool is not None, "schema_valid": bool(tools) and not errs,
                      "schema_errors": errs if tools else ["no tools to check against"]})
    return {"completion": completion, "calls": calls, "format_ok": parsed.format_ok,
            "parse_errors": parsed.errors, "invalid_blocks": parsed.blocks - len(parsed.calls)}


def build_messages(prompt: str, system: str | None = None) -> list[dict]:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidInput("the prompt is empty", field="prompt")
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [{"role": "user", "content": prompt}]
