"""Argument values for any JSON-Schema parameter, chosen from its type, enum, format, range, name and description.

Values are plain and literal (a city name, an ISO date, an e-mail address) so that a query can quote them and
a small model can learn to copy them from the user's text into the call.
"""
from __future__ import annotations

import functools
import math
import random
import re
import string
from datetime import date, timedelta
from typing import Any, Callable

CITIES = ["Paris", "Oslo", "Lisbon", "Tokyo", "Nairobi", "Toronto", "Buenos Aires", "Cape Town", "Sydney",
          "Seoul", "Mumbai", "Mexico City", "Berlin", "Madrid", "Rome", "Cairo", "Istanbul", "Bangkok",
          "Vancouver", "Chicago", "Boston", "Denver", "Seattle", "Austin", "Dublin", "Edinburgh", "Amsterdam",
          "Prague", "Vienna", "Warsaw", "Helsinki", "Stockholm", "Copenhagen", "Reykjavik", "Athens", "Lima",
          "Bogota", "Santiago", "Montreal", "Singapore", "Hanoi", "Manila", "Jakarta", "Auckland",
          "Wellington", "Perth", "Marrakesh", "Lagos", "Accra", "Zurich", "Geneva", "Munich", "Hamburg",
          "Lyon", "Porto", "Seville", "Krakow", "Budapest", "Osaka", "Kyoto", "San Francisco", "New York",
          "Los Angeles", "Miami", "Phoenix", "Atlanta", "Nashville", "Portland", "Calgary", "Quito", "Havana",
          "Dubai", "Doha", "Delhi", "Bangalore", "Kathmandu", "Taipei", "Hong Kong", "Shanghai", "Milan"]
COUNTRIES = ["France", "Norway", "Portugal", "Japan", "Kenya", "Canada", "Argentina", "South Africa",
             "Australia", "South Korea", "India", "Mexico", "Germany", "Spain", "Italy", "Egypt", "Turkey",
             "Thailand", "Ireland", "Netherlands", "Austria", "Poland", "Finland", "Sweden", "Denmark",
             "Iceland", "Greece", "Peru", "Colombia", "Chile", "Vietnam", "New Zealand", "Morocco", "Ghana"]
FIRST = ["Ana", "Ben", "Chloe", "David", "Elena", "Farid", "Grace", "Hiro", "Isla", "Jonas", "Kofi", "Lena",
         "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Victor", "Wen", "Ximena",
         "Yusuf", "Zoe", "Marta", "Liam", "Sofia", "Arjun"]
LAST = ["Silva", "Berg", "Martin", "Okafor", "Novak", "Haddad", "Kim", "Tanaka", "Murphy", "Fischer",
        "Mensah", "Rossi", "Garcia", "Petrov", "Khan", "Patel", "Larsen", "Moreau", "Nguyen", "Cohen",
        "Schmidt", "Costa", "Ivanova", "Lopez", "Walsh", "Adeyemi", "Jensen", "Sato", "Kowalski", "Reyes"]
DOMAINS = ["example.com", "acme.io", "mailbox.org", "northwind.dev", "contoso.net", "fastmail.fm",
           "proton.me", "uni.edu", "studio.design", "lab.science"]
TIMEZONES = ["Europe/Paris", "Europe/London", "Europe/Berlin", "Europe/Lisbon", "Europe/Oslo",
             "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
             "America/Toronto", "America/Sao_Paulo", "America/Mexico_City", "Asia/Tokyo", "Asia/Seoul",
             "Asia/Kolkata", "Asia/Singapore", "Asia/Dubai", "Asia/Shanghai", "Australia/Sydney",
             "Africa/Nairobi", "Africa/Lagos", "Pacific/Auckland", "UTC", "Asia/Bangkok", "Europe/Madrid"]
SEARCH_SUBJECTS = ["electric cars", "sourdough bread", "the James Webb telescope", "rust lifetimes",
                   "marathon training", "home solar panels", "kubernetes autoscaling", "vegan protein sources",
                   "the French revolution", "remote work productivity", "noise cancelling headphones",
                   "python asyncio", "climbing shoes", "houseplants for low light", "the Mars rover",
                   "index funds", "sleep hygiene", "mechanical keyboards", "compost bins", "3D printing",
                   "learning Japanese", "budget travel in Portugal", "espresso machines", "bird migration",
                   "quantum computing", "container gardening", "road bikes", "PostgreSQL indexing",
                   "wildfire prevention", "board games for two", "meal prep", "ancient Rome",
                   "TypeScript generics", "heat pumps", "trail running", "film photography", "coral reefs",
                   "minimalist wardrobes", "language models", "fermented foods", "chess openings",
                   "solar eclipses", "urban beekeeping", "interval training", "podcast microphones"]
