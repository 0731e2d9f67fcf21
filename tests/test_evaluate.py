"""nursery_evaluate: metrics on predictions files (hand-computed), storage and details, leaderboard, BFCL import,
and a tiny model evaluated end to end."""
import json

import pytest

from cradle_helpers import make_adapter, one_thread, store_dataset  # noqa: F401 (fixture)
from nursery_core.errors import InvalidInput
from nursery_core.evaluation.api import evaluation_details, nursery_evaluate, nursery_leaderboard
from nursery_core.training.rendering import format_calls


def calls(*pairs):
    return format_calls([{"name": n, "arguments": a} for n, a in pairs])


# ex0..ex7 of cradle_helpers.examples(8): call, call, parallel, no_call, call, call, parallel, no_call
MIXED = {
    "ex0": calls(("get_weather", {"city": "paris"})),                                   # right (case-insensitive)
    "ex1": calls(("get_weather", {"city": "Bergen"})),                                  # wrong value
    "ex2": calls(("set_timer", {"minutes": 4}), ("get_weather", {"city": "Lima", "unit": "fahrenheit"})),
    "ex3": "Lima is lovely.",                                                           # right: no call
    "ex4": calls(("get_forecast", {"city": "Cairo"})),                                  # hallucinated tool
    "ex5": calls(("get_weather", {"city": "Tokyo", "country": "JP"})),                  # hallucinated param
    "ex6": calls(("get_weather", {"city": "Quito", "unit": "fahrenheit"})) + "\n<tool_call>{oops</tool_call>",
    "ex7": calls(("get_weather", {"city": "Perth"})),                                   # call where none is due
}


def write_preds(path, outputs):
    path.write_text("\n".join(json.dumps({"id": k, "output": v}) for k, v in outputs.items()) + "\n")
    return path


def test_metrics_of_a_predictions_file_match_hand_computed_values(tmp_path):
    store_dataset("weather", n=8)
    r = nursery_evaluate(dataset="weather", split="all", predictions=write_preds(tmp_path / "p.jsonl", MIXED))
    m = r["metrics"]
    assert r["num_examples"] == 8 and r["model"] == "predictions:p"
    expected = {"ast_accuracy": 0.375, "format_validity": 0.875, "call_precision": 0.8571, "call_recall": 1.0,
                "no_call_precision": 1.0, "no_call_recall": 0.5, "name_accuracy": 0.625, "arg_exact_match": 0.25,
                "arg_precision": 0.6364, "arg_recall": 0.7, "arg_f1": 0.6667, "schema_validity": 0.75,
                "count_match": 0.75, "hallucinated_tool_rate": 0.125, "hallucinated_param_rate": 0.1}
    assert {k: m[k] for k in expected} == expected
    assert m["hallucinated_tool_names"] == {"get_forecast": 1}
    assert m["hallucinated_param_names"] == {"get_weather.country": 1}
    per = m["per_category"]
    assert {c: per[c]["ast_accuracy"] for c in per} == {"call": 0.25, "parallel": 0.5, "no_call": 0.5}


def test_gold_outputs_score_perfectly(tmp_path):
    from cradle_helpers import examples
    from nursery_core.records import example_calls

    store_dataset("weather", n=8)
    gold = {ex["id"]: (format_calls(example_calls(ex)) or "No tool needed.") for ex in examples(8)}
    m = nursery_evaluate(dataset="weather", split="all", predictions=write_preds(tmp_path / "g.jsonl", gold))["metrics"]
    for k in ("ast_accuracy", "format_validity", "call_precision", "call_recall", "name_accuracy",
              "arg_exact_match", "arg_f1", "schema_validity", "no_call_recall"):
        assert m[k] == 1.0, k
    assert m["hallucinated_tool_rate"] == 0.0


def test_results_are_stored_with_details_and_ranked(tmp_path, store):
    store_dataset("weather", n=8)
    good = nursery_evaluate("good-model", dataset="weather", split="all",
                            predictions=write_preds(tmp_path / "a.jsonl", {"ex0": calls(("get_weather", {"city": "Paris"}))}))
    bad = nursery_evaluate("bad-model", dataset="weather", split="all",
                           predictions=write_preds(tmp_path / "b.jsonl", MIXED))
    assert good["settings"]["missing_predictions"] == 7 and good["num_examples"] == 1
    row = store.get_evaluation(bad["id"])
    assert row["model"] == "bad-model" and row["ast_accuracy"] == 0.375 and row["metrics"]["arg_f1"] == 0.6667
    details = evaluation_details(bad["id"])
    assert [d["id"] for d in details] == [f"ex{i}" for i in range(8)]
    assert details[4]["hallucinated_tools"] == ["get_forecast"] and not details[4]["ast_ok"]
    board = nursery_leaderboard("weather")
    assert [(r["model"], r["rank"]) for r in board] == [("good-model", 1), ("bad-model", 2)]
    # a newer evaluation of the same model replaces its line
    nursery_evaluate("good-model", dataset="weather", split="all", predictions=tmp_path / "b.jsonl")
    board = nursery_leaderboard()
    assert len(board) == 2 and all(r["ast_accuracy"] == 0.375 for r in board)


