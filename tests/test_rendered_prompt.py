"""See what the model sees: an example rendered by the trainer's chat template with the trainer's label mask —
the highlighted text is exactly the tokens the loss is computed on; a job's own data renders with its config."""
from __future__ import annotations

import json

import pytest

from nursery_core import paths
from nursery_core.jobs import api
from nursery_core.training.config import TrainConfig
from nursery_core.training.preview import job_examples, render_example, tokenizer_for
from nursery_core.training.rendering import encode_example
from training_helpers import examples, store_dataset


def _call_example():
    return next(ex for ex in examples(6) if any(m.get("tool_calls") for m in ex["messages"]))


def test_trained_segments_are_exactly_the_label_mask(tiny_model_dir):
    cfg = TrainConfig(base_model=str(tiny_model_dir), base_model_dir=str(tiny_model_dir))
    ex = _call_example()
    view = render_example(ex, cfg)
    tok = tokenizer_for(cfg)
    enc = encode_example(tok, ex, cfg.max_length)
    # the text is the chat template's, with the tools in the system turn and the call as a <tool_call> block
    assert "".join(s["text"] for s in view["segments"]) == view["text"]
    assert "<tool_call>" in view["text"] and ex["tools"][0]["function"]["name"] in view["text"].split("<tool_call>")[0]
    assert view["num_tokens"] == len(enc["input_ids"])
    assert view["trained_tokens"] == sum(1 for x in enc["labels"] if x != -100) > 0
    trained = "".join(s["text"] for s in view["segments"] if s["trained"])
    # the trained text re-tokenizes to the labelled ids: nothing else is highlighted
    assert tok(trained, add_special_tokens=False)["input_ids"] == [x for x in enc["labels"] if x != -100]
    assert "<tool_call>" in trained and ex["messages"][0]["content"] not in trained
    assert not view["truncated"]


def test_max_length_cut_is_shown(tiny_model_dir):
    cfg = TrainConfig(base_model=str(tiny_model_dir), base_model_dir=str(tiny_model_dir), max_length=64)
    view = render_example(_call_example(), cfg)
    assert view["num_tokens"] == 64 and view["truncated"] and view["cut_text"]


def test_a_jobs_own_data_renders_with_its_config(tiny_model_dir):
    store_dataset("lockers", n=8)
    job = api.create_job("local", "lockers", str(tiny_model_dir), "seen", TrainConfig(max_length=96),
                         base_model_dir=str(tiny_model_dir))
    rows, cfg = job_examples(job["id"], "train", limit=3)
    assert len(rows) == 3 and cfg.max_length == 96
    on_disk = [json.loads(line) for line in (paths.job_dir(job["id"]) / "data" / "train.jsonl").read_text().splitlines()]
    assert rows == on_disk[:3]
    assert render_example(rows[0], cfg)["max_length"] == 96


def test_a_job_without_files_says_so(tiny_model_dir):
    import shutil

    from nursery_core.errors import NotFound

    store_dataset("lockers", n=8)
    job = api.create_job("local", "lockers", str(tiny_model_dir), "gone", TrainConfig())
    shutil.rmtree(paths.job_dir(job["id"]))
    with pytest.raises(NotFound, match="files are gone"):
        job_examples(job["id"])
