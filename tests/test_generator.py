"""The synthetic generator: schema-driven values, values said in the request, phrasing in many shapes, optional
arguments, no-call data that teaches when not to call, variation levels, determinism."""
import json
import re
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from nursery_core.data.diversity import diversity_report
from nursery_core.data.generator import LEVELS, Paraphraser, generate_examples, nursery_generate_data
from nursery_core.data.intents import BUILTIN
from nursery_core.data.mentions import surfaces
from nursery_core.data.tools import DEFAULT_TOOL_NAMES, DEFAULT_TOOLS, parse_tool_schemas
from nursery_core.data.values import AIRPORTS
from nursery_core.errors import AlreadyExists, InvalidConfig, InvalidInput, NotFound
from nursery_core.records import call_errors, tools_by_name

CUSTOM = {"type": "function", "function": {
    "name": "book_flight", "description": "Books a flight between two cities.",
    "parameters": {"type": "object", "properties": {
        "origin_city": {"type": "string", "description": "City to fly from"},
        "destination_city": {"type": "string"},
        "departure_date": {"type": "string", "format": "date"},
        "passengers": {"type": "integer", "minimum": 1, "maximum": 9},
        "cabin": {"type": "string", "enum": ["economy", "business", "first"]},
        "contact_email": {"type": "string", "format": "email"},
        "refundable": {"type": "boolean"},
        "seat_code": {"type": "string", "pattern": "^[0-9]{2}[A-F]$"}},
        "required": ["origin_city", "destination_city", "departure_date", "passengers"]}}}


def literals(v):
    if isinstance(v, dict):
        return [x for i in v.values() for x in literals(i)]
    if isinstance(v, list):
        return [x for i in v for x in literals(i)]
    return [] if isinstance(v, bool) else [v]


def user_text(ex):
    return " ".join(m["content"] for m in ex["messages"] if m["role"] == "user")


SPOKEN = {v: set(ways) for spec in BUILTIN.values() for table in spec["intent"].spoken.values()
          for v, ways in table.items()}


def said(value, text):
    """The value stands in the request, verbatim or as people say it (March 3, 2025 for 2025-03-03)."""
    low = text.lower()
    return any(s.lower() in low for s in surfaces(value) | SPOKEN.get(value, set()))


def check_valid_and_literal(examples):
    for ex in examples:
        by = tools_by_name(ex["tools"])
        for m in ex["messages"]:
            for c in m.get("tool_calls") or ():
                fn = c["function"]
                assert call_errors(by[fn["name"]], fn["arguments"]) == []
                for lit in literals(fn["arguments"]):
                    assert said(lit, user_text(ex)), (lit, user_text(ex))


def calls_of(examples):
    return [c["function"] for ex in examples for m in ex["messages"] for c in m.get("tool_calls") or ()]


def test_default_tools_are_real_schemas():
    assert {"calculator", "get_current_time", "memory_store", "memory_search", "web_search", "get_weather",
            "send_email", "create_calendar_event", "read_file", "run_sql"} <= set(DEFAULT_TOOL_NAMES)
    for t in DEFAULT_TOOLS:
        fn = t["function"]
        assert fn["description"] and fn["parameters"]["type"] == "object"
        assert all(p.get("description") for p in fn["parameters"]["properties"].values())


@pytest.mark.parametrize("level", ["low", "medium", "high"])
def test_every_call_is_valid_and_every_value_is_in_the_query(level):
    examples, report = generate_examples(DEFAULT_TOOL_NAMES, 400, level, seed=3)
    assert len(examples) == 400 and report["delivered"] == 400
    check_valid_and_literal(examples)
    assert set(report["categories"]) == {"call", "no_call", "parallel", "multi_turn"}