SEARCH_FORMS = ["{}", "latest news on {}", "best {} for beginners", "{} reviews", "how does {} work",
                "{} tips", "history of {}", "{} explained", "{} pros and cons", "cheap {}", "{} guide",
                "common mistakes with {}", "{} in 2025", "{} for kids", "{} statistics"]
MEMORY_THINGS = ["garage code", "wifi password", "dentist appointment", "sister's birthday", "locker number",
                 "parking spot", "passport expiry date", "favourite restaurant", "gym schedule",
                 "landlord's phone number", "book club pick", "car insurance renewal", "allergies",
                 "project deadline", "anniversary", "train times", "spare key location", "doctor's name",
                 "blood type", "bike lock combination", "plant watering schedule", "vacation plans",
                 "shoe size", "coffee order", "team offsite", "tax deadline"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
FOODS = ["chicken", "rice", "bell peppers", "tofu", "spinach", "lentils", "tomatoes", "garlic", "salmon",
         "mushrooms", "chickpeas", "basil", "potatoes", "eggs", "cheddar", "avocado", "quinoa", "lemon"]
WORDS = ["harbor", "meadow", "falcon", "ember", "cedar", "orbit", "lantern", "willow", "summit", "delta",
         "pebble", "aurora", "canyon", "maple", "comet", "river", "atlas", "juniper", "zephyr", "quartz"]
ADJECTIVES = ["quiet", "bright", "swift", "golden", "silver", "hidden", "northern", "rapid", "gentle",
              "bold", "crimson", "misty", "lucky", "humble", "vivid"]
TAGS = ["personal", "work", "health", "family", "finance", "travel", "home", "shopping", "ideas", "urgent",
        "school", "car", "kids", "garden"]
EVENT_TITLES = ["Team standup", "Dentist appointment", "1:1 with {first}", "Project kickoff", "Yoga class",
                "Dinner with {first}", "Budget review", "Flight to {city}", "Parent-teacher meeting",
                "Sprint planning", "Coffee with {first}", "Haircut", "Car service", "Book club",
                "Quarterly business review", "Piano lesson", "Design review", "Vet appointment for {pet}",
                "Lunch with {first} {last}", "Interview with {first} {last}", "Birthday party for {first}",
                "Workshop in {city}", "Gym session", "Call with the {city} office"]
PETS = ["Biscuit", "Luna", "Milo", "Pepper", "Nala", "Rocky", "Olive", "Ziggy"]
SUBJECTS = ["Quarterly report", "Lunch on Friday?", "Project {word} update", "Invoice {n}", "Meeting notes",
            "Trip to {city}", "Quick question", "Thank you!", "Schedule change", "Draft for review",
            "Welcome aboard", "Reminder: {thing}", "Follow-up from today", "Budget approval",
            "Weekend plans", "Updated contract", "Photos from {city}", "Flight details"]
BODY_SENTENCES = ["Are you free for a call tomorrow afternoon?", "Please find the figures we discussed below.",
                  "Thanks again for your help with the launch.", "Can we move our meeting to next week?",
                  "I have attached the draft for your comments.", "Let me know if the new dates work for you.",
                  "The delivery should arrive on Thursday.", "Could you send me the signed copy by Friday?",
                  "Great to meet you at the conference.", "I'll be out of office until Monday.",
                  "The invoice has been paid in full.", "Looking forward to seeing everyone in {city}.",
                  "Here is a quick summary of where we are.", "Happy birthday, hope you have a great day!",
                  "The report is ready whenever you want to look at it.", "Can you confirm the room booking?"]
DIRS = ["docs", "notes", "src", "reports", "data", "config", "logs", "projects/{word}", "Downloads"]
FILES = ["todo", "meeting_notes", "budget_2025", "README", "main", "settings", "q3_summary", "server",
         "invoice_{n}", "recipes", "changelog", "notes_{month}", "results", "index", "requirements"]
EXTS = ["txt", "md", "csv", "json", "py", "yaml", "log", "toml"]
SQL_TABLES = {
    "orders": (["id", "customer_id", "status", "created_at"], ["total", "quantity"], "status",
               ["pending", "shipped", "cancelled"]),
    "customers": (["id", "name", "country", "signup_date"], ["lifetime_value", "age"], "country",
                  ["France", "Japan", "Brazil", "Kenya"]),
    "products": (["id", "name", "category", "sku"], ["price", "stock"], "category",
                 ["books", "garden", "toys", "kitchen"]),
    "employees": (["id", "name", "department", "hired_at"], ["salary", "age"], "department",
                  ["sales", "engineering", "support"]),
    "invoices": (["id", "customer_id", "due_date", "currency"], ["amount", "tax"], "currency",
                 ["EUR", "USD", "JPY"]),
}
DATABASES = ["sales", "analytics", "inventory", "hr", "crm", "billing", "warehouse"]
LANGUAGES = ["English", "Spanish", "French", "German", "Japanese", "Portuguese", "Italian", "Korean", "Hindi"]
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "INR", "BRL", "NOK"]
TICKERS = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "TSLA", "SAP", "ASML", "TSM", "NVO"]
COLOURS = ["red", "blue", "green", "black", "white", "yellow", "purple", "orange", "teal", "grey"]
GENRES = ["jazz", "rock", "comedy", "drama", "science fiction", "thriller", "classical", "documentary",
          "hip hop", "fantasy"]
