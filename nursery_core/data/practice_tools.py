"""Practice tools: everyday tool schemas no default dataset uses, to mix into training so a model reads tool
lists it has never seen (names, descriptions, parameters) instead of memorising ten tools.

Why: a model trained only on the ten built-in tools learns their topics, not the skill of matching a request to
a tool's description. On tools it never saw (BFCL's questions, a user's own tools) it then calls whatever is
offered, even for a request the tool cannot serve (BFCL irrelevance 0-16 % in bench/QUALITY.md sessions 5-7).
Hammer (arXiv:2410.04587) and xLAM (arXiv:2409.03215) train on thousands of distinct functions for the same
reason. These are written for this project; none is taken from an evaluation set, and the generator draws their
requests and no-call requests (a request for one practice tool while only others are offered) like any custom
tool's (generator.py).
"""
from __future__ import annotations

from .tools import _tool

_STR = {"type": "string"}


def _s(description: str, **extra) -> dict:
    return {"type": "string", "description": description, **extra}


def _i(description: str, **extra) -> dict:
    return {"type": "integer", "description": description, **extra}


def _n(description: str, **extra) -> dict:
    return {"type": "number", "description": description, **extra}


def _e(description: str, options: list[str], **extra) -> dict:
    return {"type": "string", "enum": options, "description": description, **extra}