def test_custom_schema_values_follow_types_formats_and_names():
    examples, _ = generate_examples([CUSTOM], 150, "medium", seed=1)
    check_valid_and_literal(examples)
    args = [c["function"]["arguments"] for ex in examples for m in ex["messages"] for c in m.get("tool_calls") or ()]
    from nursery_core.data.values import CITIES
    assert all(a["origin_city"] in CITIES and a["destination_city"] in CITIES for a in args)
    assert all(len(a["departure_date"]) == 10 and a["departure_date"][4] == "-" for a in args)
    assert all("@" in a["contact_email"] for a in args if "contact_email" in a)
    assert any("seat_code" in a for a in args) and any("seat_code" not in a for a in args)
    assert len({user_text(e) for e in examples}) == 150


def test_levels_change_real_things():
    def summary(level):
        exs, rep = generate_examples(["get_weather", "send_email"], 600, level, seed=5)
        calling = [e for e in exs if e["meta"]["category"] != "no_call"]
        n_tools = sum(len(e["tools"]) for e in calling) / len(calling)
        calls = [c["function"]["arguments"] for e in exs for m in e["messages"] for c in m.get("tool_calls") or ()]
        opt = sum(len(a) for a in calls) / max(1, len(calls))  # arguments per call
        lower = sum(1 for e in exs if user_text(e)[:1].islower()) / len(exs)
        rank = {"get_weather": 0, "send_email": 1}
        order = sum(1 for e in calling  # examples whose dataset tools are not in selection order
                    if [n for n in (t["function"]["name"] for t in e["tools"]) if n in rank]
                    != sorted((n for n in (t["function"]["name"] for t in e["tools"]) if n in rank), key=rank.get))
        return rep["categories"].get("no_call", 0), n_tools, opt, lower, order
    low, med, high = summary("low"), summary("medium"), summary("high")
    assert low[0] < high[0]            # more no_call questions
    assert low[1] <= 2 and low[1] < med[1] < high[1]  # distractor tools (low: 1-2 of the two, no distractors)
    assert low[2] < high[2]            # optional arguments present more often
    assert 0 < low[3] < med[3] < high[3]  # casing noise
    assert low[4] == 0 < high[4]       # tool order shuffled


def test_deterministic_per_seed_and_different_across_seeds():
    a, _ = generate_examples(["calculator", "read_file"], 120, "high", seed=7)
    b, _ = generate_examples(["calculator", "read_file"], 120, "high", seed=7)
    c, _ = generate_examples(["calculator", "read_file"], 120, "high", seed=8)
    assert json.dumps(a) == json.dumps(b) and json.dumps(a) != json.dumps(c)


def test_combined_tools_make_parallel_and_multi_turn_examples():
    exs, _ = generate_examples(["get_weather", "web_search", "memory_store"], 300, "medium", seed=2)
    par = [e for e in exs if e["meta"]["category"] == "parallel"]
    multi = [e for e in exs if e["meta"]["category"] == "multi_turn"]
    assert par and all(len(e["messages"][1]["tool_calls"]) == 2 for e in par)
    assert multi and all([m["role"] for m in e["messages"]][:4] == ["user", "assistant", "tool", "assistant"] for e in multi)
    called = {c["function"]["name"] for e in exs for m in e["messages"] for c in m.get("tool_calls") or ()}
    assert called == {"get_weather", "web_search", "memory_store"}
    no_call = [e for e in exs if e["meta"]["category"] == "no_call"]
    assert no_call and all(e["messages"][-1]["content"] and "tool_calls" not in e["messages"][-1] for e in no_call)


