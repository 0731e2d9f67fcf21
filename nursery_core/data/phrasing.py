"""How user queries are worded: per-tool templates for the built-in tools, generic ones for any schema,
paraphrase rules and noise that never touch argument values, and plain answers for no-call questions.

A query is built as segments: ("t", text) may be reworded, ("v", value) is an argument value that must
reach the user text unchanged, so that a model can copy it into the call.
"""
from __future__ import annotations

import ast
import json
import operator
import random
import re
from typing import Any, Callable

from . import values as V

Seg = tuple[str, str]

# ------------------------------------------------------------------------------ built-in tool phrasing
BUILTIN: dict[str, dict[str, Any]] = {
    "calculator": {
        "templates": ["What is {expression}?", "Calculate {expression}.", "Can you work out {expression} for me?",
                      "Compute {expression}.", "How much is {expression}?", "Evaluate {expression}, please.",
                      "What's {expression} rounded to {precision} decimal places?",
                      "I need the result of {expression}.", "Quick math: {expression}",
                      "Solve {expression} and give me {precision} decimals."],
        "clauses": {"precision": [" Round to {precision} decimal places.", " Give me {precision} decimals.",
                                  " Use a precision of {precision}."]},
        "values": {"expression": V.expression},
    },
    "get_current_time": {
        "templates": ["What time is it?", "What's the current time?", "Tell me the time right now.",
                      "What time is it in {timezone}?", "What's the time in {timezone} right now?",
                      "Can you check the current time in {timezone}?", "What's the date and time at the moment?",
                      "Give me the current time in {format} format.", "Current time in {timezone}, please.",
                      "What's the clock saying?", "Do you know what time it is?"],
        "clauses": {"timezone": [" I'm asking about {timezone}.", " Use the {timezone} time zone."],
                    "format": [" Use {format} format.", " Format it as {format}."]},
    },
    "memory_store": {
        "templates": ["Remember that {content}.", "Please remember: {content}.", "Save this to memory: {content}.",
                      "Make a note that {content}.", "Can you remember that {content}?",
                      "Don't let me forget that {content}.", "Store this for later: {content}.",
                      "Note to self: {content}.", "Keep in mind that {content}.",
                      "I want you to remember that {content}."],
        "clauses": {"tags": [" Tag it {tags}.", " File it under {tags}."],
                    "importance": [" Mark it as {importance} importance.", " Importance: {importance}.",
                                   " This is {importance} priority."]},
        "values": {"content": V.memory_fact, "tags": lambda r: r.sample(V.TAGS, r.randint(1, 2))},
    },
    "memory_search": {
        "templates": ["What did I tell you about {query}?", "Search my memory for {query}.",
                      "Do you remember anything about {query}?", "Look up my notes on {query}.",
                      "Find what I saved about {query}.", "Check your memory for {query}.",
                      "Can you recall my {query}?", "What do you have stored about {query}?",
                      "Pull up my memories about {query}."],
        "clauses": {"limit": [" Show at most {limit} results.", " Give me the top {limit}.",
                              " Limit it to {limit} memories."]},
        "values": {"query": V.memory_query},
    },
    "web_search": {
        "templates": ["Search the web for {query}.", "Look up {query} online.", "Can you google {query}?",
                      "Find me information on {query}.", "Search for {query}.",
                      "What does the web say about {query}?", "Do a web search: {query}",
                      "I need search results for {query}.", "Look online for {query}, please."],
        "clauses": {"num_results": [" Return {num_results} results.", " I only need the top {num_results} results.",
                                    " Give me {num_results} links."],
                    "recency": [" Recency filter: {recency}.", " Set recency to {recency}."]},
        "values": {"query": V.search_phrase},
    },
    "get_weather": {
        "templates": ["What's the weather in {city}?", "How's the weather in {city} today?",
                      "Is it raining in {city}?", "Tell me the weather for {city}.", "Weather in {city}, please.",
                      "What's the temperature in {city} right now?", "Check the weather in {city} in {unit}.",
                      "Give me the {days}-day forecast for {city}.",
                      "What will the weather be like in {city} over the next {days} days?",
                      "Do I need an umbrella in {city}?"],
        "clauses": {"unit": [" Use {unit}.", " In {unit}, please.", " Show temperatures in {unit}."],
                    "days": [" I need a {days}-day forecast.", " Forecast for the next {days} days.",
                             " Cover {days} days."]},
        "values": {"city": lambda r: r.choice(V.CITIES)},
    },
    "send_email": {
        "templates": ['Send an email to {to} with the subject "{subject}" saying "{body}".',
                      'Email {to}: subject "{subject}", message "{body}".',
                      'Please write to {to}. Subject: "{subject}". Body: "{body}"',
                      'Can you email {to} about "{subject}"? Tell them: "{body}"',
                      'Shoot an email to {to}, subject "{subject}", text: "{body}"',
                      'Draft and send a mail to {to} with subject "{subject}" and body "{body}".'],
        "clauses": {"cc": [" CC {cc}.", " Copy in {cc}.", " Please cc {cc}."]},
        "values": {"subject": V.email_subject, "body": V.email_body,
                   "cc": lambda r: [V.email(r) for _ in range(r.randint(1, 2))]},
    },
    "create_calendar_event": {
        "templates": ['Add "{title}" to my calendar on {date} at {start_time}.',
                      "Schedule {title} for {date} at {start_time}.",
                      'Create a calendar event called "{title}" on {date}, starting {start_time}.',
                      "Put {title} in my calendar: {date} {start_time}.",
                      "Book {title} on {date} at {start_time} for {duration_minutes} minutes.",
                      'Can you set up "{title}" on {date} at {start_time} in {location}?',
                      "New event: {title}, {date}, {start_time}."],
        "clauses": {"duration_minutes": [" It lasts {duration_minutes} minutes.",
                                         " Make it {duration_minutes} minutes long."],
                    "location": [" Location: {location}.", " It's at {location}."],
                    "attendees": [" Invite {attendees}.", " Add {attendees} as attendees."]},
        "values": {"title": V.event_title, "start_time": V.hhmm,
                   "duration_minutes": lambda r: r.choice([15, 30, 45, 60, 90, 120, 25, 50]),
                   "location": lambda r: r.choice([r.choice(V.CITIES), f"Room {r.randint(100, 499)}",
                                                   f"the {r.choice(V.CITIES)} office", r.choice(V.STREETS)])},
    },
    "read_file": {
        "templates": ["Read {path}.", "Open {path} and show me what's inside.", "What's in {path}?",
                      "Show me the contents of {path}.", "Can you read the file {path}?", "Load {path} for me.",
                      "Print the file at {path}.", "I need to see {path}."],
        "clauses": {"encoding": [" It's {encoding} encoded.", " Use {encoding} encoding."],
                    "max_bytes": [" Only the first {max_bytes} bytes.", " Read at most {max_bytes} bytes."]},
        "values": {"path": V.file_path, "max_bytes": lambda r: r.choice([256, 512, 1024, 2048, 4096, 65536,
                                                                          r.randint(100, 100000)])},
    },
    "run_sql": {
        "templates": ["Run this query: {query}", "Execute {query} on the {database} database.",
                      'Can you run "{query}" for me?', "Query the database: {query}",
                      "Please execute the SQL {query}", "Run {query} against {database}.",
                      "I need the results of {query}"],
        "clauses": {"database": [" Use the {database} database.", " Database: {database}."],
                    "read_only": {True: [" Keep it read-only.", " Read-only mode, please."],
                                  False: [" Read-only mode off.", " It doesn't need to be read-only."]},
                    "max_rows": [" Return at most {max_rows} rows.", " Cap it at {max_rows} rows."]},
        "values": {"query": V.sql, "database": lambda r: r.choice(V.DATABASES),
                   "max_rows": lambda r: r.choice([10, 50, 100, 500, 1000, r.randint(5, 5000)])},
    },
}

