"""Synthetic tool-calling data from tool schemas alone: nursery_generate_data and the generator behind it.

Every argument value is drawn from the schema (type, enum, format, range, parameter name, and what its
description says the value looks like: an IATA code, an ISO currency) and stands in the user's request, so a
small model learns to copy it into the call. Requests are composed from independent parts (phrasing.py), so
one call is asked in many shapes; optional arguments are mentioned often, and whatever a request mentions is
in its call. No-call examples teach when not to call: mostly requests in the tools' own domain that no
offered tool serves (nocall.py), plus knowledge questions and chit-chat.
"""
from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .. import paths
from ..errors import AlreadyExists, BackendError, InvalidConfig, InvalidInput
from ..overlap import normal_request
from ..records import normalise_example, normalise_tool, tool_name
from . import mentions as M
from . import nocall as N
from . import phrasing as P
from . import values as V
from .intents import BUILTIN, Intent, derive, opposite_vps
from .results import tool_result, tool_result_text
from .steering import templatise
from .tools import DEFAULT_TOOLS, conversion_notes, resolve_tools

MAX_EXAMPLES = 200_000
# Consecutive examples offering one drawn tool list, as an app sends many requests against its one fixed list.
# The model then sees, for the same tools, requests they serve and requests they do not; and the trainer runs a
# shared tool list once per micro-batch (training/packing.py), so the same minutes train on several times more
# examples (bench/QUALITY.md, session 7).
REQUESTS_PER_TOOL_SET = 8


@dataclass(frozen=True)
class Level:
    noise: float              # share of requests roughened: lower case, no final punctuation, a typo, text speak
    wrap: float               # share with an opener ("Hey, "), a chatty preamble or a closer (" Thanks!")
    optional: float           # share of calls whose request asks for at least one optional argument
    spoken: float             # share of dates, times and counts said as people say them ("March 3, 2025")
    distractors: tuple[int, int]  # extra, unrelated tools added to `tools`
    tool_cap: int             # at most this many of the selected tools per example (the called ones first)
    no_call: float            # share of examples that must not call
    absent: float             # of those, the share asking for something no offered tool does (rest: questions, chat)
    parallel: float           # share with several calls in one turn (two requests joined, or one asked twice)
    multi_turn: float         # share of conversations: request → call → tool result → answer, repeated
    rounds: tuple[int, int]   # how many requests such a conversation holds (later ones reuse its tools)
    shuffle: bool             # shuffle the order of `tools`
    llm: float                # share sent to the LLM paraphraser when one is configured


LEVELS = {
    "low": Level(0.15, 0.25, 0.45, 0.3, (0, 0), 3, 0.20, 0.65, 0.08, 0.04, (1, 2), False, 0.15),
    "medium": Level(0.25, 0.35, 0.5, 0.4, (0, 2), 4, 0.22, 0.65, 0.10, 0.08, (1, 2), True, 0.35),
    "high": Level(0.4, 0.45, 0.6, 0.5, (1, 4), 6, 0.24, 0.65, 0.12, 0.12, (1, 3), True, 0.6),
}


# ----------------------------------------------------------------------------------- LLM paraphraser
class Paraphraser:
    """Rewords a query through any OpenAI-compatible /chat/completions endpoint (llama.cpp, Ollama, vLLM)."""

    def __init__(self, base_url: str, model: str = "default", api_key: str | None = None,
                 timeout: float = 20.0, temperature: float = 0.8):
        self.base_url, self.model, self.api_key = base_url.rstrip("/"), model, api_key
        self.timeout, self.temperature = timeout, temperature
        self._client: Any = None  # an httpx.Client, made on first use (httpx loads only when paraphrasing)

    @classmethod
    def from_env(cls) -> "Paraphraser | None":
        """NURSERY_PARAPHRASE_URL (e.g. http://127.0.0.1:11434/v1), NURSERY_PARAPHRASE_MODEL and
        NURSERY_PARAPHRASE_API_KEY; None when no URL is set (the default: templates only)."""
        url = os.environ.get("NURSERY_PARAPHRASE_URL", "").strip()
        if not url:
            return None
        return cls(url, os.environ.get("NURSERY_PARAPHRASE_MODEL", "default"),
                   os.environ.get("NURSERY_PARAPHRASE_API_KEY") or None)

    def __call__(self, text: str, keep: list[str]) -> str:
        import httpx
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout)
        keep_txt = "; ".join(f'"{k}"' for k in keep) or "(none)"
        body = {"model": self.model, "temperature": self.temperature, "max_tokens": 200, "messages": [
            {"role": "system", "content": "You reword requests a user sends to an assistant. Reply with the "
             "reworded request only, no quotes, no explanation. Keep these exact values character for "
             f"character: {keep_txt}."},
            {"role": "user", "content": text}]}
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            r = self._client.post(f"{self.base_url}/chat/completions", json=body, headers=headers)
            r.raise_for_status()
            out = r.json()["choices"][0]["message"]["content"]
        except Exception as e:  # noqa: BLE001 — any transport, HTTP or shape problem: the caller falls back to templates
            raise BackendError(f"paraphrase endpoint {self.base_url} failed: {type(e).__name__}: {e}") from None
        if not isinstance(out, str):
            raise BackendError(f"paraphrase endpoint {self.base_url} returned no text")
        return out.strip().strip('"').strip()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