@pytest.mark.parametrize("level", ["medium", "high"])
def test_conversations_reuse_their_tools_and_every_request_is_new(level):
    exs, _ = generate_examples(DEFAULT_TOOL_NAMES, 300, level, seed=4)
    conv = [e for e in exs if e["meta"]["category"] == "multi_turn"]
    lo, hi = LEVELS[level].rounds
    assert conv
    sizes = [sum(m["role"] == "user" for m in e["messages"]) for e in conv]
    assert min(sizes) == lo and max(sizes) == hi
    for e in conv:
        offered = {t["function"]["name"] for t in e["tools"]}
        assert len(offered) <= LEVELS[level].tool_cap + LEVELS[level].distractors[1]
        msgs = e["messages"]
        for k, m in enumerate(msgs):
            if not m.get("tool_calls"):
                continue
            (call,) = m["tool_calls"]
            assert call["function"]["name"] in offered
            asked = msgs[k - 1]
            assert asked["role"] == "user"
            # a follow-up ("and in Oslo?") carries the other values over from earlier turns
            so_far = " ".join(m["content"] for m in msgs[:k] if m["role"] == "user")
            assert all(said(lit, so_far) for lit in literals(call["function"]["arguments"]))
            reply, answer = msgs[k + 1], msgs[k + 2]
            assert reply["role"] == "tool" and reply["tool_call_id"] == call["id"]
            assert answer["role"] == "assistant" and answer["content"] and not answer.get("tool_calls")
        ids = [c["id"] for m in msgs for c in m.get("tool_calls") or ()]
        assert len(ids) == len(set(ids))
    requests = [" ".join(m["content"].lower().split()) for e in exs for m in e["messages"] if m["role"] == "user"]
    assert len(requests) == len(set(requests))  # no request is repeated anywhere, so none leaks into eval


def test_near_duplicates_removed_and_impossible_counts_explained():
    tiny = {"name": "ping", "description": "Ping the server.", "parameters": {"type": "object", "properties": {}}}
    exs, rep = generate_examples([tiny], 40, "high", seed=0)
    norm = [" ".join(user_text(e).lower().replace("?", "").replace(".", "").replace("!", "").split()) for e in exs]
    assert len(set(norm)) == 40
    assert any("ping the server" in n for n in norm)  # a bare verb name borrows its object from the description
    with pytest.raises(InvalidConfig, match="distinct examples"):
        generate_examples([tiny], 5000, "low", seed=0)


def test_bad_arguments_are_refused():
    with pytest.raises(InvalidConfig):
        generate_examples(["get_weather"], 0)
    with pytest.raises(InvalidConfig, match="variation"):
        generate_examples(["get_weather"], 5, "extreme")
    with pytest.raises(NotFound, match="built-in tools"):
        generate_examples(["get_wether"], 5)
    with pytest.raises(InvalidInput, match="<pasted schema>, field 'schema.function.parameters.type'"):
        parse_tool_schemas('{"name": "x", "parameters": {"type": "string"}}')
    with pytest.raises(InvalidInput, match="not valid JSON"):
        parse_tool_schemas('{"name": ')


def test_user_example_queries_steer_the_phrasing():
    queries = ["hey can you jot down that {content}", "please stash this: the boiler code is 5521"]
    exs, rep = generate_examples(["memory_store"], 200, "low", seed=4, example_queries=queries)
    texts = [user_text(e).lower() for e in exs]
    assert rep["steering"]["templates"] == 2
    assert sum(t.startswith("hey can you jot down that") for t in texts) > 20
    assert sum(t.startswith("please stash this:") for t in texts) > 20
    check_valid_and_literal(exs)


FLIGHT = {"type": "function", "function": {
    "name": "book_flight", "description": "Book a flight ticket for the user between two airports.",
    "parameters": {"type": "object", "properties": {
        "origin": {"type": "string", "description": "IATA airport code of the departure airport, e.g. 'LHR'"},
        "destination": {"type": "string", "description": "IATA airport code of the arrival airport"},
        "date": {"type": "string", "format": "date", "description": "Departure date"},
        "passengers": {"type": "integer", "minimum": 1, "maximum": 9, "description": "Number of passengers"},
        "cabin_class": {"type": "string", "enum": ["economy", "premium_economy", "business", "first"],
                        "description": "Cabin class"}},
        "required": ["origin", "destination", "date", "passengers"]}}}