GENERIC_WITH_ARGS = ["{Action} with {ARGS}.", "Can you {action}? {Args}.", "Please {action}: {ARGS}.",
                     "I need to {action}, {ARGS}.", "{Args}. {Action}, please.",
                     "Could you {action} for me using {ARGS}?", "Use {tool} with {ARGS}.",
                     "Help me {action}. {Args}.", "I'd like to {action}, {ARGS}.", "{Action} for {ARGS}, thanks.",
                     "Run {tool}: {ARGS}.", "Go ahead and {action} ({ARGS})."]
GENERIC_NO_ARGS = ["{Action}.", "Can you {action}?", "Please {action}.", "I'd like you to {action}.",
                   "Could you {action} now?", "Go ahead and {action}.", "Use {tool} to {action}.",
                   "Help me {action}.", "{Action}, please.", "Would you {action} for me?"]
GENERIC_CLAUSES = [" {L}: {v}.", " Use {v} for the {l}.", " Set the {l} to {v}.", " The {l} should be {v}.",
                   " With {l} {v}."]
GENERIC_BOOL = {True: [" Enable {l}.", " {L}: yes.", " With {l} turned on."],
                False: [" Disable {l}.", " {L}: no.", " Without {l}."]}
ARG_FORMS = ["{l} {v}", "{l}: {v}", "{l} = {v}", "{v} as the {l}", "{l} set to {v}"]

