"""The checker over real BFCL files (../shared/samples/bfcl): their own possible answers score 100%,
every listed alternative passes, corrupted answers fail, irrelevance passes only without a call."""
import copy
import json

import pytest

from nursery_core.evaluation.bfcl import bfcl_examples
from nursery_core.evaluation.checker import _concrete, find_tool, gold_from_possible_answer
from nursery_core.evaluation.metrics import score_example, summarise
from nursery_core.training.rendering import format_calls

CALL_FILES = ["BFCL_v4_simple_python.json", "BFCL_v4_multiple.json", "BFCL_v4_parallel.json",
              "BFCL_v4_parallel_multiple.json", "BFCL_v4_live_simple.json", "BFCL_v4_live_multiple.json"]
NO_CALL_FILES = ["BFCL_v4_irrelevance.json", "BFCL_v4_live_irrelevance.json"]


def load(samples_dir, name):
    bfcl = samples_dir / "bfcl"
    answers = bfcl / "possible_answer" / name
    return bfcl_examples(bfcl / name, answers if answers.exists() else None)


@pytest.mark.parametrize("name", CALL_FILES)
def test_own_possible_answers_score_100_percent(samples_dir, name):
    examples = load(samples_dir, name)
    details = [score_example(ex, format_calls(gold_from_possible_answer(ex["meta"]["possible_answer"])))
               for ex in examples]
    metrics = summarise(details)
    assert metrics["ast_accuracy"] == 1.0, [d["ast_error"] for d in details if not d["ast_ok"]][:3]
    assert metrics["format_validity"] == 1.0 and metrics["call_recall"] == 1.0
    assert metrics["name_accuracy"] == 1.0 and metrics["count_match"] == 1.0 and metrics["arg_recall"] == 1.0


@pytest.mark.parametrize("name", CALL_FILES)
def test_every_listed_alternative_passes(samples_dir, name):
    checked = 0
    for ex in load(samples_dir, name):
        possible = ex["meta"]["possible_answer"]
        base = gold_from_possible_answer(possible)
        for i, answer in enumerate(possible):
            (fn, params), = answer.items()
            doc = find_tool(ex["tools"], fn)["parameters"]
            for p, alts in params.items():
                for alt in alts:
                    # A few BFCL answers list "" for a required param, or a param of another function: BFCL's
                    # own checker fails those alternatives too.
                    if (alt == "" and p in (doc.get("required") or [])) or (alt != "" and p not in doc["properties"]):
                        continue
                    calls = copy.deepcopy(base)
                    if alt == "":
                        calls[i]["arguments"].pop(p, None)
                    else:
                        calls[i]["arguments"][p] = _concrete(alt)
                    d = score_example(ex, format_calls(calls))
                    assert d["ast_ok"], (ex["id"], p, alt, d["ast_error"])
                    checked += 1
    assert checked > 0


def _wrong_type(value):
    return "not a number" if isinstance(value, (int, float, bool)) else 12345


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 7
    if isinstance(value, str):
        return value + " zzz"
    if isinstance(value, list):
        return list(reversed(value)) + [value[0]] if value else ["zzz"]
    return None


def corruptions(ex):
    """(kind, calls) pairs, each one deliberate mistake in the first expected call."""
    possible = ex["meta"]["possible_answer"]
    gold = gold_from_possible_answer(possible)
    (fn, params), = possible[0].items()
    tool = find_tool(ex["tools"], fn)
    props = tool["parameters"]["properties"]
    out = []
    bad = copy.deepcopy(gold)
    bad[0]["name"] = fn + "_v2"
    out.append(("wrong name", bad))
    required = tool["parameters"].get("required") or []
    if required:
        bad = copy.deepcopy(gold)
        bad[0]["arguments"].pop(required[0], None)
        out.append(("missing required", bad))
    bad = copy.deepcopy(gold)
    bad[0]["arguments"]["zz_unknown_param"] = 1
    out.append(("extra param", bad))
    for p, value in gold[0]["arguments"].items():
        if not props.get(p, {}).get("type") or isinstance(value, dict):
            continue
        bad = copy.deepcopy(gold)
        bad[0]["arguments"][p] = _wrong_type(value)
        if not any(isinstance(a, type(bad[0]["arguments"][p])) for a in params[p]):
            out.append(("wrong type", bad))
        changed = _changed(value)
        if changed is not None and json.dumps(changed) not in {json.dumps(_concrete(a)) for a in params[p]}:
            bad = copy.deepcopy(gold)
            bad[0]["arguments"][p] = changed
            out.append(("changed value", bad))
        break
    return out


@pytest.mark.parametrize("name", CALL_FILES)
def test_corrupted_answers_score_as_wrong(samples_dir, name):
    kinds = set()
    for ex in load(samples_dir, name):
        for kind, calls in corruptions(ex):
            d = score_example(ex, format_calls(calls))
            assert not d["ast_ok"], (ex["id"], kind, calls)
            kinds.add(kind)
    assert {"wrong name", "extra param", "changed value", "wrong type"} <= kinds


@pytest.mark.parametrize("name", CALL_FILES)
def test_no_output_and_bad_json_fail_call_entries(samples_dir, name):
    for ex in load(samples_dir, name)[:5]:
        assert not score_example(ex, "I think you should do it yourself.")["ast_ok"]
        assert not score_example(ex, '<tool_call>\n{"name": oops}\n</tool_call>')["ast_ok"]


@pytest.mark.parametrize("name", NO_CALL_FILES)
def test_irrelevance_passes_only_without_a_call(samples_dir, name):
    examples = load(samples_dir, name)
    assert all(ex["meta"]["category"] == "no_call" for ex in examples)
    prose = [score_example(ex, "Sorry, none of my tools can do that.") for ex in examples]
    assert summarise(prose)["ast_accuracy"] == 1.0
    calling = []
    for ex in examples:
        fn = ex["tools"][0]["function"]
        args = {k: 1 for k in fn["parameters"].get("required") or []}
        calling.append(score_example(ex, format_calls([{"name": fn["name"], "arguments": args}])))
    m = summarise(calling)
    assert m["ast_accuracy"] == 0.0 and m["no_call_recall"] == 0.0
    malformed = [score_example(ex, "<tool_call>\n{not json}\n</tool_call>") for ex in examples]
    assert summarise(malformed)["ast_accuracy"] == 0.0


def test_multi_turn_and_relevance_files_are_refused_clearly(samples_dir):
    from nursery_core.errors import InvalidInput

    bfcl = samples_dir / "bfcl"
    with pytest.raises(InvalidInput, match="not supported"):
        bfcl_examples(bfcl / "BFCL_v4_multi_turn_base.json", bfcl / "possible_answer/BFCL_v4_multi_turn_base.json")
    with pytest.raises(InvalidInput, match="live_relevance"):
        bfcl_examples(bfcl / "BFCL_v4_live_relevance.json")
