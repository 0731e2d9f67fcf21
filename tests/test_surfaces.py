"""One declaration drives every surface: a field added to TrainConfig's metadata reaches the CLI parser, the
Training Forge form and the Settings form with no other edit; the forms' bounds are the config's; the
"copy as CLI" line parses back to the same run."""
from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from training_helpers import store_dataset

ROOT = Path(__file__).resolve().parent.parent
FORGE = str(ROOT / "pages" / "2_Training_Forge.py")
SETTINGS = str(ROOT / "pages" / "4_Settings.py")


@pytest.fixture
def label_smoothing(monkeypatch):
    """TrainConfig with one more hyper-parameter, declared only through its field metadata."""
    from nursery_core.training import config

    @dataclass
    class Extended(config.TrainConfig):
        label_smoothing: float = config._f(0.0, "share of the target probability spread over the vocabulary",
                                           min=0.0, max=0.5, group="optim", label="Label smoothing", step=0.05)

    original = config.TrainConfig
    monkeypatch.setattr(config, "TrainConfig", Extended)
    yield Extended
    # a module first imported during the test bound the extended class by name: give it the real one back
    for mod in list(sys.modules.values()):
        if getattr(mod, "TrainConfig", None) is Extended:
            setattr(mod, "TrainConfig", original)


def parse(*argv):
    from nursery_core.cli import build_parser
    from nursery_core.cli.training import _hyper
    from nursery_core.run_options import run_arguments

    args = build_parser().parse_args(list(argv))
    return _hyper(args), run_arguments(args)[1]


def test_a_new_field_is_a_cli_option_of_train_local_and_train_cloud(label_smoothing):
    assert parse("train-local", "ds", "--label-smoothing", "0.1")[0] == {"label_smoothing": 0.1}
    hyper, cloud = parse("train-cloud", "ds", "--label-smoothing", "0.2", "--provider", "ssh", "--server", "box")
    assert hyper == {"label_smoothing": 0.2} and cloud == {"provider": "ssh", "ssh_server": "box"}
    # its bounds are checked by the config, in the config's words
    from nursery_core.errors import InvalidConfig
    from nursery_core.training import config
    with pytest.raises(InvalidConfig, match="label_smoothing must be <= 0.5"):
        config.TrainConfig().with_overrides(label_smoothing=0.9).validate()


def test_old_flag_spellings_still_work_beside_the_generated_ones():
    assert parse("train-local", "ds", "--lr", "0.01", "--lora-r", "8", "--lora-alpha", "16")[0] == \
        parse("train-local", "ds", "--learning-rate", "0.01", "--r", "8", "--alpha", "16")[0] == \
        {"learning_rate": 0.01, "r": 8, "alpha": 16.0}
    assert parse("train-cloud", "ds", "--min-gpu-ram", "12", "--disk", "30", "--remote-python", "py3")[1] == \
        {"min_gpu_ram_gb": 12.0, "disk_gb": 30.0, "python": "py3"}


def test_copy_as_cli_parses_back_to_the_same_run():
    from nursery_core.run_options import train_command

    hyper = {"learning_rate": 0.0005, "r": 64, "group_by_length": False, "target_modules": ["q_proj", "v_proj"],
             "scheduler": "linear", "epochs": 3.0}  # epochs is the default: left out
    cloud = {"provider": "vast", "max_dph": 0.4, "min_gpu_ram_gb": 24.0, "offer_id": 77}
    line = train_command("lockers", "smollm2-135m", "my-model", hyper, cloud=cloud)
    argv = shlex.split(line)
    assert argv[:4] == ["python", "-m", "nursery_core", "train-cloud"] and "--epochs" not in argv
    got_hyper, got_cloud = parse(*argv[3:])
    assert got_hyper == {k: v for k, v in hyper.items() if k != "epochs"} and got_cloud == cloud


