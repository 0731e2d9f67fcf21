"""What a request asks a tool to do, in words a user would write: verb phrases ("book a flight"), questions
("what's the weather in {city}"), terse heads ("{city} weather") and whole idioms ("Is it gonna rain in
{city}?"), from the tool's name for any schema and hand-written for the built-in tools.

The tool's description is never copied into a request: people do not say "Books a flight ticket for the
user between two airports", they say "book me a flight". A name's words give the verb and its object; a
small verb table gives synonyms and how the object takes an article.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from . import values as V


@dataclass
class Intent:
    """The ways to ask for one tool. Templates may hold {param} placeholders for argument values."""
    vps: list[str]                  # imperative verb phrases, lower case: "book a flight", "calculate {expression}"
    asks: list[str] = field(default_factory=list)    # wh-questions without '?': "what's the weather in {city}"
    terse: list[str] = field(default_factory=list)   # clipped requests: "{city} weather", "flight"
    idioms: list[str] = field(default_factory=list)  # whole requests: "Do I need an umbrella in {city}?"
    say: str = ""                   # a short verb phrase for answers: "book a flight"
    family: str = "other"           # retrieve | create | modify | transform | other
    obj: str = ""                   # the object noun ("flight"), for requests about it a tool cannot serve
    mentions: dict = field(default_factory=dict)   # param → own mention forms (see mentions.forms)
    spoken: dict = field(default_factory=dict)     # param → {value: [ways to say it]}
    agent_only: bool = False        # only frames addressed to the assistant ("I need you to remember…")


# verb → (family, synonyms used in requests). Synonyms keep the meaning: "get" may become "check", never "delete".
VERBS: dict[str, tuple[str, list[str]]] = {
    "get": ("retrieve", ["get", "check", "look up", "find", "pull up", "fetch"]),
    "fetch": ("retrieve", ["fetch", "get", "pull up", "look up"]),
    "retrieve": ("retrieve", ["retrieve", "get", "pull up"]),
    "show": ("retrieve", ["show", "show me", "display"]),
    "view": ("retrieve", ["view", "show me", "open"]),
    "lookup": ("retrieve", ["look up", "find", "check"]),
    "find": ("retrieve", ["find", "look up", "search for", "look for"]),
    "search": ("retrieve", ["search for", "look up", "find", "look for"]),
    "list": ("retrieve", ["list", "show me", "show"]),
    "check": ("retrieve", ["check", "look up", "find out"]),
    "read": ("retrieve", ["read", "open", "show me"]),
    "track": ("retrieve", ["track", "check on", "look up"]),
    "query": ("retrieve", ["query", "look up"]),
    "recommend": ("retrieve", ["recommend", "suggest"]),
    "suggest": ("retrieve", ["suggest", "recommend"]),
    "create": ("create", ["create", "make", "set up", "add"]),
    "add": ("create", ["add", "create", "put in"]),
    "make": ("create", ["make", "create"]),
    "new": ("create", ["create", "make", "open"]),
    "book": ("create", ["book", "reserve"]),
    "reserve": ("create", ["reserve", "book"]),
    "send": ("create", ["send", "shoot off"]),
    "post": ("create", ["post", "publish", "put up"]),
    "publish": ("create", ["publish", "post"]),
    "schedule": ("create", ["schedule", "set up", "arrange"]),
    "set": ("modify", ["set"]),
    "order": ("create", ["order"]),
    "buy": ("create", ["buy", "purchase", "order"]),
    "purchase": ("create", ["purchase", "buy"]),
    "open": ("create", ["open", "start"]),
    "start": ("create", ["start", "begin", "kick off"]),
    "generate": ("create", ["generate", "create", "make"]),
    "write": ("create", ["write", "draft"]),
    "draft": ("create", ["draft", "write"]),
    "save": ("create", ["save", "store", "keep"]),
    "store": ("create", ["store", "save"]),
    "upload": ("create", ["upload"]),
    "log": ("create", ["log", "record"]),
    "record": ("create", ["record", "log"]),
    "invite": ("create", ["invite"]),
    "register": ("create", ["register", "sign up"]),
    "subscribe": ("create", ["subscribe to"]),
    "play": ("create", ["play", "put on"]),
    "call": ("create", ["call", "ring"]),
    "share": ("create", ["share"]),
    "reply": ("create", ["reply to"]),
    "forward": ("create", ["forward"]),
    "print": ("create", ["print"]),
    "download": ("create", ["download"]),
    "pay": ("create", ["pay"]),
    "transfer": ("create", ["transfer", "send"]),
    "plan": ("create", ["plan", "map out"]),
    "rate": ("create", ["rate"]),
    "assign": ("create", ["assign"]),
    "notify": ("create", ["notify", "alert"]),
    "remind": ("create", ["remind"]),
    "email": ("create", ["email"]),
    "text": ("create", ["text"]),
    "turn": ("modify", ["turn", "switch"]),
    "toggle": ("modify", ["toggle", "switch"]),
    "enable": ("modify", ["enable", "turn on"]),
    "disable": ("modify", ["disable", "turn off"]),
    "lock": ("modify", ["lock"]),
    "unlock": ("modify", ["unlock"]),
    "update": ("modify", ["update", "change", "edit", "modify"]),
    "edit": ("modify", ["edit", "change", "update"]),
    "modify": ("modify", ["modify", "change", "update"]),
    "change": ("modify", ["change", "update"]),
    "rename": ("modify", ["rename"]),
    "move": ("modify", ["move"]),
    "archive": ("modify", ["archive"]),
    "mark": ("modify", ["mark"]),
    "close": ("modify", ["close"]),
    "stop": ("modify", ["stop", "halt"]),
    "pause": ("modify", ["pause"]),
    "resume": ("modify", ["resume", "restart"]),
    "restart": ("modify", ["restart", "reboot"]),
    "reset": ("modify", ["reset"]),
    "complete": ("modify", ["complete", "finish"]),
    "delete": ("modify", ["delete", "remove", "get rid of"]),
    "remove": ("modify", ["remove", "delete", "take off"]),
    "cancel": ("modify", ["cancel", "call off"]),
    "calculate": ("transform", ["calculate", "work out", "compute", "figure out"]),
    "compute": ("transform", ["compute", "calculate", "work out"]),
    "convert": ("transform", ["convert", "change"]),
    "translate": ("transform", ["translate"]),
    "summarize": ("transform", ["summarize", "sum up"]),
    "summarise": ("transform", ["summarise", "sum up"]),
    "analyze": ("transform", ["analyze", "look at"]),
    "analyse": ("transform", ["analyse", "look at"]),
    "validate": ("transform", ["validate", "check"]),
    "verify": ("transform", ["verify", "check"]),
    "estimate": ("transform", ["estimate", "work out"]),
    "predict": ("transform", ["predict", "forecast"]),
    "detect": ("transform", ["detect", "spot"]),
    "classify": ("transform", ["classify", "categorize"]),
    "extract": ("transform", ["extract", "pull out"]),
    "parse": ("transform", ["parse"]),
    "format": ("transform", ["format"]),
    "resize": ("transform", ["resize"]),
    "compress": ("transform", ["compress", "shrink"]),
    "encode": ("transform", ["encode"]),
    "decode": ("transform", ["decode"]),
    "compare": ("transform", ["compare"]),
    "count": ("transform", ["count"]),
    "run": ("transform", ["run", "execute"]),
    "execute": ("transform", ["execute", "run"]),
    "evaluate": ("transform", ["evaluate", "work out"]),
    "solve": ("transform", ["solve", "work out"]),
    "ping": ("other", ["ping"]),
    "scan": ("other", ["scan"]),
    "deploy": ("other", ["deploy", "ship"]),
    "build": ("other", ["build"]),
    "sync": ("other", ["sync"]),
    "backup": ("other", ["back up"]),
    "restore": ("other", ["restore"]),
    "refresh": ("other", ["refresh", "reload"]),
    "test": ("other", ["test"]),
}
# A name ending in an agent noun: currency_converter → convert currency.
AGENT_NOUNS = {"converter": "convert", "translator": "translate", "calculator": "calculate", "sender": "send",
               "checker": "check", "finder": "find", "generator": "generate", "scheduler": "schedule",
               "tracker": "track", "planner": "plan", "searcher": "search", "lookup": "lookup", "search": "search",
               "getter": "get", "reader": "read", "writer": "write", "creator": "create", "booking": "book",
               "booker": "book", "player": "play", "analyzer": "analyze", "summarizer": "summarize",
               "estimator": "estimate", "validator": "validate", "parser": "parse", "formatter": "format",
               "runner": "run", "recommender": "recommend", "notifier": "notify", "monitor": "check",
               "finder_tool": "find"}
# Antonyms for requests about a tool's object that the tool cannot serve (book_flight → "cancel the flight").
OPPOSITES = {"create": ["delete", "cancel"], "book": ["cancel"], "reserve": ["cancel"], "send": ["delete", "unsend"],
             "add": ["remove"], "schedule": ["cancel", "move"], "set": ["delete"], "order": ["cancel"],
             "buy": ["return"], "save": ["delete"], "store": ["delete"], "play": ["stop"], "start": ["stop"],
             "open": ["close"], "post": ["delete"], "upload": ["delete"], "make": ["cancel"], "write": ["delete"],
             "enable": ["disable"], "disable": ["enable"], "lock": ["unlock"], "unlock": ["lock"],
             "subscribe": ["unsubscribe from"], "invite": ["uninvite"], "register": ["unregister"]}
_FILLER = {"api", "tool", "fn", "func", "function", "v1", "v2", "v3", "do", "the", "a", "an", "my", "user",
           "service", "endpoint", "action", "request", "cmd", "command", "util", "utils", "helper"}
MASS = {"weather", "time", "news", "music", "information", "info", "traffic", "money", "feedback", "advice",
        "data", "status", "currency", "text", "mail", "content", "code", "weather forecast", "stock", "inventory",
        "analytics", "history", "availability", "pricing", "directions", "insurance", "software", "help",
        "homework", "research", "sentiment", "audio", "video", "storage", "electricity", "energy", "water",
        "food", "lunch", "dinner", "breakfast", "coffee", "tea", "pizza", "sushi", "groceries", "laundry"}
_PREPS = {"of", "for", "in", "on", "at", "to", "from", "by", "with", "and", "or", "into", "about", "as"}


def _plural(noun: str) -> bool:
    last = noun.split()[-1] if noun else ""
    return (last.endswith("s") and not last.endswith(("ss", "us", "is", "news", "status", "analytics"))) or \
        last in {"people", "children", "data"}


def _article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" and not noun.lower().startswith(("uni", "use", "eu", "one")) else "a"


def _object_phrase(verb: str, family: str, obj: str) -> str:
    if not obj:
        return ""
    if obj in ("web", "internet", "online"):
        return "the " + obj
    if obj in MASS or _plural(obj):
        return obj if family in ("create", "transform", "other") or verb in ("search for", "find", "look for") \
            else "the " + obj
    if family == "create" or verb in ("find", "search for", "look for", "recommend", "suggest"):
        return f"{_article(obj)} {obj}"
    if family == "transform":
        return "the " + obj
    return "the " + obj


def split_name(name: str) -> list[str]:
    """'getWeatherForecast' / 'get-weather_forecast' → ['get', 'weather', 'forecast'] (filler words dropped)."""
    return list(_split_name(name))


@functools.lru_cache(maxsize=4096)
def _split_name(name: str) -> tuple[str, ...]:
    words = V.humanise(name).split()
    return tuple([w for w in words if w not in _FILLER and not re.fullmatch(r"v?\d+", w)] or words)


def _description_object(verb: str, description: str) -> str:
    """'Ping the server.' for a tool named `ping` → 'the server': the object a one-word name leaves out,
    taken only when the description's first word is that same verb (never more than three words)."""
    first = re.split(r"(?<=[.!?])\s", description.strip())[0] if description else ""
    words = re.findall(r"[A-Za-z][A-Za-z'-]*", first)
    if len(words) < 3:
        return ""
    w0 = words[0].lower()
    if w0 not in (verb, verb + "s", verb + "es") and not (verb.endswith("e") and w0 == verb + "s"):
        return ""
    if words[1].lower() not in ("the", "a", "an", "my", "your", "its", "their"):
        return ""
    out = [words[1].lower()]
    for w in words[2:5]:
        if w.lower() in _PREPS or len(out) >= 3:
            break
        out.append(w.lower())
    return " ".join(out) if len(out) > 1 else ""


