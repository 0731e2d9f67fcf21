"""Every GPU of a box: the worker trains with torch.distributed DDP under torchrun. Two CPU processes over gloo
reach the same losses and adapter as one process on the same global batch; rank 0 alone reports and saves."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from nursery_core.errors import InvalidConfig
from nursery_core.training import trainer
from nursery_core.training.config import TrainConfig
from nursery_core.training.distributed import Rank
from nursery_core.training.launch import WORKER_MODULE, launch_command, torchrun_command, worker_exit_code
from training_helpers import examples

REPO = Path(__file__).resolve().parents[1]


def job(tmp_path, name, model_dir, **kw) -> Path:
    d = tmp_path / name
    (d / "data").mkdir(parents=True)
    (d / "data" / "train.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples(10)))
    (d / "data" / "eval.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples(3)))
    # 10 examples in micro-batches of 2: 5 per epoch, so with 2 per step the third step of each epoch has one
    # batch and the second process joins it with a zero gradient; 2 epochs also turn the trunk cache on
    cfg = TrainConfig(base_model=str(model_dir), base_model_dir=str(model_dir), max_length=512, batch_size=2,
                      epochs=2, learning_rate=5e-3, warmup_ratio=0.0, num_threads=1, **kw)
    cfg.save(d / "config.json")
    return d


def test_rank_from_env_and_launch_command(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert Rank.from_env() == Rank(0, 1, 0) and not Rank.from_env().distributed
    monkeypatch.setenv("RANK", "3")  # left over from another launcher, with no world: a single process
    assert Rank.from_env() == Rank(0, 1, 0)
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(InvalidConfig, match="integers"):
        Rank.from_env()
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    r = Rank.from_env()
    assert (r.rank, r.world_size, r.local_rank, r.distributed, r.is_main) == (1, 4, 1, True, False)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(InvalidConfig, match="RANK=4 WORLD_SIZE=4"):
        Rank.from_env()
    assert launch_command("/j", 1, python="py") == ["py", "-m", WORKER_MODULE, "/j"]
    assert launch_command("/j", 2, python="py", worker_args=["--no-stdout"]) == [
        "py", "-m", "nursery_core.training.launch", "--nproc", "2", "/j", "--no-stdout"]
    cmd = torchrun_command("/j", 2, python="py", worker_args=["--no-stdout"])
    assert cmd[:3] == ["py", "-m", "torch.distributed.run"] and "--nproc-per-node=2" in cmd
    assert cmd[-4:] == ["-m", WORKER_MODULE, "/j", "--no-stdout"]
    with pytest.raises(InvalidConfig, match="nproc"):
        launch_command("/j", 0)


def test_worker_exit_code_behind_torchrun():
    ev = lambda *kinds: "".join(json.dumps({"kind": k, "seq": i}) + "\n" for i, k in enumerate(kinds)).encode()  # noqa: E731
    assert worker_exit_code(ev("start", "progress", "done"), 0) == 0
    assert worker_exit_code(ev("start", "cancelled"), 1) == 3  # torchrun says 1 for the worker's 3
    assert worker_exit_code(ev("start", "error"), 1) == 1
    assert worker_exit_code(b"", 1) == 1 and worker_exit_code(b"", 0) == 0
    assert worker_exit_code(ev("start") + b"{not json\n", 1) == 1


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false", "CUDA_VISIBLE_DEVICES": ""}


@pytest.mark.slow
def test_a_stop_before_training_cancels_every_rank_with_exit_code_3(tiny_model_dir, tmp_path):
    d = job(tmp_path, "stopped", tiny_model_dir)
    (d / "STOP").touch()
    proc = subprocess.run(launch_command(str(d), 2, worker_args=["--no-stdout"]), env=_env(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 3, proc.stderr[-3000:]
    kinds = [json.loads(line)["kind"] for line in (d / "events.jsonl").read_text().splitlines()]
    assert kinds == ["cancelled"] and not (d / "output").exists()


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_on_the_same_global_batch(tiny_model_dir, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    # one process: 2 micro-batches of 2 per step; two processes: 1 micro-batch of 2 each per step
    single = job(tmp_path, "single", tiny_model_dir, grad_accum=2)
    ddp = job(tmp_path, "ddp", tiny_model_dir, grad_accum=1)
    one = trainer.train(TrainConfig.load(single / "config.json"), single)

    proc = subprocess.run(launch_command(str(ddp), 2, worker_args=["--no-stdout"]), env=_env(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]

    events = [json.loads(line) for line in (ddp / "events.jsonl").read_text().splitlines()]
    kinds = [e["kind"] for e in events]
    # rank 0 alone reported: one start, each step once, one done
    assert kinds.count("start") == 1 and kinds.count("done") == 1 and "error" not in kinds
    start = next(e for e in events if e["kind"] == "start")
    assert start["world_size"] == 2 and start["total_steps"] == 6
    ddp_losses = [e["loss"] for e in events if e["kind"] == "progress"]
    assert [e["step"] for e in events if e["kind"] == "progress"] == [1, 2, 3, 4, 5, 6]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))

    one_losses = [round(h["loss"], 6) for h in one["history"]]
    assert ddp_losses == pytest.approx(one_losses, rel=1e-4, abs=1e-5)
    assert ddp_losses[-1] < ddp_losses[0]  # it trained
    done = events[-1]
    assert done["final_loss"] == pytest.approx(one["final_loss"], rel=1e-4)
    assert done["eval_loss"] == pytest.approx(one["eval_loss"], rel=1e-4)

    # one adapter, written once, with the same weights
    adapters = sorted(p.relative_to(ddp) for p in ddp.rglob("adapter_model.safetensors"))
    assert adapters == [Path("output/adapter_model.safetensors")]
    a, b = load_file(single / "output" / "adapter_model.safetensors"), load_file(ddp / "output" /
                                                                                 "adapter_model.safetensors")
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 1e-4, worst
    metrics = json.loads((ddp / "output" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["steps"] == 6 and one["steps"] == 6
    assert (ddp / "train.log").exists() and "rank 1" not in proc.stderr
