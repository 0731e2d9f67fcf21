"""How a request is worded: one call can be asked in many shapes, composed from independent parts.

A request is an intent (intents.py: "book a flight", "what's the weather in {city}") × the mentions of its
arguments (mentions.py: "from LIS", "for 2 passengers") × where those mentions go (inline, as a list, as
sentences of their own, in front) × a frame (imperative, question, polite, "I need to…", indirect, terse) ×
dressing (an opener, a chatty preamble, a closer) × noise (lower case, no final punctuation, a typo, text
speak, no apostrophes). Parts are drawn independently, so the number of distinct sentence skeletons grows
multiplicatively rather than with a template list. Several requests can be joined into one message
(parallel calls, in order), and a conversation can follow up on its last call ("and in Oslo?").

Segments: ("t", words) may be reworded or roughened; ("v", text) is how a value is said and is never touched,
so every value a call copies stands verbatim in the request.
"""
from __future__ import annotations

import random
import re
from typing import Any

from . import mentions as M
from .intents import Intent

Seg = tuple[str, str]

# ------------------------------------------------------------------------------------------ segments
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_PARSED: dict[str, list[Seg]] = {}


def parse_template(template: str) -> list[Seg]:
    """'Weather in {city}?' → [("t", "Weather in "), ("p", "city"), ("t", "?")], cached."""
    hit = _PARSED.get(template)
    if hit is None:
        hit, pos = [], 0
        for m in _PLACEHOLDER.finditer(template):
            if m.start() > pos:
                hit.append(("t", template[pos:m.start()]))
            hit.append(("p", m.group(1)))
            pos = m.end()
        if pos < len(template):
            hit.append(("t", template[pos:]))
        _PARSED[template] = hit
    return hit


def placeholders(template: str) -> set[str]:
    return {s for k, s in parse_template(template) if k == "p"}


def fill(template: str, said: dict[str, list[Seg]]) -> list[Seg]:
    out: list[Seg] = []
    for kind, s in parse_template(template):
        out.extend(said[s] if kind == "p" else [(kind, s)])
    return out


def render(segs: list[Seg]) -> str:
    return "".join(s for _, s in segs)


def values_of(segs: list[Seg]) -> list[str]:
    """The value texts a request carries (what an LLM rewording must keep)."""
    return [s for k, s in segs if k == "v"]


def capitalise(segs: list[Seg]) -> list[Seg]:
    segs = list(segs)
    for i, (k, s) in enumerate(segs):
        if s.strip():
            if k == "t":
                j = len(s) - len(s.lstrip())
                segs[i] = (k, s[:j] + s[j].upper() + s[j + 1:] if s[j].isalpha() else s)
            return segs
    return segs


def decapitalise(segs: list[Seg]) -> list[Seg]:
    segs = list(segs)
    for i, (k, s) in enumerate(segs):
        if s.strip():
            if k == "t" and s[:1].isalpha() and not re.match(r"I\b|I'", s) and not s[1:2].isupper():
                segs[i] = (k, s[0].lower() + s[1:])
            return segs
    return segs


def _strip_end(segs: list[Seg]) -> list[Seg]:
    """Drops a final . ! or ? (not a closing quote or bracket) so something can follow."""
    segs = list(segs)
    while segs and segs[-1][0] == "t" and not segs[-1][1].strip():
        segs.pop()
    if segs and segs[-1][0] == "t":
        s = segs[-1][1].rstrip()
        stripped = s.rstrip(".!?")
        segs[-1] = ("t", stripped)
        if not stripped:
            segs.pop()
    return segs


def _ends_sentence(segs: list[Seg]) -> bool:
    text = render(segs).rstrip()
    return text.endswith((".", "!", "?", ":", '"', ")")) and not text.endswith(("e.g.", "i.e."))


def _join_mentions(parts: list[list[Seg]], rng: random.Random, listy: bool) -> list[Seg]:
    out: list[Seg] = []
    for i, p in enumerate(parts):
        if i and p and p[0][0] == "t" and p[0][1].startswith(("and ", "but ", ": ")):
            out.append(("t", "" if p[0][1].startswith(":") else " "))  # "…, and cc x", "… but don't notify"
        elif i:
            if listy:
                out.append(("t", " and " if i == len(parts) - 1 and rng.random() < 0.7 else ", "))
            else:
                out.append(("t", rng.choice([" ", " ", " ", ", "]) if i < len(parts) - 1 else
                            rng.choice([" ", " ", ", ", " and "])))
        out.extend(p)
    return out