def derive(name: str, description: str = "") -> Intent:
    """An Intent from a tool's name alone (its description only lends the object a bare verb name lacks)."""
    words = split_name(name)
    verb, obj = "", words
    if len(words) > 1 and words[-1] in AGENT_NOUNS:   # order_lookup: look up an order, not "order a lookup"
        verb, obj = AGENT_NOUNS[words[-1]], words[:-1]
    elif words and words[0] in VERBS:
        verb, obj = words[0], words[1:]
    elif len(words) > 1 and words[-1] in VERBS and VERBS[words[-1]][0] != "create":
        verb, obj = words[-1], words[:-1]   # flight_search, weather_lookup
    elif len(words) == 1 and words[0] in AGENT_NOUNS:
        verb, obj = AGENT_NOUNS[words[0]], []
    obj_text = " ".join(obj)
    if verb:
        family, synonyms = VERBS[verb]
    else:
        family, synonyms = "retrieve", ["get", "check", "look up", "pull up"]
    if verb and not obj_text:
        described = _description_object(verb, description)
        vps = [f"{s} {described}".strip() for s in synonyms]
        say = vps[0]
        terse = [f"{synonyms[0]} {described.split(' ', 1)[1]}" if described else synonyms[0]]
        return Intent(vps, [], terse, [], say, family, described.split(" ", 1)[1] if described else "")
    vps = [f"{s} {_object_phrase(s, family, obj_text)}" for s in synonyms]
    if len(words) > 1 and words[-1] in AGENT_NOUNS:
        terse = [" ".join(words), obj_text]          # "order lookup ORD-1", "currency converter …"
    elif family == "retrieve":
        terse = [obj_text]
    else:
        terse = [f"{synonyms[0]} {obj_text}", obj_text]
    asks: list[str] = []
    if family == "retrieve" and verb in ("", "get", "fetch", "retrieve", "check", "lookup", "show", "view", "track"):
        be = "are" if _plural(obj_text) else "is"
        asks = [f"what's the {obj_text}" if be == "is" else f"what are the {obj_text}", f"what {be} the {obj_text}"]
    return Intent(vps, asks, terse, [], vps[0], family, obj_text)