# --------------------------------------------------------------------------------------- tool plans
_REPEATABLE = {"location", "origin", "destination", "date", "time", "timezone", "query", "code", "person", "path",
               "url", "language", "destination_conv", "generic", "enum", "datetime"}


@dataclass
class _Plan:
    tool: dict
    name: str
    props: dict
    required: list[str]
    params: dict[str, M.Param]
    intent: Intent
    values: dict[str, Callable]
    builtin: bool
    composer: P.Composer
    user_templates: list[str] = field(default_factory=list)

    def repeatable(self) -> list[str]:
        """Parameters a request can ask about twice ("weather in Paris and Oslo": two calls)."""
        return [p for p, info in self.params.items() if info.role in _REPEATABLE and
                M.schema_type(info.schema) in ("string", "integer") and not info.schema.get("const")]


def _plan(tool: dict, rng: random.Random) -> _Plan:
    fn = tool["function"]
    params = fn["parameters"]
    props = {k: (v if isinstance(v, dict) else {}) for k, v in (params.get("properties") or {}).items()}
    required = list(params.get("required") or [])
    spec = BUILTIN.get(fn["name"])
    # A built-in's phrasing only fits when the schema is still the built-in one.
    builtin = spec is not None and any(t is tool or t == tool for t in DEFAULT_TOOLS)
    intent = spec["intent"] if builtin and spec is not None else derive(fn["name"], fn.get("description") or "")
    info = {p: M.param_info(p, s, p in required) for p, s in props.items()}
    return _Plan(tool, fn["name"], props, required, info, intent, spec.get("values", {}) if builtin and spec is not None else {},
                 builtin, P.Composer(intent, info, rng))


def _tool_words(tools: Iterable[dict]) -> set[str]:
    out: set[str] = set()
    for t in tools:
        out |= V.word_set(t["function"]["name"], t["function"].get("description", ""))
    return out


def _distractor_pool(selected: list[dict]) -> list[dict]:
    """Built-in tools unrelated to the selected ones (no shared name word), so a distractor is never a
    plausible answer."""
    names = {tool_name(t) for t in selected}
    words = {w for t in selected for w in V.word_set(tool_name(t)) if len(w) > 3}
    return [t for t in DEFAULT_TOOLS if tool_name(t) not in names and not (V.word_set(tool_name(t)) & words)]


_CATALOGUE: list[tuple[dict, set[str]]] | None = None


def _catalogue() -> list[tuple[dict, set[str]]]:
    global _CATALOGUE
    if _CATALOGUE is None:
        _CATALOGUE = [(normalise_tool(t), avoid) for t, avoid in N.CATALOGUE]
    return _CATALOGUE


