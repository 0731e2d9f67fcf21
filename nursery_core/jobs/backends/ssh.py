"""The `ssh` backend: train on the team's own GPU server over SSH (same remote run as Vast, no rent/destroy).

The server is named in the job's request (host, port, user, key path, remote python and root). When the
dashboard shuts down the remote training goes on (it is our own machine) and the next runner re-attaches.
"""
from __future__ import annotations

import time
from typing import Any

from ...errors import BackendError
from ..context import RunContext
from ..errors import Detached


def target_for(job: dict, ctx: RunContext):
    from ...cloud.remote import RemoteTarget
    from ...cloud.settings import make_server

    req = (job.get("provider_state") or {}).get("request") or {}
    srv = req.get("server") or {}
    if not srv.get("host"):
        raise BackendError("this ssh job names no server (host)")
    server = make_server(srv.get("name") or "server", srv["host"], srv.get("port"), srv.get("user"),
                         srv.get("key_path"), python=srv.get("python"), remote_root=srv.get("remote_root"))
    if not server.key_path:
        raise BackendError(f"no SSH key for {server.address}: set key_path for the server")
    return RemoteTarget(server.host, server.port, server.user, server.key_path,
                        str(ctx.job_dir / "ssh" / "known_hosts"), python=server.python,
                        remote_root=server.remote_root, name=server.name)


class SSHBackend:
    """Runs a job on a configured SSH server."""

    kind = "ssh"

    def run(self, job: dict, ctx: RunContext) -> dict:
        from ...cloud.remote import Limits, RemoteRun

        target = target_for(job, ctx)
        budget = job.get("budget") or {}
        state: dict[str, Any] = {"provider": "ssh", "request": (job.get("provider_state") or {}).get("request"),
                                 "server": target.address}
        started = time.time()

        def phase(p: str) -> None:
            state["phase"] = p
            ctx.update(provider_state=state)

        limits = Limits.from_env(max_seconds=float(budget["max_hours"]) * 3600.0 if budget.get("max_hours") else None,
                                 clock_start=started, budget_reason=f"max {budget.get('max_hours')} h")
        remote = RemoteRun(ctx, target, limits, on_phase=phase)
        try:
            remote.connect()
            remote_model = remote.prepare((job.get("config") or {}).get("base_model_dir") or "")
            pid = remote.start(remote_model)
            state.update(pid=pid, remote_dir=remote.root)
            ctx.update(provider_state=state, device=f"ssh {target.address}")
            final, rc = self._supervise(remote)
            result = remote.finish(final, rc, started)
            result.setdefault("actual", {}).update(provider="ssh", server=target.address)
            remote.cleanup_remote()
            return result
        finally:
            remote.close()

    @staticmethod
    def _supervise(remote) -> tuple[dict | None, int | None]:
        ctx = remote.ctx

        def tick() -> None:
            # our own server: a shutting-down dashboard leaves the training running; the next runner re-attaches
            if ctx.detached() and remote.stop_reason is None:
                raise Detached()

        return remote.supervise(on_tick=tick)

    def recover(self, job: dict, ctx: RunContext) -> dict | None:
        """Re-attaches to the remote worker of a run whose dashboard went away (or collects its result)."""
        import posixpath

        from ...cloud.remote import Limits, RemoteRun
        from ...cloud.ssh import SSHError
        from .local import last_recorded_seq

        state = job.get("provider_state") or {}
        if not state.get("remote_dir") or not state.get("pid"):
            return None
        try:
            target = target_for(job, ctx)
        except BackendError:
            return None
        remote = RemoteRun(ctx, target, Limits.from_env())
        try:
            remote.session = remote._new_session().connect()
            remote.root = state["remote_dir"]
            remote.job = posixpath.join(remote.root, "job")
            remote.pid = int(state["pid"])
            remote.after_seq = last_recorded_seq(ctx)
            if not remote.s.exists(posixpath.join(remote.job, "events.jsonl")):
                return None
            ctx.log(f"re-attached to the remote training on {target.address} (pid {remote.pid})")
            final, rc = self._supervise(remote)
            result = remote.finish(final, rc, time.time())
            remote.cleanup_remote()
            return result
        except SSHError:
            return None
        finally:
            remote.close()
