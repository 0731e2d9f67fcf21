"""Other models' outputs are scorable: `evaluate --predictions` reads Hermes (object or string arguments, a
`parameters` key), JSON and ```json blocks, JSON lists, Llama 3 pythonic and Mistral [TOOL_CALLS] forms, by
choice or auto-detected; a format error means truly undecodable; Nursery's own models stay strict."""
import json

import pytest

from cradle_helpers import examples, store_dataset
from nursery_core.evaluation.api import evaluation_details, nursery_evaluate
from nursery_core.evaluation.formats import detect, parse_output
from nursery_core.errors import InvalidInput

CALL = {"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2]}}
FORMS = {
    "hermes": ['<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2]}}\n</tool_call>',
               '<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\", \\"days\\": [1, 2]}"}'
               '</tool_call>',
               "<tool_call>\n{'name': 'get_weather', 'parameters': {'city': 'Paris', 'days': [1, 2]}}\n</tool_call>"],
    "json": ['{"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2]}}',
             'Here you go:\n```json\n{"name": "get_weather", "parameters": {"city": "Paris", "days": [1, 2]}}\n```',
             '[{"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2]}}]',
             '{"tool_calls": [{"type": "function", "function": {"name": "get_weather", '
             '"arguments": "{\\"city\\": \\"Paris\\", \\"days\\": [1, 2]}"}}]}'],
    "pythonic": ['[get_weather(city="Paris", days=[1, 2])]', "get_weather(city='Paris', days=[1, 2])"],
    "mistral": ['[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2]}}]',
                '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris", "days": [1, 2]}'],
}


@pytest.mark.parametrize("fmt, text", [(f, t) for f, ts in FORMS.items() for t in ts])
def test_each_form_is_read_by_choice_and_detected(fmt, text):
    assert detect(text) == fmt
    for choice in (fmt, "auto"):
        parsed, used = parse_output(text, choice)
        assert used == fmt and parsed.format_ok and parsed.calls == [CALL], parsed.errors


def test_parallel_calls_in_each_form():
    two = {"hermes": FORMS["hermes"][0] + "\n" + FORMS["hermes"][0].replace("Paris", "Rome"),
           "json": json.dumps([CALL, {**CALL, "arguments": {**CALL["arguments"], "city": "Rome"}}]),
           "pythonic": '[get_weather(city="Paris", days=[1, 2]), get_weather(city="Rome", days=[1, 2])]',
           "mistral": "[TOOL_CALLS]" + json.dumps([CALL, {**CALL, "arguments": {**CALL["arguments"], "city": "Rome"}}])}
    for fmt, text in two.items():
        parsed, _ = parse_output(text)
        assert [c["arguments"]["city"] for c in parsed.calls] == ["Paris", "Rome"], fmt


@pytest.mark.parametrize("text, attempted", [
    ("It is sunny in Paris (France) today.", False), ("```python\nprint(1)\n```", False),
    ('<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}</tool_call>', True),
    ('[get_weather("Paris")]', True), ('[TOOL_CALLS][{"name": "get_weather", "arguments": 5}]', True),
    ('```json\n{"name": "get_weather", "arguments": {"city": \n```', True),
])
def test_plain_answers_are_no_call_and_only_undecodable_attempts_are_format_errors(text, attempted):
    parsed, _ = parse_output(text)
    assert parsed.calls == []
    assert parsed.attempted_call is attempted and parsed.format_ok is (not attempted)


def test_the_strict_parser_is_unchanged_for_nursery_models():
    parsed, used = parse_output(FORMS["hermes"][2], "nursery")
    assert used == "nursery" and not parsed.format_ok  # a Python dict with 'parameters' is not Nursery's format
    parsed, _ = parse_output(FORMS["json"][0], "nursery")
    assert parsed.calls == [] and not parsed.attempted_call


def test_evaluate_predictions_in_other_models_forms(tmp_path):
    from nursery_core.records import example_calls
    store_dataset("weather", n=8)
    exs = examples(8)

    def pythonic(calls):
        return "[" + ", ".join(f"{c['name']}(" + ", ".join(f"{k}={json.dumps(v)}" for k, v in c["arguments"].items())
                               + ")" for c in calls) + "]"

    outputs = {}
    for i, ex in enumerate(exs):
        calls = example_calls(ex)
        if not calls:
            outputs[ex["id"]] = "No tool is needed for that."
        elif i % 2:
            outputs[ex["id"]] = pythonic(calls)
        else:
            outputs[ex["id"]] = "[TOOL_CALLS]" + json.dumps(calls)
    preds = tmp_path / "other.jsonl"
    preds.write_text("".join(json.dumps({"id": k, "output": v}) + "\n" for k, v in outputs.items()))
    r = nursery_evaluate(dataset="weather", split="all", predictions=preds)
    assert r["metrics"]["ast_accuracy"] == 1.0 and r["metrics"]["format_validity"] == 1.0
    found = r["settings"]["output_formats_found"]
    assert found["plain answer"] == 2 and found["pythonic"] + found["mistral"] == 6
    assert {d["output_format"] for d in evaluation_details(r["id"])} == {"pythonic", "mistral", None}
    strict = nursery_evaluate(dataset="weather", split="all", predictions=preds, output_format="hermes")
    assert strict["metrics"]["ast_accuracy"] == 0.25  # only the two no-call answers are right
    with pytest.raises(InvalidInput, match="output format must be one of"):
        nursery_evaluate(dataset="weather", split="all", predictions=preds, output_format="xml")


def test_cli_output_format_option(tmp_path, nursery_home):
    from test_cli_cradle import cli
    store_dataset("weather", n=8)
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"id": examples(8)[0]["id"], "output": "[get_weather(city='Oslo')]"}) + "\n")
    r = cli("evaluate", "--predictions", str(preds), "--dataset", "weather", "--split", "all",
            "--output-format", "pythonic", "--json", home=nursery_home)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["settings"]["output_format"] == "pythonic"
    r = cli("evaluate", "x", "--dataset", "weather", "--output-format", "json", home=nursery_home)
    assert r.returncode == 2 and "--output-format reads a predictions file" in r.stderr


def test_llama_python_tag_and_twice_encoded_arguments():
    parsed, used = parse_output('<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris", "days": [1, 2]}}')
    assert used == "json" and parsed.calls == [CALL]
    twice = json.dumps(json.dumps(CALL["arguments"]))
    parsed, used = parse_output('<tool_call>{"name": "get_weather", "arguments": ' + twice + '}</tool_call>')
    assert used == "hermes" and parsed.calls == [CALL]
