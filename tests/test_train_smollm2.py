"""The packaged SmolLM2 trains for a few steps through the CLI and shows up in list-models (slow)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from training_helpers import store_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_train_local_on_the_embedded_smollm2(smollm2_home):
    store_dataset("lockers", n=12)
    r = subprocess.run([sys.executable, "-m", "nursery_core", "train-local", "lockers", "--max-steps", "3",
                        "--batch-size", "2", "--output", "smol-lockers", "--wait", "--json"],
                       cwd=ROOT, capture_output=True, text=True, timeout=900, env=dict(os.environ))
    assert r.returncode == 0, r.stderr[-3000:]
    status = json.loads(r.stdout)
    assert status["status"] == "succeeded" and status["step"] == 3
    assert status["last_loss"] is not None and status["eval_loss"] is not None
    models = json.loads(subprocess.run([sys.executable, "-m", "nursery_core", "list-models", "--json"], cwd=ROOT,
                                       capture_output=True, text=True, env=dict(os.environ)).stdout)
    smol = next(m for m in models if m["name"] == "smol-lockers")
    assert smol["base_model"] == "smollm2-135m" and smol["local"]
    adapter = json.loads(open(os.path.join(smol["path"], "adapter_config.json")).read())
    assert adapter["base_model_name_or_path"] == "smollm2-135m"
