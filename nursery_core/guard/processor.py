"""Applies guard grammars while `model.generate` runs: one llguidance `LLMatcher` per sequence of the batch, fed
each sampled token, filling a vocabulary bitmask that sets the logits of disallowed tokens to -inf.

llguidance 1.9 ships tokenizer wrapping (`llguidance.hf.from_tokenizer`) and mask filling but no transformers
LogitsProcessor; `ToolCallGuard` is that processor. Costs paid once: the llguidance tokenizer per HF tokenizer
(≈0.5 s) and one compiled matcher per grammar, deep-copied for each sequence.

Budget closing: a grammar bounds what a call may contain, not how many tokens it takes, so a model rambling inside
a string could still be cut by max_new_tokens mid-call. In the last CLOSING_WINDOW tokens the guard checks, per
row inside a call, that the answer can still end in the tokens left after the model's choice, using a quick
closing path (end of turn, else the grammar's forced tokens, else an allowed closing token made of `"`, `}`, `]`,
quotes first, else one of a few characters that complete formats and patterns, `@ . a 0 - : T /` (an email
missing its domain, a half-written date), else the lowest allowed token id); when it cannot, the row is steered
onto that path. A greedy answer that ends within the budget anyway is left as it is. A pattern those characters
cannot complete may still not close: the path then gives up and the model decodes as before.
"""
from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from transformers import LogitsProcessor

from ..training.rendering import TOOL_CALL_OPEN

_TEMPLATES_MAX = 64
CLOSING_WINDOW = 48     # tokens before max_new_tokens from which budget closing checks each step
_CLOSER_CHARS = frozenset(b'"}]\n')
_PROGRESS_CHARS = "@.a0-:T/"   # tried in this order when no closing token is allowed


@dataclass
class _TokenizerState:
    stop_ids: tuple[int, ...]
    ll: Any                                            # llguidance.LLTokenizer
    templates: "OrderedDict[str, Any]" = field(default_factory=OrderedDict)   # grammar → LLMatcher
    _closers: np.ndarray | None = None
    _progress: list[int] | None = None

    @property
    def progress(self) -> list[int]:
        """Single-token ids of _PROGRESS_CHARS, in order."""
        if self._progress is None:
            ids = [self.ll.tokenize_str(ch) for ch in _PROGRESS_CHARS]
            self._progress = [t[0] for t in ids if len(t) == 1]
        return self._progress

    @property
    def closers(self) -> np.ndarray:
        """Token ids made only of `"`, `}`, `]` and newlines (at least one of the first three): those starting with
        a quote first (inside a string only a quote ends it; `}` and `]` would be content), longest first."""
        if self._closers is None:
            found = []
            for t in range(self.ll.vocab_size):
                b = self.ll.decode_bytes([t])
                if b and set(b) <= _CLOSER_CHARS and b.strip(b"\n"):
                    found.append((not b.startswith(b'"'), -len(b), t))
            self._closers = np.array([t for *_, t in sorted(found)], dtype=np.int64)
        return self._closers


_STATES: "weakref.WeakKeyDictionary[Any, _TokenizerState]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _state(tokenizer, stop_ids: Sequence[int]) -> _TokenizerState:
    import llguidance.hf

    stop = tuple(sorted(set(int(t) for t in stop_ids)))
    with _LOCK:
        st = _STATES.get(tokenizer)
        if st is None or st.stop_ids != stop:
            # The end-of-turn ids are the grammar's EOS: allowed wherever the answer may end.
            st = _TokenizerState(stop, llguidance.hf.from_tokenizer(tokenizer, eos_token=list(stop) or None))
            _STATES[tokenizer] = st
        return st


def new_matcher(tokenizer, stop_ids: Sequence[int], grammar: str) -> tuple[Any | None, str | None]:
    """(a fresh matcher for `grammar` on this tokenizer, None) or (None, why not). Compiles once per grammar."""
    from llguidance import LLMatcher

    st = _state(tokenizer, stop_ids)
    with _LOCK:
        template = st.templates.get(grammar)
        if template is None:
            template = LLMatcher(st.ll, LLMatcher.grammar_from_lark(grammar), log_level=0)
            st.templates[grammar] = template
            while len(st.templates) > _TEMPLATES_MAX:
                st.templates.popitem(last=False)
        else:
            st.templates.move_to_end(grammar)
        if template.is_error():
            return None, f"the grammar does not work with this tokenizer ({template.get_error()[:160]}): decoded free"
        return template.deep_copy(), None


def allowed_tokens(bitmask: torch.Tensor, vocab: int) -> np.ndarray:
    """(rows, words) int32 llguidance bitmask (CPU; bit k of word w = token 32w+k) → (rows, vocab) bool; ids past
    the mask are not allowed."""
    as_bytes = bitmask.numpy().astype("<i4", copy=False).view(np.uint8)
    return np.unpackbits(as_bytes, axis=1, count=vocab, bitorder="little").view(np.bool_)