# ------------------------------------------------------------------------------------------ frames
# {c}: the core (intent + inline mentions), lower-cased start; {C}: capitalised.
FRAMES: dict[str, list[str]] = {
    "imperative": ["{C}.", "{C}", "{C}.", "{C}!"],
    "polite": ["Please {c}.", "{C}, please.", "{C} please", "Kindly {c}.", "Could you please {c}?",
               "Would you please {c}?", "Please could you {c}?", "{C} for me, please.", "Pls {c}"],
    "question": ["Can you {c}?", "Could you {c}?", "Can u {c}?", "Would you {c}?", "Will you {c}?",
                 "Are you able to {c}?", "Can you {c} for me?", "Could you {c} real quick?", "Can you please {c}?"],
    "want": ["I need to {c}.", "I want to {c}.", "I'd like to {c}.", "I need you to {c}.", "I want you to {c}.",
             "Need to {c}.", "I have to {c}.", "Help me {c}.", "I'm trying to {c}.", "I wanna {c}",
             "I would like you to {c}.", "Let's {c}.", "Go ahead and {c}.", "Time to {c}.", "I gotta {c}"],
    # the same wishes addressed to the assistant, for verb phrases a user cannot say of themselves
    # ("I need to tell me the time", "I want to remember that…" would say something else)
    "want_you": ["I need you to {c}.", "I want you to {c}.", "I would like you to {c}.", "Go ahead and {c}.",
                 "I'd like you to {c}.", "Please go ahead and {c}."],
    "indirect": ["I was wondering if you could {c}.", "Any chance you could {c}?", "Would it be possible to {c}?",
                 "Is there any way you could {c}?", "Do you think you could {c}?", "If you can, {c}.",
                 "When you get a sec, {c}.", "It'd be great if you could {c}.", "I'd appreciate it if you could {c}.",
                 "Mind if I ask you to {c}?"],
}
FRAME_WEIGHTS = [("imperative", 0.2), ("polite", 0.18), ("question", 0.25), ("want", 0.24), ("indirect", 0.13)]
ASK_FRAMES = ["{C}?", "{C}?", "{C}", "Quick question: {c}?", "So, {c}?", "Um, {c}?", "{C}??", "Hey, {c}?",
              "Can you tell me, {c}?", "{C}? Just wondering."]
TERSE_FRAMES = ["{c}", "{c}", "{c} pls", "{c} please", "{c}?", "{c} asap", "{c} thx", "{C}.", "{c} now", "{C}"]
_ME = re.compile(r"\bme\b")
FRONT_JOINS = [": ", " - ", ". ", ", "]

OPENERS = ["Hey, ", "Hi! ", "Hello, ", "Hey there, ", "Hi, ", "Morning! ", "OK so ", "Okay, ", "Yo, ", "Hiya, ",
           "Good morning. ", "Hi assistant, ", "Hey hey, ", "Hello! ", "Alright, ", "So, "]
PREAMBLES = ["I've got a busy day ahead.", "Okay, one more thing.", "Hope you're having a good day!",
             "Sorry, quick favour.", "So I was just thinking about this.", "My manager asked me to sort this out.",
             "Trying to get organised today.", "This has been on my to-do list all week.",
             "I'm on my phone so keeping this short.", "Random request, but here goes.", "Before I forget:",
             "Long story short,", "While I remember:", "New task for you.", "I keep forgetting to do this.",
             "Need your help with something.", "Ok here's what I need.", "Quick one.", "Got a sec?",
             "Thanks for the help earlier.", "I'm a bit stuck.", "This should be easy.", "Bit of a weird one.",
             "First thing on my list today:", "Hope this makes sense."]
CLOSERS = [" Thanks!", " Thank you.", " Thanks in advance.", " Cheers.", " Appreciate it.", " Ty!", " thx",
           " Thanks a lot.", " That would be great.", " Much appreciated.", " Thank you so much!", " Thanks :)"]

