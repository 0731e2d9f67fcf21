"""How a request mentions one argument: the role a parameter plays (origin, destination, date, count, …),
the words around its value ("from {v}", "for {v} passengers", 'saying "{v}"'), and the ways people say a
value that the schema stores in a fixed format ("March 14, 2025" for 2025-03-14, "3:30pm" for 15:30).

Everything works from a parameter's name, type, format, enum and the format words of its description, so
any user schema gets natural mentions; the built-in tools add their own forms on top (intents.py).
A mention is a list of segments: ("t", words) may be reworded or roughened, ("v", text) is how the value
itself is said and is never touched.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from . import values as V

Seg = tuple[str, str]

_NUM_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
              "twelve"]
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(:00)?$")
_IANA_ZONE = re.compile(r"^(Africa|America|Antarctica|Asia|Atlantic|Australia|Europe|Indian|Pacific)/([A-Za-z_]+/)?[A-Za-z_]+$")


def _zone_city(zone: str) -> str:
    """'America/New_York' → 'New York': how a request names an IANA time zone (tz database, zone.tab)."""
    return zone.rsplit("/", 1)[1].replace("_", " ")

# Plural head nouns a count parameter can be said with: "for 3 passengers", "5 results".
COUNT_NOUNS = {"passengers", "guests", "people", "persons", "adults", "children", "kids", "tickets", "nights",
               "rooms", "seats", "items", "results", "rows", "days", "minutes", "hours", "weeks", "months",
               "copies", "pages", "servings", "bedrooms", "beds", "players", "participants", "attendees",
               "units", "pieces", "words", "sentences", "questions", "options", "suggestions", "recipes",
               "songs", "tracks", "articles", "links", "images", "photos", "records", "entries", "messages",
               "emails", "posts", "comments", "points", "miles", "kilometers", "km", "steps", "retries",
               "attempts", "years", "decimals", "digits", "lines", "bytes", "characters", "memories",
               "matches", "hits", "reviews", "stars", "slots", "bags", "tables", "cars", "orders"}
_TIME_UNITS = {"days", "minutes", "hours", "weeks", "months", "years", "nights"}
_SINGULAR = {"people": "person", "children": "child", "kids": "kid"}
_IN_HEADS = {"unit", "units", "format", "language", "lang", "locale", "currency", "scale", "style", "mode",
             "voice", "tone", "measurement", "system", "timezone", "zone"}
_HEAD_AFTER = {"class", "mode", "tier", "priority", "importance", "level", "size", "quality", "status", "plan",
               "category", "type", "difficulty", "speed", "visibility", "cuisine", "genre", "theme"}
_CONVERT_HEADS = {"language", "lang", "locale", "currency", "unit", "units", "format", "timezone", "zone",
                  "encoding", "scale"}


@dataclass(frozen=True)
class Param:
    """One parameter as a request talks about it."""
    name: str
    schema: dict
    label: str      # "cabin class", "departure date"
    head: str       # "class", "date"
    role: str       # see _role
    noun: str       # counts: the plural noun ("passengers"); else ""
    required: bool


def schema_type(schema: dict) -> str:
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    return t or ("object" if "properties" in schema else "array" if "items" in schema else "string")


def param_info(name: str, schema: dict, required: bool) -> Param:
    """Label, head noun and role of a parameter, from its name, type, format, enum and description."""
    label = V.humanise(name)
    for prefix in ("is ", "has ", "should "):
        if label.startswith(prefix) and len(label) > len(prefix) + 2:
            label = label[len(prefix):]
    words = label.split()
    head = words[-1] if words else name
    role, noun = _role(name, schema, label, head)
    return Param(name, schema, label, head, role, noun, required)


def _role(name: str, schema: dict, label: str, head: str) -> tuple[str, str]:
    t = schema_type(schema)
    words = set(label.split())
    fmt = schema.get("format")
    desc = str(schema.get("description") or "").lower()
    items = schema["items"] if isinstance(schema.get("items"), dict) else {}
    if t == "boolean":
        return "bool", ""
    if fmt in ("email", "idn-email") or items.get("format") in ("email", "idn-email") or \
            words & {"email", "emails", "recipient", "recipients", "cc", "bcc"}:
        return ("cc" if words & {"cc", "bcc"} else "email"), ""
    if t in ("integer", "number"):
        if head in COUNT_NOUNS:
            return "count", head
        if words & {"limit", "max", "maximum", "top"} or label in ("count", "number", "n", "k"):
            return "limit", ""
        if words & {"amount", "price", "budget", "cost", "total", "sum", "salary", "balance"}:
            return "amount", ""
        if words & {"duration", "length"} and words & {"minutes", "min", "mins"}:
            return "count", "minutes"
        return "generic", ""
    if t != "string" and t != "array":
        return "generic", ""
    convert = head in _CONVERT_HEADS
    if schema.get("enum"):
        # from_unit / to_currency: the direction matters more than the value list
        if convert and words & {"from", "source", "origin"}:
            return "origin_conv", ""
        if convert and words & {"to", "target", "destination"}:
            return "destination_conv", ""
        return "enum", ""
    if fmt == "date" or head in ("date", "day", "deadline", "birthday") or re.search(r"yyyy-mm-dd(?![ t]*hh)", desc):
        return "date", ""
    if fmt == "date-time":
        return "datetime", ""
    if fmt == "time" or head in ("time", "hour") or re.search(r"\bhh:mm\b", desc):
        return "time", ""
    if words & {"origin", "from", "source", "departure", "departing", "start", "pickup"} and not words & {"date", "time"}:
        return ("origin_conv" if convert else "origin"), ""
    if words & {"destination", "to", "arrival", "dest", "target", "dropoff"} and not words & {"date", "time"}:
        return ("destination_conv" if convert else "destination"), ""
    if words & {"timezone", "tz"} or head == "zone" or "iana" in desc:
        return "timezone", ""
    if words & {"city", "location", "place", "town", "country", "region", "where", "near", "area", "venue",
                "address", "airport"}:
        return "location", ""
    if words & {"language", "lang", "locale"}:
        return "language", ""
    if words & {"query", "search", "keyword", "keywords", "term", "terms", "q", "topic"}:
        return "query", ""
    if words & {"subject"}:
        return "subject", ""
    if words & {"title", "headline", "caption"} or label == "name" and "item" not in words:
        return "title", ""
    if words & {"body", "message", "text", "content", "note", "notes", "comment", "description", "summary",
                "prompt", "reason", "details", "sentence", "instructions", "fact", "memory", "task"}:
        return "text", ""
    if words & {"url", "link", "website", "homepage", "uri", "endpoint"} or fmt in ("uri", "url"):
        return "url", ""
    if words & {"path", "file", "filename", "filepath", "folder", "directory", "dir"}:
        return "path", ""
    if words & {"assignee", "owner", "assigned"}:
        return "assignee", ""
    if words & {"person", "contact", "customer", "attendee", "guest", "user", "friend",
                "patient", "employee", "author"} or label in ("first name", "last name", "full name"):
        return "person", ""
    if words & {"id", "identifier", "code", "number", "reference", "ref", "sku", "tracking", "symbol", "ticker"}:
        return "code", ""
    return "generic", ""


# ------------------------------------------------------------------------------------- saying a value
def _date_forms(y: int, m: int, d: int) -> list[str]:
    month = V.MONTHS[m - 1]
    suffix = "th" if 11 <= d <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(d % 10, "th")
    return [f"{month} {d}, {y}", f"{d} {month} {y}", f"{month} {d}{suffix}, {y}", f"{month[:3]} {d}, {y}",
            f"the {d}{suffix} of {month} {y}", f"{month} {d} {y}"]


def _time_forms(h: int, m: int) -> list[str]:
    ampm = "am" if h < 12 else "pm"
    h12 = h % 12 or 12
    hm = f"{h12}" if m == 0 else f"{h12}:{m:02d}"
    return [f"{hm}{ampm}", f"{hm} {ampm}", f"{hm} {ampm.upper()}"] + (["noon"] if (h, m) == (12, 0) else [])


def say(value: Any, p: Param | None, rng: random.Random, spoken: float = 0.5,
        table: dict | None = None) -> list[Seg]:
    """How a request says `value`: literally, or (a `spoken` share of the time) the way people say it when
    the schema fixes the mapping (dates, HH:MM times, small counts, enum words). `table` maps a value to the
    words that may say it (a built-in's own, e.g. 'celsius' → '°C')."""
    if isinstance(value, bool):
        return [("v", "yes" if value else "no")]
    if isinstance(value, list):
        out: list[Seg] = []
        for i, v in enumerate(value):
            if i:
                out.append(("t", " and " if i == len(value) - 1 else ", "))
            out.extend(say(v, None, rng, spoken, table))
        return out
    if isinstance(value, dict):
        out = []
        for i, (k, v) in enumerate(value.items()):
            if i:
                out.append(("t", ", "))
            out += [("v", str(k)), ("t", " ")] + say(v, None, rng, spoken, table)
        return out
    if table and value in table and rng.random() < spoken:
        return [("v", rng.choice(table[value]))]
    if isinstance(value, int) and p is not None and p.role in ("count", "limit") and 1 < value <= 12 \
            and rng.random() < spoken * 0.4:
        return [("v", _NUM_WORDS[value])]
    if not isinstance(value, str):
        return [("v", str(value))]
    role = p.role if p is not None else ""
    m = _ISO_DATE.match(value)
    if m and role in ("date", "") and rng.random() < spoken:
        try:
            date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            return [("v", rng.choice(_date_forms(int(m.group(1)), int(m.group(2)), int(m.group(3)))))]
        except ValueError:
            pass
    m = _HHMM.match(value)
    if m and role in ("time", "") and rng.random() < spoken:
        return [("v", rng.choice(_time_forms(int(m.group(1)), int(m.group(2)))))]
    if p is not None and p.role == "enum" and re.search(r"_|[a-z][A-Z]", value) and rng.random() < spoken + 0.2:
        return [("v", re.sub(r"([a-z])([A-Z])", r"\1 \2", value).replace("_", " ").lower())]
    m = _IANA_ZONE.match(value)
    if m and role in ("timezone", "") and rng.random() < spoken:
        return [("v", _zone_city(value))]  # people name the city, the schema wants the IANA zone
    if value in V.AIRPORT_NAMES and rng.random() < 0.3:
        name = V.AIRPORT_NAMES[value]
        return rng.choice([[("t", f"{name} ("), ("v", value), ("t", ")")], [("v", value), ("t", f" ({name})")]])
    return [("v", value)]


def surfaces(value: Any) -> set[str]:
    """Every way `say` may write a scalar value (for checks that a request carries its call's values)."""
    if isinstance(value, bool):
        return {"yes", "no"}
    out = {str(value)}
    if isinstance(value, int) and 0 <= value <= 12:
        out.add(_NUM_WORDS[value])
    if isinstance(value, str):
        m = _ISO_DATE.match(value)
        if m:
            try:
                out.update(_date_forms(int(m.group(1)), int(m.group(2)), int(m.group(3))))
            except IndexError:
                pass
        m = _HHMM.match(value)
        if m:
            out.update(_time_forms(int(m.group(1)), int(m.group(2))))
        if _IANA_ZONE.match(value):
            out.add(_zone_city(value))
        if re.search(r"_|[a-z][A-Z]", value):
            out.add(re.sub(r"([a-z])([A-Z])", r"\1 \2", value).replace("_", " ").lower())
    return out


# ------------------------------------------------------------------------------------ mention forms
# {v}: the value as said; {l}: the label; {n}: a count's noun; {h}: the head noun.
LABEL_FORMS = ["{l} {v}", "{l}: {v}", "{l} {v}", "{v} as the {l}", "{l} set to {v}", "{l} = {v}", "{l} of {v}"]
TERSE_LABEL = ["{l} {v}", "{l}: {v}", "{l} {v}", "{v} {l}"]
CLAUSE_FORMS = ["{L}: {v}.", "The {l} is {v}.", "Set the {l} to {v}.", "Use {v} for the {l}.", "Make the {l} {v}.",
                "{L} should be {v}.", "{L} is {v}."]
GENERIC_PREP = ["for {l} {v}", "with {l} {v}", "with the {l} {v}", "using {l} {v}", "with {l} set to {v}"]

ROLE_FORMS: dict[str, dict[str, list[str]]] = {
    "origin": {"prep": ["from {v}", "from {v}", "leaving from {v}", "departing from {v}", "out of {v}"],
               "clause": ["Leaving from {v}.", "Departing from {v}.", "It's from {v}.", "Starting from {v}."]},
    "destination": {"prep": ["to {v}", "to {v}", "going to {v}", "headed to {v}"],
                     "clause": ["Going to {v}.", "Destination is {v}.", "Heading to {v}.", "It's to {v}."]},
    "origin_conv": {"prep": ["from {v}"], "clause": ["It's in {v}.", "From {v}."]},
    "destination_conv": {"prep": ["to {v}", "into {v}"], "clause": ["Into {v}, please.", "I need it in {v}.",
                                                                    "Target is {v}."]},
    "date": {"prep": ["on {v}", "on {v}", "for {v}"],
             "clause": ["It's on {v}.", "The date is {v}.", "Date: {v}.", "That's for {v}.", "Make it {v}."]},
    "datetime": {"prep": ["at {v}", "on {v}"], "clause": ["It's at {v}.", "Time: {v}."]},
    "time": {"prep": ["at {v}", "at {v}", "for {v}"], "clause": ["At {v}.", "Make it {v}.", "Time: {v}.",
                                                                 "It starts at {v}."]},
    "timezone": {"prep": ["in {v}", "for {v}", "in the {v} time zone"],
                 "clause": ["Use the {v} time zone.", "Time zone: {v}.", "I'm asking about {v}."]},
    "location": {"prep": ["in {v}", "in {v}", "for {v}", "at {v}"], "clause": ["It's in {v}.", "Location: {v}.",
                                                                               "I mean {v}."]},
    "language": {"prep": ["in {v}"], "clause": ["In {v}, please.", "Language: {v}."]},
    "query": {"prep": ["for {v}", "about {v}", "on {v}", 'for "{v}"'],
              "clause": ["Look for {v}.", "Search term: {v}.", "Topic: {v}."]},
    "subject": {"prep": ['with the subject "{v}"', 'subject "{v}"', 'titled "{v}"', 'about "{v}"'],
                "clause": ['Subject: "{v}".', "Subject line: {v}", 'Use "{v}" as the subject.']},
    "title": {"prep": ['called "{v}"', "called {v}", 'titled "{v}"', 'named "{v}"'],
              "clause": ['Call it "{v}".', 'Title: "{v}".', "Name it {v}."]},
    "text": {"prep": ['saying "{v}"', 'that says "{v}"', 'with the text "{v}"', ': "{v}"'],
             "clause": ['It should say "{v}".', 'Text: "{v}"', 'Here it is: "{v}"', "Content: {v}"]},
    "email": {"prep": ["to {v}", "for {v}", "at {v}"], "clause": ["Send it to {v}.", "The address is {v}."]},
    "cc": {"prep": ["and cc {v}", "cc'ing {v}", "copying in {v}"], "clause": ["CC {v}.", "Copy in {v}.",
                                                                           "Please cc {v}.", "Also cc {v}."]},
    "person": {"prep": ["for {v}", "with {v}"], "clause": ["It's for {v}.", "This is for {v}."]},
    "assignee": {"prep": ["assigned to {v}", "for {v} to handle", "and assign it to {v}"],
                 "clause": ["Assign it to {v}.", "{V} should own it.", "Give it to {v}."]},
    "url": {"prep": ["at {v}", "from {v}", "for {v}"], "clause": ["Here's the link: {v}", "URL: {v}"]},
    "path": {"prep": ["at {v}", "in {v}", "{v}"], "clause": ["The file is {v}.", "Path: {v}"]},
    "count": {"prep": ["for {v} {n}", "for {v} {n}", "with {v} {n}"],
              "clause": ["{V} {n}.", "It's for {v} {n}.", "We need {v} {n}.", "Make it {v} {n}."]},
    "count_time": {"prep": ["for {v} {n}", "for {v} {n}", "over {v} {n}"],
                   "clause": ["For {v} {n}.", "It's {v} {n}.", "Make it {v} {n}."]},
    "limit": {"prep": ["with at most {v} {l}", "limited to {v}", "with a {l} of {v}"],
              "clause": ["Limit it to {v}.", "No more than {v}.", "Max {v}.", "Just the top {v}.", "{L} {v}."]},
    "amount": {"prep": ["for {v}", "of {v}", "for {l} {v}"], "clause": ["The {l} is {v}.", "{L}: {v}."]},
}


def _noun(p: Param, value: Any) -> str:
    noun = p.noun or p.label
    if value == 1 and noun.endswith("s"):
        return _SINGULAR.get(noun, noun[:-1])
    return noun


def _fill(template: str, p: Param, said: list[Seg], value: Any = None) -> list[Seg]:
    out: list[Seg] = []
    label = p.label
    parts = re.split(r"(\{[vVlLnh]\})", template)
    for part in parts:
        if part in ("{v}", "{V}"):
            if part == "{V}" and said and said[0][0] == "v" and said[0][1][:1].isalpha() and said[0][1].islower() \
                    and " " not in said[0][1]:
                out.append(("v", said[0][1]))  # never recapitalise a value
                out.extend(said[1:])
            else:
                out.extend(said)
        elif part == "{l}":
            out.append(("t", label))
        elif part == "{L}":
            out.append(("t", label[:1].upper() + label[1:]))
        elif part == "{n}":
            out.append(("t", _noun(p, value)))
        elif part == "{h}":
            out.append(("t", p.head))
        elif part:
            out.append(("t", part))
    # merge adjacent text segments so later rewording sees whole phrases
    merged: list[Seg] = []
    for k, s in out:
        if merged and k == "t" and merged[-1][0] == "t":
            merged[-1] = ("t", merged[-1][1] + s)
        else:
            merged.append((k, s))
    return merged


def _bool_forms(p: Param, value: bool) -> dict[str, list[str]]:
    words = p.label.split()
    verbish = words and words[0] in {"include", "send", "notify", "use", "allow", "enable", "show", "return",
                                     "keep", "skip", "save", "force", "overwrite", "add", "remove", "delete",
                                     "recursive", "ignore", "auto", "exclude", "sort", "group", "open", "track"}
    if verbish:
        return ({"prep": ["and {l}", "and {l} too"], "clause": ["{L}.", "Also {l}.", "Please {l}."]} if value else
                {"prep": ["but don't {l}", "without having to {l}"], "clause": ["Don't {l}.", "No need to {l}."]})
    return ({"prep": ["with {l}", "with {l} on", "with {l} turned on"],
             "clause": ["Make it {l}.", "{L}: yes.", "Turn {l} on.", "With {l}."]} if value else
            {"prep": ["without {l}", "with {l} off", "with no {l}"],
             "clause": ["Not {l}.", "{L}: no.", "Turn {l} off.", "Without {l}."]})


def forms(p: Param, value: Any, own: dict | None = None) -> dict[str, list[str]]:
    """The prep / clause / label templates for this parameter and value; `own` (a built-in's forms) first."""
    if own:
        if isinstance(value, bool) and (True in own or False in own):
            return {"prep": [], "clause": [], "label": [], **own.get(value, {})}
        if "prep" in own or "clause" in own:
            return {"prep": own.get("prep", []), "clause": own.get("clause", []), "label": own.get("label", []),
                    "terse": own.get("terse", [])}
    if p.role == "bool":
        return {**_bool_forms(p, bool(value)), "label": []}
    role = p.role
    if role == "count" and p.noun in _TIME_UNITS:
        role = "count_time"
    base = ROLE_FORMS.get(role)
    if role == "enum":
        prep = list(GENERIC_PREP)
        if p.head in _IN_HEADS:
            prep = ["in {v}", "in {v}", "using {v}"]
        elif p.head in _HEAD_AFTER and p.label == p.head or p.head in ("class",):
            prep = ["in {v} {h}", "with {v} {h}"] if p.head in ("class", "mode", "tier") else ["with {v} {h}"]
        elif p.head in _HEAD_AFTER:
            prep = ["with {v} {h}", "with {l} {v}"]
        return {"prep": prep, "clause": CLAUSE_FORMS + ["Make it {v}.", "{V}, please."],
                "label": [f for f in LABEL_FORMS if " of " not in f]}
    if base is None:
        return {"prep": GENERIC_PREP, "clause": CLAUSE_FORMS, "label": LABEL_FORMS}
    return {"prep": base["prep"], "clause": base["clause"], "label": LABEL_FORMS}


def mention(p: Param, value: Any, said: list[Seg], form: str, rng: random.Random,
            own: dict | None = None, f: dict | None = None) -> list[Seg]:
    """A mention of one argument in the given form: 'prep' (follows a verb phrase: "from LIS"),
    'clause' (a sentence of its own: "It's for 2 passengers."), 'label' ("cabin class: business") or
    'terse' (the value, with a count's noun). `f`: forms(p, value, own) when the caller keeps them."""
    f = f if f is not None else forms(p, value, own)
    if form == "terse":
        if f.get("terse"):
            return _fill(rng.choice(f["terse"]), p, said, value)
        if p.role == "count":
            return _fill("{v} {n}", p, said, value)
        if p.role in _BARE_ROLES:
            return _fill("{v}", p, said, value)
        if not own and p.role in ("enum", "generic", "code", "limit", "amount"):
            return _fill(rng.choice(TERSE_LABEL), p, said, value)
        form = "prep"
    options = f.get(form) or []
    if not options:
        options = f.get("prep") or f.get("clause") or LABEL_FORMS
        if form == "clause" and not f.get("clause"):
            options = CLAUSE_FORMS
    return _fill(rng.choice(options), p, said, value)


_BARE_ROLES = {"location", "date", "time", "datetime", "path", "url", "email", "query", "text", "title",
               "subject", "timezone", "person", "assignee"}


def has_labels(p: Param, value: Any, own: dict | None = None) -> bool:
    """Whether the parameter has label forms ("cabin class: business"); a built-in's own forms may not."""
    return bool(forms(p, value, own).get("label"))


def ambiguous_roles(params: dict[str, Param]) -> set[str]:
    """Parameters whose role-based words would not tell them apart (two plain dates, two counts with the
    same noun): they are mentioned with their labels instead."""
    seen: dict[tuple[str, str], list[str]] = {}
    for name, p in params.items():
        if p.role in ("generic", "bool", "enum"):
            continue
        seen.setdefault((p.role, p.noun), []).append(name)
    return {n for names in seen.values() if len(names) > 1 for n in names}