# -------------------------------------------------------------------------------------- the generator
class _Generator:
    def __init__(self, tools: list[dict], level: Level, level_name: str, seed: int,
                 example_queries: list[str] | None, paraphraser: Paraphraser | None,
                 per_tool_set: int = REQUESTS_PER_TOOL_SET):
        self.tools, self.level, self.level_name, self.seed = tools, level, level_name, seed
        self.per_tool_set = per_tool_set
        # The tool list the next examples offer while it has uses left: names, plans, the exact list, its
        # distractors (None when the next example draws its own).
        self.anchor: dict[str, Any] | None = None
        self.rng = random.Random(seed)
        self.plans = [_plan(t, self.rng) for t in tools]
        self.by_name = {p.name: p for p in self.plans}
        self.named = [(tool_name(t), t) for t in tools]
        self.absent_options: dict[frozenset, tuple] = {}
        self.pool = _distractor_pool(tools)
        self.tool_words = _tool_words(tools)
        unrelated = N.catalogue_for(tools)
        self.absent_plans = [(_plan(t, self.rng), avoid) for t, avoid in unrelated]
        self.serves: dict[tuple[str, str], bool] = {}
        self.paraphraser = paraphraser
        self.llm: dict[str, Any] | None = ({"used": 0, "rejected": 0, "failed": False, "note": None}
                                           if paraphraser else None)
        self.style = {"lower": 0.0, "nopunct": 0.0}
        self.steering = {"example_queries": 0, "templates": 0, "style_only": 0}
        if example_queries:
            self._steer([q for q in example_queries if isinstance(q, str) and q.strip()])

    def _steer(self, queries: list[str]) -> None:
        self.steering["example_queries"] = len(queries)
        for q in queries:
            best = None
            for plan in self.plans:
                t = templatise(q, plan.tool)
                if t is not None and (best is None or len(P.placeholders(t)) > len(P.placeholders(best[1]))):
                    best = (plan, t)
            if best:
                best[0].user_templates.append(best[1])
                self.steering["templates"] += 1
            else:
                self.steering["style_only"] += 1
        if all(q == q.lower() for q in queries):
            self.style["lower"] = 0.6
        if all(not q.rstrip().endswith((".", "?", "!")) for q in queries):
            self.style["nopunct"] = 0.6

    # ---- values and arguments
    def _value(self, plan: _Plan, p: str, taken: list[Any]) -> Any:
        gen = plan.values.get(p)
        v = None
        for _ in range(4):  # origin and destination are not the same airport
            v = gen(self.rng) if gen else V.value_for(p, plan.props[p], self.rng)
            if not isinstance(v, (str, int)) or isinstance(v, bool) or v not in taken:
                break
        return v

    def _args(self, plan: _Plan, forced: set[str]) -> dict:
        rng = self.rng
        out: dict = {}
        chosen = {p for p in plan.props if p in plan.required or p in forced}
        optional = [p for p in plan.props if p not in chosen]
        if optional and not (forced - set(plan.required)) and rng.random() < self.level.optional:
            k = 1 if rng.random() < 0.65 else 2 if rng.random() < 0.75 else 3
            chosen |= set(rng.sample(optional, min(k, len(optional))))
        for p in plan.props:
            if p in chosen:
                out[p] = self._value(plan, p, list(out.values()))
        return out

    def _said(self, plan: _Plan, args: dict) -> dict[str, list[P.Seg]]:
        return {p: M.say(v, plan.params[p], self.rng, self.level.spoken, plan.intent.spoken.get(p))
                for p, v in args.items()}

    def _request(self, plan: _Plan, repeat: bool = False) -> tuple[list[P.Seg], list[dict], str]:
        """(segments, the calls' arguments, kind): one request, or with `repeat` one request asking the
        same tool twice with one value changed ("weather in Paris and Oslo")."""
        kind, template = plan.composer.pick(plan.user_templates)
        args = self._args(plan, P.placeholders(template) & set(plan.props))
        said = self._said(plan, args)
        calls = [args]
        if repeat:
            options = [p for p in plan.repeatable() if p in args]
            if options:
                p = self.rng.choice(options)
                second = dict(args)
                second[p] = self._value(plan, p, [args[p]])
                if second[p] != args[p]:
                    joiner = self.rng.choice([" and ", " and ", " and also ", ", and ", " as well as "])
                    second_said = M.say(second[p], plan.params[p], self.rng, self.level.spoken,
                                        plan.intent.spoken.get(p))
                    both = dict(said)
                    both[p] = said[p] + [("t", joiner)] + second_said
                    segs = plan.composer.compose(kind, template, args, both)
                    # A mention that quotes its value would quote both as one literal ('"a and b"'), which
                    # reads as one argument: then the request asks once.
                    if not _one_quoted_span(P.render(segs), P.render(said[p]), P.render(second_said)):
                        return segs, [args, second], kind
        return plan.composer.compose(kind, template, args, said), calls, kind

    def _finish(self, segs: list[P.Seg], kind: str = "", opener: bool = True, closer: bool = True,
                noise: bool = True) -> list[P.Seg]:
        """Dressing, the steering user's style and noise: wording only, never values."""
        rng = self.rng
        if kind != "user":
            segs = P.dress(segs, rng, self.level.wrap, opener, closer)
        if self.style["lower"] and rng.random() < self.style["lower"]:
            segs = [(k, s.lower() if k == "t" else s) for k, s in segs]
        if self.style["nopunct"] and rng.random() < self.style["nopunct"] and segs and segs[-1][0] == "t":
            segs = list(segs[:-1]) + [("t", segs[-1][1].rstrip(".!? ") or segs[-1][1])]
        if noise and rng.random() < self.level.noise:
            segs = P.roughen(segs, rng)
        return segs

    def anchored(self) -> list[_Plan] | None:
        """The plans of the tool list in use (None: the next example draws its own list)."""
        a = self.anchor
        return a["plans"] if a is not None and a["left"] > 0 else None

    def accepted(self) -> None:
        """One example was kept: one use fewer of the tool list in use."""
        if self.anchor is not None:
            self.anchor["left"] -= 1

    def _tools_for_example(self, used: set[str], room_for: set[str] | None = None,
                           keep: Callable[[dict], bool] | None = None, new_run: bool = True) -> list[dict]:
        """The called tools, then other selected tools up to the level's cap, then unrelated distractors.

        Capping keeps prompts short (every schema costs hundreds of tokens) while the model still has to
        pick the right tool among several. `room_for` (the tools a conversation or a no-call example was
        built for) replaces the called-plus-random selection when given; `keep` filters distractors. While a
        drawn list has uses left (per_tool_set examples in a row) and fits (it holds the called tools, is the
        list a conversation was built for, keeps no distractor `keep` refuses), it is offered again unchanged;
        a new list starts a run unless `new_run` is False (a no-call example's own subset of the tools)."""
        a = self.anchor
        if (a is not None and a["left"] > 0 and used <= a["names"]
                and (room_for is None or set(room_for) == a["names"])
                and (keep is None or all(keep(t) for t in a["extra"]))):
            return list(a["tools"])
        tools, extra = self._draw_tools(used, room_for, keep)
        names = {tool_name(t) for t in tools if t not in extra}
        if new_run:
            self.anchor = ({"names": names, "plans": [p for p in self.plans if p.name in names], "tools": tools,
                            "extra": extra, "left": self.per_tool_set} if self.per_tool_set > 1 else None)
        return list(tools)

    def _draw_tools(self, used: set[str], room_for: set[str] | None,
                    keep: Callable[[dict], bool] | None) -> tuple[list[dict], list[dict]]:
        """(a new tool list, the distractors in it): see _tools_for_example."""
        rng = self.rng
        named = self.named
        if room_for is None:
            called = [n for n, _ in named if n in used]
            others = [n for n, _ in named if n not in used]
            # a list of 1..tool_cap tools (at least the called ones): BFCL-style single-tool prompts as well as
            # choices among several (bench/QUALITY.md, session 7, run H)
            room = max(0, rng.randint(max(1, len(called)), max(1, self.level.tool_cap)) - len(called))
            room_for = set(called + (rng.sample(others, min(room, len(others))) if room and others else []))
        tools = [t for n, t in named if n in room_for]  # selection order: position gives nothing away
        lo, hi = self.level.distractors
        if not hi:
            return tools, []
        pool = [t for t in self.pool if keep is None or keep(t)]
        k = min(rng.randint(lo, hi), len(pool))
        extra = rng.sample(pool, k) if k else []
        tools += extra
        if self.level.shuffle:
            rng.shuffle(tools)
        return tools, extra

    # ---- examples, by category
    def example(self, cat: str) -> tuple[dict, list[str]]:
        meta = {"source": "synthetic", "category": cat, "variation": self.level_name}
        if cat == "no_call":
            return self._no_call_example(meta)
        if cat == "parallel":
            return self._parallel_example(meta)
        rng = self.rng
        plan = rng.choice(self.anchored() or self.plans)
        segs, calls, kind = self._request(plan)
        segs = self._finish(segs, kind)
        text, how = self._llm(segs)
        if how:
            meta["paraphrased_by"] = how
        meta["tool"] = plan.name
        msgs = [{"role": "user", "content": text}, self._assistant([(plan, calls[0])])]
        room = self._conversation(plan, calls[0], msgs) if cat == "multi_turn" else None
        return {"tools": self._tools_for_example({plan.name}, room), "messages": msgs, "meta": meta}, _requests(msgs)

    def _parallel_example(self, meta: dict) -> tuple[dict, list[str]]:
        rng = self.rng
        repeatable = [p for p in self.plans if p.repeatable()]
        calls: list[tuple[_Plan, dict]] = []
        if repeatable and (len(self.plans) == 1 or rng.random() < 0.3):
            plan = rng.choice(repeatable)
            segs, args_list, kind = self._request(plan, repeat=True)
            if len(args_list) == 2:
                calls = [(plan, a) for a in args_list]
                segs = self._finish(segs, kind)
        if not calls:
            n = 3 if self.level_name == "high" and rng.random() < 0.2 else 2
            pick = self.anchored() or self.plans
            pick = pick if len(pick) >= n else self.plans
            plans = rng.sample(pick, min(n, len(pick))) if len(pick) > 1 else [pick[0]] * 2
            parts = []
            for plan in plans:
                s, args_list, kind = self._request(plan)
                if calls and plan is calls[-1][0] and args_list[0] == calls[-1][1]:
                    s, args_list, kind = self._request(plan)
                parts.append(s)
                calls.append((plan, args_list[0]))
            segs = self._finish(P.join_requests(parts, rng))
        text = P.render(segs)
        meta["tool"] = sorted({p.name for p, _ in calls})
        msgs = [{"role": "user", "content": text}, self._assistant(calls)]
        return {"tools": self._tools_for_example({p.name for p, _ in calls}), "messages": msgs, "meta": meta}, [text]

    # ---- requests that must not call
    def _no_call_example(self, meta: dict) -> tuple[dict, list[str]]:
        rng, lv = self.rng, self.level
        if rng.random() < lv.absent:
            k = rng.randint(1, min(lv.tool_cap, len(self.plans)))
            anchored = self.anchored()
            offered = anchored or rng.sample(self.plans, k)
            made = self._absent(offered)
            if made is not None:
                text, answer, requested, keep = made
                meta["no_call_kind"], meta["requested_tool"] = "absent_tool", requested
                tools = self._tools_for_example(set(), {p.name for p in offered}, keep, new_run=bool(anchored))
                return {"tools": tools, "messages": [{"role": "user", "content": text},
                                                     {"role": "assistant", "content": answer}], "meta": meta}, [text]
        tools = self._tools_for_example(set())
        words = _tool_words(tools)
        qa = N.knowledge_example(rng, words) if rng.random() < 0.5 else None
        meta["no_call_kind"] = "knowledge" if qa else "chat"
        q, a = qa or N.chat_example(rng, words)
        text = P.render(self._finish([("t", q)]))
        return {"tools": tools, "messages": [{"role": "user", "content": text},
                                             {"role": "assistant", "content": a}], "meta": meta}, [text]

    def _absent(self, offered: list[_Plan]) -> tuple[str, str, str, Callable[[dict], bool]] | None:
        """A request for something none of `offered` does: another dataset tool, an unrelated catalogue tool,
        or the opposite of an offered tool's verb ("cancel the flight"). (text, answer, what was asked for,
        a filter for distractor tools) or None when nothing fits."""
        rng = self.rng
        names = frozenset(p.name for p in offered)
        hit = self.absent_options.get(names)
        if hit is None:  # the same few offered sets come back again and again
            offered_tools = [p.tool for p in offered]
            answers_questions = bool(_tool_words(offered_tools) & N.ANSWERING_WORDS)
            own = [p for p in self.plans if p.name not in names and not self._substitutes(p, offered)]
            other = [(p, avoid) for p, avoid in self.absent_plans
                     if not any(self._serves(p.name, avoid, t) for t in offered_tools)
                     and not (answers_questions and p.intent.family == "retrieve")]
            opposite = [(p, vp) for p in offered for vp in opposite_vps(p.name)
                        if not any(vp.split()[0] in V.word_set(q.name) for q in offered)]
            hit = self.absent_options[names] = (own, other, opposite)
        own, other, opposite = hit
        choices = [(w, kind) for w, kind in ((0.5, "own"), (0.3, "other"), (0.2, "opposite"))
                   if {"own": own, "other": other, "opposite": opposite}[kind]]
        if not choices:
            return None
        kind = rng.choices([k for _, k in choices], [w for w, _ in choices])[0]
        if kind == "opposite":
            plan, vp = rng.choice(opposite)
            intent = Intent([vp], say=vp)
            composer = P.Composer(intent, plan.params, rng)
            args = {p: self._value(plan, p, []) for p in plan.required[:2]}
            segs = composer.compose("vp", vp, args, self._said(plan, args))
            requested, say, avoid = f"{plan.name}:{vp.split()[0]}", vp, set()
        else:
            plan, avoid = (rng.choice(own), set()) if kind == "own" else rng.choice(other)
            segs, _, k = self._request(plan)
            requested, say = plan.name, plan.intent.say
        text = P.render(self._finish(segs))
        answer = N.absent_answer(rng, say, [p.intent.say for p in offered])
        requested_name = plan.name

        def keep(tool: dict) -> bool:
            if tool_name(tool) == requested_name or self._serves(requested_name, avoid, tool):
                return False
            return not (plan.intent.family == "retrieve" and _tool_words([tool]) & N.ANSWERING_WORDS)
        return text, answer, requested, keep

    def _serves(self, requested: str, avoid: set[str], tool: dict) -> bool:
        key = (requested, tool_name(tool))
        hit = self.serves.get(key)
        if hit is None:
            hit = self.serves[key] = N.servable_by(requested, avoid, tool)
        return hit

    def _substitutes(self, plan: _Plan, offered: list[_Plan]) -> bool:
        """True when an offered dataset tool might do `plan`'s job: a known built-in pair, or (for user
        tools) a shared name word other than the verb (get_weather and weather_alerts)."""
        names = {p.name for p in offered}
        if N.SUBSTITUTES.get(plan.name, set()) & names:
            return True
        if plan.builtin and all(p.builtin for p in offered):
            return False
        mine = set(plan.intent.obj.split()) - N.STOP_WORDS
        return any(mine & set(p.intent.obj.split()) for p in offered)

    # ---- conversations
    def _conversation(self, plan: _Plan, args: dict, msgs: list[dict]) -> set[str]:
        """Extends a first request and its call (already in msgs) into a conversation: each call gets a
        tool result and an answer, then the user asks again, up to the level's rounds. Later requests use
        the conversation's tools (the first one's plus others up to the cap), follow up on the last call
        ("and in Oslo?", "same but in fahrenheit"), or now and then need no tool. Every request after the
        first reuses the rendered tools, so a conversation teaches several calls for little more than the
        prompt of one. Returns the names of the tools to offer."""
        rng, lv = self.rng, self.level
        others = [p for p in self.plans if p is not plan]
        anchored = self.anchored()
        room = (list(anchored) if anchored and plan in anchored
                else [plan] + rng.sample(others, min(max(0, lv.tool_cap - 1), len(others))))
        rounds = rng.randint(*lv.rounds)
        call_no = 0
        for rnd in range(rounds):
            if rnd:
                if rng.random() < lv.no_call:
                    made = self._absent(room) if rng.random() < lv.absent else None
                    if made is not None:
                        text, a = made[0], made[1]
                    else:
                        q, a = N.chat_example(rng, self.tool_words)
                        text = P.render(self._finish([("t", q)]))
                    msgs += [{"role": "user", "content": text}, {"role": "assistant", "content": a}]
                    continue
                followed = self._follow_up(plan, args) if rng.random() < 0.45 else None
                if followed is not None:
                    text, args = followed
                else:
                    plan = rng.choice(room)
                    segs, calls, kind = self._request(plan)
                    text, args = P.render(self._finish(segs, kind)), calls[0]
                call_no += 1
                msgs += [{"role": "user", "content": text}, self._assistant([(plan, args)], offset=call_no)]
            result, answer = tool_result(plan.name, args, rng, plan.intent.say)
            msgs += [{"role": "tool", "tool_call_id": f"call_{call_no}", "name": plan.name,
                      "content": tool_result_text(result)},
                     {"role": "assistant", "content": answer}]
        return {p.name for p in room}

    def _follow_up(self, plan: _Plan, args: dict) -> tuple[str, dict] | None:
        """The next turn changes one value of the last call or adds an optional argument; the new call
        repeats the rest (values the model must carry over from earlier turns)."""
        rng = self.rng
        change = [p for p in plan.repeatable() if p in args]
        add = [p for p in plan.props if p not in args]
        if not change and not add:
            return None
        kind = "new" if change and (not add or rng.random() < 0.55) else "add"
        p = rng.choice(change if kind == "new" else add)
        value = self._value(plan, p, [args.get(p)])
        if kind == "new" and value == args[p]:
            return None
        said = M.say(value, plan.params[p], rng, self.level.spoken, plan.intent.spoken.get(p))
        prep = plan.composer.mention(p, value, said, "prep")
        clause = plan.composer.mention(p, value, said, "clause")
        segs = P.follow_up(kind, prep, said, clause, rng)
        if rng.random() < self.level.noise:
            segs = P.roughen(segs, rng)
        new_args = dict(args)
        new_args[p] = value
        return P.render(segs), {k: new_args[k] for k in plan.props if k in new_args}

    @staticmethod
    def _assistant(calls: list[tuple[_Plan, dict]], offset: int = 0) -> dict:
        return {"role": "assistant", "content": "", "tool_calls": [
            {"id": f"call_{offset + i}", "type": "function", "function": {"name": p.name, "arguments": a}}
            for i, (p, a) in enumerate(calls)]}

    def _llm(self, segs: list[P.Seg]) -> tuple[str, str | None]:
        text = P.render(segs)
        if self.paraphraser is None or self.llm is None or self.llm["failed"]:
            return text, None
        if self.rng.random() >= self.level.llm:
            return text, None
        keep = P.values_of(segs)
        try:
            out = self.paraphraser(text, keep)
        except BackendError as e:
            self.llm["failed"] = True
            self.llm["note"] = f"{e}; templates were used from then on"
            return text, None
        if not out or len(out) > 600 or any(k not in out for k in keep):
            self.llm["rejected"] += 1  # the rewording dropped or changed a value: keep the template text
            return text, None
        self.llm["used"] += 1
        return out, "llm"