MOVIES = ["Inception", "The Matrix", "Spirited Away", "Parasite", "Amelie", "Arrival", "Casablanca",
          "Interstellar", "Coco", "Whiplash", "Alien", "Heat", "Up", "Her", "Dune"]
BOOKS = ["Dune", "Middlemarch", "Beloved", "The Hobbit", "Frankenstein", "Norwegian Wood", "Circe",
         "The Overstory", "Jane Eyre", "Project Hail Mary"]
COMPANIES = ["Acme Corp", "Northwind", "Globex", "Initech", "Umbrella Labs", "Stark Industries",
             "Wayne Enterprises", "Contoso", "Fabrikam", "Tyrell Systems"]
PRODUCTS = ["wireless earbuds", "standing desk", "espresso grinder", "running shoes", "laptop stand",
            "air purifier", "yoga mat", "e-reader", "smart thermostat", "camping stove", "desk lamp"]
# IATA code → how people name the airport (or its city), so a request can say "Lisbon (LIS)".
AIRPORT_NAMES = {
    "JFK": "New York", "LHR": "London Heathrow", "CDG": "Paris Charles de Gaulle", "HND": "Tokyo Haneda",
    "SFO": "San Francisco", "LIS": "Lisbon", "OSL": "Oslo", "SYD": "Sydney", "NBO": "Nairobi",
    "GRU": "Sao Paulo", "DXB": "Dubai", "SIN": "Singapore", "YYZ": "Toronto Pearson", "AMS": "Amsterdam",
    "FRA": "Frankfurt", "MAD": "Madrid", "BCN": "Barcelona", "FCO": "Rome Fiumicino", "MUC": "Munich",
    "ZRH": "Zurich", "CPH": "Copenhagen", "ARN": "Stockholm Arlanda", "HEL": "Helsinki", "DUB": "Dublin",
    "IST": "Istanbul", "DEL": "Delhi", "BOM": "Mumbai", "ICN": "Seoul Incheon", "NRT": "Tokyo Narita",
    "LAX": "Los Angeles", "ORD": "Chicago O'Hare", "ATL": "Atlanta", "BOS": "Boston", "SEA": "Seattle",
    "DEN": "Denver", "MEX": "Mexico City", "EZE": "Buenos Aires", "CPT": "Cape Town", "AKL": "Auckland",
    "BKK": "Bangkok", "HKG": "Hong Kong", "PRG": "Prague", "VIE": "Vienna", "WAW": "Warsaw", "ATH": "Athens",
    "LIM": "Lima", "BOG": "Bogota", "MIA": "Miami", "EDI": "Edinburgh", "KEF": "Reykjavik"}
AIRPORTS = list(AIRPORT_NAMES)
CURRENCY_NAMES = {"USD": "US dollars", "EUR": "euros", "GBP": "British pounds", "JPY": "Japanese yen",
                  "CHF": "Swiss francs", "CAD": "Canadian dollars", "AUD": "Australian dollars",
                  "INR": "Indian rupees", "BRL": "Brazilian reais", "NOK": "Norwegian kroner"}
COUNTRY_CODES = ["US", "GB", "FR", "DE", "JP", "BR", "IN", "KE", "CA", "AU", "NO", "ES", "IT", "MX", "NL"]
LANGUAGE_CODES = ["en", "fr", "de", "es", "ja", "pt", "it", "ko", "nl", "sv"]
UNITS = ["kg", "lb", "km", "miles", "liters", "gallons", "meters", "feet"]
RESTAURANTS = ["Luigi's Trattoria", "The Green Fork", "Sakura Sushi", "Casa Pepe", "Spice Route", "Blue Door Cafe",
               "Noodle House", "Le Petit Bistro", "Taco Loco", "The Olive Tree"]
DISHES = ["margherita pizza", "pad thai", "chicken tikka masala", "caesar salad", "ramen", "veggie burger",
          "falafel wrap", "sushi platter", "lasagna", "pho"]
STREETS = ["Main Street", "Oak Avenue", "Harbour Road", "Rue de Rivoli", "Baker Street", "Elm Lane",
           "Station Road", "Market Square"]


