"""The training CLI end to end in subprocesses: train-local --wait --json on the tiny model, then list-models,
job-status and list-jobs; bad input exits non-zero with one line."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from training_helpers import store_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "nursery_core", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ))


def test_train_local_wait_json_then_the_model_is_listed(tiny_model_dir):
    store_dataset("lockers", n=10)
    r = cli("train-local", "lockers", "--base-model", str(tiny_model_dir), "--output", "tiny-lockers",
            "--max-steps", "3", "--lr", "0.002", "--lora-r", "4", "--wait", "--json")
    assert r.returncode == 0, r.stderr
    status = json.loads(r.stdout)
    assert status["status"] == "succeeded" and status["model_name"] == "tiny-lockers"
    assert status["step"] == 3 and len(status["loss_history"]) == 3
    assert "step 3/3" in r.stderr  # progress streamed on stderr
    models = json.loads(cli("list-models", "--json").stdout)
    tiny = [m for m in models if m["name"] == "tiny-lockers"]
    assert tiny and tiny[0]["dataset"] == "lockers" and tiny[0]["job_id"] == status["id"]
    assert tiny[0]["config"]["r"] == 4 and tiny[0]["final_loss"] is not None
    assert any(m["kind"] == "base" and m["name"] == "smollm2-135m" for m in models)
    assert json.loads(cli("job-status", status["id"], "--json").stdout)["status"] == "succeeded"
    assert [j["id"] for j in json.loads(cli("list-jobs", "--json").stdout)] == [status["id"]]
    # the name is now taken
    again = cli("train-local", "lockers", "--base-model", str(tiny_model_dir), "--output", "tiny-lockers")
    assert again.returncode != 0 and "already exists" in again.stderr
    assert cli("delete-model", "tiny-lockers", "--json").returncode == 0
    assert not any(m["name"] == "tiny-lockers" for m in json.loads(cli("list-models", "--json").stdout))


@pytest.mark.parametrize("args, message", [
    (["train-local", "nope"], "no dataset named 'nope'"),
    (["train-local", "lockers", "--base-model", "gpt-17"], "unknown base model 'gpt-17'"),
    (["train-local", "lockers", "--lr", "-1"], "learning_rate must be > 0"),
    (["train-local", "lockers", "--lora-r", "0"], "r must be >= 1"),
    (["train-local", "lockers", "--base-model", "qwen2.5-7b"], "not on this machine"),
    (["train-local", "lockers", "--output", "../escape"], "not allowed"),
    (["train-local", "lockers", "--set", "dropout"], "--set needs KEY=VALUE"),
    (["train-local", "lockers", "--set", "lora_rank=8"], "unknown training setting(s): lora_rank"),
    (["train-local", "lockers", "--set", "dropout=2"], "dropout must be <= 0.9"),
    (["job-status", "jdoesnotexist"], "no job with id"),
    (["cancel-job", "jdoesnotexist"], "no job with id"),
])
def test_bad_input_exits_non_zero_with_one_line_and_queues_nothing(args, message):
    store_dataset("lockers", n=10)
    r = cli(*args)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert json.loads(cli("list-jobs", "--json").stdout) == []


def test_set_and_lora_layers_reach_the_queued_job(tiny_model_dir):
    store_dataset("lockers", n=10)
    r = cli("train-local", "lockers", "--base-model", str(tiny_model_dir), "--lora-layers", "0",
            "--set", "dropout=0.1", "--set", "target_modules=q_proj,v_proj", "--set", "grad_accum=3", "--json")
    assert r.returncode == 0, r.stderr
    cfg = json.loads(r.stdout)["config"]
    assert cfg["lora_layers"] == 0 and cfg["dropout"] == 0.1 and cfg["grad_accum"] == 3
    assert cfg["target_modules"] == ["q_proj", "v_proj"]