# (pattern, replacement) pairs of text speak and dropped apostrophes; applied to words only, never values.
_SLANG = [(re.compile(p, re.I), r) for p, r in [
    (r"\byou\b", "u"), (r"\byour\b", "ur"), (r"\bplease\b", "pls"), (r"\bplease\b", "plz"), (r"\bthanks\b", "thx"),
    (r"\bwant to\b", "wanna"), (r"\bgoing to\b", "gonna"), (r"\bgot to\b", "gotta"), (r"\bbecause\b", "cuz"),
    (r"\bwhat's\b", "whats"), (r"\bdon't\b", "dont"), (r"\bI'm\b", "im"), (r"\bit's\b", "its"),
    (r"\bcan't\b", "cant"), (r"\bI'd\b", "id"), (r"\bthat's\b", "thats"), (r"\bhow's\b", "hows"),
    (r"\bokay\b", "ok"), (r"\bare\b", "r")]]


def _apply_frame(frame: str, core: list[Seg]) -> list[Seg]:
    upper = "{C}" in frame
    before, _, after = frame.replace("{C}", "{c}").partition("{c}")
    body = capitalise(core) if upper else decapitalise(core)
    out: list[Seg] = ([("t", before)] if before else []) + body + ([("t", after)] if after else [])
    return capitalise(out) if not before or before[:1].isalpha() else out


# ------------------------------------------------------------------------------------------- composer
class Composer:
    """Builds one request for a tool from its intent, its parameters and the arguments of the call."""

    def __init__(self, intent: Intent, params: dict[str, M.Param], rng: random.Random):
        self.intent, self.params, self.rng = intent, params, rng
        self.ambiguous = M.ambiguous_roles(params)
        self.kinds = [(k, w, pool) for k, w, pool in (("idiom", 0.18, intent.idioms), ("ask", 0.22, intent.asks),
                                                      ("terse", 0.12, intent.terse), ("vp", 0.48, intent.vps)) if pool]
        self.kind_weights = [w for _, w, _ in self.kinds]
        self.forms: dict[tuple[str, Any], dict] = {}

    def pick(self, user_templates: list[str] | None = None) -> tuple[str, str]:
        """(kind, template): 'user' | 'idiom' | 'ask' | 'terse' | 'vp'."""
        rng = self.rng
        if user_templates and rng.random() < 0.5:
            return "user", rng.choice(user_templates)
        kind, _, pool = rng.choices(self.kinds, self.kind_weights)[0]
        return kind, rng.choice(pool)

    def mention(self, p: str, value: Any, said: list[Seg], form: str) -> list[Seg]:
        param = self.params[p]
        own = self.intent.mentions.get(p)
        if own is None and self.intent.family == "modify" and param.role in ("generic", "amount") and \
                param.required and p == next(iter(self.params)):
            own = {"prep": ["to {v}", "to {v}", "with {l} {v}"], "clause": M.CLAUSE_FORMS,
                   "label": M.LABEL_FORMS}  # set the thermostat to 21
        if p in self.ambiguous and form in ("prep", "terse") and not own:
            form = "label"
        key = (p, value if isinstance(value, bool) else None)
        f = self.forms.get(key)
        if f is None:
            f = self.forms[key] = M.forms(param, value, own)
        return M.mention(param, value, said, form, self.rng, own, f)

    def compose(self, kind: str, template: str, args: dict, said: dict[str, list[Seg]]) -> list[Seg]:
        """The request: the template's placeholders take the values as said; every other argument is
        mentioned inline, as a list, in sentences of its own or up front, and a frame wraps the core."""
        rng = self.rng
        placed = placeholders(template)
        core = fill(template, said)
        rest = [p for p in args if p not in placed]
        required = [p for p in rest if self.params[p].required]
        optional = [p for p in rest if not self.params[p].required]
        rng.shuffle(optional)
        order = required + optional if rng.random() < 0.8 else optional + required
        if kind == "user":
            return core + self._clauses(order, args, said)
        if kind == "terse":
            parts = [self.mention(p, args[p], said[p], "terse") for p in order]
            core = core + ([("t", " ")] + _join_mentions(parts, rng, False) if parts else [])
            return _apply_frame(rng.choice(TERSE_FRAMES), core)
        if kind == "idiom":
            if order and not _ends_sentence(core):
                core = core + [("t", ".")]
            return core + self._clauses(order, args, said)
        placement = rng.choices(["inline", "mixed", "clauses", "list", "front"], [0.45, 0.22, 0.13, 0.12, 0.08])[0]
        if not order:
            placement = "inline"
        elif placement == "list" and not all(M.has_labels(self.params[p], args[p], self.intent.mentions.get(p))
                                             for p in order):
            placement = "inline"
        if placement == "front" and kind == "vp":
            lead = _join_mentions([self.mention(p, args[p], said[p], "prep") for p in order], rng, False)
            return capitalise(lead) + [("t", rng.choice(FRONT_JOINS))] + \
                _apply_frame(rng.choice(FRAMES[self._frame_kind(template)]), core)
        inline = order if placement == "inline" else required if placement == "mixed" else \
            [] if placement == "clauses" else []
        trailing = [p for p in order if p not in inline] if placement != "list" else []
        if placement == "list":
            labels = [self.mention(p, args[p], said[p], "label") for p in order]
            core = core + [("t", rng.choice([": ", " with ", ", ", " - "]))] + _join_mentions(labels, rng, True)
        elif inline:
            core = core + [("t", " ")] + _join_mentions(
                [self.mention(p, args[p], said[p], "prep") for p in inline], rng, False)
        if kind == "ask":
            main = _apply_frame(rng.choice(ASK_FRAMES), core)
        else:
            main = _apply_frame(rng.choice(FRAMES[self._frame_kind(template)]), core)
        if trailing and not _ends_sentence(main):
            main = main + [("t", ".")]
        return main + self._clauses(trailing, args, said)

    def _frame_kind(self, template: str) -> str:
        kind = self.rng.choices([k for k, _ in FRAME_WEIGHTS], [w for _, w in FRAME_WEIGHTS])[0]
        if kind == "want" and (self.intent.agent_only or _ME.search(template)):
            return "want_you"
        return kind

    def _clauses(self, names: list[str], args: dict, said: dict[str, list[Seg]]) -> list[Seg]:
        out: list[Seg] = []
        for p in names:
            c = capitalise(self.mention(p, args[p], said[p], "clause"))
            if not _ends_sentence(c):
                c = c + [("t", ".")]
            out += [("t", " ")] + c
        return out

    def repeat(self, p: str, values_said: list[list[Seg]], args: dict) -> list[Seg]:
        """The mention of one parameter with several values ("in Paris and in Oslo") for same-tool parallel
        calls; the other arguments are shared."""
        v = args[p]
        parts = [self.mention(p, v, s, "prep") for s in values_said]
        return _join_mentions(parts, self.rng, True)