@functools.lru_cache(maxsize=4096)
def humanise(name: str) -> str:
    """`num_results` / `numResults` → 'number of results', for the words of a query."""
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name))
    s = re.sub(r"[_\-.]+", " ", s).strip().lower()
    s = re.sub(r"^num ", "number of ", s)
    s = re.sub(r"^max ", "maximum ", s)
    s = re.sub(r"^min ", "minimum ", s)
    return s or str(name)


@functools.lru_cache(maxsize=4096)
def word_set(*texts: str) -> frozenset[str]:
    """The lower-case words of the texts, humanised first (camelCase and snake_case split)."""
    out: set[str] = set()
    for t in texts:
        out.update(w for w in re.split(r"[^a-z0-9]+", humanise(t or "")) if w)
    return frozenset(out)


def _fill(rng: random.Random, template: str) -> str:
    """Fills {first} {last} {city} {word} {n} {month} {pet} {thing} placeholders in pool entries."""
    if "{" not in template:
        return template
    return template.format(first=rng.choice(FIRST), last=rng.choice(LAST), city=rng.choice(CITIES),
                           word=rng.choice(WORDS), n=rng.randint(100, 9999), month=rng.choice(MONTHS).lower(),
                           pet=rng.choice(PETS), thing=rng.choice(MEMORY_THINGS))


# ------------------------------------------------------------------------------------- text values
def person(rng):
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def email(rng):
    f, s = rng.choice(FIRST).lower(), rng.choice(LAST).lower()
    local = rng.choice([f"{f}.{s}", f"{f}{s[0]}", f"{f[0]}{s}", f"{f}_{s}", f"{f}{rng.randint(1, 99)}"])
    return f"{local}@{rng.choice(DOMAINS)}"


def iso_date(rng):
    return (date(2025, 1, 1) + timedelta(days=rng.randint(0, 729))).isoformat()


def hhmm(rng):
    return f"{rng.randint(7, 20):02d}:{rng.choice(['00', '15', '30', '45'])}"


def search_phrase(rng):
    return rng.choice(SEARCH_FORMS).format(rng.choice(SEARCH_SUBJECTS))


def memory_fact(rng):
    first, n = rng.choice(FIRST), rng.randint(10, 99)
    forms = [
        lambda: f"the garage code is {rng.randint(1000, 9999)}",
        lambda: f"my locker number is {rng.randint(1, 400)}",
        lambda: f"I parked on level {rng.randint(1, 6)}, spot {rng.choice('ABCDEF')}{n}",
        lambda: f"{first}'s birthday is on {rng.choice(MONTHS)} {rng.randint(1, 28)}",
        lambda: f"{first} prefers {rng.choice(FOODS)} over {rng.choice(FOODS)}",
        lambda: f"the wifi password is {rng.choice(WORDS)}{rng.randint(10, 999)}",
        lambda: f"my passport expires on {iso_date(rng)}",
        lambda: f"I'm allergic to {rng.choice(['penicillin', 'peanuts', 'shellfish', 'pollen', 'cats', 'latex'])}",
        lambda: f"{first} {rng.choice(LAST)}'s phone number is 555-{rng.randint(1000, 9999)}",
        lambda: f"the team offsite is in {rng.choice(CITIES)} in {rng.choice(MONTHS)}",
        lambda: f"my favourite {rng.choice(['film', 'book'])} is {rng.choice(MOVIES + BOOKS)}",
        lambda: f"I owe {first} {rng.randint(5, 200)} dollars",
        lambda: f"the spare key is {rng.choice(['under the blue pot', 'in the kitchen drawer', 'with ' + first])}",
        lambda: f"my {rng.choice(['dentist', 'doctor', 'physio'])} appointment is on {iso_date(rng)} at {hhmm(rng)}",
        lambda: f"{first} recommended {rng.choice(BOOKS)}",
        lambda: f"the {rng.choice(['recycling', 'trash', 'compost'])} goes out every {rng.choice(['Monday', 'Tuesday', 'Thursday', 'Friday'])}",
        lambda: f"my bike lock combination is {rng.randint(100, 999)}",
        lambda: f"the {rng.choice(SEARCH_SUBJECTS)} project deadline is {iso_date(rng)}",
        lambda: f"{first} takes {rng.choice(['oat milk', 'two sugars', 'no milk', 'an extra shot'])} in coffee",
        lambda: f"my shoe size is {rng.randint(36, 47)}",
    ]
    return rng.choice(forms)()


def memory_query(rng):
    return rng.choice([lambda: rng.choice(MEMORY_THINGS), lambda: f"{rng.choice(FIRST)}'s birthday",
                       lambda: f"{rng.choice(FIRST)}'s phone number", lambda: rng.choice(SEARCH_SUBJECTS),
                       lambda: f"trip to {rng.choice(CITIES)}"])()


