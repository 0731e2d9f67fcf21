"""`python -m nursery_core.training.worker JOB_DIR`: trains one self-contained job directory, locally or over SSH.

Events go as JSON lines to stdout and JOB_DIR/events.jsonl (each with a `seq`, so a supervisor that
re-attaches can skip what it already recorded); logs go to JOB_DIR/train.log. A JOB_DIR/STOP file or
SIGTERM stops the run gracefully (the adapter so far is saved). Exit codes: 0 done, 3 cancelled, 1 error.
Under torchrun (training/launch.py) every process runs this; rank 0 alone writes events, train.log and stdout.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Callable

from ..jobs import events

EXIT_DONE, EXIT_ERROR, EXIT_CANCELLED = 0, 1, 3


class EventWriter:
    """Appends numbered events to events.jsonl (flushed per line) and echoes them on stdout."""

    def __init__(self, path: Path, echo: bool = True):
        self.path = path
        self.echo = echo
        self.lock = threading.Lock()
        self.seq = 0
        if path.exists():  # a re-run in the same directory continues the numbering
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        self.seq = max(self.seq, int(json.loads(line).get("seq", 0)))
                    except (ValueError, AttributeError):
                        pass
        self.fh = open(path, "a", encoding="utf-8")

    def __call__(self, event: dict) -> None:
        with self.lock:
            self.seq += 1
            line = json.dumps({**event, "seq": self.seq}, ensure_ascii=False, default=str)
            self.fh.write(line + "\n")
            self.fh.flush()
            if self.echo:
                try:
                    sys.stdout.write(line + "\n")
                    sys.stdout.flush()
                except (BrokenPipeError, OSError):  # the reader went away; the file still has everything
                    self.echo = False
        if event.get("kind") == events.PROGRESS:
            logging.getLogger("nursery.train").info(
                "step %s/%s loss %.4f lr %.2e %.0f tok/s eta %.0fs", event["step"], event["total_steps"],
                event["loss"], event["lr"], event["tokens_per_s"], event["eta_s"])
        elif event.get("kind") in (events.LOG, events.EVAL, events.START, events.DONE, events.CANCELLED):
            logging.getLogger("nursery.train").info("%s", json.dumps(event, default=str))


class _SecondaryRank:
    """The emit of a rank other than 0: its failure goes to stderr (torchrun shows it), nothing else anywhere."""

    def __init__(self, rank: int):
        self.rank = rank

    def __call__(self, event: dict) -> None:
        if event.get("kind") == events.ERROR:
            sys.stderr.write(f"rank {self.rank}: {event.get('message')}\n{event.get('traceback', '')}\n")
            sys.stderr.flush()


def _setup_logging(job_dir: Path) -> None:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    fh = logging.FileHandler(job_dir / "train.log", encoding="utf-8")
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(fh)
    for noisy in ("urllib3", "httpx", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nursery_core.training.worker",
                                     description="Train one Nursery job directory (config.json + data/).")
    parser.add_argument("job_dir")
    parser.add_argument("--base-model-dir", default=None, help="override config.base_model_dir (remote runs)")
    parser.add_argument("--no-stdout", action="store_true", help="write events only to events.jsonl")
    args = parser.parse_args(argv)
    job_dir = Path(args.job_dir).resolve()
    if not (job_dir / "config.json").exists():
        print(json.dumps({"kind": events.ERROR, "message": f"{job_dir} has no config.json", "traceback": ""}))
        return EXIT_ERROR

    # Installed before the heavy imports so a cancel during start-up is not lost.
    stop_flag = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_flag.set())
    signal.signal(signal.SIGINT, lambda *_: stop_flag.set())

    from ..errors import InvalidConfig
    from .distributed import Rank
    try:
        rank = Rank.from_env()
    except InvalidConfig as e:  # reported like a missing config, before anything is written
        print(json.dumps({"kind": events.ERROR, "message": str(e), "traceback": ""}))
        return EXIT_ERROR
    # Progress bars are noise in train.log; the events carry the progress.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    emit: Callable[[dict], None]
    if rank.is_main:
        _setup_logging(job_dir)
        emit = EventWriter(job_dir / "events.jsonl", echo=not args.no_stdout)
    else:  # under torchrun, rank 0 owns events.jsonl, train.log and stdout; the others only report failures
        emit = _SecondaryRank(rank.rank)

    def should_stop() -> bool:
        return stop_flag.is_set() or (job_dir / events.STOP_FILE).exists()

    log = logging.getLogger("nursery.train")
    try:
        from transformers.utils import logging as hf_logging

        from .config import TrainConfig
        from .trainer import Stopped, train

        hf_logging.disable_progress_bar()

        config = TrainConfig.load(job_dir / "config.json")
        if args.base_model_dir:
            config.base_model_dir = args.base_model_dir
        config.validate()
        log.info("training %s on %s", config.base_model, config.base_model_dir or "(default location)")
        try:
            metrics = train(config, job_dir, emit, should_stop)
        except Stopped:
            emit({"kind": events.CANCELLED, "step": 0})
            return EXIT_CANCELLED
        if not rank.is_main:
            return EXIT_CANCELLED if metrics.get("stopped") else EXIT_DONE
        if metrics.get("stopped"):
            emit({"kind": events.CANCELLED, "step": metrics["steps"], "output_dir": str(job_dir / config.output_dir)})
            return EXIT_CANCELLED
        emit({"kind": events.DONE, "output_dir": str(job_dir / config.output_dir), "final_loss": metrics["final_loss"],
              "eval_loss": metrics["eval_loss"], "train_seconds": metrics["train_seconds"],
              "step": metrics["steps"], "tokens_per_s": metrics["tokens_per_s"]})
        return EXIT_DONE
    except BaseException as e:  # noqa: BLE001 — every failure must reach the supervisor as an event
        tb = traceback.format_exc()
        log.error("training failed: %s\n%s", e, tb)
        emit({"kind": events.ERROR, "message": f"{type(e).__name__}: {e}", "traceback": tb[-4000:]})
        return EXIT_ERROR
    finally:
        from .distributed import finish
        finish()  # a run that stopped or failed early leaves the process group too


if __name__ == "__main__":
    sys.exit(main())
