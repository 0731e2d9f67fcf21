"""Launching a training job on N processes of one box: `launch_command(job_dir, nproc)` is the one command line a
backend runs. One process runs the worker directly; more run `python -m nursery_core.training.launch --nproc N
JOB_DIR`, which runs torchrun (`torch.distributed.run --standalone --nproc-per-node N -m
nursery_core.training.worker JOB_DIR`) and exits with the worker's own code (0 done, 3 cancelled, 1 error),
taken from rank 0's last event: torchrun alone turns any non-zero exit into 1. SIGTERM/SIGINT are passed on.
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from pathlib import Path

from ..errors import InvalidConfig
from .worker import EXIT_CANCELLED, EXIT_DONE, EXIT_ERROR

WORKER_MODULE = "nursery_core.training.worker"


def launch_command(job_dir: str, nproc: int = 1, *, python: str | None = None,
                   worker_args: list[str] | None = None) -> list[str]:
    """The argv that trains `job_dir` on `nproc` processes of this machine (one per GPU), with the worker's exit
    codes. nproc 1 runs the worker directly; more go through this module's torchrun wrapper.
    Raises InvalidConfig for nproc < 1."""
    if int(nproc) < 1:
        raise InvalidConfig(f"nproc must be at least 1, got {nproc}")
    py = python or sys.executable
    if int(nproc) == 1:
        return [py, "-m", WORKER_MODULE, str(job_dir), *(worker_args or [])]
    return [py, "-m", __name__, "--nproc", str(int(nproc)), str(job_dir), *(worker_args or [])]


def torchrun_command(job_dir: str, nproc: int, *, python: str | None = None,
                     worker_args: list[str] | None = None) -> list[str]:
    """torchrun (`torch.distributed.run`, standalone rendezvous on localhost, no restarts) over the worker."""
    return [python or sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
            f"--nproc-per-node={int(nproc)}", "--max-restarts=0", "-m", WORKER_MODULE, str(job_dir),
            *(worker_args or [])]


def worker_exit_code(events: bytes, torchrun_code: int) -> int:
    """The worker's exit code behind torchrun's, from the events this run appended (rank 0's last terminal
    event: done 0, cancelled 3, error 1); torchrun's own code (0 or 1) when there is none."""
    codes = {"done": EXIT_DONE, "cancelled": EXIT_CANCELLED, "error": EXIT_ERROR}
    last = None
    for line in events.splitlines():
        try:
            kind = json.loads(line).get("kind")
        except (ValueError, AttributeError):
            continue
        last = kind if kind in codes else last
    if last is None or (torchrun_code == 0 and last == "done"):
        return EXIT_ERROR if torchrun_code else EXIT_DONE
    return codes[last]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=f"python -m {__name__}",
                                description="Train one job directory on N processes (torchrun + DDP).")
    p.add_argument("--nproc", type=int, required=True, help="processes, one per GPU")
    p.add_argument("job_dir")
    args, worker_args = p.parse_known_args(argv)
    events = Path(args.job_dir) / "events.jsonl"
    offset = events.stat().st_size if events.exists() else 0  # a re-run appends to the same file
    child = subprocess.Popen(torchrun_command(args.job_dir, args.nproc, worker_args=worker_args))

    def forward(sig, _frame):  # a cancel reaches torchrun, which passes it on to every worker
        if child.poll() is None:
            child.send_signal(sig)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = child.wait()
    new = b""
    if events.exists():
        with open(events, "rb") as fh:
            fh.seek(offset)
            new = fh.read()
    return worker_exit_code(new, code)


if __name__ == "__main__":
    raise SystemExit(main())