_NORM = re.compile(r"[^a-z0-9]+")


_OPEN_QUOTES, _CLOSE_QUOTES = "\"'“‘«`", "\"'”’»`"


def _one_quoted_span(text: str, first: str, second: str) -> bool:
    """Whether `first … second` sit inside one pair of quotes in `text` (so they read as one value)."""
    i = text.find(first)
    j = text.find(second, i + len(first)) if i >= 0 else -1
    if i <= 0 or j < 0:
        return False
    end = j + len(second)
    return text[i - 1] in _OPEN_QUOTES and end < len(text) and text[end] in _CLOSE_QUOTES


def _requests(msgs: list[dict]) -> list[str]:
    return [m["content"] for m in msgs if m["role"] == "user"]


def _norm(text: str) -> str:
    return _NORM.sub(" ", text.lower()).strip()


def _category_plan(n: int, level: Level, plans: list[_Plan], rng: random.Random) -> list[str]:
    """Exactly round(n × share) examples of each category, in a seeded random order."""
    par = level.parallel if any(p.props for p in plans) else 0.0
    shares = {"no_call": level.no_call, "parallel": par, "multi_turn": level.multi_turn}
    counts = {c: int(round(n * s)) for c, s in shares.items()}
    counts["call"] = max(0, n - sum(counts.values()))
    order = [c for c, k in counts.items() for _ in range(k)][:n]
    rng.shuffle(order)
    return order