def test_bad_predictions_files_are_clear_errors(tmp_path):
    store_dataset("weather", n=8)
    p = tmp_path / "p.jsonl"
    p.write_text('{"id": "ex0", "output": "x"}\nnot json\n')
    with pytest.raises(InvalidInput, match=r"p.jsonl:2"):
        nursery_evaluate(dataset="weather", predictions=p)
    p.write_text('{"id": "nope", "output": "x"}\n')
    with pytest.raises(InvalidInput, match="'nope' is not in dataset"):
        nursery_evaluate(dataset="weather", predictions=p)
    p.write_text('{"id": "ex0", "output": 5}\n')
    with pytest.raises(InvalidInput, match="field 'output'"):
        nursery_evaluate(dataset="weather", predictions=p)
    with pytest.raises(InvalidInput, match="model"):
        nursery_evaluate(dataset="weather")


def test_bfcl_import_and_scoring(samples_dir, tmp_path):
    from nursery_core.datasets import load_examples, nursery_import_dataset
    from nursery_core.evaluation.checker import gold_from_possible_answer

    bfcl = samples_dir / "bfcl"
    row = nursery_import_dataset(bfcl / "BFCL_v4_parallel.json", "bfcl-parallel", format="bfcl",
                                 answers=bfcl / "possible_answer" / "BFCL_v4_parallel.json")
    assert row["split"]["eval"] == row["num_examples"] == 25 and row["split"]["train"] == 0
    exs = load_examples("bfcl-parallel", "eval")
    assert exs[0]["meta"]["bfcl_category"] == "parallel" and exs[0]["meta"]["possible_answer"]
    # every listed alternative is accepted: answer with the LAST alternative of each parameter
    outs = {}
    for ex in exs:
        chosen = [{name: {p: [alts[-1]] for p, alts in params.items()}}
                  for (name, params), in (a.items() for a in ex["meta"]["possible_answer"])]
        outs[ex["id"]] = format_calls(gold_from_possible_answer(chosen))
    m = nursery_evaluate(dataset="bfcl-parallel", predictions=write_preds(tmp_path / "p.jsonl", outs))["metrics"]
    assert m["ast_accuracy"] == 1.0 and set(m["per_category"]) == {"parallel"}
    with pytest.raises(InvalidInput, match="answers"):
        nursery_import_dataset(bfcl / "BFCL_v4_parallel.json", "x", answers=bfcl / "possible_answer" / "BFCL_v4_parallel.json")


def test_tiny_model_end_to_end(tiny_model_dir, store, one_thread):
    store_dataset("weather", n=8)
    make_adapter("ada", tiny_model_dir, seed=1, dataset="weather")
    seen = []
    r = nursery_evaluate("ada", "weather", split="all", limit=4, max_new_tokens=12, batch_size=2,
                         progress=lambda done, total: seen.append((done, total)))
    # free, then guarded (the default scores both): one progress bar over both runs
    assert r["num_examples"] == 4 and seen[-1] == (8, 8)
    assert r["settings"]["source"] == "model" and r["settings"]["max_new_tokens"] == 12
    assert [x["decoding"] for x in r["runs"]] == ["free", "guarded"] and r["decoding"] == "guarded"
    m = r["metrics"]
    for k in ("ast_accuracy", "format_validity", "call_recall", "arg_f1", "name_accuracy", "per_category"):
        assert k in m
    # random weights do not call tools correctly; the score is whatever the outputs earn, and is stored
    details = evaluation_details(r["id"])
    assert len(details) == 4 and all(isinstance(d["output"], str) for d in details)
    assert store.latest_evaluations(["ada"])["ada"]["id"] == r["id"]


def test_an_unknown_model_is_named_as_such_not_blamed_on_the_dataset(store, tmp_path):
    """`evaluate nosuch` without a dataset said "nothing to evaluate 'nosuch' on"; the model is what is missing.
    A local path that does not exist is said to not exist (not "no config.json")."""
    from nursery_core.base_models import resolve
    from nursery_core.errors import InvalidInput, NotFound
    from nursery_core.evaluation.api import evaluation_plan

    with pytest.raises(NotFound, match="no model named 'nosuch'"):
        evaluation_plan("nosuch")
    with pytest.raises(InvalidInput, match="does not exist"):
        resolve(str(tmp_path / "no-such-dir"))