OPENERS = ["Hey, ", "Hi! ", "Quick question: ", "Hello, ", "OK so ", "Hmm, ", "Hey there, ", "Morning! ",
           "Sorry to bother you, ", "One thing: "]
CLOSERS = [" Thanks!", " Thank you.", " Cheers.", " Thanks in advance.", " Appreciate it.", " Ty!"]

PARAPHRASE_RULES: list[tuple[re.Pattern, list[str]]] = [(re.compile(p), r) for p, r in [
    (r"\bWhat's\b", ["What is", "Whats"]), (r"\bwhat's\b", ["what is", "whats"]),
    (r"\bCan you\b", ["Could you", "Would you", "Can u"]), (r"\bPlease\b", ["Kindly", "Pls"]),
    (r", please\b", [" please", ", pls", ""]), (r"\bI need\b", ["I'd like", "I want"]),
    (r"\bShow me\b", ["Let me see", "Display"]), (r"\bTell me\b", ["Let me know", "Give me"]),
    (r"\bLook up\b", ["Find", "Check"]), (r"\bright now\b", ["at the moment", "currently"]),
    (r"\btoday\b", ["this morning", "now"]), (r"\bfor me\b", ["", "for me please"]),
    (r"\bI'd like to\b", ["I want to", "I would like to"]), (r"\bCould you\b", ["Can you", "Would you mind to"]),
    (r"\bRemember\b", ["Memorise", "Remember"]), (r"\bSearch\b", ["Do a search", "Search"]),
    (r"\bHelp me\b", ["Assist me to", "I need help to"]), (r"\bthanks\b", ["thank you", "cheers"]),
]]

# no_call: requests no tool can serve, each with a plain answer. `words` lets a tool that does this kind of
# thing (a poem-writing tool, say) switch the pattern off.
NO_CALL_TOPICS = ["autumn leaves", "a sleepy cat", "the ocean", "morning coffee", "mountains", "a rainy city",
                  "old friends", "a lighthouse", "first snow", "a busy kitchen", "the night sky", "spring rain",
                  "a quiet library", "a long train ride", "fresh bread", "a garden in June", "the desert",
                  "a paper boat", "summer holidays", "a lost umbrella", "fireflies", "a mountain lake",
                  "city lights", "a grandmother's recipe", "bicycles", "the first day of school", "a foggy harbour",
                  "an old guitar", "sunflowers", "a cup of tea", "moving house", "a snowy forest", "jazz music",
                  "penguins", "a thunderstorm", "the moon", "a marathon", "tomatoes", "a red kite", "owls"]
GRAMMAR = [("me and him goes to the gym every day", "He and I go to the gym every day."),
           ("their going to be late for the meeting", "They're going to be late for the meeting."),
           ("she don't like coffee", "She doesn't like coffee."),
           ("i has finished the report yesterday", "I finished the report yesterday."),
           ("the datas is ready for review", "The data is ready for review."),
           ("we was waiting for hours", "We were waiting for hours."),
           ("your the best friend I ever had", "You're the best friend I've ever had."),
           ("him and me has a plan", "He and I have a plan."),
           ("there is many reasons to stay", "There are many reasons to stay."),
           ("he go to school by bus", "He goes to school by bus."),
           ("I seen that film last week", "I saw that film last week."),
           ("less people came than expected", "Fewer people came than expected.")]