def generate_examples(tools: Any, num_examples: int, variation_level: str = "medium", seed: int = 0,
                      example_queries: list[str] | None = None,
                      paraphraser: Paraphraser | None = None,
                      avoid: set[str] | None = None,
                      requests_per_tool_set: int = REQUESTS_PER_TOOL_SET) -> tuple[list[dict], dict]:
    """(normalised examples, report) for built-in names, schemas or both; nothing is stored. An example with a
    request whose overlap.normal_request is in `avoid` (the golden sets' requests) is dropped and drawn again,
    counted in the report as golden_requests_avoided. requests_per_tool_set: how many examples in a row offer
    one drawn tool list (1 = every example draws its own)."""
    if variation_level not in LEVELS:
        raise InvalidConfig(f"variation level must be one of {', '.join(LEVELS)}, not {variation_level!r}")
    if isinstance(num_examples, bool) or not isinstance(num_examples, int) or not 1 <= num_examples <= MAX_EXAMPLES:
        raise InvalidConfig(f"number of examples must be a whole number from 1 to {MAX_EXAMPLES}, "
                            f"not {num_examples!r}")
    try:
        seed = int(seed)
    except (TypeError, ValueError):
        raise InvalidConfig(f"seed must be a whole number, not {seed!r}") from None
    if isinstance(requests_per_tool_set, bool) or not isinstance(requests_per_tool_set, int) \
            or not 1 <= requests_per_tool_set <= 1000:
        raise InvalidConfig(f"requests per tool set must be a whole number from 1 to 1000, not "
                            f"{requests_per_tool_set!r}")
    tools = resolve_tools(tools)
    gen = _Generator(tools, LEVELS[variation_level], variation_level, seed, example_queries, paraphraser,
                     requests_per_tool_set)
    out: list[dict] = []
    seen: set[str] = set()
    dupes = attempts = bad = avoided = 0
    last_error = None
    exhausted = False
    limit = num_examples * 4 + 1000
    for cat in _category_plan(num_examples, gen.level, gen.plans, gen.rng):
        misses = 0
        while True:
            attempts += 1
            if attempts > limit:
                exhausted = True
                break
            raw, requests = gen.example(cat)
            keys = [_norm(r) for r in requests]
            if len(set(keys)) < len(keys) or any(k in seen for k in keys):
                dupes += 1  # every request in the dataset is distinct, so no held-out request is ever trained on
                misses += 1
                if misses > 300:  # this category has nothing new left to say
                    exhausted = True
                    break
                continue
            if avoid and any(normal_request(r) in avoid for r in requests):
                avoided += 1  # a golden set's request: never in training data
                misses += 1
                continue
            try:
                ex = normalise_example(raw)
            except InvalidInput as e:
                # The schema allows values the generator cannot satisfy every time (a pattern, say); retry.
                bad += 1
                last_error = e
                if bad > 50 and bad > len(out):
                    raise InvalidConfig(f"cannot generate arguments that match the schema: {e.detail} "
                                        "(simplify its pattern/format, or give enum values or examples)") from None
                continue
            seen.update(keys)
            out.append(ex)
            gen.accepted()
            break
        if exhausted:
            break
    if paraphraser is not None:
        paraphraser.close()
    if len(out) < num_examples:
        raise InvalidConfig(
            f"only {len(out)} distinct examples could be made for {', '.join(tool_name(t) for t in tools)} "
            f"(asked for {num_examples}; {dupes} near-duplicates dropped): the schema leaves too little to vary. "
            "Ask for fewer examples, add parameters or example queries, or use variation 'high'"
            + (f"; last schema error: {last_error.detail}" if last_error else ""))
    cats: dict[str, int] = {}
    kinds: dict[str, int] = {}
    for ex in out:
        cats[ex["meta"]["category"]] = cats.get(ex["meta"]["category"], 0) + 1
        if ex["meta"].get("no_call_kind"):
            kinds[ex["meta"]["no_call_kind"]] = kinds.get(ex["meta"]["no_call_kind"], 0) + 1
    report = {"requested": num_examples, "delivered": len(out), "variation": variation_level, "seed": seed,
              "requests_per_tool_set": requests_per_tool_set,
              "tools": [tool_name(t) for t in tools], "categories": cats, "no_call_kinds": kinds,
              "near_duplicates_dropped": dupes, "regenerated_for_schema": bad, "golden_requests_avoided": avoided,
              "attempts": attempts, "steering": gen.steering, "paraphrase": gen.llm}
    notes: list[str] = []
    if gen.llm and gen.llm["note"]:
        notes.append(gen.llm["note"])
    if gen.steering["style_only"]:
        notes.append(f"{gen.steering['style_only']} example quer(y/ies) had no recognisable argument values; "
                     "they steer casing and punctuation only (write {param} in a query to use it as a template)")
    report["notes"] = notes
    return out, report


