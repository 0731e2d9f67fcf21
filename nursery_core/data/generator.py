"""Synthetic tool-calling data from tool schemas alone: nursery_generate_data and the generator behind it.

Every argument value is drawn from the schema (type, enum, format, range, parameter name and description)
and appears literally in the user's query, so a small model can learn to copy it into the call.
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
from ..records import normalise_example, tool_name
from . import phrasing as P
from . import values as V
from .tools import DEFAULT_TOOLS, resolve_tools

MAX_EXAMPLES = 200_000


@dataclass(frozen=True)
class Level:
    templates: int | None     # how many of a built-in tool's templates are used (None: all)
    paraphrase: float         # share of queries reworded by rules
    noise: float              # share with casing changes, dropped punctuation or a typo
    wrap: float               # share with an opener ("Hey, ") or closer (" Thanks!")
    optional: float           # chance that each optional argument is present
    distractors: tuple[int, int]  # extra, unrelated tools added to `tools`
    tool_cap: int             # at most this many of the selected tools per example (the called ones first)
    no_call: float            # share of questions no tool can answer
    parallel: float           # share with two calls in one turn
    multi_turn: float         # share of conversations: request → call → tool result → answer, repeated
    rounds: tuple[int, int]   # how many requests such a conversation holds (later ones reuse its tools)
    shuffle: bool             # shuffle the order of `tools`
    llm: float                # share sent to the LLM paraphraser when one is configured


LEVELS = {
    "low": Level(3, 0.0, 0.0, 0.0, 0.2, (0, 0), 3, 0.05, 0.04, 0.04, (1, 1), False, 0.15),
    "medium": Level(None, 0.3, 0.08, 0.25, 0.45, (0, 2), 4, 0.10, 0.10, 0.08, (1, 2), True, 0.35),
    "high": Level(None, 0.6, 0.25, 0.45, 0.6, (1, 4), 6, 0.15, 0.12, 0.12, (1, 3), True, 0.6),
}


# ----------------------------------------------------------------------------------- LLM paraphraser
class Paraphraser:
    """Rewords a query through any OpenAI-compatible /chat/completions endpoint (llama.cpp, Ollama, vLLM)."""

    def __init__(self, base_url: str, model: str = "default", api_key: str | None = None,
                 timeout: float = 20.0, temperature: float = 0.8):
        self.base_url, self.model, self.api_key = base_url.rstrip("/"), model, api_key
        self.timeout, self.temperature = timeout, temperature
        self._client = None

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
        except Exception as e:  # any transport, HTTP or shape problem: the caller falls back to templates
            raise BackendError(f"paraphrase endpoint {self.base_url} failed: {type(e).__name__}: {e}") from None
        if not isinstance(out, str):
            raise BackendError(f"paraphrase endpoint {self.base_url} returned no text")
        return out.strip().strip('"').strip()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _literal_values(args: Any) -> list[str]:
    """The strings a query must contain for these arguments (booleans are implied, not literal)."""
    if isinstance(args, dict):
        return [s for v in args.values() for s in _literal_values(v)]
    if isinstance(args, list):
        return [s for v in args for s in _literal_values(v)]
    if isinstance(args, bool) or args is None:
        return []
    return [args if isinstance(args, str) else str(args)]


# --------------------------------------------------------------------------------------- tool plans
@dataclass
class _Plan:
    tool: dict
    name: str
    props: dict
    required: list[str]
    templates: list[str]
    clauses: dict
    values: dict[str, Callable]
    action: str
    builtin: bool
    user_templates: list[str] = field(default_factory=list)


def _plan(tool: dict) -> _Plan:
    fn = tool["function"]
    params = fn["parameters"]
    props = {k: (v if isinstance(v, dict) else {}) for k, v in (params.get("properties") or {}).items()}
    spec = P.BUILTIN.get(fn["name"])
    # A built-in's phrasing only fits when the schema is still the built-in one.
    builtin = spec is not None and any(t is tool or t == tool for t in DEFAULT_TOOLS)
    if builtin:
        templates, clauses, vals = spec["templates"], spec["clauses"], spec.get("values", {})
    else:
        templates = P.GENERIC_WITH_ARGS if props else P.GENERIC_NO_ARGS
        clauses, vals = {}, {}
    return _Plan(tool, fn["name"], props, list(params.get("required") or []), templates, clauses, vals,
                 P.action_phrase(tool), builtin)


def _tool_words(tools: Iterable[dict]) -> set[str]:
    out: set[str] = set()
    for t in tools:
        out |= V._words(t["function"]["name"], t["function"].get("description", ""))
    return out


def _distractor_pool(selected: list[dict]) -> list[dict]:
    """Built-in tools unrelated to the selected ones (no shared name word), so a distractor is never a
    plausible answer."""
    names = {tool_name(t) for t in selected}
    words = {w for t in selected for w in V._words(tool_name(t)) if len(w) > 3}
    return [t for t in DEFAULT_TOOLS if tool_name(t) not in names and not (V._words(tool_name(t)) & words)]


# -------------------------------------------------------------------------------------- the generator
class _Generator:
    def __init__(self, tools: list[dict], level: Level, level_name: str, seed: int,
                 example_queries: list[str] | None, paraphraser: Paraphraser | None):
        self.tools, self.level, self.level_name, self.seed = tools, level, level_name, seed
        self.rng = random.Random(seed)
        self.plans = [_plan(t) for t in tools]
        self.pool = _distractor_pool(tools)
        self.tool_words = _tool_words(tools)
        self.paraphraser = paraphraser
        self.llm = {"used": 0, "rejected": 0, "failed": False, "note": None} if paraphraser else None
        self.style = {"lower": 0.0, "nopunct": 0.0}
        self.steering = {"example_queries": 0, "templates": 0, "style_only": 0}
        if example_queries:
            self._steer([q for q in example_queries if isinstance(q, str) and q.strip()])

    def _steer(self, queries: list[str]) -> None:
        self.steering["example_queries"] = len(queries)
        for q in queries:
            best = None
            for plan in self.plans:
                t = P.templatise(q, plan.tool)
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

    # ---- arguments and queries
    def _args(self, plan: _Plan, forced: set[str]) -> dict:
        rng, out = self.rng, {}
        for p, schema in plan.props.items():
            if p in plan.required or p in forced or rng.random() < self.level.optional:
                gen = plan.values.get(p)
                out[p] = gen(rng) if gen else V.value_for(p, schema, rng)
        return out

    def _query(self, plan: _Plan) -> tuple[list[P.Seg], dict]:
        rng = self.rng
        if plan.user_templates and rng.random() < 0.5:
            template = rng.choice(plan.user_templates)
        else:
            pool = plan.templates[: self.level.templates] if self.level.templates else plan.templates
            template = rng.choice(pool)
        args = self._args(plan, P.placeholders(template) & set(plan.props))
        placed = P.placeholders(template)
        if not args and placed & {"ARGS", "Args"}:
            template = rng.choice(P.GENERIC_NO_ARGS)
            placed = P.placeholders(template)
        rest = [p for p in args if p not in placed]
        extra: dict[str, list[P.Seg]] = {
            "action": [("t", plan.action)], "Action": [("t", plan.action[:1].upper() + plan.action[1:])],
            "tool": [("t", V.humanise(plan.name) if rng.random() < 0.6 else plan.name)]}
        if "ARGS" in placed or "Args" in placed:
            form = rng.choice(P.ARG_FORMS)
            segs: list[P.Seg] = []
            for i, p in enumerate(rest):
                if i:
                    segs.append(("t", " and " if i == len(rest) - 1 else ", "))
                segs.extend(self._arg_phrase(p, args[p], form))
            extra["ARGS"] = segs
            extra["Args"] = P.capitalise(list(segs))
            rest = []
        segs = P.fill(template, args, extra)
        for p in rest:
            segs.extend(self._clause(plan, p, args[p]))
        return P.capitalise(segs), args

    def _arg_phrase(self, p: str, value: Any, form: str) -> list[P.Seg]:
        label = V.humanise(p)
        if isinstance(value, bool):
            return [("t", f"{label}: {'yes' if value else 'no'}" if form != "{v} as the {l}"
                     else f"{'with' if value else 'without'} {label}")]
        return P.fill(form.replace("{l}", label), {"v": value}, {"v": P.quote_if_long(P.value_segments(value))})

    def _clause(self, plan: _Plan, p: str, value: Any) -> list[P.Seg]:
        rng = self.rng
        options = plan.clauses.get(p)
        label = V.humanise(p)
        if isinstance(value, bool):
            opts = options if isinstance(options, dict) else P.GENERIC_BOOL
            t = rng.choice(opts[value])
            return [("t", t.replace("{l}", label).replace("{L}", label[:1].upper() + label[1:]))]
        if options:
            return P.fill(rng.choice(options), {p: value})
        t = rng.choice(P.GENERIC_CLAUSES).replace("{l}", label).replace("{L}", label[:1].upper() + label[1:])
        return P.fill(t, {"v": value}, {"v": P.quote_if_long(P.value_segments(value))})

    def _dress(self, segs: list[P.Seg]) -> list[P.Seg]:
        """Paraphrase rules, opener/closer, user style and noise: wording only, never values."""
        rng, lv = self.rng, self.level
        if rng.random() < lv.paraphrase:
            segs = P.paraphrase(segs, rng)
        if rng.random() < lv.wrap:
            if rng.random() < 0.5:
                segs = [("t", rng.choice(P.OPENERS))] + P.decapitalise(list(segs))
            else:
                segs = list(segs) + [("t", rng.choice(P.CLOSERS))]
        if self.style["lower"] and rng.random() < self.style["lower"]:
            segs = [(k, s.lower() if k == "t" else s) for k, s in segs]
        if self.style["nopunct"] and rng.random() < self.style["nopunct"] and segs and segs[-1][0] == "t":
            segs = list(segs[:-1]) + [("t", segs[-1][1].rstrip(".!? ") or segs[-1][1])]
        if rng.random() < lv.noise:
            segs = P.add_noise(segs, rng)
        return segs

    def _tools_for_example(self, used: set[str], room_for: set[str] | None = None) -> list[dict]:
        """The called tools, then other selected tools up to the level's cap, then unrelated distractors.

        Capping keeps prompts short (every schema costs hundreds of tokens) while the model still has to
        pick the right tool among several. `room_for` (a conversation's tools, picked before its requests,
        the called ones among them) replaces the called-plus-random selection when given."""
        rng = self.rng
        if room_for is None:
            called = [t for t in self.tools if tool_name(t) in used]
            others = [t for t in self.tools if tool_name(t) not in used]
            room = max(0, self.level.tool_cap - len(called))
            room_for = {tool_name(t) for t in called + (rng.sample(others, min(room, len(others))) if room and others else [])}
        tools = [t for t in self.tools if tool_name(t) in room_for]  # selection order: position gives nothing away
        lo, hi = self.level.distractors
        k = min(rng.randint(lo, hi), len(self.pool)) if hi else 0
        tools += rng.sample(self.pool, k) if k else []
        if self.level.shuffle:
            rng.shuffle(tools)
        return tools

    def _call(self, plan: _Plan, idx: int) -> dict:
        return {"id": f"call_{idx}", "type": "function", "function": {"name": plan.name, "arguments": {}}}

    # ---- one example
    def example(self) -> tuple[dict, str]:
        rng, lv = self.rng, self.level
        r = rng.random()
        single = len(self.plans) == 1
        par = lv.parallel / (2 if single else 1)
        if single and not self.plans[0].props:
            par = 0.0
        if r < lv.no_call:
            cat = "no_call"
        elif r < lv.no_call + par:
            cat = "parallel"
        elif r < lv.no_call + par + lv.multi_turn:
            cat = "multi_turn"
        else:
            cat = "call"
        meta = {"source": "synthetic", "category": cat, "variation": self.level_name}
        if cat == "no_call":
            q, a = P.no_call_example(rng, self.tool_words)
            segs = self._dress([("t", q)])
            text = P.render(segs)
            return {"tools": self._tools_for_example(set()), "messages": [
                {"role": "user", "content": text}, {"role": "assistant", "content": a}], "meta": meta}, [text]
        if cat == "parallel":
            plans = rng.sample(self.plans, 2) if len(self.plans) > 1 else [self.plans[0]] * 2
            s1, a1 = self._query(plans[0])
            s2, a2 = self._query(plans[1])
            if plans[0] is plans[1] and a1 == a2:
                s2, a2 = self._query(plans[1])
            segs = list(s1) + [("t", rng.choice([" Also, ", " And ", " Then ", " Plus, "]))] + P.decapitalise(list(s2))
            segs = self._dress(segs)
            text = P.render(segs)
            calls = [(plans[0], a1), (plans[1], a2)]
            msgs = [{"role": "user", "content": text}, self._assistant(calls)]
            meta["tool"] = sorted({p.name for p in plans})
            return {"tools": self._tools_for_example({p.name for p in plans}), "messages": msgs, "meta": meta}, [text]
        plan = rng.choice(self.plans)
        segs, args = self._query(plan)
        segs = self._dress(segs)
        text = P.render(segs)
        text, how = self._llm(text, args)
        if how:
            meta["paraphrased_by"] = how
        meta["tool"] = plan.name
        msgs = [{"role": "user", "content": text}, self._assistant([(plan, args)])]
        room = self._conversation(plan, args, msgs) if cat == "multi_turn" else None
        return {"tools": self._tools_for_example({plan.name}, room), "messages": msgs, "meta": meta}, _requests(msgs)

    def _conversation(self, plan: _Plan, args: dict, msgs: list[dict]) -> set[str]:
        """Extends a first request and its call (already in msgs) into a conversation: each call gets a
        tool result and an answer, then the user asks again, up to the level's rounds. Later requests use
        the conversation's tools (the first one's plus others up to the cap) or, now and then, need no
        tool at all. Every request after the first reuses the rendered tools, so a conversation teaches
        several calls for little more than the prompt of one. Returns the names of the tools to offer."""
        rng, lv = self.rng, self.level
        others = [p for p in self.plans if p is not plan]
        room = [plan] + rng.sample(others, min(max(0, lv.tool_cap - 1), len(others)))
        rounds = rng.randint(*lv.rounds)
        call_no = 0
        for rnd in range(rounds):
            if rnd:
                if rng.random() < lv.no_call:
                    q, a = P.no_call_example(rng, self.tool_words)
                    text = P.render(self._dress([("t", q)]))
                    msgs += [{"role": "user", "content": text}, {"role": "assistant", "content": a}]
                    continue
                plan = rng.choice(room)
                segs, args = self._query(plan)
                text = P.render(self._dress(segs))
                call_no += 1
                msgs += [{"role": "user", "content": text}, self._assistant([(plan, args)], offset=call_no)]
            result, answer = P.tool_result(plan.name, args, rng, plan.action)
            msgs += [{"role": "tool", "tool_call_id": f"call_{call_no}", "name": plan.name,
                      "content": P.tool_result_text(result)},
                     {"role": "assistant", "content": answer}]
        return {p.name for p in room}

    @staticmethod
    def _assistant(calls: list[tuple[_Plan, dict]], offset: int = 0) -> dict:
        return {"role": "assistant", "content": "", "tool_calls": [
            {"id": f"call_{offset + i}", "type": "function", "function": {"name": p.name, "arguments": a}}
            for i, (p, a) in enumerate(calls)]}

    def _llm(self, text: str, args: dict) -> tuple[str, str | None]:
        if self.paraphraser is None or self.llm["failed"]:
            return text, None
        if self.rng.random() >= self.level.llm:
            return text, None
        keep = _literal_values(args)
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


def _requests(msgs: list[dict]) -> list[str]:
    return [m["content"] for m in msgs if m["role"] == "user"]


def _norm(text: str) -> str:
    return _NORM.sub(" ", text.lower()).strip()


def generate_examples(tools: Any, num_examples: int, variation_level: str = "medium", seed: int = 0,
                      example_queries: list[str] | None = None,
                      paraphraser: Paraphraser | None = None,
                      avoid: set[str] | None = None) -> tuple[list[dict], dict]:
    """(normalised examples, report) for built-in names, schemas or both; nothing is stored. An example with a
    request whose overlap.normal_request is in `avoid` (the golden sets' requests) is dropped and drawn again,
    counted in the report as golden_requests_avoided."""
    if variation_level not in LEVELS:
        raise InvalidConfig(f"variation level must be one of {', '.join(LEVELS)}, not {variation_level!r}")
    if isinstance(num_examples, bool) or not isinstance(num_examples, int) or not 1 <= num_examples <= MAX_EXAMPLES:
        raise InvalidConfig(f"number of examples must be a whole number from 1 to {MAX_EXAMPLES}, "
                            f"not {num_examples!r}")
    try:
        seed = int(seed)
    except (TypeError, ValueError):
        raise InvalidConfig(f"seed must be a whole number, not {seed!r}") from None
    tools = resolve_tools(tools)
    gen = _Generator(tools, LEVELS[variation_level], variation_level, seed, example_queries, paraphraser)
    out: list[dict] = []
    seen: set[str] = set()
    dupes = attempts = bad = avoided = 0
    last_error = None
    limit = num_examples * 30 + 500
    while len(out) < num_examples and attempts < limit:
        attempts += 1
        raw, requests = gen.example()
        keys = [_norm(r) for r in requests]
        if len(set(keys)) < len(keys) or any(k in seen for k in keys):
            dupes += 1  # every request in the dataset is distinct, so no held-out request is ever trained on
            continue
        if avoid and any(normal_request(r) in avoid for r in requests):
            avoided += 1  # a golden set's request: never in training data
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
    if paraphraser is not None:
        paraphraser.close()
    if len(out) < num_examples:
        raise InvalidConfig(
            f"only {len(out)} distinct examples could be made for {', '.join(tool_name(t) for t in tools)} "
            f"(asked for {num_examples}; {dupes} near-duplicates dropped): the schema leaves too little to vary. "
            "Ask for fewer examples, add parameters or example queries, or use variation 'high'"
            + (f"; last schema error: {last_error.detail}" if last_error else ""))
    cats: dict[str, int] = {}
    for ex in out:
        cats[ex["meta"]["category"]] = cats.get(ex["meta"]["category"], 0) + 1
    report = {"requested": num_examples, "delivered": len(out), "variation": variation_level, "seed": seed,
              "tools": [tool_name(t) for t in tools], "categories": cats, "near_duplicates_dropped": dupes,
              "regenerated_for_schema": bad, "golden_requests_avoided": avoided, "attempts": attempts,
              "steering": gen.steering,
              "paraphrase": gen.llm}
    notes = []
    if gen.llm and gen.llm["note"]:
        notes.append(gen.llm["note"])
    if gen.steering["style_only"]:
        notes.append(f"{gen.steering['style_only']} example quer(y/ies) had no recognisable argument values; "
                     "they steer casing and punctuation only (write {param} in a query to use it as a template)")
    report["notes"] = notes
    return out, report


def default_name(tools: list[dict]) -> str:
    if len(tools) == 1:
        return paths.slugify(tool_name(tools[0]).replace("_", "-")) or "generated"
    return "combined-tools"


def nursery_generate_data(tool_name: Any, num_examples: int = 100, variation_level: str = "medium",
                          seed: int = 0, name: str | None = None, example_queries: list[str] | None = None,
                          paraphraser: Paraphraser | dict | None = None, created_by: str | None = None,
                          eval_fraction: float = 0.1) -> dict:
    """Generates a tool-calling dataset for built-in tool name(s) or custom schema(s) and stores it; returns
    its metadata (name, path, num_examples, tools, categories, split, stats, report)."""
    from ..datasets import write_dataset
    from ..store import get_store
    tools = resolve_tools(tool_name)
    if name is None:
        name = default_name(tools)
        if get_store().has_dataset(name) or paths.dataset_path(name).exists():
            raise AlreadyExists(f"dataset {name!r} already exists: pass --name to choose another name "
                                f"(or delete it first with delete-dataset {name})")
    else:
        paths.check_name(name, "dataset name")
    if isinstance(paraphraser, dict):
        paraphraser = Paraphraser(**paraphraser)
    elif paraphraser is None:
        paraphraser = Paraphraser.from_env()
    examples, report = generate_examples(tools, num_examples, variation_level, seed, example_queries, paraphraser,
                                         avoid=get_store().golden_request_norms())
    names = [t["function"]["name"] for t in tools]
    return write_dataset(name, examples, source="synthetic", created_by=created_by, report=report,
                         description=f"synthetic {variation_level}-variation data for {', '.join(names)}",
                         seed=seed, eval_fraction=eval_fraction, prevalidated=True)