SMALL_TALK = [("Hi there!", "Hi! How can I help you today?"),
              ("Thanks, that's all for now.", "You're welcome! Have a great day."),
              ("Good morning! How are you?", "Good morning! I'm doing well, thanks for asking. What can I do for you?"),
              ("Who are you?", "I'm an AI assistant. I can answer questions and use tools when a task needs them."),
              ("You're awesome, thank you!", "Thank you, that's kind of you! Happy to help any time."),
              ("Can you keep a secret?", "I don't keep secrets between conversations, but I'm happy to help with what you need right now."),
              ("I'm bored.", "How about a short walk, a new podcast, or a quick puzzle? I can suggest ideas if you like."),
              ("Never mind, I figured it out.", "Great, glad you sorted it out! Let me know if anything else comes up."),
              ("Good night!", "Good night! Sleep well."),
              ("Do you like music?", "I don't listen to music myself, but I'm happy to talk about it or suggest something to try."),
              ("Tell me something nice.", "You're doing better than you think, and it's great that you keep learning."),
              ("What can you do?", "I can chat, explain things, help with writing, and use the tools I have when a task needs them.")]
TIPS_FOR = ["staying focused", "sleeping better", "learning to cook", "keeping a journal", "running a first 5k",
            "saving money on groceries", "public speaking", "learning a new language", "keeping houseplants alive",
            "writing clearer emails", "starting to meditate", "packing light", "taking better photos",
            "drinking more water", "reading more books"]
TONES = ["friendlier", "more formal", "more concise", "more enthusiastic"]


def _haiku(topic: str) -> str:
    return f"{topic.capitalize()} at rest,\nsoft light gathers, slow and still,\nthe day breathes again."


NO_CALL_PATTERNS: list[tuple[set[str], Callable[[random.Random], tuple[str, str]]]] = [
    ({"haiku", "poem", "poetry"}, lambda r: (lambda t: (r.choice(["Write a haiku about {}.", "Can you write me a haiku about {}?",
                                                                 "Compose a short haiku on {}."]).format(t),
                                                        "Here's a haiku about " + t + ":\n\n" + _haiku(t)))(r.choice(NO_CALL_TOPICS))),
    ({"joke", "humor", "humour"}, lambda r: (lambda t: (r.choice(["Tell me a joke about {}.", "Do you know a joke about {}?",
                                                                  "Make me laugh with a joke about {}."]).format(t),
                                                        f"Here's a light one: I tried to write a joke about {t}, "
                                                        "but it needed more time to mature, a bit like a good cheese."))(r.choice(NO_CALL_TOPICS))),
    ({"grammar", "proofread", "correct", "rewrite"}, lambda r: (lambda g: (r.choice(['Fix the grammar in this sentence: "{}"',
                                                                                      'Can you correct this: "{}"',
                                                                                      'Is this sentence right? "{}"']).format(g[0]),
                                                                           f'The corrected sentence is: "{g[1]}"'))(r.choice(GRAMMAR))),
    ({"chat", "conversation"}, lambda r: r.choice(SMALL_TALK)),
    ({"tips", "advice"}, lambda r: (lambda t, n: (r.choice(["Give me {n} tips for {t}.", "What are {n} good tips for {t}?",
                                                            "Any advice on {t}? {n} quick tips, please."]).format(n=n, t=t),
                                                  f"Here are {n} tips for {t}:\n" + "\n".join(
                                                      f"{i + 1}. {tip}" for i, tip in enumerate([
                                                          "Start small and build the habit gradually.",
                                                          "Set a fixed time for it each day.",
                                                          "Track your progress so you can see it improve.",
                                                          "Ask someone to join you or keep you accountable.",
                                                          "Be kind to yourself when you miss a day."][:n]))))(r.choice(TIPS_FOR), r.randint(2, 5))),
    ({"title", "headline", "blog"}, lambda r: (lambda t: (r.choice(["Suggest a title for a blog post about {}.",
                                                                     "What's a catchy headline for an article on {}?"]).format(t),
                                                          f'How about: "{t.capitalize()}: Small Moments, Big Joy"?'))(r.choice(NO_CALL_TOPICS))),
    ({"name", "pet"}, lambda r: (lambda a: (f"What's a good name for a {a}?",
                                            f"A few ideas for a {a}: Pepper, Juniper, Biscuit or Comet."))(
        r.choice(["puppy", "kitten", "goldfish", "parrot", "hamster", "rabbit", "tortoise"]))),
    ({"rewrite", "tone"}, lambda r: (lambda tone, t: (f'Rewrite "I am writing about {t}" to sound {tone}.',
                                                      f'Here\'s a {tone} version: "I\'d love to share a few thoughts about {t}."'))(
        r.choice(TONES), r.choice(NO_CALL_TOPICS))),
]