def check_tool_schemas(text: str, source: str = "<pasted schema>", dry_run: int = 12) -> dict:
    """The Data Garden's schema check: parse the tools (data/tools.parse_tool_schemas), then generate `dry_run`
    examples without storing them, so "valid" means the generator can serve the schema. Returns {tools,
    generated, constructs (keywords the generator does not follow, by path), not_rendered (what the compact
    tool list does not show, per tool)}; raises InvalidInput or InvalidConfig naming what is wrong."""
    from ..schemas import not_rendered, unsupported_constructs
    from .tools import parse_tool_schemas
    tools = parse_tool_schemas(text, source)
    constructs = {tool_name(t): unsupported_constructs(t["function"]["parameters"]) for t in tools}
    try:
        examples, _ = generate_examples(tools, dry_run, "medium", seed=0)
    except InvalidConfig as e:
        named = "; ".join(f"{n}: {', '.join(c)}" for n, c in constructs.items() if c)
        raise InvalidConfig(f"the schema parses, but a dry-run generation failed: {e}"
                            + (f" (constructs the generator does not follow: {named})" if named else "")) from None
    return {"tools": tools, "generated": len(examples),
            "constructs": {n: c for n, c in constructs.items() if c},
            "not_rendered": {tool_name(t): g for t in tools if (g := not_rendered(t["function"]["parameters"]))}}


