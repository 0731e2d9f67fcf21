"""Applies guard grammars while `model.generate` runs: one llguidance `LLMatcher` per sequence of the batch, fed
each sampled token, filling a vocabulary bitmask that sets the logits of disallowed tokens to -inf.

llguidance 1.9 ships tokenizer wrapping (`llguidance.hf.from_tokenizer`) and mask filling but no transformers
LogitsProcessor; `ToolCallGuard` is that processor. Costs paid once: the llguidance tokenizer per HF tokenizer
(≈0.5 s) and one compiled matcher per grammar, deep-copied for each sequence.
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

_TEMPLATES_MAX = 64


@dataclass
class _TokenizerState:
    stop_ids: tuple[int, ...]
    ll: Any                                            # llguidance.LLTokenizer
    templates: "OrderedDict[str, Any]" = field(default_factory=OrderedDict)   # grammar → LLMatcher


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

    def __init__(self, matchers: list[Any | None], stop_ids: Sequence[int], vocab_size: int, greedy: bool = False):
        self.matchers = list(matchers)
        self.greedy = greedy
        self.steps: list[tuple[float, int, int]] = []
        self.stop_ids = set(int(t) for t in stop_ids)
        self.done = [m is None for m in self.matchers]
        self.errors: dict[int, str] = {}
        self._seen: int | None = None
        self._bitmask = torch.zeros(len(self.matchers), (vocab_size + 31) // 32, dtype=torch.int32)

    @classmethod
    def for_rows(cls, tokenizer, stop_ids: Sequence[int], grammars: list[str | None],
                 greedy: bool = False) -> "ToolCallGuard":
        """One matcher per row (None = that row decodes free); rows whose grammar fails to load are in `errors`."""
        matchers, errors = [], {}
        for i, g in enumerate(grammars):
            m, err = new_matcher(tokenizer, stop_ids, g) if g is not None else (None, None)
            matchers.append(m)
            if err:
                errors[i] = err
        guard = cls(matchers, stop_ids, _state(tokenizer, stop_ids).ll.vocab_size, greedy)
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

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        started = time.perf_counter()
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
        self.steps.append((time.perf_counter() - started, len(active), masked))
        return scores


def accepts(tokenizer, stop_ids: Sequence[int], grammar: str, text: str, ended: bool = True) -> bool:
    """True when `grammar` allows `text` as a whole answer (followed by an end-of-turn token when `ended`)."""
    m, err = new_matcher(tokenizer, stop_ids, grammar)
    if m is None:
        raise ValueError(err)
    ids = tokenizer.encode(text, add_special_tokens=False) + ([sorted(set(stop_ids))[0]] if ended else [])
    return m.validate_tokens(ids) == len(ids)
