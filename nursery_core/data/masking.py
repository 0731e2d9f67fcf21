"""Function masking (as the Hammer models are trained): tool and parameter names replaced by random but
pronounceable identifiers, the same in the tools and in every call, with descriptions kept and the tool
order shuffled. A model trained on some masked examples cannot lean on a name ("get_weather") it has seen
before; it has to read the descriptions, which is what it must do for a user's own tools.
"""
from __future__ import annotations

import copy
import random
from typing import Any

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
_ENDINGS = ["", "", "", "n", "r", "s", "l", "x"]


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(syllables)) + rng.choice(_ENDINGS)


def random_identifier(rng: random.Random, taken: set[str], parts: tuple[int, int] = (1, 2)) -> str:
    """A new identifier like 'vekoran', 'tibu_salen' or 'mazoKelu', not in `taken` (which it joins)."""
    for _ in range(100):
        words = [_word(rng, rng.randint(2, 3)) for _ in range(rng.randint(*parts))]
        style = rng.random()
        if len(words) == 1 or style < 0.6:
            name = "_".join(words)
        elif style < 0.85:
            name = words[0] + "".join(w.capitalize() for w in words[1:])
        else:
            name = "-".join(words)
        if name not in taken:
            taken.add(name)
            return name
    name = f"fn_{len(taken)}_{rng.getrandbits(24):06x}"
    taken.add(name)
    return name


def mask_example(example: dict, rng: random.Random) -> dict:
    """A masked copy of a canonical example: every tool and top-level parameter renamed consistently in
    `tools`, in the assistant's `tool_calls` and in tool replies' `name`; descriptions, values and the user's
    words unchanged; tools shuffled. meta.masked records it. The input is not modified."""
    out = copy.deepcopy(example)
    taken: set[str] = set()
    for t in out.get("tools") or []:
        fn = t["function"]
        taken.add(fn["name"])
        taken.update((fn.get("parameters") or {}).get("properties") or {})
    tool_names: dict[str, str] = {}
    param_names: dict[str, dict[str, str]] = {}
    for t in out.get("tools") or []:
        fn = t["function"]
        old = fn["name"]
        tool_names[old] = random_identifier(rng, taken, (1, 3))
        fn["name"] = tool_names[old]
        params = fn.get("parameters") or {}
        props = params.get("properties") or {}
        mapping = {p: random_identifier(rng, taken, (1, 2)) for p in props}
        param_names[old] = mapping
        if props:
            params["properties"] = {mapping[p]: s for p, s in props.items()}
        if isinstance(params.get("required"), list):
            params["required"] = [mapping.get(p, p) for p in params["required"]]
    for m in out.get("messages") or []:
        for c in m.get("tool_calls") or ():
            fn = c["function"]
            old = fn["name"]
            mapping = param_names.get(old, {})
            fn["name"] = tool_names.get(old, old)
            args: Any = fn.get("arguments")
            if isinstance(args, dict):
                fn["arguments"] = {mapping.get(k, k): v for k, v in args.items()}
        if m.get("role") == "tool" and m.get("name") in tool_names:
            m["name"] = tool_names[m["name"]]
    if isinstance(out.get("tools"), list):
        rng.shuffle(out["tools"])
    out.setdefault("meta", {})["masked"] = True
    return out