def opposite_vps(name: str) -> list[str]:
    """Verb phrases for what the tool's object allows but the tool does not do: book_flight → 'cancel the
    flight'. Empty when the name gives no verb or the verb has no natural opposite."""
    words = split_name(name)
    if not words or words[0] not in VERBS or len(words) < 2:
        return []
    obj = " ".join(words[1:])
    return [f"{o} the {obj}" for o in OPPOSITES.get(words[0], [])]


# ------------------------------------------------------------------------------------ built-in tools
_UNIT = {"celsius": ["celsius", "Celsius", "°C", "degrees C"], "fahrenheit": ["fahrenheit", "Fahrenheit", "°F", "degrees F"]}

BUILTIN: dict[str, dict] = {
    "calculator": {
        "intent": Intent(
            vps=["calculate {expression}", "work out {expression}", "compute {expression}", "evaluate {expression}",
                 "figure out {expression}", "solve {expression}", "do the math on {expression}",
                 "crunch {expression}", "tell me what {expression} is"],
            asks=["what is {expression}", "what's {expression}", "how much is {expression}",
                  "what does {expression} come to", "what do you get for {expression}",
                  "what's the result of {expression}"],
            terse=["{expression}", "{expression} =", "{expression} = ?", "calc {expression}", "math: {expression}"],
            idioms=["Quick math: {expression}", "{expression}, what's that?", "Need the answer to {expression}.",
                    "Can you do {expression} for me?", "Help me with {expression}.",
                    "I can't do {expression} in my head, help?"],
            say="do calculations", family="transform", obj="calculation",
            mentions={"precision": {"prep": ["to {v} decimal places", "rounded to {v} decimals",
                                             "with {v} decimal places"],
                                    "clause": ["Round to {v} decimal places.", "Give me {v} decimals.",
                                               "{V} decimal places, please.", "Keep {v} decimals."],
                                    "terse": ["{v} decimals", "{v} dp"]}}),
        "values": {"expression": V.expression},
    },
    "get_current_time": {
        "intent": Intent(
            vps=["tell me the time", "check the time", "get the current time", "give me the current time",
                 "look up the time", "check what time it is", "tell me what time it is"],
            asks=["what time is it", "what's the time", "what's the current time", "what time is it right now",
                  "what's the date and time", "what time is it now"],
            terse=["time", "current time", "time now", "time check", "the time"],
            idioms=["What time is it in {timezone}?", "What's the time over in {timezone}?",
                    "Is it morning in {timezone} yet?", "How late is it in {timezone} right now?",
                    "Do you know what time it is?", "Got the time?"],
            say="tell the time", family="retrieve", obj="time",
            mentions={"timezone": {"prep": ["in {v}", "for {v}", "in the {v} time zone"],
                                   "clause": ["I'm asking about {v}.", "Use the {v} time zone.", "Time zone: {v}.",
                                              "I mean {v} time."],
                                   "terse": ["{v}", "in {v}"]},
                      "format": {"prep": ["in {v} format", "as {v}"],
                                 "clause": ["Use {v} format.", "Format it as {v}.", "{V} format, please."],
                                 "terse": ["{v}"]}},
            spoken={"format": {"12h": ["12h", "12-hour", "12 hour"], "24h": ["24h", "24-hour", "24 hour"],
                               "iso": ["iso", "ISO"]}}),
    },
    "memory_store": {
        "intent": Intent(
            vps=["remember that {content}", "save a note that {content}", "make a note that {content}",
                 "note down that {content}", "store the fact that {content}", "keep in mind that {content}",
                 "save this to memory: {content}", "add to memory that {content}", "jot down that {content}",
                 "remember this: {content}"],
            terse=["remember: {content}", "note: {content}", "memo: {content}", "save: {content}",
                   "remember {content}"],
            idioms=["Don't let me forget that {content}.", "Note to self: {content}.",
                    "For future reference, {content}.", "Just so you know for later, {content}.",
                    "FYI {content}, please remember that.", "Can you remember for me that {content}?",
                    "Heads up: {content}. Save that."],
            say="save things to memory", family="create", obj="memory", agent_only=True,
            mentions={"tags": {"prep": ["tagged {v}", "under {v}", "with the tags {v}"],
                               "clause": ["Tag it {v}.", "File it under {v}.", "Tags: {v}.", "Put it under {v}."]},
                      "importance": {"prep": ["as {v} importance", "with {v} importance", "as {v} priority"],
                                     "clause": ["Mark it as {v} importance.", "Importance: {v}.",
                                                "It's {v} priority.", "This one is {v} importance."]}}),
        "values": {"content": V.memory_fact, "tags": lambda r: r.sample(V.TAGS, r.randint(1, 2))},
    },
    "memory_search": {
        "intent": Intent(
            vps=["search my memory for {query}", "look up my notes on {query}", "find what I saved about {query}",
                 "check your memory for {query}", "pull up what you have on {query}",
                 "dig up my notes about {query}", "find my notes on {query}", "recall {query}"],
            asks=["what did I tell you about {query}", "what do you have saved about {query}",
                  "what do you remember about {query}", "what did I save about {query}"],
            terse=["memory: {query}", "my notes on {query}", "recall {query}"],
            idioms=["Do you remember anything about {query}?", "I told you about {query} before, what was it?",
                    "Remind me what I said about {query}.", "Did I ever tell you about {query}?"],
            say="search your saved memories", family="retrieve", obj="memory",
            mentions={"limit": {"prep": ["with at most {v} results", "but only the top {v}"],
                                "clause": ["Show at most {v} results.", "Give me the top {v}.",
                                           "Limit it to {v} memories.", "Just {v} results."],
                                "terse": ["top {v}", "max {v}"]}}),
        "values": {"query": V.memory_query},
    },
    "web_search": {
        "intent": Intent(
            vps=["search the web for {query}", "look up {query} online", "google {query}",
                 "do a web search for {query}", "find info on {query}", "search online for {query}",
                 "look online for {query}", "find me articles about {query}", "search the internet for {query}"],
            asks=["what does the internet say about {query}", "what can you find online about {query}"],
            terse=["web search: {query}", "google {query}", "search {query}", "search: {query}"],
            idioms=["Can you google {query} for me?", "I need search results for {query}.",
                    "Got anything online about {query}?", "Look this up: {query}"],
            say="search the web", family="retrieve", obj="web search",
            mentions={"num_results": {"prep": ["with {v} results", "and give me {v} results"],
                                      "clause": ["Return {v} results.", "I only need the top {v} results.",
                                                 "Give me {v} links.", "{V} results is enough."],
                                      "terse": ["{v} results", "top {v}"]},
                      "recency": {"prep": ["from the past {v}", "within the last {v}"],
                                  "clause": ["Only stuff from the last {v}.", "Limit it to the past {v}.",
                                             "Just results from this past {v}."],
                                  "terse": ["past {v}", "last {v}"]}}),
        "values": {"query": V.search_phrase, "recency": lambda r: r.choice(["day", "week", "month", "year"])},
    },
    "get_weather": {
        "intent": Intent(
            vps=["check the weather in {city}", "get the weather for {city}", "look up the weather in {city}",
                 "get me the forecast for {city}", "check the forecast for {city}", "pull up the weather for {city}",
                 "check the weather", "get the weather forecast"],
            asks=["what's the weather in {city}", "what's the weather like in {city}", "how's the weather in {city}",
                  "what's the temperature in {city}", "how hot is it in {city}", "how cold is it in {city}",
                  "what's the forecast for {city}", "what's it like outside in {city}", "what's the weather"],
            terse=["{city} weather", "weather {city}", "weather in {city}", "{city} forecast", "forecast {city}",
                   "temp in {city}"],
            idioms=["Is it gonna rain in {city}?", "Do I need an umbrella in {city}?",
                    "Should I bring a jacket to {city}?", "Is it sunny in {city} right now?",
                    "Will it snow in {city}?", "Any rain expected in {city}?",
                    "I'm heading to {city}, what's the weather doing there?", "How warm is it in {city} today?"],
            say="check the weather", family="retrieve", obj="weather",
            mentions={"city": {"prep": ["in {v}", "for {v}"], "clause": ["I'm in {v}.", "It's for {v}."],
                               "terse": ["{v}"]},
                      "unit": {"prep": ["in {v}"], "clause": ["Use {v}.", "In {v}, please.",
                                                               "Show temperatures in {v}.", "I prefer {v}."],
                               "terse": ["in {v}", "{v}"]},
                      "days": {"prep": ["for the next {v} days", "over the next {v} days", "for {v} days"],
                               "clause": ["I need a {v}-day forecast.", "Forecast for the next {v} days.",
                                          "Cover {v} days.", "Give me {v} days."],
                               "terse": ["{v} days", "{v}-day"]}},
            spoken={"unit": _UNIT}),
        "values": {"city": lambda r: r.choice(V.CITIES), "days": lambda r: r.randint(2, 7)},
    },
    "send_email": {
        "intent": Intent(
            vps=["send an email", "write an email", "shoot off an email", "email {to}", "send {to} an email",
                 "drop {to} a quick email", "write to {to}", "send a mail"],
            idioms=['Email {to}: subject "{subject}", message "{body}".',
                    'Please write to {to}. Subject: "{subject}". Body: "{body}"',
                    'Can you email {to} about "{subject}"? Tell them: "{body}"',
                    "To: {to}\nSubject: {subject}\n{body}",
                    'Let {to} know "{body}" (subject: {subject}).'],
            terse=["email {to}", "mail to {to}"],
            say="send emails", family="create", obj="email",
            mentions={"to": {"prep": ["to {v}"], "clause": ["Send it to {v}.", "It goes to {v}."],
                             "terse": ["{v}", "to {v}"]},
                      "subject": {"prep": ['with the subject "{v}"', 'titled "{v}"', 'subject "{v}"'],
                                  "clause": ['Subject: "{v}".', "Subject line: {v}", 'Use "{v}" as the subject.'],
                                  "terse": ['"{v}"', "re: {v}", "subj {v}"]},
                      "body": {"prep": ['saying "{v}"', 'that says "{v}"', 'with the message "{v}"'],
                               "clause": ['Body: "{v}"', 'Message: "{v}"', 'Tell them: "{v}"', 'It should say: {v}'],
                               "terse": ['"{v}"', "msg: {v}"]},
                      "cc": {"prep": ["and cc {v}", "cc'ing {v}", "copying in {v}"],
                             "clause": ["CC {v}.", "Copy in {v}.", "Please cc {v}.", "Also cc {v}."],
                             "terse": ["cc {v}"]}}),
        "values": {"subject": V.email_subject, "body": V.email_body,
                   "cc": lambda r: [V.email(r) for _ in range(r.randint(1, 2))]},
    },
    "create_calendar_event": {
        "intent": Intent(
            vps=["add {title} to my calendar", "schedule {title}", "put {title} on my calendar",
                 "create a calendar event called {title}", "set up {title}", "book {title}",
                 "block out time for {title}", "create an event", "add an event to my calendar",
                 "pencil in {title}"],
            idioms=["New event: {title}, {date}, {start_time}.", "{title} on {date} at {start_time}, add it to my calendar.",
                    "I have {title} on {date} at {start_time}, put it in my calendar.",
                    "Calendar: {title} {date} {start_time}", "Can you pencil in {title} for {date} at {start_time}?",
                    "Don't let me miss {title} on {date} at {start_time}, add it to the calendar."],
            terse=["event {title}", "cal: {title}", "{title}"],
            say="manage your calendar", family="create", obj="calendar event",
            mentions={"title": {"prep": ['called "{v}"', "called {v}", 'titled "{v}"'],
                                "clause": ['Call it "{v}".', "Title: {v}.", 'Name it "{v}".'], "terse": ["{v}"]},
                      "date": {"prep": ["on {v}", "for {v}"], "clause": ["It's on {v}.", "Date: {v}.",
                                                                       "That's on {v}."], "terse": ["{v}"]},
                      "start_time": {"prep": ["at {v}", "starting at {v}", "from {v}"],
                                     "clause": ["It starts at {v}.", "Start time {v}.", "Make it {v}."],
                                     "terse": ["{v}", "@ {v}"]},
                      "duration_minutes": {"prep": ["for {v} minutes"],
                                           "clause": ["It lasts {v} minutes.", "Make it {v} minutes long.",
                                                      "{V} minutes.", "Block {v} minutes."],
                                           "terse": ["{v} min", "{v} mins"]},
                      "location": {"prep": ["at {v}", "in {v}"],
                                   "clause": ["Location: {v}.", "It's at {v}.", "Put the location as {v}."],
                                   "terse": ["@ {v}", "at {v}"]},
                      "attendees": {"prep": ["with {v}", "and invite {v}"],
                                    "clause": ["Invite {v}.", "Add {v} as attendees.", "Attendees: {v}."],
                                    "terse": ["w/ {v}", "invite {v}"]}}),
        "values": {"title": V.event_title, "start_time": V.hhmm,
                   "duration_minutes": lambda r: r.choice([15, 30, 45, 60, 90, 120, 25, 50]),
                   "location": lambda r: r.choice([r.choice(V.CITIES), f"Room {r.randint(100, 499)}",
                                                   f"the {r.choice(V.CITIES)} office", r.choice(V.STREETS)])},
    },
    "read_file": {
        "intent": Intent(
            vps=["read {path}", "open {path}", "show me what's in {path}", "show me the contents of {path}",
                 "load {path}", "print the file {path}", "read the file at {path}", "cat {path}",
                 "dump the contents of {path}", "open up {path}"],
            asks=["what's in {path}", "what does {path} say", "what's inside {path}"],
            terse=["cat {path}", "read {path}", "contents of {path}", "open {path}"],
            idioms=["I need to see {path}.", "Can I see {path}?", "Let me see what's in {path}."],
            say="read files", family="retrieve", obj="file",
            mentions={"encoding": {"prep": ["as {v}", "using {v} encoding", "with {v} encoding"],
                                   "clause": ["It's {v} encoded.", "Use {v} encoding.", "The encoding is {v}."],
                                   "terse": ["{v}"]},
                      "max_bytes": {"prep": ["up to {v} bytes", "but only the first {v} bytes"],
                                    "clause": ["Only the first {v} bytes.", "Read at most {v} bytes.",
                                               "Stop after {v} bytes."],
                                    "terse": ["first {v} bytes", "max {v} bytes"]}}),
        "values": {"path": V.file_path, "max_bytes": lambda r: r.choice([256, 512, 1024, 2048, 4096, 65536,
                                                                          r.randint(100, 100000)])},
    },
    "run_sql": {
        "intent": Intent(
            vps=["run {query}", "execute {query}", "run this query: {query}", "run the SQL {query}",
                 "query the database with {query}", "execute this SQL: {query}", "run this: {query}"],
            asks=["what does {query} return", "what do I get from {query}"],
            terse=["sql: {query}", "{query}", "run {query}"],
            idioms=['Can you run "{query}" for me?', "I need the results of {query}",
                    "Here's a query, run it: {query}", "{query} -- run that please"],
            say="run SQL queries", family="transform", obj="database",
            mentions={"database": {"prep": ["on {v}", "against the {v} database", "on the {v} db", "in {v}"],
                                   "clause": ["Use the {v} database.", "Database: {v}.", "It's in the {v} db."],
                                   "terse": ["db {v}", "on {v}"]},
                      "read_only": {True: {"prep": ["in read-only mode", "read-only"],
                                           "clause": ["Keep it read-only.", "Read-only mode, please.",
                                                      "Read-only, don't change anything."],
                                           "terse": ["read-only", "(read only)"]},
                                    False: {"prep": ["with writes allowed", "not read-only"],
                                            "clause": ["Read-only mode off.", "It doesn't need to be read-only.",
                                                       "Writes are fine."],
                                            "terse": ["writes ok"]}},
                      "max_rows": {"prep": ["returning at most {v} rows", "limited to {v} rows"],
                                   "clause": ["Return at most {v} rows.", "Cap it at {v} rows.", "Max {v} rows."],
                                   "terse": ["max {v} rows", "limit {v}"]}}),
        "values": {"query": V.sql, "database": lambda r: r.choice(V.DATABASES),
                   "max_rows": lambda r: r.choice([10, 50, 100, 500, 1000, r.randint(5, 5000)])},
    },
}