# --------------------------------------------------------------------------- dressing, noise, joining
def dress(segs: list[Seg], rng: random.Random, wrap: float, opener_ok: bool = True,
          closer_ok: bool = True) -> list[Seg]:
    """An opener ("Hey, "), a chatty preamble or a closer (" Thanks!"), each a share of `wrap`."""
    segs = list(segs)
    r = rng.random()
    if opener_ok and r < wrap * 0.4:
        segs = [("t", rng.choice(OPENERS))] + decapitalise(segs)
    elif opener_ok and r < wrap * 0.75:
        segs = [("t", rng.choice(PREAMBLES) + " ")] + capitalise(segs)
    if closer_ok and rng.random() < wrap * 0.45:
        if not _ends_sentence(segs) and rng.random() < 0.7:
            segs = segs + [("t", ".")]
        segs = segs + [("t", rng.choice(CLOSERS))]
    return segs


def _typo(word: str, rng: random.Random) -> str:
    j = rng.randint(1, len(word) - 2)
    kind = rng.random()
    if kind < 0.4:
        return word[:j] + word[j + 1] + word[j] + word[j + 2:]
    if kind < 0.7:
        return word[:j] + word[j + 1:]
    return word[:j] + word[j] + word[j:]


def roughen(segs: list[Seg], rng: random.Random) -> list[Seg]:
    """One or two of: lower case, no final punctuation, a typo, text speak, no capital at the start."""
    segs = list(segs)
    kinds = rng.sample(["lower", "nopunct", "typo", "slang", "nocap"], 2 if rng.random() < 0.3 else 1)
    for kind in kinds:
        if kind == "lower":
            segs = [(k, s.lower() if k == "t" else s) for k, s in segs]
        elif kind == "nopunct":
            if segs and segs[-1][0] == "t" and segs[-1][1].rstrip()[-1:] in (".", "!"):
                segs[-1] = ("t", segs[-1][1].rstrip().rstrip(".!"))
        elif kind == "nocap":
            segs = decapitalise(segs)
        elif kind == "slang":
            idx = [i for i, (k, s) in enumerate(segs) if k == "t" and any(p.search(s) for p, _ in _SLANG)]
            if idx:
                i = rng.choice(idx)
                pats = [(p, r) for p, r in _SLANG if p.search(segs[i][1])]
                p, r = rng.choice(pats)
                segs[i] = ("t", p.sub(r, segs[i][1], count=1))
        else:
            idx = [i for i, (k, s) in enumerate(segs) if k == "t" and re.search(r"[a-z]{4,}", s)]
            if idx:
                i = rng.choice(idx)
                m = rng.choice(list(re.finditer(r"[a-z]{4,}", segs[i][1])))
                s = segs[i][1]
                segs[i] = ("t", s[:m.start()] + _typo(m.group(0), rng) + s[m.end():])
    return segs