def test_a_new_field_is_on_the_forge_form_and_reaches_the_launch(label_smoothing, monkeypatch):
    from nursery_core.jobs import api

    launched = []
    monkeypatch.setattr(api, "nursery_train_local", lambda *a, **kw: launched.append(kw) or
                        {"id": "j-test", "output_name": "smooth"})
    store_dataset("lockers", n=10)
    at = AppTest.from_file(FORGE, default_timeout=120).run()
    assert not at.exception, at.exception
    box = at.number_input(key="tf_label_smoothing")
    assert box.label == "Label smoothing" and box.max == 0.5 and box.value == 0.0
    box.set_value(0.15)
    at.text_input(key="tf_output").set_value("smooth")
    at.button(key="FormSubmitter:tf_launch_form-Start training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert launched and launched[0]["label_smoothing"] == 0.15
    assert any("--label-smoothing 0.15" in c.value for c in at.code), [c.value for c in at.code]


def test_the_forge_form_bounds_are_the_configs():
    from nursery_core.training.config import train_options

    at = AppTest.from_file(FORGE, default_timeout=120).run()
    assert not at.exception
    opts = {o.name: o for o in train_options()}
    for name in ("r", "max_length", "epochs", "lora_layers", "batch_size", "dropout", "mix_fraction"):
        box = at.number_input(key=f"tf_{name}")
        assert (box.min, box.max) == (opts[name].min, opts[name].max), name
    assert at.number_input(key="tf_r").max == 1024 and at.number_input(key="tf_max_length").min == 16
    assert at.selectbox(key="tf_scheduler").options == ["cosine", "linear", "constant"]
    assert at.checkbox(key="tf_group_by_length").value is True


def test_a_new_field_is_on_the_settings_form_and_is_saved(label_smoothing):
    at = AppTest.from_file(SETTINGS, default_timeout=120)
    at.session_state["nursery_user"] = "ada"
    at.run()
    assert not at.exception, at.exception
    at.number_input(key="settings_train_label_smoothing").set_value(0.2)
    at.number_input(key="settings_train_r").set_value(32)
    at.button(key="FormSubmitter:settings_training_form-Save defaults").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    from nursery_core.settings import TRAINING_DEFAULTS_KEY
    from nursery_core.store import get_store
    # only what differs from Nursery's defaults becomes a team override
    assert get_store().get_setting(TRAINING_DEFAULTS_KEY) == {"label_smoothing": 0.2, "r": 32}


def test_retrain_fills_the_generated_form_with_the_jobs_settings():
    from nursery_core.store import get_store
    from nursery_core.training.config import TrainConfig

    store_dataset("lockers", n=10)
    cfg = TrainConfig().with_overrides(r=64, target_modules=["q_proj", "v_proj"], group_by_length=False,
                                       scheduler="linear", learning_rate=0.0005).to_dict()
    job = get_store().create_job({"kind": "local", "dataset": "lockers", "base_model": "smollm2-135m",
                                  "output_name": "old-run", "created_by": "ada", "config": cfg})
    get_store().finish_job(job["id"], "failed", error="stopped")
    at = AppTest.from_file(FORGE, default_timeout=120).run()
    assert not at.exception
    at.button(key="tf_retrain").click().run()
    assert not at.exception, at.exception
    assert at.number_input(key="tf_r").value == 64 and at.number_input(key="tf_learning_rate").value == 0.0005
    assert at.text_input(key="tf_target_modules").value == "q_proj, v_proj"
    assert at.checkbox(key="tf_group_by_length").value is False
    assert at.selectbox(key="tf_scheduler").value == "linear"
    assert at.selectbox(key="tf_mix_dataset").value == "(none)"
    assert any(f"settings of job {job['id']}" in i.value for i in at.info)


def test_retrain_of_a_job_whose_dataset_was_deleted_warns_instead_of_switching_quietly():
    """The picker cannot show a deleted dataset and falls back to another one: Retrain says so."""
    from nursery_core.datasets import delete_dataset
    from nursery_core.store import get_store

    store_dataset("gone", n=10)
    store_dataset("other", n=10)
    job = get_store().create_job({"kind": "local", "dataset": "gone", "base_model": "smollm2-135m",
                                  "output_name": "old-run", "created_by": "ada", "config": {}})
    get_store().finish_job(job["id"], "failed", error="stopped")
    delete_dataset("gone")
    at = AppTest.from_file(FORGE, default_timeout=120).run()
    assert not at.exception
    at.button(key="tf_retrain").click().run()
    assert not at.exception, at.exception
    assert any("gone" in w.value and "no longer exists" in w.value for w in at.warning), [w.value for w in at.warning]