PRACTICE_TOOLS: list[dict] = [
    _tool("convert_currency", "Convert an amount of money from one currency to another at today's rate.", {
        "amount": _n("The amount of money to convert."),
        "from_currency": _s("ISO 4217 code of the currency to convert from, e.g. 'EUR'.", pattern="^[A-Z]{3}$"),
        "to_currency": _s("ISO 4217 code of the currency to convert to, e.g. 'JPY'.", pattern="^[A-Z]{3}$"),
    }, ["amount", "from_currency", "to_currency"]),
    _tool("find_recipes", "Search cooking recipes by main ingredient, cuisine and total cooking time.", {
        "ingredient": _s("The main ingredient, e.g. 'chickpeas'."),
        "cuisine": _e("Cuisine of the dish.", ["italian", "mexican", "indian", "japanese", "french", "thai"]),
        "max_minutes": _i("Longest total cooking time in minutes.", minimum=5, maximum=600),
    }, ["ingredient"]),
    _tool("track_package", "Get the delivery status of a parcel from its tracking number.", {
        "tracking_number": _s("The carrier's tracking number, e.g. '1Z999AA10123456784'."),
        "carrier": _e("Shipping carrier.", ["ups", "fedex", "dhl", "usps"]),
    }, ["tracking_number"]),
    _tool("search_flights", "Find flights between two airports on a date.", {
        "origin": _s("IATA code of the departure airport, e.g. 'LHR'.", pattern="^[A-Z]{3}$"),
        "destination": _s("IATA code of the arrival airport, e.g. 'JFK'.", pattern="^[A-Z]{3}$"),
        "date": _s("Departure date, YYYY-MM-DD.", format="date"),
        "cabin": _e("Cabin class.", ["economy", "premium", "business", "first"]),
        "passengers": _i("Number of passengers.", minimum=1, maximum=9),
    }, ["origin", "destination", "date"]),
    _tool("book_hotel", "Reserve a hotel room in a city for a stay.", {
        "city": _s("City to stay in."),
        "check_in": _s("Arrival date, YYYY-MM-DD.", format="date"),
        "nights": _i("Number of nights.", minimum=1, maximum=30),
        "guests": _i("Number of guests.", minimum=1, maximum=8),
    }, ["city", "check_in", "nights"]),
    _tool("translate_text", "Translate a piece of text into another language.", {
        "text": _s("The text to translate."),
        "target_language": _s("ISO 639-1 code of the language to translate into, e.g. 'de'.",
                              pattern="^[a-z]{2}$"),
        "formal": {"type": "boolean", "description": "Use the formal register where the language has one."},
    }, ["text", "target_language"]),
    _tool("get_stock_quote", "Get the latest trading price of a listed company's shares.", {
        "ticker": _s("Stock ticker symbol, e.g. 'AAPL'."),
        "exchange": _e("Stock exchange.", ["NASDAQ", "NYSE", "LSE", "TSE", "XETRA"]),
    }, ["ticker"]),
    _tool("convert_units", "Convert a measurement from one unit to another.", {
        "value": _n("The quantity to convert."),
        "from_unit": _s("Unit of the value, e.g. 'miles'."),
        "to_unit": _s("Unit to convert to, e.g. 'kilometers'."),
    }, ["value", "from_unit", "to_unit"]),
    _tool("set_timer", "Start a countdown timer that rings when it ends.", {
        "minutes": _i("Length of the timer in minutes.", minimum=1, maximum=1440),
        "label": _s("A name for the timer, e.g. 'pasta'."),
    }, ["minutes"]),
    _tool("set_alarm", "Set an alarm clock for a time of day.", {
        "time": _s("Time of the alarm, 24-hour HH:MM.", pattern="^[0-2][0-9]:[0-5][0-9]$"),
        "repeat": _e("Which days it repeats on.", ["once", "daily", "weekdays", "weekends"]),
        "label": _s("A name for the alarm."),
    }, ["time"]),
    _tool("play_music", "Play a song, an album or an artist on the user's speakers.", {
        "query": _s("Song, album or artist to play."),
        "shuffle": {"type": "boolean", "description": "Shuffle the tracks."},
        "volume": _i("Volume from 0 to 100.", minimum=0, maximum=100),
    }, ["query"]),
    _tool("control_lights", "Turn smart lights in a room on or off, or dim them.", {
        "room": _s("The room whose lights to change, e.g. 'kitchen'."),
        "state": _e("Switch the lights on or off.", ["on", "off"]),
        "brightness": _i("Brightness in percent.", minimum=1, maximum=100),
    }, ["room", "state"]),
    _tool("set_thermostat", "Set the home thermostat to a target temperature.", {
        "temperature": _n("Target temperature."),
        "unit": _e("Temperature unit.", ["celsius", "fahrenheit"]),
        "mode": _e("Heating or cooling mode.", ["heat", "cool", "auto"]),
    }, ["temperature"]),
    _tool("add_todo", "Add an item to the user's to-do list.", {
        "task": _s("What needs doing."),
        "due_date": _s("Due date, YYYY-MM-DD.", format="date"),
        "priority": _e("How urgent it is.", ["low", "medium", "high"]),
    }, ["task"]),
    _tool("get_news", "Get the latest news headlines on a topic.", {
        "topic": _s("Subject of the news, e.g. 'electric cars'."),
        "country": _s("ISO 3166 two-letter country code for local news, e.g. 'FR'.", pattern="^[A-Z]{2}$"),
        "limit": _i("How many headlines.", minimum=1, maximum=20),
    }, ["topic"]),
    _tool("find_movie_showtimes", "List today's showtimes of a film at cinemas near a city.", {
        "title": _s("Title of the film."),
        "city": _s("City to look for cinemas in."),
    }, ["title", "city"]),
    _tool("reserve_table", "Book a table at a restaurant.", {
        "restaurant": _s("Name of the restaurant."),
        "date": _s("Date of the booking, YYYY-MM-DD.", format="date"),
        "time": _s("Time of the booking, 24-hour HH:MM.", pattern="^[0-2][0-9]:[0-5][0-9]$"),
        "party_size": _i("Number of people.", minimum=1, maximum=20),
    }, ["restaurant", "date", "time", "party_size"]),
    _tool("request_ride", "Order a taxi ride from a pickup address to a destination.", {
        "pickup": _s("Pickup address."),
        "destination": _s("Destination address."),
        "ride_type": _e("Kind of car.", ["standard", "xl", "premium"]),
    }, ["pickup", "destination"]),
    _tool("define_word", "Look up the dictionary definition of a word.", {
        "word": _s("The word to define."),
        "language": _s("ISO 639-1 code of the dictionary's language.", pattern="^[a-z]{2}$"),
    }, ["word"]),
    _tool("get_sports_scores", "Get recent match results for a sports team.", {
        "team": _s("Name of the team."),
        "sport": _e("The sport.", ["football", "basketball", "baseball", "hockey", "tennis", "cricket"]),
        "last_n": _i("How many recent matches.", minimum=1, maximum=10),
    }, ["team"]),
    _tool("create_note", "Write a new note in the user's notebook.", {
        "title": _s("Title of the note."),
        "body": _s("Text of the note."),
        "folder": _s("Folder to put the note in."),
    }, ["title", "body"]),
    _tool("compress_files", "Pack files or folders into a zip archive.", {
        "paths": {"type": "array", "items": _STR, "minItems": 1, "description": "Files or folders to pack."},
        "archive_name": _s("Name of the zip file to create, e.g. 'photos.zip'."),
    }, ["paths", "archive_name"]),
    _tool("resize_image", "Resize an image file to a given width, keeping its aspect ratio.", {
        "path": _s("Path of the image file."),
        "width": _i("New width in pixels.", minimum=1, maximum=10000),
        "format": _e("Output format.", ["png", "jpeg", "webp"]),
    }, ["path", "width"]),
    _tool("generate_password", "Create a random password.", {
        "length": _i("Number of characters.", minimum=8, maximum=128),
        "symbols": {"type": "boolean", "description": "Include symbols such as ! and #."},
    }, ["length"]),
    _tool("calculate_tip", "Work out the tip and each person's share of a restaurant bill.", {
        "bill_amount": _n("Total of the bill."),
        "tip_percent": _n("Tip as a percentage of the bill.", minimum=0, maximum=100),
        "people": _i("How many people split the bill.", minimum=1, maximum=50),
    }, ["bill_amount", "tip_percent"]),
    _tool("check_flight_status", "Get the live status of a flight by its flight number.", {
        "flight_number": _s("Airline code and number, e.g. 'BA117'."),
        "date": _s("Date of the flight, YYYY-MM-DD.", format="date"),
    }, ["flight_number"]),
    _tool("find_nearby_places", "Find places of a kind near an address, such as pharmacies or cafes.", {
        "place_type": _e("What kind of place.", ["pharmacy", "cafe", "gas_station", "atm", "supermarket",
                                                  "hospital"]),
        "near": _s("Address or neighbourhood to search around."),
        "radius_km": _n("Search radius in kilometres.", minimum=0.1, maximum=50),
    }, ["place_type", "near"]),
    _tool("send_sms", "Send a text message to a phone number.", {
        "phone_number": _s("Recipient's number in international format, e.g. '+4915123456789'.",
                           pattern="^\\+[0-9]{7,15}$"),
        "message": _s("Text of the message."),
    }, ["phone_number", "message"]),
    _tool("get_exchange_history", "Get a currency pair's daily exchange rates over a period.", {
        "base": _s("ISO 4217 code of the base currency.", pattern="^[A-Z]{3}$"),
        "quote": _s("ISO 4217 code of the quoted currency.", pattern="^[A-Z]{3}$"),
        "days": _i("How many past days.", minimum=1, maximum=365),
    }, ["base", "quote"]),
    _tool("log_workout", "Record a workout in the user's fitness log.", {
        "activity": _e("Kind of exercise.", ["running", "cycling", "swimming", "walking", "yoga", "weights"]),
        "minutes": _i("Duration in minutes.", minimum=1, maximum=600),
        "distance_km": _n("Distance covered in kilometres."),
    }, ["activity", "minutes"]),
    _tool("get_air_quality", "Get the current air quality index for a city.", {
        "city": _s("City to check."),
        "pollutant": _e("Report one pollutant only.", ["pm25", "pm10", "ozone", "no2"]),
    }, ["city"]),
    _tool("lookup_zip_code", "Find the town and region of a postal code.", {
        "postal_code": _s("The postal code, e.g. '10115'."),
        "country": _s("ISO 3166 two-letter country code, e.g. 'DE'.", pattern="^[A-Z]{2}$"),
    }, ["postal_code", "country"]),
]

PRACTICE_TOOL_NAMES: list[str] = [t["function"]["name"] for t in PRACTICE_TOOLS]


def practice_examples(count: int, seed: int = 0, exclude: set[str] | frozenset[str] = frozenset(),
                      avoid: set[str] | None = None) -> list[dict]:
    """`count` generated examples (low variation, the default's tool lists of 1-3 tools) over the practice tools
    whose names are not in `exclude` (a dataset's own tools keep their own schemas); [] for count 0. `avoid`:
    normal forms of requests never to generate (the golden sets', see generator.generate_examples)."""
    from .generator import generate_examples

    tools = [t for t in PRACTICE_TOOLS if t["function"]["name"] not in exclude]
    if count <= 0 or not tools:
        return []
    examples, _ = generate_examples(tools, count, "low", seed=seed, avoid=avoid)
    for ex in examples:
        ex.setdefault("meta", {})["practice"] = True
    return examples
