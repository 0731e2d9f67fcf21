"""The worker's event contract: the `Event` type, its kind constants, and decoding the JSON-lines stream.

The training worker (`nursery_core.training.worker`) appends one JSON object per line to `events.jsonl`;
the local tail and the remote (SFTP) tail decode it here, the store records it (`Store.record_event`), the
CLI prints it and the pages chart it. Every one of them names a kind through these constants.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TypedDict

START = "start"          # total_steps, device, num_examples: the run began
PROGRESS = "progress"    # step, total_steps, loss, lr, tokens_per_s, eta_s: one optimiser step
EVAL = "eval"            # step, eval_loss: an evaluation on the held-out split
LOG = "log"              # message: a line for the job's log (the worker's or a backend's)
DONE = "done"            # output_dir, final_loss, eval_loss: the adapter was saved
CANCELLED = "cancelled"  # step (and output_dir when a checkpoint was saved): stopped on request
ERROR = "error"          # message, traceback: the run failed

STOP_FILE = "STOP"       # in the job directory: the worker stops at its next step and saves a checkpoint

KINDS = (START, PROGRESS, EVAL, LOG, DONE, CANCELLED, ERROR)
FINAL_KINDS = (DONE, CANCELLED, ERROR)   # the worker writes exactly one of these last
CHART_KINDS = (PROGRESS, EVAL)           # the kinds loss charts read


class Event(TypedDict, total=False):
    """One worker event. `kind` is always present; `seq` (1, 2, ... per job directory) is set by the worker's
    writer so a re-attached reader never records an event twice; `ts` is an ISO-8601 UTC time or Unix
    seconds. Units: `lr` and `learning_rate` are per step, `tokens_per_s` tokens per second, `eta_s` seconds."""

    kind: str
    seq: int
    ts: str | float
    step: int
    total_steps: int
    loss: float
    eval_loss: float
    lr: float
    learning_rate: float
    tokens_per_s: float
    eta_s: float
    progress: float
    device: str
    num_examples: int
    message: str
    traceback: str
    output_dir: str
    final_loss: float
    train_seconds: float


def is_final(event: Event | dict) -> bool:
    """Whether the event ends a run (done, cancelled or error)."""
    return event.get("kind") in FINAL_KINDS


def decode_events(lines: Iterable[bytes], after_seq: int) -> tuple[list[Event], int]:
    """(new events, highest seq seen): skips partial or foreign lines and events already recorded, so a
    re-attached runner never stores an event twice."""
    out: list[Event] = []
    for raw in lines:
        try:
            ev = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(ev, dict):
            continue
        seq = int(ev.get("seq") or 0)
        if seq and seq <= after_seq:
            continue
        after_seq = max(after_seq, seq)
        out.append(ev)  # type: ignore[arg-type]  # a decoded worker line: Event's keys, unchecked
    return out, after_seq
