"""A torch-free stand-in for the training worker (same CLI, events, STOP/SIGTERM and exit codes), so runner,
queue, cancel and recovery behaviour can be exercised in tests and demos in milliseconds per step.

Reads JOB_DIR/fake.json: {"steps": 5, "step_s": 0.2, "fail_at": null}.
"""
from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..training.worker import EXIT_CANCELLED, EXIT_DONE, EXIT_ERROR, EventWriter
from . import events


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    job_dir = Path(argv[0]).resolve()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    spec: dict[str, Any] = {"steps": 5, "step_s": 0.2, "fail_at": None, "ignore_stop": False}
    if (job_dir / "fake.json").exists():
        spec.update(json.loads((job_dir / "fake.json").read_text()))
    emit = EventWriter(job_dir / "events.jsonl", echo="--no-stdout" not in argv)
    log = open(job_dir / "train.log", "a")
    total = int(spec["steps"])
    emit({"kind": events.START, "total_steps": total, "device": "fake", "num_examples": 1, "ts": time.time()})
    for step in range(1, total + 1):
        time.sleep(float(spec["step_s"]))
        if not spec["ignore_stop"] and (stop.is_set() or (job_dir / events.STOP_FILE).exists()):
            emit({"kind": events.CANCELLED, "step": step - 1})
            return EXIT_CANCELLED
        if spec["fail_at"] == step:
            log.write(f"Traceback (most recent call last):\nRuntimeError: fake failure at step {step}\n")
            log.flush()
            emit({"kind": events.ERROR, "message": f"RuntimeError: fake failure at step {step}", "traceback": ""})
            return EXIT_ERROR
        loss = 2.0 / step
        log.write(f"step {step}/{total} loss {loss:.3f}\n")
        log.flush()
        emit({"kind": events.PROGRESS, "step": step, "total_steps": total, "loss": loss, "lr": 1e-3,
              "tokens_per_s": 100.0, "eta_s": (total - step) * spec["step_s"], "epoch": step / total})
    out = job_dir / "output"
    out.mkdir(exist_ok=True)
    (out / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "fake": True}))
    (out / "adapter_model.safetensors").write_bytes(b"")
    (out / "metrics.json").write_text(json.dumps({"final_loss": 2.0 / total, "eval_loss": 2.5 / total,
                                                  "train_seconds": total * spec["step_s"], "steps": total}))
    emit({"kind": events.DONE, "output_dir": str(out), "final_loss": 2.0 / total, "eval_loss": 2.5 / total,
          "train_seconds": total * spec["step_s"]})
    return EXIT_DONE


if __name__ == "__main__":
    sys.exit(main())
