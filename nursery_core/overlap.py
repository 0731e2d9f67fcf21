"""The normal form of a user request, used to keep golden sets and training data apart.

Two requests are "the same" when their normal forms are equal: NFKC, casefolded, quotes and apostrophes
dropped ("what's" = "whats"), other punctuation replaced by a space, whitespace collapsed. Arithmetic signs
(+ - * / = % ^ < >) and separators inside numbers ("12.5", "4,821", "14:30") are kept, so "12*3" and "12/3"
stay different requests. Pure functions: the store imports this module.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Iterator

_QUOTES = re.compile("[\"'`\u2018\u2019\u201a\u201b\u201c\u201d\u00ab\u00bb]")
# . , : count as punctuation unless a digit stands on both sides; anything else that is not a word character,
# whitespace or an arithmetic sign is punctuation.
_PUNCT = re.compile(r"(?<!\d)[.,:]|[.,:](?!\d)|[^\w\s.,:+\-*/=%^<>]")
_SPACE = re.compile(r"\s+")


def normal_request(text: str) -> str:
    """The comparison key of a request (see the module docstring); '' for a blank one."""
    s = unicodedata.normalize("NFKC", str(text)).casefold()
    s = _QUOTES.sub("", s)
    s = _PUNCT.sub(" ", s)
    return _SPACE.sub(" ", s).strip()


def example_requests(example: dict) -> Iterator[str]:
    """Every user message of a canonical example (a multi-turn conversation has several)."""
    for m in example.get("messages") or ():
        if m.get("role") == "user" and isinstance(m.get("content"), str) and m["content"].strip():
            yield m["content"]


def request_index(examples) -> list[tuple[str, str]]:
    """[(normal form, first original text)] of the distinct requests in examples, in first-seen order."""
    seen: dict[str, str] = {}
    for ex in examples:
        for text in example_requests(ex):
            key = normal_request(text)
            if key and key not in seen:
                seen[key] = text
    return list(seen.items())