# (keep the first request's final punctuation?, joiner): how two requests share one message.
JOINERS = [(True, " Also, "), (True, " And "), (True, " Then "), (True, " Plus, "), (True, " Oh, and "),
           (True, " After that, "), (True, " Next, "), (True, " One more thing: "), (True, "\n"), (True, " Also "),
           (True, " And then "), (True, " Second, "), (False, ", and "), (False, " and also "), (False, ", then "),
           (False, "; "), (False, " and then "), (False, " and "), (False, ", also "), (False, " & ")]


def join_requests(parts: list[list[Seg]], rng: random.Random) -> list[Seg]:
    """Several requests in one message, in order: "X. Also, y", "x and then y", "1. x\n2. y", …"""
    r = rng.random()
    if r < 0.1:
        out: list[Seg] = []
        for i, p in enumerate(parts):
            out += ([("t", "\n")] if i else []) + [("t", f"{i + 1}. " if rng.random() < 0.8 else "- ")] + capitalise(p)
        return out
    if r < 0.18:
        lead = rng.choice(["Two things: ", "A couple of things: ", "I need two things. "]) if len(parts) == 2 else \
            rng.choice(["A few things: ", "Several things: "])
        out = [("t", lead)]
        for i, p in enumerate(parts):
            if i:
                out.append(("t", " and " if i == len(parts) - 1 else ", "))
            out += decapitalise(_strip_end(p)) if lead.endswith(": ") else capitalise(p)
        return out
    out = list(parts[0])
    for p in parts[1:]:
        keep, joiner = rng.choice(JOINERS)
        if keep:
            if not _ends_sentence(out):
                out = out + [("t", ".")]
            nxt = capitalise(p) if joiner == "\n" else decapitalise(p)
        else:
            out = _strip_end(out)
            nxt = decapitalise(p)
        out = out + [("t", joiner)] + nxt
    return out


# ------------------------------------------------------------------------------------------ follow-ups
FOLLOW_NEW_VALUE = ["What about {p}?", "And {p}?", "How about {p}?", "Same for {v}.", "Now do {v}.",
                    "Ok, now {p}.", "And for {v}?", "Do the same for {v}.", "What about {v}?", "Now {p}, please.",
                    "Again but {p}.", "same thing {p}", "and {v}?", "Now {v} please"]
FOLLOW_ADD = ["Can you redo that {p}?", "Same again but {p}.", "Actually, {p}.", "Do that again {p}.",
              "Redo it {p}, please.", "Hmm, try that again {p}.", "Could you run that again {p}?"]
FOLLOW_ADD_CLAUSE = ["Actually, one change. {c}", "Oh wait. {c} Redo it.", "Sorry, I forgot: {c}",
                     "One more detail. {c} Try again."]


def follow_up(kind: str, mention_prep: list[Seg], said: list[Seg], clause: list[Seg],
              rng: random.Random) -> list[Seg]:
    """A user's next turn that changes one value of the last call ('new') or adds an argument ('add')."""
    if kind == "add" and rng.random() < 0.35:
        t = rng.choice(FOLLOW_ADD_CLAUSE)
        before, _, after = t.partition("{c}")
        return [("t", before)] + capitalise(clause) + ([("t", after)] if after else [])
    t = rng.choice(FOLLOW_NEW_VALUE if kind == "new" else FOLLOW_ADD)
    out: list[Seg] = []
    for k, s in parse_template(t):
        out.extend(mention_prep if s == "p" and k == "p" else said if k == "p" else [(k, s)])
    return capitalise(out)
