"""Requests that must not be answered with a tool call, and their plain answers.

Three kinds, so that a model learns *when not to call* rather than "chit-chat means no call":
- absent tool: a request in the tools' own domain for something none of the offered tools does (the weather
  asked when only e-mail and calendar tools are offered; "cancel the flight" when the tool books flights), as
  Hammer's irrelevance data does; its wording comes from the same composer as the calls (generator.py);
- knowledge: plain questions a model answers from what it knows, some next to a tool's domain ("What does
  BCC mean?" with an e-mail tool offered);
- chat: small talk and writing help.
"""
from __future__ import annotations

import functools
import random
from typing import Callable

from . import values as V
from .intents import split_name

# ------------------------------------------------------------------------------------------ chit-chat
# Requests no tool serves, each with a plain answer. `words` lets a tool that does this kind of thing (a
# poem-writing tool, say) switch the pattern off.
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


def chat_example(rng: random.Random, tool_words: set[str]) -> tuple[str, str]:
    """A (request, plain answer) pair of chit-chat or writing help that no tool here serves."""
    usable = [fn for words, fn in NO_CALL_PATTERNS if not words & tool_words] or [NO_CALL_PATTERNS[3][1]]
    return rng.choice(usable)(rng)


# ------------------------------------------------------------------------------------------ knowledge
KNOWLEDGE = [
    ("What does IATA stand for?", "IATA is the International Air Transport Association; among other things it "
     "assigns the three-letter airport codes such as LHR or JFK."),
    ("What's the difference between CC and BCC in an email?", "Everyone sees who is in CC. People in BCC get "
     "the email too, but the other recipients don't see their addresses."),
    ("Why is the sky blue?", "Air molecules scatter sunlight, and they scatter blue light much more than red, "
     "so the sky looks blue."),
    ("How many continents are there?", "Seven: Africa, Antarctica, Asia, Australia, Europe, North America and "
     "South America."),
    ("Who wrote Pride and Prejudice?", "Jane Austen; it was published in 1813."),
    ("What is the boiling point of water?", "100 °C (212 °F) at sea level; it's lower at altitude."),
    ("What's the difference between weather and climate?", "Weather is what the atmosphere does over hours or "
     "days; climate is its average pattern over decades."),
    ("How do time zones work?", "Each zone keeps a fixed offset from UTC, roughly an hour for every 15 degrees "
     "of longitude, with borders drawn along countries and regions."),
    ("What is SQL?", "SQL (Structured Query Language) is the language used to read and change data in "
     "relational databases."),
    ("What's a primary key in a database?", "A column, or set of columns, whose value identifies each row of "
     "a table uniquely."),
    ("What does UTF-8 mean?", "It's a text encoding that stores every Unicode character in one to four bytes "
     "and is compatible with plain ASCII."),
    ("Is a tomato a fruit or a vegetable?", "Botanically it's a fruit; in the kitchen it's treated as a "
     "vegetable."),
    ("How do I politely decline an invitation by email?", "Thank them, say briefly that you can't make it, and "
     "wish them a good event, e.g. \"Thank you for inviting me. Sadly I can't make it, but I hope it goes "
     "wonderfully.\""),
    ("What's a good way to remember things better?", "Spaced repetition works well: review at growing "
     "intervals, and link each new fact to something you already know."),
    ("What's the order of operations in math?", "Parentheses, then exponents, then multiplication and division, "
     "then addition and subtraction, left to right within each level."),
    ("Why do we have leap years?", "A year is about 365.24 days long, so an extra day every fourth year keeps "
     "the calendar in step with the seasons."),
    ("What's the tallest mountain in the world?", "Mount Everest, about 8,849 metres above sea level."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci, in the early 1500s."),
    ("What's the largest ocean?", "The Pacific Ocean."),
    ("How many bones are in the human body?", "An adult has 206 bones."),
    ("What language do they speak in Brazil?", "Portuguese."),
    ("What is photosynthesis?", "The process plants use to turn light, water and carbon dioxide into sugar "
     "and oxygen."),
    ("Why does the moon change shape?", "It doesn't: we see different parts of its sunlit half as it orbits "
     "the Earth."),
    ("What does a VPN do?", "It encrypts your traffic and sends it through another server, hiding it from the "
     "local network and your address from the sites you visit."),
    ("What's the difference between a virus and bacteria?", "Bacteria are living single cells; viruses are "
     "much smaller and can only multiply inside a host's cells."),
    ("What is a haiku?", "A short Japanese poem of three lines with five, seven and five syllables."),
    ("How do you say thank you in Japanese?", "Arigatou, or more politely arigatou gozaimasu."),
    ("What causes thunder?", "Lightning heats the air so fast that it expands explosively; that shock wave is "
     "the thunder."),
    ("What is an API?", "An application programming interface: a defined way for one program to ask another "
     "for data or actions."),
    ("What's the difference between Celsius and Fahrenheit?", "They're two temperature scales: water freezes at "
     "0 °C or 32 °F and boils at 100 °C or 212 °F."),
    ("What's the plural of octopus?", "Octopuses is the standard plural; octopi is common but less correct."),
    ("What rhymes with orange?", "Almost nothing rhymes perfectly with orange; \"door hinge\" comes close."),
    ("How long should I boil an egg?", "About 6 to 7 minutes for a soft, jammy yolk and 9 to 10 for hard-boiled, "
     "starting in boiling water."),
    ("Can you explain what inflation is?", "Inflation is the general rise in prices over time, which means the "
     "same money buys a little less each year."),
    ("What's the speed of light?", "About 299,792 kilometres per second in a vacuum."),
    ("How many days are in February?", "28, or 29 in a leap year."),
    ("What's an airport code?", "A three-letter code assigned by IATA to each airport, like CDG for Paris "
     "Charles de Gaulle."),
    ("Why do flights get delayed so often?", "Weather, air traffic control limits, late incoming aircraft and "
     "crew scheduling are the usual reasons."),
    ("What's a good subject line for a thank-you email?", "Something short and specific, like \"Thank you for "
     "your help with the launch\"."),
    ("What does it mean to be in a different time zone?", "Your clocks are set to a different offset from UTC, "
     "so the local time differs even though it's the same moment."),
    ("Should I write dates as day/month or month/day?", "It depends on the audience; the ISO format "
     "(year-month-day, like 2025-03-14) avoids the confusion."),
    ("What's the difference between a file and a folder?", "A file holds data such as text or an image; a "
     "folder holds files and other folders."),
    ("How does a calendar invite work?", "The organiser sends an event to your email; accepting it adds the "
     "event to your calendar and tells the organiser you're coming."),
]
CAPITALS = {"France": "Paris", "Norway": "Oslo", "Portugal": "Lisbon", "Japan": "Tokyo", "Kenya": "Nairobi",
            "Canada": "Ottawa", "Argentina": "Buenos Aires", "Australia": "Canberra", "India": "New Delhi",
            "Mexico": "Mexico City", "Germany": "Berlin", "Spain": "Madrid", "Italy": "Rome", "Egypt": "Cairo",
            "Turkey": "Ankara", "Thailand": "Bangkok", "Ireland": "Dublin", "Netherlands": "Amsterdam",
            "Austria": "Vienna", "Poland": "Warsaw", "Finland": "Helsinki", "Sweden": "Stockholm",
            "Denmark": "Copenhagen", "Iceland": "Reykjavik", "Greece": "Athens", "Peru": "Lima",
            "Colombia": "Bogota", "Chile": "Santiago", "Vietnam": "Hanoi", "New Zealand": "Wellington",
            "Morocco": "Rabat", "Ghana": "Accra", "South Korea": "Seoul", "Brazil": "Brasilia",
            "Switzerland": "Bern"}
_CAPITAL_Q = ["What's the capital of {c}?", "What is the capital city of {c}?", "Which city is the capital of {c}?",
              "capital of {c}?", "Do you know the capital of {c}?"]
# A tool that answers questions (a web search) could serve any knowledge question: then none is asked.
ANSWERING_WORDS = {"search", "web", "google", "internet", "browse", "wiki", "wikipedia", "answer", "ask",
                   "knowledge", "question", "questions", "encyclopedia"}


def knowledge_example(rng: random.Random, tool_words: set[str]) -> tuple[str, str] | None:
    """A (question, answer) pair from general knowledge; None when a tool here answers questions."""
    if tool_words & ANSWERING_WORDS:
        return None
    if rng.random() < 0.25:
        c = rng.choice(list(CAPITALS))
        return rng.choice(_CAPITAL_Q).format(c=c), f"The capital of {c} is {CAPITALS[c]}."
    return rng.choice(KNOWLEDGE)


# ---------------------------------------------------------------------------------------- absent tools
def _t(name: str, props: dict, required: list[str], description: str = "") -> dict:
    return {"type": "function", "function": {"name": name, "description": description or name.replace("_", " "),
                                             "parameters": {"type": "object", "properties": props,
                                                            "required": required}}}


_S = {"type": "string"}
# Tools no dataset offers: the generator asks for them (through the same composer as real calls) while
# offering other tools, so a model sees requests it must decline. `avoid`: words of offered tools that could
# plausibly serve the request anyway (a to-do asked of a calendar tool), so the request is not used then.
CATALOGUE: list[tuple[dict, set[str]]] = [
    (_t("book_flight", {"origin": {**_S, "description": "IATA airport code to fly from"},
                        "destination": {**_S, "description": "IATA airport code to fly to"},
                        "date": {**_S, "format": "date"},
                        "passengers": {"type": "integer", "minimum": 1, "maximum": 9},
                        "cabin_class": {**_S, "enum": ["economy", "premium_economy", "business", "first"]}},
        ["origin", "destination", "date"]), {"flight", "flights", "travel", "trip", "airline"}),
    (_t("book_hotel", {"city": _S, "check_in_date": {**_S, "format": "date"},
                       "nights": {"type": "integer", "minimum": 1, "maximum": 14},
                       "guests": {"type": "integer", "minimum": 1, "maximum": 6}}, ["city", "check_in_date"]),
     {"hotel", "hotels", "travel", "trip", "accommodation", "booking"}),
    (_t("translate_text", {"text": _S, "target_language": {**_S, "description": "Language to translate into"}},
        ["text", "target_language"]), {"translate", "translation", "language"}),
    (_t("convert_currency", {"amount": {"type": "number", "minimum": 1, "maximum": 5000},
                             "from_currency": {**_S, "description": "ISO 4217 currency code"},
                             "to_currency": {**_S, "description": "ISO 4217 currency code"}},
        ["amount", "from_currency", "to_currency"]), {"currency", "exchange", "money", "finance"}),
    (_t("get_stock_price", {"symbol": {**_S, "description": "Stock ticker symbol"}}, ["symbol"]),
     {"stock", "stocks", "finance", "market", "price"}),
    (_t("play_song", {"title": {**_S, "description": "Song title"}, "artist": _S}, ["title"]),
     {"music", "song", "songs", "play", "audio", "spotify"}),
    (_t("set_alarm", {"time": {**_S, "description": "Alarm time, HH:MM"}, "label": _S}, ["time"]),
     {"alarm", "timer", "clock", "calendar", "event", "reminder", "remind", "time"}),
    (_t("get_directions", {"origin": _S, "destination": _S,
                           "mode": {**_S, "enum": ["driving", "walking", "transit", "cycling"]}},
        ["origin", "destination"]), {"directions", "route", "map", "maps", "navigation", "travel"}),
    (_t("order_food", {"restaurant": _S, "dish": _S, "quantity": {"type": "integer", "minimum": 1, "maximum": 4}},
        ["restaurant", "dish"]), {"food", "order", "restaurant", "delivery", "meal"}),
    (_t("track_package", {"tracking_number": {**_S, "description": "Carrier tracking number, e.g. 1Z999AA10123456784"}},
        ["tracking_number"]), {"package", "parcel", "shipping", "delivery", "track", "order"}),
    (_t("send_sms", {"phone_number": _S, "message": _S}, ["phone_number", "message"]),
     {"sms", "text", "phone", "message", "messages", "whatsapp", "chat"}),
    (_t("create_todo", {"task": _S, "due_date": {**_S, "format": "date"}}, ["task"]),
     {"todo", "task", "tasks", "calendar", "event", "reminder", "memory", "note", "notes", "remember", "list"}),
    (_t("find_restaurants", {"city": _S, "cuisine": {**_S, "enum": ["italian", "thai", "mexican", "japanese",
                                                                    "indian", "vegan"]}}, ["city"]),
     {"restaurant", "restaurants", "food", "dining", "search", "places"}),
    (_t("get_news", {"topic": _S}, ["topic"]), {"news", "search", "web", "headlines", "articles"}),
    (_t("get_flight_status", {"flight_number": {**_S, "description": "Flight number, e.g. BA117"}},
        ["flight_number"]), {"flight", "flights", "travel", "airline", "status"}),
    (_t("book_taxi", {"pickup": _S, "destination": _S, "time": {**_S, "description": "Pickup time, HH:MM"}},
        ["pickup", "destination"]), {"taxi", "cab", "ride", "uber", "travel", "transport"}),
    (_t("post_tweet", {"text": _S}, ["text"]), {"tweet", "twitter", "post", "social", "status"}),
    (_t("start_timer", {"minutes": {"type": "integer", "minimum": 1, "maximum": 120}, "label": _S},
        ["minutes"]), {"timer", "alarm", "clock", "time", "stopwatch"}),
    (_t("get_train_times", {"origin": _S, "destination": _S, "date": {**_S, "format": "date"}},
        ["origin", "destination"]), {"train", "trains", "rail", "travel", "transport", "timetable"}),
    (_t("get_definition", {"word": _S}, ["word"]), {"dictionary", "definition", "word", "words", "search",
                                                    "web", "language"}),
]
# Built-in pairs where the offered tool could plausibly do the requested one's job (a web search can find
# the weather): an absent-tool request is not made with such a tool on offer.
SUBSTITUTES = {"get_weather": {"web_search"}, "get_current_time": {"web_search"},
               "memory_store": {"create_calendar_event"}, "create_calendar_event": {"memory_store"},
               "calculator": {"run_sql", "web_search"}}

ABSENT_ANSWERS = [
    "Sorry, I can't {say} here: none of the tools I have can do that.",
    "I don't have a tool to {say}, so I can't help with that one.",
    "That's not something I can do with the tools available to me; there's no way for me to {say}.",
    "I'm not able to {say} with the tools I have.",
    "I can't do that: there's no tool here to {say}.",
]
OFFERS = [" I can {o}, though.", " What I can do is {o}.", " My tools let me {o}, if that helps.",
          " I can help you {o} instead.", ""]


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def absent_answer(rng: random.Random, say: str, offered_says: list[str]) -> str:
    """The plain answer to a request no offered tool serves: what cannot be done, then what can."""
    text = rng.choice(ABSENT_ANSWERS).format(say=say)
    says = [s for s in dict.fromkeys(offered_says) if s][:3]
    if says:
        text += rng.choice(OFFERS).format(o=_join(says))
    return text


def content_words(tool: dict) -> frozenset[str]:
    """The words of a tool's name and description that say what it is about (verbs and filler removed)."""
    fn = tool["function"]
    return _content_words(fn["name"], fn.get("description") or "")


@functools.lru_cache(maxsize=4096)
def _content_words(name: str, description: str) -> frozenset[str]:
    words = set(split_name(name)) | V.word_set(description)
    return frozenset(w for w in words if len(w) > 2 and w not in STOP_WORDS)


STOP_WORDS = {"get", "set", "the", "and", "for", "with", "from", "into", "this", "that", "user", "users", "return",
         "returns", "create", "make", "add", "send", "find", "search", "list", "show", "check", "run", "use",
         "given", "one", "all", "any", "its", "their", "your", "our", "optionally", "current", "new", "data",
         "information", "info", "details", "value", "values", "result", "results", "tool", "function", "api",
         "which", "will", "can", "are", "not", "only", "also", "behalf", "short", "text", "name", "number"}


def catalogue_for(dataset_tools: list[dict]) -> list[tuple[dict, set[str]]]:
    """Catalogue tools unrelated to the dataset's tools (no shared content word): requests for them can be
    declined whatever subset of the dataset's tools is offered."""
    own_names = {t["function"]["name"] for t in dataset_tools}
    words: set[str] = set()
    for t in dataset_tools:
        words |= content_words(t)
    out = []
    for tool, avoid in CATALOGUE:
        if tool["function"]["name"] in own_names:
            continue
        mine = {w for w in split_name(tool["function"]["name"]) if len(w) > 2 and w not in STOP_WORDS}
        if mine & words:
            continue
        out.append((tool, avoid))
    return out


def servable_by(requested: str, avoid: set[str], tool: dict) -> bool:
    """True when `tool` might do the requested tool's job (so declining would be a wrong label)."""
    name = tool["function"]["name"]
    if name in SUBSTITUTES.get(requested, set()):
        return True
    return bool(avoid & content_words(tool) or avoid & set(split_name(name)))


def servable_elsewhere(requested: str, avoid: set[str], offered: list[dict]) -> bool:
    """True when any offered tool might do the requested tool's job."""
    return any(servable_by(requested, avoid, t) for t in offered)