def _grams(text, n=4):
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def test_custom_tool_requests_read_like_requests_and_honour_formats():
    exs, rep = generate_examples([FLIGHT], 300, "low", seed=11)
    check_valid_and_literal(exs)
    fn = FLIGHT["function"]
    pasted = _grams(fn["description"]) | {g for p in fn["parameters"]["properties"].values()
                                          for g in _grams(p["description"])}
    for ex in exs:
        assert not _grams(user_text(ex)) & pasted, user_text(ex)  # the description is never pasted in
    args = [c["arguments"] for c in calls_of(exs)]
    assert len(args) > 250
    for a in args:
        assert re.fullmatch(r"[A-Z]{3}", a["origin"]) and re.fullmatch(r"[A-Z]{3}", a["destination"])
        assert a["origin"] in AIRPORTS and a["destination"] in AIRPORTS and a["origin"] != a["destination"]
        date.fromisoformat(a["date"])
        assert 1 <= a["passengers"] <= 9
    assert 0.2 < sum("cabin_class" in a for a in args) / len(args) < 0.7  # the optional argument is asked for often
    for ex in exs:
        if ex["meta"]["category"] != "call":
            continue
        text, (call,) = user_text(ex).lower(), calls_of([ex])
        if re.search(r"business|economy|first class", text):  # mentioned → in the call
            assert "cabin_class" in call["arguments"], text
        if "cabin_class" in call["arguments"]:
            assert said(call["arguments"]["cabin_class"], text)
    d = diversity_report(exs)
    assert d["skeletons_per_100_requests"] > 85 and d["trigrams_per_call"] > 3
    texts = [user_text(e) for e in exs]
    assert sum(t.rstrip().endswith("?") for t in texts) > 30          # questions
    assert sum(t[:1].islower() for t in texts) > 10                   # casual lower case
    assert sum("(" in t and ")" in t for t in texts) > 5               # "Lisbon (LIS)": the code next to the city
    assert any(re.search(r"[A-Z][a-z]+ \d{1,2}(st|nd|rd|th)?,? 20\d\d|\d{1,2} [A-Z][a-z]+ 20\d\d", t) for t in texts)


OPTIONAL_WORDS = {  # words that only appear when the request asks for the optional argument
    "get_weather": {"unit": r"celsius|fahrenheit|°c|°f", "days": r"\bdays\b|-day\b"},
    "calculator": {"precision": r"decimal|\bdp\b"},
    "read_file": {"max_bytes": r"bytes", "encoding": r"encod"},
    "run_sql": {"max_rows": r"\brows\b", "read_only": r"read-only|read only|writes"},
    "send_email": {"cc": r"\bcc\b|copy in|copying in"},
    "memory_store": {"importance": r"importance|priority", "tags": r"\btag|file it under"},
    "create_calendar_event": {"duration_minutes": r"minutes|\bmins?\b", "attendees": r"invite|attendee"},
    "get_current_time": {"format": r"format|12h|24h|12-hour|24-hour|\biso\b"},
}


@pytest.mark.parametrize("level", ["low", "medium"])
def test_optional_arguments_the_request_mentions_are_in_the_call(level):
    exs, _ = generate_examples(DEFAULT_TOOL_NAMES, 600, level, seed=9)
    singles = [e for e in exs if e["meta"]["category"] == "call"]
    with_optional = 0
    for ex in singles:
        text, (call,) = user_text(ex).lower(), calls_of([ex])
        required = set(tools_by_name(ex["tools"])[call["name"]]["function"]["parameters"].get("required", []))
        with_optional += bool(set(call["arguments"]) - required)
        for param, pattern in OPTIONAL_WORDS.get(call["name"], {}).items():
            if re.search(pattern, text):
                assert param in call["arguments"], (text, call)
    assert 0.35 < with_optional / len(singles) < 0.75  # often enough that a model learns to keep them


