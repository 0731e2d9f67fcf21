"""A `python -m nursery_core <command>` server as a child process for the agent-facing tests (mcp --http,
serve): its own NURSERY_HOME, one torch thread, started on a free port and stopped afterwards."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from browser_support import free_port

ROOT = Path(__file__).resolve().parent.parent


def child_env(home: Path) -> dict:
    env = dict(os.environ)
    env.update(NURSERY_HOME=str(home), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("NURSERY_SERVE_TOKEN", None)
    return env


@contextmanager
def nursery_server(home: Path, *args: str, port_flag: str, timeout: float = 90.0) -> Iterator[int]:
    """Runs `python -m nursery_core *args <port_flag> PORT` until it listens on 127.0.0.1; yields the port."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "nursery_core", *args, port_flag, str(port)], cwd=str(ROOT),
                            env=child_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"{' '.join(args)} exited: {proc.stderr.read()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{' '.join(args)} did not listen within {timeout:.0f} s") from None
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