def no_call_example(rng: random.Random, tool_words: set[str]) -> tuple[str, str]:
    """A (question, plain answer) pair that no tool here serves."""
    usable = [fn for words, fn in NO_CALL_PATTERNS if not words & tool_words] or [NO_CALL_PATTERNS[3][1]]
    return rng.choice(usable)(rng)


# ------------------------------------------------------------------------------------ action phrases
_ARTICLE_START = {"a", "an", "the", "this", "tool", "function", "api", "endpoint", "returns", "used", "it"}


def action_phrase(tool: dict) -> str:
    """'Searches for flights by city.' → 'search for flights by city' (imperative, lower case)."""
    fn = tool["function"]
    desc = re.split(r"(?<=[.!?])\s", (fn.get("description") or "").strip())[0].strip().rstrip(".!?")
    desc = re.sub(r"\s*\([^)]*\)", "", desc)
    words = desc.split()
    if len(words) > 14 and "," in desc:
        desc = desc.split(",")[0]
        words = desc.split()
    if not words or words[0].lower() in _ARTICLE_START or len(words) > 16:
        return V.humanise(fn["name"])
    first = words[0]
    low = first.lower()
    if re.search(r"(ches|shes|sses|xes|zes)$", low):
        low = low[:-2]
    elif low.endswith("ies") and len(low) > 4:
        low = low[:-3] + "y"
    elif low.endswith("s") and not low.endswith("ss") and len(low) > 3:
        low = low[:-1]
    rest = words[1:]
    if rest and not (len(rest[0]) > 1 and rest[0][1:].isupper()):
        pass
    return " ".join([low] + rest)


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


def value_segments(value: Any) -> list[Seg]:
    """An argument value as it appears in the query: strings and numbers literally, lists joined."""
    if isinstance(value, bool):
        return [("v", "yes" if value else "no")]
    if isinstance(value, list):
        parts = [value_segments(v) for v in value]
        out: list[Seg] = []
        for i, p in enumerate(parts):
            if i:
                out.append(("t", " and " if i == len(parts) - 1 else ", "))
            out.extend(p)
        return out
    if isinstance(value, dict):
        out = []
        for i, (k, v) in enumerate(value.items()):
            if i:
                out.append(("t", ", "))
            out.append(("v", str(k)))
            out.append(("t", " "))
            out.extend(value_segments(v))
        return out
    return [("v", str(value) if not isinstance(value, str) else value)]


def quote_if_long(segs: list[Seg]) -> list[Seg]:
    if len(segs) == 1 and segs[0][0] == "v" and " " in segs[0][1] and len(segs[0][1]) > 24:
        return [("t", '"'), segs[0], ("t", '"')]
    return segs


def fill(template: str, args: dict, extra: dict[str, list[Seg]] | None = None) -> list[Seg]:
    out: list[Seg] = []
    for kind, s in parse_template(template):
        if kind == "t":
            out.append((kind, s))
        elif extra and s in extra:
            out.extend(extra[s])
        else:
            out.extend(value_segments(args[s]))
    return out


def render(segs: list[Seg]) -> str:
    return "".join(s for _, s in segs)


def capitalise(segs: list[Seg]) -> list[Seg]:
    for i, (k, s) in enumerate(segs):
        if s.strip():
            if k == "t":
                segs[i] = (k, s[0].upper() + s[1:] if s[0].isalpha() else s)
            return segs
    return segs


def decapitalise(segs: list[Seg]) -> list[Seg]:
    for i, (k, s) in enumerate(segs):
        if s.strip():
            if k == "t" and s[:1].isalpha() and not s.startswith("I ") and not s[1:2].isupper():
                segs[i] = (k, s[0].lower() + s[1:])
            return segs
    return segs


def paraphrase(segs: list[Seg], rng: random.Random) -> list[Seg]:
    out = []
    for k, s in segs:
        if k == "t":
            for pat, reps in PARAPHRASE_RULES:
                if pat.search(s) and rng.random() < 0.6:
                    s = pat.sub(rng.choice(reps), s, count=1)
            s = re.sub(r"  +", " ", s)
        out.append((k, s))
    return out


