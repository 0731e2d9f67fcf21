"""The Model Cradle CLI in a subprocess: evaluate (model and predictions), leaderboard, test-model, compare-models,
and import-dataset --format bfcl."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cradle_helpers import make_adapter, store_dataset
from nursery_core.training.rendering import format_calls

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, home):
    env = {**os.environ, "NURSERY_HOME": str(home), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "nursery_core", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_evaluate_an_adapter_prints_the_metrics(tiny_model_dir, nursery_home):
    store_dataset("weather", n=8)
    make_adapter("ada", tiny_model_dir, seed=1, dataset="weather")
    r = cli("evaluate", "ada", "--dataset", "weather", "--limit", "3", "--max-new-tokens", "8", "--json",
            home=nursery_home)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["model"] == "ada" and out["num_examples"] == 3 and out["id"]
    for k in ("ast_accuracy", "format_validity", "call_precision", "call_recall", "no_call_precision",
              "no_call_recall", "name_accuracy", "arg_exact_match", "arg_f1", "schema_validity",
              "hallucinated_tool_rate", "hallucinated_param_rate", "hallucinated_tool_names", "per_category"):
        assert k in out["metrics"], k


@pytest.mark.slow
def test_test_model_and_compare_models(tiny_model_dir, nursery_home):
    store_dataset("weather", n=8)
    make_adapter("ada", tiny_model_dir, seed=1, dataset="weather")
    r = cli("test-model", "ada", "--prompt", "Weather in Oslo?", "--max-new-tokens", "6", "--json", home=nursery_home)
    assert r.returncode == 0, r.stderr
    t = json.loads(r.stdout)
    assert t["tools"] == ["get_weather", "set_timer"] and "completion" in t and "calls" in t

    r = cli("compare-models", "ada", str(tiny_model_dir), "--prompt", "hi", "--prompt", "Timer 2 min",
            "--max-new-tokens", "6", "--json", home=nursery_home)
    assert r.returncode == 0, r.stderr
    assert [row["prompt"] for row in json.loads(r.stdout)["rows"]] == ["hi", "Timer 2 min"]


def test_predictions_leaderboard_and_errors(nursery_home, tmp_path):
    from cradle_helpers import examples
    from nursery_core.records import example_calls

    store_dataset("weather", n=8)
    preds = tmp_path / "preds.jsonl"
    preds.write_text("\n".join(json.dumps({"id": ex["id"], "output": format_calls(example_calls(ex)) or "no"})
                               for ex in examples(8)))
    r = cli("evaluate", "--predictions", str(preds), "--dataset", "weather", "--split", "all", "--json",
            home=nursery_home)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["metrics"]["ast_accuracy"] == 1.0
    r = cli("evaluate", "--predictions", str(preds), "--dataset", "weather", "--split", "all", home=nursery_home)
    assert r.returncode == 0 and "ast_accuracy" in r.stdout and "1.000" in r.stdout
    assert "no prediction" not in r.stdout
    r = cli("leaderboard", "--json", home=nursery_home)
    assert [row["model"] for row in json.loads(r.stdout)] == ["predictions:preds"]
    # a file that covers only part of the split says so beside its (perfect) score
    part = tmp_path / "part.jsonl"
    part.write_text("\n".join(preds.read_text().splitlines()[:3]))
    r = cli("evaluate", "--predictions", str(part), "--dataset", "weather", "--split", "all", home=nursery_home)
    assert r.returncode == 0 and "warning: 5 example(s) of the all split have no prediction" in r.stdout, r.stdout
    # errors: one line on stderr, non-zero exit
    r = cli("evaluate", "--dataset", "weather", home=nursery_home)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "predictions" in r.stderr
    r = cli("evaluate", "ghost", "--dataset", "weather", home=nursery_home)
    assert r.returncode == 2 and "no model named 'ghost'" in r.stderr
    r = cli("evaluate", "x", "--dataset", "nope", home=nursery_home)
    assert r.returncode == 2 and "no dataset named 'nope'" in r.stderr


def test_import_bfcl_from_the_cli(samples_dir, nursery_home):
    bfcl = samples_dir / "bfcl"
    r = cli("import-dataset", "--format", "bfcl", str(bfcl / "BFCL_v4_simple_python.json"), "--answers",
            str(bfcl / "possible_answer" / "BFCL_v4_simple_python.json"), "--name", "bfcl-simple", "--json",
            home=nursery_home)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["num_examples"] == 40 and out["split"]["eval"] == 40
    r = cli("import-dataset", "--format", "bfcl", str(bfcl / "BFCL_v4_simple_python.json"), "--name", "x",
            home=nursery_home)
    assert r.returncode == 2 and "possible answer" in r.stderr
