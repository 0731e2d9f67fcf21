"""A user's example requests as templates: their argument values are found and replaced by {param} slots,
so the generator can say new values the way the user does."""
from __future__ import annotations

import re

from . import values as V
from .phrasing import placeholders

_NUM = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")
_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_URL_RE = re.compile(r"https?://\S+")
_DATE_RE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
_QUOTED = re.compile(r"\"([^\"]+)\"|'([^']{2,})'")
_MARKERS = [": ", " that ", " about ", " for ", " called ", " named ", " to ", " of "]


def templatise(query: str, tool: dict) -> str | None:
    """Turns a user's example query into a template for `tool` by spotting its argument values
    (enum values, numbers, e-mails, URLs, dates, cities, quoted text, the text after 'that'/'about'/':');
    None when a required parameter cannot be placed. '{param}' placeholders written by the user are kept."""
    params = tool["function"]["parameters"].get("properties", {})
    required = list(tool["function"]["parameters"].get("required", []))
    q = query.strip()
    given = placeholders(q) if "{" in q else set()
    if given:
        return q if given <= set(params) and set(required) <= given | set(params) else None
    placed: list[str] = []

    def put(span: tuple[int, int], p: str) -> None:
        nonlocal q
        q = q[:span[0]] + "{" + p + "}" + q[span[1]:]
        placed.append(p)

    order = sorted(params, key=lambda p: (p not in required, list(params).index(p)))
    for p in order:
        s = params[p] if isinstance(params[p], dict) else {}
        if p in placed:
            continue
        if s.get("enum"):
            for ev in s["enum"]:
                m = re.search(r"(?<![\w{])" + re.escape(str(ev)) + r"(?![\w}])", q, re.I)
                if m:
                    put(m.span(), p)
                    break
            continue
        t = s.get("type")
        if t in ("integer", "number"):
            m = _NUM.search(re.sub(r"\{\w+\}", lambda x: "#" * len(x.group(0)), q))
            if m:
                put(m.span(), p)
            continue
        if t not in (None, "string"):
            continue
        fmt, words = s.get("format"), V.word_set(p)
        regex = (_EMAIL_RE if fmt == "email" or words & {"email", "to", "recipient"} else
                 _URL_RE if fmt in ("uri", "url") or words & {"url", "link"} else
                 _DATE_RE if fmt == "date" or words & {"date"} else None)
        if regex is not None:
            m = regex.search(q)
            if m:
                put(m.span(), p)
            continue
        if words & {"city", "location", "destination", "origin", "place"}:
            for c in V.CITIES:
                m = re.search(r"\b" + re.escape(c) + r"\b", q)
                if m:
                    put(m.span(), p)
                    break
            if p in placed:
                continue
        m = _QUOTED.search(q)
        if m and "{" not in m.group(0):
            g = 1 if m.group(1) is not None else 2
            put(m.span(g), p)
    missing = [p for p in required if p not in placed]
    string_missing = [p for p in missing if (params[p] or {}).get("type") in (None, "string")
                      and not (params[p] or {}).get("enum")]
    if len(missing) == 1 and string_missing:
        for marker in _MARKERS:
            i = q.find(marker)
            if i >= 0 and "{" not in q[i:]:
                start = i + len(marker)
                end = len(q.rstrip(".!? "))
                if end > start:
                    put((start, end), missing[0])
                    break
    if any(p not in placed for p in required) or not placed:
        return None
    return q