def test_no_call_data_asks_for_what_the_offered_tools_cannot_do():
    exs, rep = generate_examples(DEFAULT_TOOL_NAMES, 400, "low", seed=0)
    no_call = [e for e in exs if e["meta"]["category"] == "no_call"]
    assert 0.17 <= len(no_call) / len(exs) <= 0.23
    absent = [e for e in no_call if e["meta"]["no_call_kind"] == "absent_tool"]
    assert len(absent) > len(no_call) / 2 and rep["no_call_kinds"]["absent_tool"] == len(absent)
    requested = set()
    for e in absent:
        offered = {t["function"]["name"] for t in e["tools"]}
        wanted = e["meta"]["requested_tool"]
        assert wanted not in offered                     # the tool the request needs is not on offer
        assert not e["messages"][-1].get("tool_calls") and e["messages"][-1]["content"]
        if wanted == "get_weather":
            assert "web_search" not in offered           # a web search could have answered it
        requested.add(wanted)
    assert len(requested & set(DEFAULT_TOOL_NAMES)) >= 5  # requests for the dataset's own tools, offered others
    # one custom tool: requests for unrelated tools and for what the tool does not do ("cancel the flight")
    exs, rep = generate_examples([FLIGHT], 300, "low", seed=2)
    absent = [e for e in exs if e["meta"].get("no_call_kind") == "absent_tool"]
    assert absent and all(e["meta"]["requested_tool"] != "book_flight" for e in absent)
    assert all([t["function"]["name"] for t in e["tools"]] == ["book_flight"] for e in absent)
    assert any(e["meta"]["requested_tool"].startswith("book_flight:") for e in absent)


def test_joined_requests_become_parallel_calls_in_order():
    exs, _ = generate_examples(["get_weather", "calculator", "send_email", "read_file"], 400, "medium", seed=2)
    par = [e for e in exs if e["meta"]["category"] == "parallel"]
    assert len(par) >= 30 and any(len({c["name"] for c in calls_of([e])}) == 1 for e in par)
    for e in par:
        text = user_text(e).lower()
        starts = []
        for call in calls_of([e]):
            # where each value is said as a whole word ("7" is not the 7 inside "79")
            found = [m.start() for v in literals(call["arguments"]) for s in surfaces(v) | SPOKEN.get(v, set())
                     for m in [re.search(r"(?<!\w)" + re.escape(s.lower()) + r"(?!\w)", text)] if m]
            starts.append(max(found) if len({c["name"] for c in calls_of([e])}) == 1 else min(found))
        assert starts == sorted(starts), (text, calls_of([e]))


def test_default_recipe_is_diverse():
    exs, _ = generate_examples(DEFAULT_TOOL_NAMES, 200, "low", seed=0)
    d = diversity_report(exs)
    assert d["skeletons_per_100_requests"] > 90 and d["trigrams_per_call"] > 4
    assert 0.35 < d["optional_arg_share"] < 0.65 and 0.17 <= d["no_call_share"] <= 0.23


def test_stored_dataset_and_name_rules(store):
    row = nursery_generate_data("memory_store", 30, seed=1)
    assert row["name"] == "memory-store" and row["num_examples"] == 30
    with pytest.raises(AlreadyExists, match="already exists: choose another dataset name"):
        nursery_generate_data("memory_store", 30)
    assert nursery_generate_data(["get_weather", "calculator"], 10)["name"] == "combined-tools"
    assert store.count_datasets() == 2


class _FakeLLM(BaseHTTPRequestHandler):
    mode = "ok"

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.mode == "fail":
            self.send_response(500)
            self.end_headers()
            return
        text = body["messages"][1]["content"]
        out = "Kindly handle this: " + text if self.mode == "ok" else "something else entirely"
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": out}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture
def fake_llm():
    srv = HTTPServer(("127.0.0.1", 0), _FakeLLM)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("mode", ["ok", "drops_values", "fail"])