def _as_numpy(scores: torch.Tensor) -> np.ndarray | None:
    """A writable numpy view of CPU float logits, else None. numpy, not torch, for the per-step argmax and
    masking: torch's threaded kernels stall for milliseconds on a busy CPU, numpy's single thread does not."""
    if scores.device.type == "cpu" and scores.dtype in (torch.float32, torch.float64, torch.float16):
        return scores.numpy()
    return None


def mask_logits(scores: torch.Tensor, rows: list[int], allowed: np.ndarray) -> None:
    """Sets scores[rows[k], t] to -inf wherever allowed[k, t] is False (in place)."""
    view = _as_numpy(scores)
    if view is not None:
        for k, r in enumerate(rows):
            view[r][~allowed[k]] = -np.inf
        return
    idx = torch.tensor(rows, device=scores.device)
    keep = torch.from_numpy(allowed).to(scores.device)
    scores[idx] = scores[idx].masked_fill(~keep, float("-inf"))


class ToolCallGuard(LogitsProcessor):
    """Masks each row's logits to what its grammar allows next; rows without a matcher decode free.

    Greedy decoding (`greedy`) only needs the mask where the top-scoring token is not allowed: the matcher checks
    that one token, and the full mask is computed and applied only when it fails (same argmax, a fraction of
    the work). `errors` maps a row to why it fell back to free decoding mid-way (never expected: masked decoding
    only picks allowed tokens). `steps` holds (seconds, guarded rows, fully masked rows) per step, for the bench."""

    def __init__(self, matchers: list[Any | None], stop_ids: Sequence[int], vocab_size: int, greedy: bool = False,
                 max_new_tokens: int | None = None, closers: np.ndarray | None = None,
                 progress: list[int] | None = None):
        # llguidance matchers; None for a row that decodes freely (done from the start, so never read below)
        self.matchers: list[Any] = list(matchers)
        self.greedy = greedy
        self.max_new_tokens = max_new_tokens
        self.closers = closers if closers is not None else np.zeros(0, dtype=np.int64)
        self.progress = progress or []
        self._letter = self.progress[_PROGRESS_CHARS.index("a")] if len(self.progress) == len(_PROGRESS_CHARS) \
            else None
        self._quoted: set[int] = set()   # closers starting with a quote (set by for_rows)
        self.steered: set[int] = set()   # rows budget closing steered at least once
        self.call_open: list[int] = []    # the tokens of TOOL_CALL_OPEN (set by for_rows)
        self._call_cost: dict[int, int] = {}
        self._prompt_len: int | None = None
        self.steps: list[tuple[float, int, int]] = []
        self.stop_ids = set(int(t) for t in stop_ids)
        self.done = [m is None for m in self.matchers]
        self.errors: dict[int, str] = {}
        self._seen: int | None = None
        self._bitmask = torch.zeros(len(self.matchers), (vocab_size + 31) // 32, dtype=torch.int32)

    @classmethod
    def for_rows(cls, tokenizer, stop_ids: Sequence[int], grammars: list[str | None], greedy: bool = False,
                 max_new_tokens: int | None = None) -> "ToolCallGuard":
        """One matcher per row (None = that row decodes free); rows whose grammar fails to load are in `errors`.
        With `max_new_tokens`, budget closing keeps calls from being cut by the token limit."""
        matchers, errors = [], {}
        for i, g in enumerate(grammars):
            m, err = new_matcher(tokenizer, stop_ids, g) if g is not None else (None, None)
            matchers.append(m)
            if err:
                errors[i] = err
        st = _state(tokenizer, stop_ids)
        closing = bool(max_new_tokens) and any(m is not None for m in matchers)
        guard = cls(matchers, stop_ids, st.ll.vocab_size, greedy, max_new_tokens,
                    st.closers if closing else None, st.progress if closing else None)
        if closing:
            guard._quoted = {int(t) for t in st.closers if st.ll.decode_bytes([int(t)]).startswith(b'"')}
        guard.call_open = tokenizer.encode(TOOL_CALL_OPEN, add_special_tokens=False)
        guard.errors.update(errors)
        return guard

    def _fail(self, row: int, why: str) -> None:
        self.done[row] = True
        self.errors.setdefault(row, f"guarded decoding stopped ({why}): the rest decoded free")

    def _consume(self, input_ids: torch.Tensor) -> None:
        n = input_ids.shape[1]
        if self._seen is not None and n > self._seen:
            new = input_ids[:, self._seen:n].tolist()
            for row, tokens in enumerate(new):
                for tok in tokens:
                    if self.done[row]:
                        break
                    m = self.matchers[row]
                    if not m.consume_token(tok):
                        self._fail(row, m.get_error()[:160] or f"token {tok} refused")
                    elif tok in self.stop_ids:
                        self.done[row] = True
        self._seen = n

    def _closing_path(self, m, limit: int) -> list[int] | None:
        """Tokens that end the answer from m's state (m is consumed), at most `limit`, or None."""
        path: list[int] = []
        scratch = torch.zeros(1, self._bitmask.shape[1], dtype=torch.int32)
        stop = min(self.stop_ids)
        while len(path) < limit:
            if m.is_accepting():
                return path + [stop]
            forced = m.compute_ff_tokens()
            if forced:
                if not m.consume_tokens(forced):
                    return None
                path += forced
                continue
            m.unsafe_compute_mask_ptr(scratch.data_ptr(), scratch.numel() * 4)
            allowed = allowed_tokens(scratch, scratch.shape[1] * 32)[0]
            ok = self.closers[allowed[self.closers]] if len(self.closers) else self.closers
            if len(ok) and self._letter is not None and allowed[self._letter]:
                # a letter fits: inside a string, where only a quote ends it (`}`, `]` are content there)
                ok = [t for t in ok if t in self._quoted]
            if len(ok):
                tok = int(ok[0])
            else:
                tok = next((t for t in self.progress if allowed[t]), int(np.argmax(allowed)))
            if not allowed[tok] or not m.consume_token(tok):
                return None
            path.append(tok)
        return None

    def _close_within_budget(self, scores: torch.Tensor, remaining: int, rows: list[int]) -> None:
        """Steers rows whose answer could no longer end within `remaining` tokens (see the module docstring).
        Greedy: the model's choice stands when the answer can still end after it."""
        if not self.greedy:
            for r in rows:
                self._close_sampled(scores, remaining, r)
            return
        view = _as_numpy(scores)
        choice = (view.argmax(axis=-1) if view is not None else scores.argmax(dim=-1)).tolist()
        for r in rows:
            if choice[r] in self.stop_ids:
                continue
            after = self.matchers[r].deep_copy()
            if not after.consume_token(choice[r]) or after.is_accepting() \
                    or self._closing_path(after, remaining - 1) is not None:
                continue
            path = self._closing_path(self.matchers[r].deep_copy(), remaining)
            if path:
                self._force(scores, r, path[0])

    def _close_sampled(self, scores: torch.Tensor, remaining: int, r: int) -> None:
        """Sampling picks after the guard, so it steers on the state alone: a call closes at its last chance; a
        call about to end, or a finished answer in call mode, ends when another call would no longer fit (one
        token can finish a call and open the next, e.g. `><`)."""
        m = self.matchers[r]
        cost = self._call_cost.get(r, 0)
        if m.is_accepting():
            if cost and remaining <= cost and m.deep_copy().consume_tokens(self.call_open):
                self._force(scores, r, min(self.stop_ids))
            return
        path = self._closing_path(m.deep_copy(), remaining)
        if path and (len(path) >= remaining - 1 or (len(path) <= 2 and remaining <= len(path) + cost)):
            self._force(scores, r, path[0])

    def _note_call_costs(self) -> None:
        """Per row, the tokens of the cheapest closing of a call opened from the start (0: no call possible)."""
        self._call_cost = {}
        for r, m in enumerate(self.matchers):
            opened = m.deep_copy() if m is not None else None
            if opened is not None and opened.consume_tokens(self.call_open):
                path = self._closing_path(opened, 4 * CLOSING_WINDOW)
                self._call_cost[r] = len(self.call_open) + (len(path) if path else 4 * CLOSING_WINDOW)

    def _force(self, scores: torch.Tensor, row: int, token: int) -> None:
        keep = np.zeros((1, scores.shape[-1]), dtype=np.bool_)
        keep[0, token] = True
        mask_logits(scores, [row], keep)
        self.steered.add(row)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        started = time.perf_counter()
        if self._prompt_len is None:
            self._prompt_len = input_ids.shape[1]
            if self.max_new_tokens and not self.greedy:
                self._note_call_costs()
        self._consume(input_ids)
        rows = active = [r for r, d in enumerate(self.done) if not d]
        if self.greedy and rows:
            view = _as_numpy(scores)
            top = (view.argmax(axis=-1) if view is not None else scores.argmax(dim=-1)).tolist()
            rows = [r for r in rows if self.matchers[r].validate_tokens([top[r]]) != 1]
        masked = len(rows)
        for r in rows:
            m, row = self.matchers[r], self._bitmask[r]
            m.unsafe_compute_mask_ptr(row.data_ptr(), row.numel() * row.element_size())
            if m.is_error() or not bool(row.any()):
                self._fail(r, m.get_error()[:160] or "no token allowed")
        rows = [r for r in rows if not self.done[r]]
        if rows:
            mask_logits(scores, rows, allowed_tokens(self._bitmask[rows], scores.shape[-1]))
        if self.max_new_tokens:
            remaining = self.max_new_tokens - (input_ids.shape[1] - self._prompt_len)
            live = [r for r in active if not self.done[r]]
            if remaining <= CLOSING_WINDOW and live:
                self._close_within_budget(scores, remaining, live)
        self.steps.append((time.perf_counter() - started, len(active), masked))
        return scores


def accepts(tokenizer, stop_ids: Sequence[int], grammar: str, text: str, ended: bool = True) -> bool:
    """True when `grammar` allows `text` as a whole answer (followed by an end-of-turn token when `ended`)."""
    m, err = new_matcher(tokenizer, stop_ids, grammar)
    if m is None:
        raise ValueError(err)
    ids = tokenizer.encode(text, add_special_tokens=False) + ([sorted(set(stop_ids))[0]] if ended else [])
    return m.validate_tokens(ids) == len(ids)
