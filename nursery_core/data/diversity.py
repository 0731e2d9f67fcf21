"""How varied a dataset's requests are: distinct request skeletons, distinct word 3-grams per call, and the
shares of calls with optional arguments and of examples that must not call.

A skeleton is a user request with what the user filled in taken out: the call's argument values (and the
ways the generator says them), numbers, e-mail addresses, URLs and quoted text become slots, the rest is
lower-cased words. Two requests with the same skeleton differ only in values, so a dataset whose skeletons
are few teaches the model a handful of sentence shapes, however many examples it has. 3-grams are counted
on skeletons for the same reason: a new city name is not new phrasing.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+\.[\w.-]+")  # starts only where a run starts: linear time
_URL = re.compile(r"https?://\S+|www\.\S+")
_QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”|'[^']{3,}'(?!\w)")
_NUMBER = re.compile(r"(?<![a-z<])\d+(?:[.:,/-]\d+)*(?:st|nd|rd|th|am|pm)?")
_WORD = re.compile(r"<[a-z]+>|[a-z][a-z'’]*")


def _literals(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _literals(v)
    elif isinstance(value, list):
        for v in value:
            yield from _literals(v)
    elif isinstance(value, str):
        if value.strip():
            yield value
            if "_" in value:
                yield value.replace("_", " ")
    elif not isinstance(value, bool) and value is not None:
        yield str(value)


def skeleton(text: str, values: Iterable[Any] = ()) -> str:
    """'Weather in Oslo for 3 days' with values ['Oslo', 3] → 'weather in <v> for <n> days'."""
    s = text.lower()
    for lit in sorted({v.lower() for x in values for v in _literals(x)}, key=len, reverse=True):
        if len(lit) > 1:
            s = s.replace(lit, " <v> ")
    s = _URL.sub(" <v> ", s)
    s = _EMAIL.sub(" <v> ", s)
    s = _QUOTED.sub(" <q> ", s)
    s = _NUMBER.sub(" <n> ", s)
    return " ".join(_WORD.findall(s))


def _optional_used(tools: dict[str, dict], call: dict) -> bool:
    fn = call["function"]
    tool = tools.get(fn["name"])
    if tool is None:
        return False
    required = set(tool["function"]["parameters"].get("required") or [])
    return any(k not in required for k in fn.get("arguments") or {})


def diversity_report(examples: list[dict]) -> dict:
    """{requests, skeletons, skeletons_per_100_requests, trigrams, trigrams_per_call, calls,
    optional_arg_share, no_call_share, no_call_kinds}: counts over every user turn and every call;
    shares are fractions of calls / examples (0..1), rounded to 3 places."""
    skeletons: set[str] = set()
    trigrams: set[tuple[str, ...]] = set()
    requests = calls = with_optional = no_call = 0
    kinds: dict[str, int] = {}
    for ex in examples:
        msgs = ex.get("messages") or []
        tools = {t["function"]["name"]: t for t in ex.get("tools") or []}
        if (ex.get("meta") or {}).get("category") == "no_call":
            no_call += 1
            kind = (ex.get("meta") or {}).get("no_call_kind") or "other"
            kinds[kind] = kinds.get(kind, 0) + 1
        for i, m in enumerate(msgs):
            if m.get("role") != "user":
                continue
            requests += 1
            nxt = msgs[i + 1] if i + 1 < len(msgs) else {}
            call_list = nxt.get("tool_calls") or []
            # Values from every call of the example: a follow-up ("and in Oslo?") reuses earlier ones.
            values = [c["function"].get("arguments") for mm in msgs for c in mm.get("tool_calls") or ()]
            sk = skeleton(m.get("content") or "", values)
            skeletons.add(sk)
            words = sk.split()
            trigrams.update(zip(words, words[1:], words[2:]))
            for c in call_list:
                calls += 1
                with_optional += _optional_used(tools, c)
    return {"requests": requests, "skeletons": len(skeletons),
            "skeletons_per_100_requests": round(100 * len(skeletons) / requests, 1) if requests else 0.0,
            "trigrams": len(trigrams), "calls": calls,
            "trigrams_per_call": round(len(trigrams) / calls, 2) if calls else 0.0,
            "optional_arg_share": round(with_optional / calls, 3) if calls else 0.0,
            "no_call_share": round(no_call / len(examples), 3) if examples else 0.0,
            "no_call_kinds": dict(sorted(kinds.items()))}