def test_llm_paraphrasing_through_an_openai_compatible_endpoint(fake_llm, mode, monkeypatch):
    monkeypatch.setattr(_FakeLLM, "mode", mode)
    para = Paraphraser(f"http://127.0.0.1:{fake_llm.server_port}/v1", "tiny", timeout=5)
    exs, rep = generate_examples(["get_weather"], 40, "high", seed=1, paraphraser=para)
    assert len(exs) == 40
    check_valid_and_literal(exs)
    used = sum(1 for e in exs if e["meta"].get("paraphrased_by") == "llm")
    if mode == "ok":
        assert used > 5 and rep["paraphrase"]["used"] == used and not rep["notes"]
    elif mode == "drops_values":
        assert used == 0 and rep["paraphrase"]["rejected"] > 5
    else:
        assert used == 0 and rep["paraphrase"]["failed"] and "templates were used" in rep["notes"][0]


def test_paraphraser_from_env(monkeypatch):
    monkeypatch.delenv("NURSERY_PARAPHRASE_URL", raising=False)
    assert Paraphraser.from_env() is None
    monkeypatch.setenv("NURSERY_PARAPHRASE_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.setenv("NURSERY_PARAPHRASE_MODEL", "qwen")
    p = Paraphraser.from_env()
    assert p.base_url == "http://127.0.0.1:9/v1" and p.model == "qwen"
    assert set(LEVELS) == {"low", "medium", "high"}


def test_a_quoted_value_is_never_two_calls():
    """'recipes for "a and b"' quotes one literal: two calls with a and b would be a wrong label."""
    tool = {"name": "search_recipes", "description": "Search recipes",
            "parameters": {"type": "object", "properties": {"query": {"type": "string", "description": "Search terms"},
                                                            "limit": {"type": "integer"}}, "required": ["query"]}}
    parallel = 0
    for seed in range(4):
        exs, _ = generate_examples([tool], 200, "medium", seed=seed)
        for e in exs:
            calls = calls_of([e])
            if e["meta"]["category"] != "parallel" or len(calls) != 2:
                continue
            parallel += 1
            a, b = (re.escape(c["arguments"]["query"]) for c in calls)
            assert not re.search(r"[\"“'`][^\"”'`]*" + a + r"[^\"”'`]*" + b + r"[\"”'`]", user_text(e)), user_text(e)
    assert parallel >= 20


@pytest.mark.parametrize("level", ["low", "medium"])
def test_runs_of_examples_offer_one_drawn_tool_list(level):
    """requests_per_tool_set: consecutive examples reuse one drawn list (exactly the same tools in the same
    order, so training can share its rendering), every call still uses offered tools, and the runs cover
    calls and requests the list cannot serve alike."""
    exs, rep = generate_examples(DEFAULT_TOOL_NAMES, 240, level, seed=3, requests_per_tool_set=8)
    assert rep["requests_per_tool_set"] == 8
    lists = [json.dumps(e["tools"]) for e in exs]
    runs, k = [], 0
    while k < len(lists):
        j = k
        while j < len(lists) and lists[j] == lists[k]:
            j += 1
        runs.append(j - k)
        k = j
    assert max(runs) <= 8 * 2  # a new draw can happen to repeat the list before it
    assert sum(runs) / len(runs) >= 4, runs  # most runs reach several examples
    for e in exs:
        offered = {t["function"]["name"] for t in e["tools"]}
        called = {c["function"]["name"] for m in e["messages"] for c in m.get("tool_calls") or []}
        assert called <= offered
        if e["meta"].get("no_call_kind") == "absent_tool":
            assert e["meta"]["requested_tool"].split(":")[0] not in offered or ":" in e["meta"]["requested_tool"]
    mixed = [i for i in range(1, len(exs)) if lists[i] == lists[i - 1]
             and (exs[i]["meta"]["category"] == "no_call") != (exs[i - 1]["meta"]["category"] == "no_call")]
    assert mixed  # the same tools with a request they serve next to one they do not
    singles, _ = generate_examples(DEFAULT_TOOL_NAMES, 240, level, seed=3, requests_per_tool_set=1)
    assert len({json.dumps(e["tools"]) for e in singles}) > 2 * len(set(lists))
    with pytest.raises(InvalidConfig, match="requests per tool set"):
        generate_examples(DEFAULT_TOOL_NAMES, 10, level, requests_per_tool_set=0)