def add_noise(segs: list[Seg], rng: random.Random) -> list[Seg]:
    """Casing, dropped punctuation and a typo, in the wording only."""
    kind = rng.random()
    segs = list(segs)
    if kind < 0.35:
        segs = [(k, s.lower() if k == "t" else s) for k, s in segs]
    elif kind < 0.6:
        if segs and segs[-1][0] == "t":
            segs[-1] = ("t", segs[-1][1].rstrip(".!?") or segs[-1][1])
    else:
        idx = [i for i, (k, s) in enumerate(segs) if k == "t" and re.search(r"[a-z]{4,}", s)]
        if idx:
            i = rng.choice(idx)
            words = list(re.finditer(r"[a-z]{4,}", segs[i][1]))
            m = rng.choice(words)
            w = m.group(0)
            j = rng.randint(1, len(w) - 3)
            typo = w[:j] + w[j + 1] + w[j] + w[j + 2:]
            s = segs[i][1]
            segs[i] = ("t", s[:m.start()] + typo + s[m.end():])
    return segs


# ----------------------------------------------------------------------- results for multi-turn examples
_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow}


def safe_eval(expr: str) -> float | None:
    """Arithmetic only (numbers, + - * / **, parentheses); None for anything else."""
    def ev(n):
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)) and not isinstance(n.value, bool):
            return n.value
        if isinstance(n, ast.BinOp) and type(n.op) in _BIN:
            a, b = ev(n.left), ev(n.right)
            if isinstance(n.op, ast.Pow) and abs(b) > 8:
                raise ValueError("exponent too large")
            return _BIN[type(n.op)](a, b)
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            return -ev(n.operand)
        raise ValueError("not arithmetic")
    try:
        return ev(ast.parse(expr, mode="eval"))
    except (ValueError, SyntaxError, ZeroDivisionError, OverflowError, TypeError):
        return None


def tool_result(name: str, args: dict, rng: random.Random, action: str) -> tuple[Any, str]:
    """A plausible tool reply and the assistant's answer built from it."""
    if name == "calculator":
        v = safe_eval(args["expression"])
        v = round(v, int(args.get("precision", 2))) if v is not None else None
        return {"result": v}, (f"{args['expression']} = {v}." if v is not None else "That expression could not be evaluated.")
    if name == "get_current_time":
        tz = args.get("timezone", "UTC")
        t = f"{V.iso_date(rng)}T{V.hhmm(rng)}:00"
        return {"time": t, "timezone": tz}, f"It's currently {t.replace('T', ' ')} ({tz})."
    if name == "memory_store":
        return {"status": "saved", "id": f"mem_{rng.getrandbits(32):08x}"}, "Got it, I've saved that to memory."
    if name == "memory_search":
        fact = V.memory_fact(rng)
        return {"results": [{"content": fact}]}, f"Here's what I found: {fact}."
    if name == "web_search":
        title = f"{args['query'].capitalize()} | {rng.choice(V.COMPANIES)}"
        link = V.url(rng)
        return ({"results": [{"title": title, "url": link, "snippet": f"Everything about {args['query']}."}]},
                f'The top result is "{title}" ({link}).')
    if name == "get_weather":
        unit = args.get("unit", "celsius")
        temp = rng.randint(-5, 32) if unit == "celsius" else rng.randint(23, 90)
        cond = rng.choice(["sunny", "cloudy", "light rain", "windy", "clear", "foggy", "snowing"])
        sym = "°C" if unit == "celsius" else "°F"
        return ({"city": args["city"], "temperature": temp, "unit": unit, "conditions": cond},
                f"It's {temp}{sym} and {cond} in {args['city']} right now.")
    if name == "send_email":
        return {"status": "sent", "message_id": f"<{rng.getrandbits(40):010x}@mail>"}, f"Your email to {args['to']} has been sent."
    if name == "create_calendar_event":
        return ({"status": "created", "event_id": f"evt_{rng.getrandbits(32):08x}"},
                f'Done: "{args["title"]}" is on your calendar for {args["date"]} at {args["start_time"]}.')
    if name == "read_file":
        body = f"# {rng.choice(V.WORDS).capitalize()}\n{V.sentence(rng)}"
        return {"content": body, "bytes": len(body)}, f"Here's what {args['path']} contains:\n\n{body}"
    if name == "run_sql":
        n = rng.randint(0, 40)
        return {"row_count": n, "rows": [[rng.randint(1, 999)] for _ in range(min(n, 3))]}, f"The query returned {n} rows."
    return {"status": "ok"}, f"Done: I used {name} to {action}, and it finished successfully."


def tool_result_text(result: Any) -> str:
    return json.dumps(result, ensure_ascii=False)


# --------------------------------------------------------------------------- steering by user examples
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
        fmt, words = s.get("format"), V._words(p)
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