def file_path(rng):
    f = f"{_fill(rng, rng.choice(FILES))}.{rng.choice(EXTS)}"
    d = _fill(rng, rng.choice(DIRS))
    return rng.choice([f"{d}/{f}", f"/home/{rng.choice(FIRST).lower()}/{d}/{f}", f"~/{d}/{f}", f"./{f}", f])


def url(rng):
    return rng.choice([f"https://www.{rng.choice(WORDS)}{rng.choice(['.com', '.org', '.io', '.dev'])}",
                       f"https://{rng.choice(DOMAINS)}/{rng.choice(WORDS)}/{rng.randint(1, 999)}",
                       f"https://docs.{rng.choice(WORDS)}.io/{rng.choice(['guide', 'api', 'faq'])}"])


def sql(rng):
    table = rng.choice(list(SQL_TABLES))
    cols, nums, cat_col, cats = SQL_TABLES[table]
    num, k = rng.choice(nums), rng.randint(3, 50)
    forms = [
        f"SELECT {', '.join(rng.sample(cols, 2))} FROM {table} WHERE {num} > {rng.randint(1, 500)}",
        f"SELECT COUNT(*) FROM {table} WHERE {cat_col} = '{rng.choice(cats)}'",
        f"SELECT {cat_col}, SUM({num}) FROM {table} GROUP BY {cat_col} ORDER BY 2 DESC LIMIT {k}",
        f"SELECT * FROM {table} ORDER BY {num} DESC LIMIT {k}",
        f"SELECT AVG({num}) FROM {table} WHERE {cat_col} = '{rng.choice(cats)}'",
        f"SELECT id, {num} FROM {table} WHERE {num} BETWEEN {rng.randint(1, 50)} AND {rng.randint(51, 900)}",
    ]
    return rng.choice(forms)


def expression(rng):
    def n():
        return str(rng.randint(2, 999)) if rng.random() < 0.75 else f"{rng.randint(1, 99)}.{rng.randint(1, 9)}"
    forms = ["{a} + {b}", "{a} * {b}", "({a} + {b}) * {c}", "{a} / {b}", "{a} ** 2", "{a} - {b} * {c}",
             "({a} - {b}) / {c}", "{a} * {b} + {c}", "{a} / ({b} + {c})", "{a} ** 3 - {b}"]
    return rng.choice(forms).format(a=n(), b=n(), c=n())


def event_title(rng):
    return _fill(rng, rng.choice(EVENT_TITLES))


def email_subject(rng):
    return _fill(rng, rng.choice(SUBJECTS))


def email_body(rng):
    a, b = rng.sample(BODY_SENTENCES, 2)
    return f"Hi {rng.choice(FIRST)}, {_fill(rng, a)} {_fill(rng, b)}" if rng.random() < 0.6 else _fill(rng, a)


def sentence(rng):
    return _fill(rng, rng.choice(BODY_SENTENCES))


def generic_token(rng):
    return f"{rng.choice(ADJECTIVES)}-{rng.choice(WORDS)}"


