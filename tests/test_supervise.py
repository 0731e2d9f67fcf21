"""The one supervision loop (nursery_core.jobs.supervise) over a fake worker handle: events, exit, cancel
escalation STOP -> TERM -> KILL, budget cap, shutdown (detach or stop) and reconnect after a transient error."""
from __future__ import annotations

import time

import pytest

from nursery_core.cloud.errors import StopRequested
from nursery_core.errors import InvalidInput
from nursery_core.jobs.backends import cloud_providers, get_provider
from nursery_core.jobs.errors import Cancelled, Detached
from nursery_core.jobs.events import DONE, PROGRESS
from nursery_core.jobs.supervise import (
    StopReason,
    Supervision,
    stop_as_cancel,
    supervise,
)


class Dropped(Exception):
    pass


class FakeWorker:
    """A worker that emits scripted events, exits when told, and records what the loop asked of it."""

    transient_errors = (Dropped,)

    def __init__(self, events=(), exit_after_polls=None, dies_on=None, drop_at_poll=None):
        self.pending = list(events)
        self.polls = 0
        self.exit_after_polls = exit_after_polls
        self.dies_on = dies_on          # "STOP" | "TERM" | "KILL": the request that ends it
        self.drop_at_poll = drop_at_poll
        self.calls: list[str] = []
        self.rc: int | None = None
        self.dead = False

    def poll_events(self):
        self.polls += 1
        if self.drop_at_poll == self.polls:
            raise Dropped("connection dropped")
        if self.exit_after_polls is not None and self.polls >= self.exit_after_polls:
            self.rc = 0
        out, self.pending = self.pending, []
        return out

    def exit_code(self):
        return self.rc

    def alive(self):
        return self.rc is None and not self.dead

    def request_stop(self):
        self.calls.append("STOP")
        if self.dies_on == "STOP":
            self.rc = 3

    def signal(self, sig):
        self.calls.append(sig)
        if self.dies_on == sig:
            self.dead = True

    def heartbeat(self):
        self.calls.append("beat")

    def reconnect(self, error):
        self.calls.append(f"reconnect:{error}")


class FakeCtx:
    def __init__(self, stop_after_s=None, detach_after_s=None):
        self.events: list[dict] = []
        self.logs: list[str] = []
        self.beats = 0
        self.t0 = time.monotonic()
        self.stop_after_s, self.detach_after_s = stop_after_s, detach_after_s

    def emit(self, ev):
        self.events.append(ev)

    def log(self, msg):
        self.logs.append(msg)

    def heartbeat(self):
        self.beats += 1

    def should_stop(self):
        return self.stop_after_s is not None and time.monotonic() - self.t0 >= self.stop_after_s

    def detached(self):
        return self.detach_after_s is not None and time.monotonic() - self.t0 >= self.detach_after_s


FAST = dict(poll_s=0.01, heartbeat_s=0.05, term_after_s=0.05, kill_after_s=0.1, give_up_after_kill_s=0.05)


def test_events_are_drained_and_the_final_one_kept_until_exit():
    worker = FakeWorker([{"kind": PROGRESS, "step": 1}, {"kind": DONE, "output_dir": "x"}], exit_after_polls=3)
    ctx = FakeCtx()
    out = supervise(worker, ctx, Supervision(**FAST))
    assert [e["kind"] for e in ctx.events] == [PROGRESS, DONE]
    assert out.kind == DONE and out.exit_code == 0 and out.stop_reason is None
    assert ctx.beats >= 1 and "beat" in worker.calls


def test_cancel_escalates_stop_then_term_then_kill():
    worker = FakeWorker(dies_on="KILL")
    ctx = FakeCtx(stop_after_s=0.0)
    out = supervise(worker, ctx, Supervision(**FAST))
    assert out.stop_reason is StopReason.CANCEL
    assert [c for c in worker.calls if c in ("STOP", "TERM", "KILL")] == ["STOP", "TERM", "KILL"]
    assert any("cancel requested" in m for m in ctx.logs)


def test_a_worker_that_honours_stop_gets_no_signal():
    worker = FakeWorker(dies_on="STOP")
    out = supervise(worker, FakeCtx(stop_after_s=0.0), Supervision(**FAST))
    assert out.stop_reason is StopReason.CANCEL and out.exit_code == 3
    assert [c for c in worker.calls if c in ("STOP", "TERM", "KILL")] == ["STOP"]


def test_budget_cap_stops_the_worker_with_its_reason():
    worker = FakeWorker(dies_on="STOP")
    ctx = FakeCtx()
    out = supervise(worker, ctx, Supervision(**FAST, max_seconds=0.05, budget_reason="max $0.01"))
    assert out.stop_reason is StopReason.BUDGET
    assert any("budget cap reached (max $0.01)" in m for m in ctx.logs)


def test_shutdown_detaches_or_stops_as_the_policy_says():
    with pytest.raises(Detached):
        supervise(FakeWorker(), FakeCtx(detach_after_s=0.0), Supervision(**FAST, on_shutdown="detach"))
    worker = FakeWorker()
    out = supervise(worker, FakeCtx(detach_after_s=0.0), Supervision(**FAST, on_shutdown="stop"))
    assert out.stop_reason is StopReason.SHUTDOWN and worker.calls.count("STOP") == 1


def test_a_transient_error_reconnects_and_the_run_goes_on():
    worker = FakeWorker([{"kind": DONE}], exit_after_polls=4, drop_at_poll=1)
    out = supervise(worker, FakeCtx(), Supervision(**FAST))
    assert out.kind == DONE and "reconnect:connection dropped" in worker.calls


def test_a_dead_worker_without_exit_code_ends_the_loop():
    worker = FakeWorker()
    worker.dead = True
    out = supervise(worker, FakeCtx(), Supervision(**FAST))
    assert out.final is None and out.exit_code is None and out.stop_reason is None


def test_transport_stop_becomes_the_runners_cancel_with_its_message():
    with pytest.raises(Cancelled, match="cancelled during upload"):
        with stop_as_cancel():
            raise StopRequested("cancelled during upload")


def test_providers_come_from_the_backend_registry():
    assert cloud_providers() == ["vast", "ssh", "runpod", "together", "replicate", "modal"]
    assert get_provider("ssh").kind == "ssh"
    with pytest.raises(InvalidInput,
                       match="provider .nope. is not supported .*vast, ssh, runpod, together, replicate, modal"):
        get_provider("nope")


def test_a_log_tail_inside_a_long_traceback_keeps_its_header(tmp_path):
    from nursery_core.jobs.supervise import log_tail

    frames = "".join(f"  File \"x.py\", line {i}\n" for i in range(40))
    (tmp_path / "train.log").write_text(f"step 1\nTraceback (most recent call last):\n{frames}ValueError: boom\n")
    lines = log_tail(tmp_path, 30).splitlines()
    assert len(lines) == 30 and lines[:2] == ["Traceback (most recent call last):", "  ..."]
    assert lines[-1] == "ValueError: boom"
    (tmp_path / "train.log").write_text("a\nb\n")
    assert log_tail(tmp_path, 30) == "a\nb"