def default_name(tools: list[dict]) -> str:
    if len(tools) == 1:
        return paths.slugify(tool_name(tools[0]).replace("_", "-")) or "generated"
    return "combined-tools"


def nursery_generate_data(tool_name: Any, num_examples: int = 100, variation_level: str = "medium",
                          seed: int = 0, name: str | None = None, example_queries: list[str] | None = None,
                          paraphraser: Paraphraser | dict | None = None, created_by: str | None = None,
                          eval_fraction: float = 0.1,
                          requests_per_tool_set: int = REQUESTS_PER_TOOL_SET) -> dict:
    """Generates a tool-calling dataset for built-in tool name(s) or custom schema(s) and stores it; returns
    its metadata (name, path, num_examples, tools, categories, split, stats, report)."""
    from ..datasets import write_dataset
    from ..store import get_store
    conversions: dict[str, list[str]] = {}
    tools = resolve_tools(tool_name, conversions)
    if name is None:
        name = default_name(tools)
        if get_store().has_dataset(name) or paths.dataset_path(name).exists():
            raise AlreadyExists(f"dataset {name!r} already exists: choose another dataset name, or delete "
                                "the existing one first")
    else:
        paths.check_name(name, "dataset name")
    if isinstance(paraphraser, dict):
        paraphraser = Paraphraser(**paraphraser)
    elif paraphraser is None:
        paraphraser = Paraphraser.from_env()
    examples, report = generate_examples(tools, num_examples, variation_level, seed, example_queries, paraphraser,
                                         avoid=get_store().golden_request_norms(),
                                         requests_per_tool_set=requests_per_tool_set)
    report["schema_conversions"] = conversions  # the supplied schemas as converted, never silently
    report["notes"] = conversion_notes(conversions) + report["notes"]
    names = [t["function"]["name"] for t in tools]
    return write_dataset(name, examples, source="synthetic", created_by=created_by, report=report,
                         description=f"synthetic {variation_level}-variation data for {', '.join(names)}",
                         seed=seed, eval_fraction=eval_fraction, prevalidated=True)