# (words any of which in the name → generator); checked in order, name words before description words.
_NAME_RULES: list[tuple[set[str], Callable[[random.Random], str]]] = [
    ({"sql", "statement"}, sql),
    ({"expression", "formula", "equation"}, expression),
    ({"email", "recipient", "cc", "bcc", "to", "sender", "mail"}, email),
    ({"url", "link", "website", "endpoint", "homepage", "uri"}, url),
    ({"path", "file", "filename", "filepath", "dir", "directory", "folder"}, file_path),
    ({"timezone", "tz"}, lambda r: r.choice(TIMEZONES)),
    ({"city", "town", "location", "destination", "origin", "place", "departure", "arrival", "pickup", "dropoff"},
     lambda r: r.choice(CITIES)),
    ({"restaurant", "cafe", "bar", "bistro"}, lambda r: r.choice(RESTAURANTS)),
    ({"room"}, lambda r: r.choice(["living room", "kitchen", "bedroom", "office", "bathroom", "garage",
                                   "hallway", "basement", "nursery", "study"])),
    ({"dish", "meal", "dishes", "meals"}, lambda r: r.choice(DISHES)),
    ({"country", "nation"}, lambda r: r.choice(COUNTRIES)),
    ({"airport", "iata"}, lambda r: r.choice(AIRPORTS)),
    ({"address", "street"}, lambda r: f"{r.randint(1, 250)} {r.choice(STREETS)}"),
    ({"username", "handle", "login"}, lambda r: f"{r.choice(FIRST).lower()}_{r.choice(WORDS)}"),
    ({"surname", "lastname"}, lambda r: r.choice(LAST)),
    ({"firstname"}, lambda r: r.choice(FIRST)),
    ({"person", "contact", "author", "assignee", "owner", "customer", "attendee", "guest", "user", "patient",
      "employee", "friend", "name"}, person),
    ({"subject"}, email_subject),
    ({"title", "event", "meeting"}, event_title),
    ({"body", "message", "text", "content", "note", "notes", "comment", "description", "summary", "prompt",
      "reason", "details", "fact", "memory"}, sentence),
    ({"query", "search", "keyword", "keywords", "term", "terms", "q", "topic", "question"}, search_phrase),
    ({"phone", "mobile", "telephone"}, lambda r: f"+1-555-{r.randint(100, 999)}-{r.randint(1000, 9999)}"),
    ({"language", "lang", "locale"}, lambda r: r.choice(LANGUAGES)),
    ({"currency"}, lambda r: r.choice(CURRENCIES)),
    ({"ticker", "symbol", "stock"}, lambda r: r.choice(TICKERS)),
    ({"color", "colour"}, lambda r: r.choice(COLOURS)),
    ({"genre"}, lambda r: r.choice(GENRES)),
    ({"movie", "film"}, lambda r: r.choice(MOVIES)),
    ({"book", "novel"}, lambda r: r.choice(BOOKS)),
    ({"company", "organization", "organisation", "employer", "brand"}, lambda r: r.choice(COMPANIES)),
    ({"product", "item", "sku"}, lambda r: r.choice(PRODUCTS)),
    ({"ingredient", "ingredients", "food", "dish"}, lambda r: r.choice(FOODS)),
    ({"tag", "tags", "label", "labels", "category", "categories"}, lambda r: r.choice(TAGS)),
    ({"unit", "units"}, lambda r: r.choice(UNITS)),
    ({"date", "day", "deadline", "birthday"}, iso_date),
    ({"time", "hour"}, hhmm),
    ({"zip", "postal", "postcode"}, lambda r: f"{r.randint(10000, 99999)}"),
    ({"id", "identifier", "uuid", "key", "code", "reference", "ref"},
     lambda r: f"{r.choice(string.ascii_uppercase)}{r.choice(string.ascii_uppercase)}-{r.randint(1000, 99999)}"),
    ({"word", "words"}, lambda r: r.choice(WORDS)),
]

# (name words → (low, high)) for numbers.
_RANGE_RULES: list[tuple[set[str], tuple[float, float]]] = [
    ({"year"}, (1990, 2030)), ({"age"}, (18, 90)), ({"port"}, (1024, 65535)),
    ({"latitude", "lat"}, (-90, 90)), ({"longitude", "lon", "lng"}, (-180, 180)),
    ({"rating", "stars"}, (1, 5)), ({"percent", "percentage", "pct"}, (1, 100)),
    ({"temperature", "temp"}, (-10, 40)), ({"month"}, (1, 12)), ({"hour", "hours"}, (1, 24)),
    ({"minute", "minutes"}, (5, 120)), ({"day", "days"}, (1, 14)), ({"page"}, (1, 20)),
    ({"limit", "count", "top", "results", "number", "num", "n", "k", "size", "rows", "max", "quantity",
      "items", "guests", "people", "nights", "seats", "tickets", "retries"}, (1, 20)),
    ({"price", "amount", "budget", "salary", "cost", "total", "income", "balance", "loan", "principal"},
     (5, 5000)),
    ({"rate", "interest"}, (1, 15)), ({"weight"}, (1, 120)), ({"height"}, (100, 210)),
    ({"distance", "radius", "km", "miles"}, (1, 50)), ({"duration", "length"}, (5, 120)),
]


# What a parameter's description says the value looks like, checked before its name: a parameter named
# `origin` whose description asks for an "IATA airport code" gets "LIS", not "Lisbon".
_DESC_RULES: list[tuple[re.Pattern, Callable[[random.Random], str]]] = [(re.compile(p, re.I), g) for p, g in [
    (r"\biata\b|\bairport code", lambda r: r.choice(AIRPORTS)),
    (r"\biso[ -]?4217\b|\bcurrency code|three[- ]letter currency", lambda r: r.choice(CURRENCIES)),
    (r"\biso[ -]?3166\b|\bcountry code|two[- ]letter country", lambda r: r.choice(COUNTRY_CODES)),
    (r"\biso[ -]?639\b|\blanguage code", lambda r: r.choice(LANGUAGE_CODES)),
    (r"\biana\b|\btz database", lambda r: r.choice(TIMEZONES)),
    (r"yyyy-mm-dd\b(?![ t]*hh)", iso_date),
    (r"\bhh:mm\b(?!:ss)", hhmm),
    (r"\b(?:ticker|stock symbol)\b", lambda r: r.choice(TICKERS)),
    (r"\be-?mail address", email),
    (r"\bphone number", lambda r: f"+1-555-{r.randint(100, 999)}-{r.randint(1000, 9999)}"),
    (r"\b(?:zip|postal) code", lambda r: f"{r.randint(10000, 99999)}"),
    (r"\bhex(?:adecimal)? colou?r", lambda r: "#%06x" % r.getrandbits(24)),
]]
_EXAMPLE = re.compile(r"""(?:e\.g\.|for example|such as|like)[,:]?\s*['"`]?([A-Za-z0-9][\w./:#@+-]{1,40})""", re.I)


