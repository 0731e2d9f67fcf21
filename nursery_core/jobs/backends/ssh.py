"""The `ssh` backend: train on the team's own GPU server over SSH (same remote run as Vast, no rent/destroy).

The server is named in the job's request (host, port, user, key path, remote python and root). When the
dashboard shuts down the remote training goes on (it is our own machine) and the next runner re-attaches.
"""
from __future__ import annotations

import time
from typing import Any

from ...cloud.credentials import SSHServer, make_server, ssh_servers
from ...cloud.remote import RemoteTarget
from ...cloud.ssh import SSHError
from ...errors import BackendError, InvalidConfig
from ...rows import JobRow
from ..budget import budget_reason, max_seconds
from ..context import RunContext
from ..supervise import last_recorded_seq, stop_as_cancel, supervise
from .remote import Limits, RemoteRun


def resolve_server(ssh_server: str | None = None, host: str | None = None, port: Any = None,
                   user: str | None = None, key_path: str | None = None, python: str | None = None,
                   remote_root: str | None = None) -> SSHServer:
    """The SSH server for a run: explicit host flags, else a configured server by name (or the only one);
    InvalidConfig naming the configured ones otherwise."""
    if host:
        return make_server(ssh_server or "cli", host, port, user, key_path, python=python,
                           remote_root=remote_root, where="--host")
    servers = ssh_servers()
    if ssh_server:
        if ssh_server not in servers:
            raise InvalidConfig(f"no SSH server named {ssh_server!r} (configured: {', '.join(servers) or 'none'}; "
                                "add [ssh_servers.<name>] to .streamlit/secrets.toml or pass --host)")
        return servers[ssh_server]
    if len(servers) == 1:
        return next(iter(servers.values()))
    raise InvalidConfig("which SSH server? pass --host (and --port/--user/--key-path) or --server NAME "
                        f"(configured: {', '.join(servers) or 'none'})")


def target_for(job: JobRow, ctx: RunContext) -> RemoteTarget:
    """The job's server as an SSH target; BackendError when the request names none or it has no key."""
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
    label = "your own GPU server (SSH)"

    def request(self, options: dict[str, Any], estimate: dict[str, Any] | None) -> dict[str, Any]:
        """{"server": the resolved server's settings (host, port, user, key path; never a key)}; InvalidConfig
        when no server is named or configured, or it has no key."""
        server = resolve_server(options.get("ssh_server"), options.get("host"), options.get("port"),
                                options.get("user"), options.get("key_path"), options.get("python"),
                                options.get("remote_root"))
        if not server.key_path:
            raise InvalidConfig(f"no SSH key for {server.address}: pass --key-path or set key_path")
        return {"server": server.to_dict()}

    def run(self, job: JobRow, ctx: RunContext) -> dict[str, Any]:
        target = target_for(job, ctx)
        budget = job.get("budget") or {}
        state: dict[str, Any] = {"provider": "ssh", "request": (job.get("provider_state") or {}).get("request"),
                                 "server": target.address}
        started = time.time()

        def phase(p: str) -> None:
            state["phase"] = p
            ctx.update(provider_state=state)

        # no hourly price on our own server: only max_hours caps the run
        hours = {"max_hours": budget.get("max_hours")}
        limits = Limits.from_env(max_seconds=max_seconds(hours, None), clock_start=started,
                                 budget_reason=budget_reason(hours, None))
        remote = RemoteRun(ctx, target, limits, on_phase=phase)
        try:
            with stop_as_cancel():
                remote.connect()
                remote_model = remote.prepare((job.get("config") or {}).get("base_model_dir") or "")
            pid = remote.start(remote_model)
            state.update(pid=pid, remote_dir=remote.root)
            ctx.update(provider_state=state, device=f"ssh {target.address}")
            # our own server: a shutting-down dashboard leaves the training running; the next runner re-attaches
            outcome = supervise(remote, ctx, limits.supervision(on_shutdown="detach"))
            result = remote.finish(outcome, started)
            result.setdefault("actual", {}).update(provider="ssh", server=target.address)
            remote.cleanup_remote()
            return result
        finally:
            remote.close()

    def recover(self, job: JobRow, ctx: RunContext) -> dict[str, Any] | None:
        """Re-attaches to the remote worker of a run whose dashboard went away (or collects its result)."""
        state = job.get("provider_state") or {}
        if not state.get("remote_dir") or not state.get("pid"):
            return None
        try:
            target = target_for(job, ctx)
        except BackendError:
            return None
        limits = Limits.from_env()
        remote = RemoteRun(ctx, target, limits)
        try:
            if not remote.attach(state["remote_dir"], int(state["pid"]), last_recorded_seq(ctx)):
                return None
            ctx.log(f"re-attached to the remote training on {target.address} (pid {remote.pid})")
            outcome = supervise(remote, ctx, limits.supervision(on_shutdown="detach"))
            result = remote.finish(outcome, time.time())
            remote.cleanup_remote()
            return result
        except SSHError:
            return None
        finally:
            remote.close()
