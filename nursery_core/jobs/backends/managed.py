"""What the managed-training backends (Together.ai, Replicate) share around the provider's own run: at the end of
a run, making sure that run is over and the uploaded files are gone, failing the job by name when the run
cannot be confirmed stopped (it may still bill: the reaper ends it once the API answers); and after a dead
dashboard, cancelling the run it left."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...errors import BackendError
from ...store import now
from ..context import RunContext


def release_run(ctx: RunContext, state: dict, *, run_id: str | None, label: str, what: str,
                stop: Callable[[], None], files: list[str], delete_file: Callable[[str], Any], manual: str) -> None:
    """Stops the run (`stop()` cancels it when it is not over), records its instance row, deletes `files`,
    logs every problem and sets state["phase"]. Raises BackendError naming the run when `stop()` failed;
    a file that could not be deleted is only logged (it costs nothing and the provider expires it).
    `label` names the provider ("Together"), `what` the run ("Together fine-tune"), `manual` how a user
    stops it by hand."""
    problems: list[str] = []
    leaked = None
    if run_id:
        try:
            stop()
            ctx.store.update_instance(run_id, state="destroyed", destroyed_at=now())
        except Exception as e:  # noqa: BLE001 — the job fails naming the run; the reaper ends it later
            ctx.store.update_instance(run_id, state="destroy_failed")
            leaked = (f"could not confirm {what} {run_id} stopped: {e}. It may still be billing: run "
                      f"reap-instances once {label} answers, or {manual}")
            problems.append(leaked)
    for fid in files:
        try:
            delete_file(fid)
        except Exception as e:  # noqa: BLE001 — a leftover data file costs nothing; logged
            problems.append(f"could not delete {label} file {fid}: {e}")
    for p in problems:
        ctx.log(p)
    state["phase"] = "released" if not problems else "release_failed"
    ctx.update(provider_state=state)
    if leaked:
        raise BackendError(leaked)


def recover_run(ctx: RunContext, client: Any, run_id: str, *, what: str, is_over: Callable[[], bool],
                cancel: Callable[[], Any], verb: str = "cancelled") -> None:
    """Cancels the run a dead dashboard left (unless it is over), marks its instance row, closes `client`."""
    try:
        if not is_over():
            cancel()
            ctx.log(f"{verb} {what} {run_id} left by an interrupted run")
        ctx.store.update_instance(run_id, state="destroyed", destroyed_at=now())
    finally:
        client.close()