def _shaped_like(example: str, rng: random.Random) -> str | None:
    """A new code shaped like a description's example ('ORD-1234' → 'KQT-5820'); None for plain words,
    whose shape says nothing."""
    if not re.search(r"\d", example) and not (example.isupper() and len(example) > 1):
        return None
    return "".join(rng.choice(string.ascii_uppercase) if c.isupper() else rng.choice(string.ascii_lowercase)
                   if c.islower() else rng.choice(string.digits) if c.isdigit() else c for c in example)


def string_for(name: str, schema: dict, rng: random.Random, hint: str = "") -> str:
    """A string for a parameter: by format, then by what its description says the value looks like (IATA,
    ISO codes, IANA zones, YYYY-MM-DD, HH:MM), then by the parameter's name, then its description's words,
    then the shape of an example in the description."""
    fmt = schema.get("format")
    if fmt == "date":
        return iso_date(rng)
    if fmt == "date-time":
        return f"{iso_date(rng)}T{hhmm(rng)}:00"
    if fmt == "time":
        return f"{hhmm(rng)}:00"
    if fmt in ("email", "idn-email"):
        return email(rng)
    if fmt in ("uri", "url", "iri", "uri-reference"):
        return url(rng)
    if fmt == "uuid":
        return "%08x-%04x-4%03x-a%03x-%012x" % (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(12),
                                                 rng.getrandbits(12), rng.getrandbits(48))
    if fmt == "ipv4":
        return f"{rng.randint(10, 192)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if fmt in ("hostname", "idn-hostname"):
        return f"{rng.choice(WORDS)}.{rng.choice(DOMAINS)}"
    description = str(schema.get("description") or "")
    for pattern, gen in _DESC_RULES:
        if pattern.search(description):
            return gen(rng)
    name_words = word_set(name, hint)
    desc_words = word_set(description)
    if "sql" in name_words or "sql" in desc_words:
        return sql(rng)
    # The head noun (last word: departure_*date*, destination_*city*) decides first, then any name word.
    head = humanise(name).split()[-1:] if name else []
    for candidates in (set(head), name_words):
        for words, gen in _NAME_RULES:
            if words & candidates:
                return gen(rng)
    for words, gen in _NAME_RULES:
        if len(words & desc_words) and not ({"name", "id", "to", "q", "n", "key", "text", "day"} & words & desc_words):
            return gen(rng)
    m = _EXAMPLE.search(description)
    if m:
        shaped = _shaped_like(m.group(1), rng)
        if shaped:
            return shaped
    return generic_token(rng)


def number_range(name: str, schema: dict) -> tuple[float, float]:
    words = word_set(name)
    lo: float = 1
    hi: float = 100
    for keys, rng_ in _RANGE_RULES:
        if keys & words:
            lo, hi = rng_
            break
    smin = schema.get("minimum", schema.get("exclusiveMinimum"))
    smax = schema.get("maximum", schema.get("exclusiveMaximum"))
    if isinstance(smin, (int, float)) and not isinstance(smin, bool):
        lo = max(lo, smin) if smin < hi else smin
    if isinstance(smax, (int, float)) and not isinstance(smax, bool):
        hi = min(hi, smax) if smax > lo else smax
    if hi < lo:
        lo, hi = (smin if isinstance(smin, (int, float)) else hi), (smax if isinstance(smax, (int, float)) else lo)
    return lo, hi


def _sample_pattern(pattern: str, rng: random.Random) -> str | None:
    """A string matching a simple regex (literals, classes, \\d \\w, {n}/{n,m}/?/+/*); None when too complex."""
    p = pattern
    if p.startswith("^"):
        p = p[1:]
    if p.endswith("$") and not p.endswith("\\$"):
        p = p[:-1]
    out, i = [], 0
    while i < len(p):
        c = p[i]
        if c == "\\" and i + 1 < len(p):
            e = p[i + 1]
            choices = {"d": string.digits, "w": string.ascii_lowercase + string.digits,
                       "s": " "}.get(e, e)
            i += 2
        elif c == "[":
            j = p.find("]", i)
            if j < 0:
                return None
            body, choices, k = p[i + 1:j], "", 0
            if body.startswith("^"):
                return None
            while k < len(body):
                if k + 2 < len(body) and body[k + 1] == "-":
                    choices += "".join(chr(x) for x in range(ord(body[k]), ord(body[k + 2]) + 1))
                    k += 3
                elif body[k] == "\\" and k + 1 < len(body):
                    choices += {"d": string.digits, "w": string.ascii_lowercase}.get(body[k + 1], body[k + 1])
                    k += 2
                else:
                    choices += body[k]
                    k += 1
            i = j + 1
        elif c in "()|.*+?{":
            if c == ".":
                choices, i = string.ascii_lowercase, i + 1
            else:
                return None
        else:
            choices, i = c, i + 1
        lo = hi = 1
        if i < len(p) and p[i] in "?+*{":
            if p[i] == "?":
                lo, hi, i = 0, 1, i + 1
            elif p[i] == "+":
                lo, hi, i = 1, 4, i + 1
            elif p[i] == "*":
                lo, hi, i = 0, 4, i + 1
            else:
                j = p.find("}", i)
                m = re.fullmatch(r"(\d+)(?:,(\d*))?", p[i + 1:j]) if j > 0 else None
                if not m:
                    return None
                lo = int(m.group(1))
                hi = lo if m.group(2) is None else (int(m.group(2)) if m.group(2) else lo + 3)
                i = j + 1
        out.append("".join(rng.choice(choices) for _ in range(rng.randint(lo, hi))))
    return "".join(out)


def value_for(name: str, schema: dict, rng: random.Random, override: Callable | None = None,
              depth: int = 0) -> Any:
    """A value valid for `schema` (the caller validates and retries); `name` steers what it looks like."""
    v: Any  # the value, of whichever JSON type the schema asks for
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            options = [s for s in schema[key] if isinstance(s, dict) and s.get("type") != "null"] or schema[key]
            return value_for(name, rng.choice(options), rng, override, depth)
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    if t is None:
        t = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if t == "boolean":
        return rng.random() < 0.5
    if t in ("integer", "number"):
        lo, hi = number_range(name, schema)
        if t == "integer":
            lo_i = int(lo) + (1 if "exclusiveMinimum" in schema and lo == schema["exclusiveMinimum"] else 0)
            hi_i = int(hi) - (1 if "exclusiveMaximum" in schema and hi == schema["exclusiveMaximum"] else 0)
            v = rng.randint(min(lo_i, hi_i), max(lo_i, hi_i))
            mult = schema.get("multipleOf")
            if isinstance(mult, int) and mult > 0:
                v = max(lo_i, (v // mult) * mult) if v >= mult else mult
            return v
        # People say 21, 21.5 or 19.99 far more often than 16.96; money keeps its cents now and then.
        money = bool(word_set(name) & {"amount", "price", "budget", "cost", "total", "salary", "balance", "fee"})
        r = rng.random()
        if r < 0.5 and int(hi) >= int(lo) + 1:
            v = float(rng.randint(int(math.ceil(lo)), int(hi)))
        elif r < 0.8 or not money:
            v = round(rng.uniform(lo, hi) * 2) / 2
        else:
            v = round(rng.uniform(lo, hi), 2)
        if not lo <= v <= hi:
            v = round(rng.uniform(lo, hi), 1)
        return int(v) if v == int(v) else v
    if t == "array":
        items = schema["items"] if isinstance(schema.get("items"), dict) else {"type": "string"}
        lo = int(schema.get("minItems", 1))
        hi = int(schema.get("maxItems", max(lo, 3)))
        n = rng.randint(lo, max(lo, min(hi, lo + 2)))
        singular = re.sub(r"(ies)$", "y", name) if name.endswith("ies") else re.sub(r"s$", "", name)
        out: list = []
        for _ in range(n * 4):
            if len(out) >= n:
                break
            v = value_for(singular, items, rng, None, depth + 1)
            if v not in out:
                out.append(v)
        return out
    if t == "object":
        props = schema.get("properties") or {}
        if not props or depth > 3:
            return {rng.choice(WORDS): rng.choice(WORDS)} if schema.get("additionalProperties", True) is not False else {}
        req = set(schema.get("required") or [])
        return {k: value_for(k, s if isinstance(s, dict) else {}, rng, None, depth + 1)
                for k, s in props.items() if k in req or rng.random() < 0.5}
    # string
    if override is not None:
        v = override(rng)
    else:
        v = string_for(name, schema, rng)
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            ok = re.search(pattern, v) is not None
        except re.error:
            ok = True
        if not ok:
            sampled = _sample_pattern(pattern, rng)
            if sampled is not None:
                v = sampled
    mn, mx = schema.get("minLength"), schema.get("maxLength")
    if isinstance(mx, int) and len(v) > mx:
        v = v[:mx].rstrip() or v[:mx]
    if isinstance(mn, int) and len(v) < mn:
        v = v + "-" + "x" * (mn - len(v) - 1) if mn - len(v) > 1 else v + "x"
    return v
