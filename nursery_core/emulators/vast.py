"""A local emulator of the Vast.ai REST API (as the official client 1.9.1 speaks it) for tests and demos.

Its "instances" are one local OpenSSH server: renting writes the instance's SSH keys into that server's
authorized_keys, and `actual_status` moves null -> loading -> running over successive polls. Faults (429,
5xx, dropped connections, terminal states) are injected per endpoint through `POST /_emulator/faults` or
`add_fault()`, and every instance's billed seconds x dph_total is recorded so tests can assert on teardown.
The serving, request log, faults and control plane are the shared emulator base's (`_server.py`); this module
adds Vast's routes, its key rules (bearer or `?api_key=`, an instance's own container key for that instance)
and its error bodies.

Standalone: `python -m nursery_core.emulators.vast --port 8765 --ssh-port 2222 --authorized-keys FILE`.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from ._server import ApiError, EmulatorServer, Reply, serve_forever

# Query aliases and unit multipliers the official client applies (vastai offers_alias / offers_mult).
_ALIASES = {"cuda_vers": "cuda_max_good", "dph": "dph_total", "dlperf_usd": "dlperf_per_dphtotal",
            "flops_usd": "flops_per_dphtotal", "display_active": "gpu_display_active"}
_QUERY_META = {"order", "type", "limit", "allocated_storage", "disable_bundling", "extra_ids"}
_OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "notin")
# v1 list: computed fields cannot be filtered (the live API answers 400).
_COMPUTED = {"dph_total", "num_gpus", "duration", "dph_base"}
_TERMINAL = {"exited", "unknown", "offline"}
_GPU_NAMES = ["RTX 3090", "RTX 4090", "RTX A5000", "RTX A6000", "A100 SXM4", "H100 SXM", "L40S", "RTX 3060"]


def default_offers() -> list[dict]:
    """A small market with the fields and number types /api/v0/bundles/ returns (gpu_ram in MB)."""
    rows = [
        # id, gpu, vram MB, dph_base, reliability, verified, num_gpus, geolocation, cuda
        (4101001, "RTX 3060", 12288, 0.0712345679, 0.9911, True, 1, "Poland, PL", 12.4),
        (4101002, "RTX 3090", 24576, 0.1523456790, 0.9987, True, 1, "Sweden, SE", 12.4),
        (4101003, "RTX 4090", 24564, 0.3401234568, 0.9962, True, 1, "Texas, US", 12.8),
        (4101004, "RTX A5000", 24564, 0.1902777778, 0.9313, True, 1, "Quebec, CA", 12.2),
        (4101005, "RTX 4090", 24564, 0.2901851852, 0.9974, False, 1, "Ohio, US", 12.8),
        (4101006, "A100 SXM4", 81920, 0.8912345679, 0.9991, True, 1, "Oregon, US", 12.6),
        (4101007, "H100 SXM", 81559, 1.9534567901, 0.9995, True, 1, "Virginia, US", 12.8),
        (4101008, "RTX A6000", 49140, 0.4198765432, 0.9978, True, 1, "Norway, NO", 12.4),
        (4101009, "RTX 3090", 24576, 0.3012345679, 0.9968, True, 2, "Sweden, SE", 12.4),
    ]
    offers = []
    for i, (oid, gpu, vram, dph, rel, verified, n, geo, cuda) in enumerate(rows):
        offers.append({
            "id": oid, "ask_contract_id": oid, "bundle_id": 900000000 + oid % 100000, "machine_id": 31000 + i,
            "host_id": 55000 + i, "gpu_name": gpu, "num_gpus": n, "gpu_ram": vram, "gpu_total_ram": vram * n,
            "gpu_arch": "nvidia", "compute_cap": 860 if "A" in gpu[:2] else 890, "cpu_arch": "amd64",
            "cpu_cores": 32, "cpu_cores_effective": 8.0 * n, "cpu_ram": 64302, "cpu_name": "AMD EPYC 7B13",
            "cuda_max_good": cuda, "driver_version": "550.127.05", "disk_space": 412.5 - i,
            "disk_bw": 2803.2, "inet_up": 811.3 + i, "inet_down": 902.7 + i, "direct_port_count": 40,
            "dph_base": dph, "dph_total": dph, "storage_cost": 0.15, "inet_up_cost": 0.001953125,
            "inet_down_cost": 0.001953125, "min_bid": round(dph * 0.6, 6), "is_bid": False,
            "dlperf": 31.6 * n, "dlperf_per_dphtotal": 31.6 * n / dph, "total_flops": 35.6 * n,
            "flops_per_dphtotal": 35.6 * n / dph, "duration": 2591999.0 - i * 3600.5,
            "end_date": time.time() + 2592000.0, "geolocation": geo, "public_ipaddr": f"198.51.100.{10 + i}",
            "reliability": rel, "reliability2": rel, "rentable": True, "rented": False,
            "external": False, "verification": "verified" if verified else "unverified",
            "vericode": 1 if verified else 0, "static_ip": True, "score": 100.0 * rel / dph,
            "hosting_type": 0, "os_version": "22.04", "pcie_bw": 24.3, "gpu_display_active": False,
            "has_avx": 1, "webpage": None, "logo": "/static/logos/vastai_small2.png",
        })
    return offers



_AUTH_BODY = {"success": False, "error": "auth_error", "msg": "Invalid user key"}
_ERROR_CODES = {400: "invalid_args", 404: "not_found"}
_ROUTES = [
    # method, regex, endpoint name, auth ("user" | "instance" | None)
    ("GET", r"/api/v0/gpu_names/unique", "gpu_names", None),
    ("GET", r"/api/v0/users/current", "users", "user"),
    ("POST", r"/api/v0/bundles", "search", "user"),
    ("GET", r"/api/v0/bundles", "search", "user"),
    ("PUT", r"/api/v0/search/asks", "search", "user"),
    ("PUT", r"/api/v0/asks/(?P<ask>\d+)", "rent", "user"),
    ("GET", r"/api/v0/instances", "list_v0", "user"),
    ("GET", r"/api/v1/instances", "list", "user"),
    ("GET", r"/api/v[01]/instances/(?P<iid>\d+)", "show", "instance"),
    ("PUT", r"/api/v[01]/instances/(?P<iid>\d+)", "manage", "instance"),
    ("DELETE", r"/api/v[01]/instances/(?P<iid>\d+)", "destroy", "instance"),
    ("POST", r"/api/v0/instances/(?P<iid>\d+)/ssh", "attach_ssh", "user"),
    ("GET", r"/api/v0/instances/(?P<iid>\d+)/ssh", "instance_ssh", "user"),
    ("DELETE", r"/api/v0/instances/(?P<iid>\d+)/ssh/(?P<kid>\d+)", "detach_ssh", "user"),
    ("POST", r"/api/v0/ssh", "ssh_keys", "user"),
    ("GET", r"/api/v0/ssh", "ssh_keys", "user"),
    ("DELETE", r"/api/v0/ssh/(?P<kid>\d+)", "ssh_keys", "user"),
    ("PUT", r"/api/v0/instances/request_logs/(?P<iid>\d+)", "logs", "instance"),
]


class VastEmulator(EmulatorServer):
    """The emulated API; `start()` serves it on 127.0.0.1 in a daemon thread (`.url`), `stop()` ends it."""

    name = "vast"
    routes = _ROUTES

    def __init__(self, api_keys: list[str] | str = "emulator-key", *, ssh_host: str = "127.0.0.1",
                 ssh_port: int = 22, authorized_keys: Path | str | None = None,
                 offers: list[dict] | None = None, boot_polls: tuple[int, int] = (1, 2),
                 auth_error_status: int = 401, run_onstart: bool = False, legacy_v0_list: bool = False,
                 host: str = "127.0.0.1", port: int = 0):
        super().__init__(api_keys, host=host, port=port)
        self.ssh_host, self.ssh_port = ssh_host, int(ssh_port)
        self.authorized_keys = Path(authorized_keys) if authorized_keys else None
        self._base_auth_lines: list[str] = []
        if self.authorized_keys and self.authorized_keys.exists():
            self._base_auth_lines = [ln for ln in self.authorized_keys.read_text().splitlines() if ln.strip()]
        self.offers = {o["id"]: dict(o) for o in (offers if offers is not None else default_offers())}
        self.boot_polls = (int(boot_polls[0]), int(boot_polls[1]))
        self.auth_error_status = int(auth_error_status)
        self.run_onstart = run_onstart
        self.legacy_v0_list = legacy_v0_list
        self.instances: dict[int, dict] = {}      # every instance ever created (destroyed ones kept)
        self.account_keys: dict[int, dict] = {}
        self._onstart_procs: dict[int, subprocess.Popen] = {}
        self._timers: list[threading.Timer] = []
        self._next_id = 7400101
        self._next_key_id = 501

    def stop(self) -> None:
        with self._lock:
            for t in self._timers:
                t.cancel()
            for iid in list(self._onstart_procs):
                self._kill_onstart(iid)
        super().stop()

    # ------------------------------------------------------------------------------- test controls
    def set_status(self, instance_id: int, actual_status: str | None) -> None:
        """Forces an instance's actual_status (e.g. 'exited', 'offline') from now on."""
        with self._lock:
            inst = self.instances[int(instance_id)]
            inst["_forced"] = True
            inst["actual_status"] = actual_status
            inst["status_msg"] = f"forced {actual_status}"

    def schedule_destroy(self, instance_id: int, after_s: float) -> None:
        """Destroys an instance after a delay, as a container's own watchdog would."""
        t = threading.Timer(after_s, lambda: self._destroy(int(instance_id), by="scheduled"))
        t.daemon = True
        with self._lock:
            self._timers.append(t)
        t.start()

    def live_instances(self) -> list[dict]:
        with self._lock:
            return [self._public(i) for i in self.instances.values() if not i["_destroyed"]]

    def billing(self) -> list[dict]:
        """Per instance: seconds billed (rent to destroy, or to now) and cost = seconds x dph_total."""
        out = []
        with self._lock:
            for inst in self.instances.values():
                end = inst["_destroyed_at"] or time.time()
                secs = max(0.0, end - inst["start_date"])
                out.append({"id": inst["id"], "label": inst["label"], "dph_total": inst["dph_total"],
                            "seconds": secs, "cost": secs * inst["dph_total"] / 3600.0,
                            "destroyed": inst["_destroyed"], "destroyed_by": inst["_destroyed_by"]})
        return out

    def state(self) -> dict:
        with self._lock:
            return {**super().state(),
                    "instances": [self._public(i, internal=True) for i in self.instances.values()],
                    "live": [i["id"] for i in self.instances.values() if not i["_destroyed"]],
                    "billing": self.billing()}

    # ------------------------------------------------------------------------ the base's provider hooks
    @staticmethod
    def request_key(request: Any, query: dict) -> str | None:
        """The key a call carries: `Authorization: Bearer` (the client) or `?api_key=` (the CLI)."""
        auth = request.headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        vals = query.get("api_key")
        return vals[0] if vals else None

    def authorize(self, auth: Any, params: dict, query: dict, request: Any) -> bool:
        iid = int(params["iid"]) if auth == "instance" and params.get("iid") else None
        return self._auth(self.request_key(request, query), iid)

    def auth_failure(self) -> ApiError:
        return ApiError(self.auth_error_status, str(_AUTH_BODY["msg"]), error=_AUTH_BODY["error"])

    def error_reply(self, status: int, message: str, **extra: Any) -> Reply:
        code = extra.pop("error", _ERROR_CODES.get(status, "server_error"))
        return Reply(status, {"success": False, "error": code, "msg": message, **extra})

    def fault_reply(self, fault: Any) -> Reply:
        """Vast's own fault bodies: a plain-text 429, nginx's HTML 5xx pages, else a JSON server error."""
        if fault.body is not None:
            return Reply(fault.status, fault.body)
        if fault.status == 429:
            return Reply(429, "API requests too frequent endpoint threshold=4.5", "text/plain")
        if fault.status in (502, 503, 504):
            names = {502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}
            return Reply(fault.status, f"<html><head><title>{fault.status} {names[fault.status]}</title></head>"
                         f"<body><center><h1>{fault.status} {names[fault.status]}</h1></center></body></html>",
                         "text/html")
        return self.error_reply(fault.status, "Internal Server Error")

    def route(self, endpoint: str, method: str, params: dict, query: dict, request: Any) -> Reply:
        body = request.json_body() if method in ("POST", "PUT", "DELETE") else {}
        return Reply(*self._answer(endpoint, method, params, query, body, request))

    # ---------------------------------------------------------------------------------- internals
    def _auth(self, key: str | None, instance_id: int | None = None) -> bool:
        if self.check_key(key):
            return True
        if key is not None and instance_id is not None:
            inst = self.instances.get(instance_id)
            return bool(inst and secrets.compare_digest(inst["_container_key"], key))
        return False

    def _price(self, offer: dict, storage_gb: float) -> dict:
        o = dict(offer)
        # dph_total includes the storage the query asks for ($/GB/month over a 30-day month)
        o["storage_total_cost"] = offer["storage_cost"] * storage_gb / 720.0
        o["dph_total"] = offer["dph_base"] + o["storage_total_cost"]
        o["dlperf_per_dphtotal"] = offer["dlperf"] / o["dph_total"]
        o["flops_per_dphtotal"] = offer["total_flops"] / o["dph_total"]
        o["disk_space"] = offer["disk_space"]
        return o

    @staticmethod
    def _coerce(value: Any, like: Any) -> Any:
        if isinstance(like, bool):
            if isinstance(value, str):
                return value.lower() in ("true", "1")
            return bool(value)
        if isinstance(like, (int, float)) and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return value
        if isinstance(like, str) and isinstance(value, str):
            return value.replace("_", " ")
        return value

    def _match(self, row: dict, field: str, cond: Any) -> bool:
        if field == "verified":
            actual: Any = row.get("verification") == "verified"
        else:
            actual = row.get(field)
        if not isinstance(cond, dict):
            cond = {"eq": cond}
        for op, want in cond.items():
            if op not in _OPS:
                raise ApiError(400, f"Unknown operator {op!r} for field {field!r}")
            if op in ("in", "notin"):
                wants = [self._coerce(w, actual) for w in (want if isinstance(want, list) else [want])]
                if isinstance(actual, str):
                    wants = [w.replace("_", " ") if isinstance(w, str) else w for w in wants]
                ok = actual in wants
                if op == "notin":
                    ok = not ok
            else:
                w = self._coerce(want, actual)
                if actual is None:
                    ok = op == "eq" and w is None or op == "neq" and w is not None
                else:
                    try:
                        if op in ("eq", "neq"):
                            ok = (actual == w) if op == "eq" else (actual != w)
                        else:
                            ok = {"gt": actual > w, "gte": actual >= w, "lt": actual < w, "lte": actual <= w}[op]
                    except TypeError:
                        ok = False
            if not ok:
                return False
        return True

    def search(self, query: dict) -> list[dict]:
        storage = float(query.get("allocated_storage", 5.0) or 5.0)
        otype = query.get("type", "on-demand")
        if otype not in ("on-demand", "ondemand", "bid", "reserved", "interruptible"):
            raise ApiError(400, f"invalid type {otype!r}")
        with self._lock:
            rows = [self._price(o, storage) for o in self.offers.values()]
        for raw_field, cond in query.items():
            if raw_field in _QUERY_META:
                continue
            field = _ALIASES.get(raw_field, raw_field)
            rows = [r for r in rows if self._match(r, field, cond)]
        for field, direction in reversed(query.get("order") or [["score", "desc"]]):
            field = _ALIASES.get(field, field)
            rows.sort(key=lambda r: (r.get(field) is None, r.get(field) or 0), reverse=direction == "desc")
        limit = query.get("limit")
        if limit is not None:
            rows = rows[: int(limit)]
        return rows

    def _new_instance(self, offer: dict, body: dict) -> dict:
        env = body.get("env") or {}
        if isinstance(env, str):  # the older documented string form: "-e K=V -p 8000:8000"
            pairs, toks = {}, env.split()
            for i, t in enumerate(toks):
                if t == "-e" and i + 1 < len(toks) and "=" in toks[i + 1]:
                    k, v = toks[i + 1].split("=", 1)
                    pairs[k] = v
            env = pairs
        runtype = str(body.get("runtype") or "ssh")
        tokens = set(runtype.replace("direct", "direc").split())
        disk = float(body.get("disk", 10.0))
        priced = self._price(offer, disk)
        iid = self._next_id
        self._next_id += 1
        now = time.time()
        inst = {
            "id": iid, "machine_id": offer["machine_id"], "host_id": offer["host_id"],
            "bundle_id": offer["bundle_id"], "ask_id": offer["id"],
            "actual_status": None, "intended_status": "running", "cur_state": "running",
            "next_state": "running", "status_msg": None, "label": body.get("label"),
            "image_uuid": body.get("image"), "image_runtype": runtype, "image_args": [],
            "extra_env": [[str(k), str(v)] for k, v in env.items()], "onstart": body.get("onstart"),
            "jupyter_token": secrets.token_hex(32), "template_hash_id": body.get("template_hash_id"),
            "ssh_host": self.ssh_host, "ssh_idx": str(self.ssh_port % 10000), "ssh_port": self.ssh_port,
            "public_ipaddr": self.ssh_host, "local_ipaddrs": "10.2.0.17 172.17.0.1 \n", "ports": {},
            "direct_port_start": self.ssh_port, "direct_port_end": self.ssh_port,
            "direct_port_count": 1, "start_date": now, "end_date": offer["end_date"],
            "duration": None, "dph_total": priced["dph_total"], "dph_base": offer["dph_base"],
            "storage_cost": offer["storage_cost"], "storage_total_cost": priced["storage_total_cost"],
            "reliability2": offer["reliability2"], "min_bid": offer["min_bid"], "is_bid": False,
            "gpu_name": offer["gpu_name"], "num_gpus": offer["num_gpus"], "gpu_ram": offer["gpu_ram"],
            "gpu_totalram": offer["gpu_total_ram"], "gpu_util": None, "gpu_temp": None,
            "cpu_name": offer["cpu_name"], "cpu_cores": offer["cpu_cores"],
            "cpu_cores_effective": offer["cpu_cores_effective"], "cpu_ram": offer["cpu_ram"],
            "cpu_util": 0.0, "mem_usage": None, "mem_limit": None, "disk_space": disk, "disk_usage": 0.0,
            "disk_util": 0.0, "inet_up": offer["inet_up"], "inet_down": offer["inet_down"],
            "cuda_max_good": offer["cuda_max_good"], "driver_version": offer["driver_version"],
            "geolocation": offer["geolocation"], "verification": offer["verification"],
            "compute_cap": offer["compute_cap"], "host_run_time": 2592000, "logo": offer["logo"],
            "client_run_time": 0.0, "time_remaining": "", "vmem_usage": None, "rentable": False,
            "is_ssh_direct": "ssh_direc" in tokens, "image_login": None,
            # emulator-only bookkeeping (stripped from replies)
            "_container_key": secrets.token_hex(32), "_polls": 0, "_forced": False, "_destroyed": False,
            "_destroyed_at": None, "_destroyed_by": None, "_keys": {}, "_runtype_tokens": sorted(tokens),
        }
        self.instances[iid] = inst
        offer["rentable"], offer["rented"] = False, True
        for acct in self.account_keys.values():  # account keys apply to new instances
            inst["_keys"][acct["id"]] = acct["public_key"]
        self._write_authorized_keys()
        return inst

    def _advance(self, inst: dict) -> None:
        """One poll moves a booting instance along null -> loading -> running."""
        if inst["_forced"] or inst["_destroyed"] or inst["actual_status"] in ("running", "stopped"):
            return
        inst["_polls"] += 1
        null_polls, loading_polls = self.boot_polls
        if inst["_polls"] > null_polls + loading_polls:
            self._become_running(inst)
        elif inst["_polls"] > null_polls:
            inst["actual_status"] = "loading"
            inst["status_msg"] = f"Pulling image {inst['image_uuid']}"

    def _become_running(self, inst: dict) -> None:
        inst["actual_status"] = "running"
        inst["status_msg"] = f"success, running {inst['image_uuid']}/ssh"
        inst["ports"] = {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(self.ssh_port)},
                                    {"HostIp": "::", "HostPort": str(self.ssh_port)}]}
        if self.run_onstart and inst.get("onstart") and inst["id"] not in self._onstart_procs:
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
                   "CONTAINER_ID": str(inst["id"]), "CONTAINER_API_KEY": inst["_container_key"],
                   "PUBLIC_IPADDR": inst["public_ipaddr"], "VAST_TCP_PORT_22": str(self.ssh_port),
                   **{k: v for k, v in inst["extra_env"] if not k.startswith("-")}}
            self._onstart_procs[inst["id"]] = subprocess.Popen(
                ["/bin/sh", "-c", inst["onstart"]], env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def _kill_onstart(self, iid: int) -> None:
        proc = self._onstart_procs.pop(iid, None)
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait(timeout=5)
        elif proc is not None:
            try:  # the shell exited; its background children (the watchdog) share its group
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def _destroy(self, iid: int, by: str = "api") -> bool:
        with self._lock:
            inst = self.instances.get(iid)
            if inst is None or inst["_destroyed"]:
                return False
            inst["_destroyed"], inst["_destroyed_at"], inst["_destroyed_by"] = True, time.time(), by
            inst["actual_status"], inst["cur_state"], inst["intended_status"] = "exited", "stopped", "stopped"
            offer = self.offers.get(inst["ask_id"])
            if offer is not None:
                offer["rentable"], offer["rented"] = True, False
            self._write_authorized_keys()
        self._kill_onstart(iid)
        return True

    def _write_authorized_keys(self) -> None:
        if not self.authorized_keys:
            return
        lines = list(self._base_auth_lines)
        for inst in self.instances.values():
            if inst["_destroyed"]:
                continue
            for key in inst["_keys"].values():
                if key not in lines:
                    lines.append(key)
        tmp = self.authorized_keys.with_name(self.authorized_keys.name + ".tmp")
        tmp.write_text("".join(ln + "\n" for ln in lines))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.authorized_keys)

    def _public(self, inst: dict, internal: bool = False) -> dict:
        row = {k: v for k, v in inst.items() if not k.startswith("_")}
        row["duration"] = time.time() - inst["start_date"]
        if internal:
            row["destroyed"] = inst["_destroyed"]
            row["destroyed_by"] = inst["_destroyed_by"]
        return row


    # --------------------------------------------------------------------------------------- routes
    def _answer(self, endpoint: str, method: str, params: dict, query: dict, body: Any,
                request: Any) -> tuple[int, Any]:
        emu = self
        with emu._lock:
            if endpoint == "gpu_names":
                return 200, {"gpu_names": _GPU_NAMES}
            if endpoint == "users":
                return 200, {"id": 271828, "username": "emulator", "email": "emulator@example.invalid",
                             "fullname": "Vast Emulator", "credit": 25.0, "balance": 0.0,
                             "ssh_key": None, "host_agreement_accepted": False, "can_pay": True,
                             "has_billing": True, "is_verified": True}
            if endpoint == "search":
                if method == "GET":
                    q = json.loads(query.get("q", ["{}"])[0])
                elif method == "PUT":
                    q = body.get("q") or {}
                else:
                    q = body
                return 200, {"offers": emu.search(q)}
            if endpoint == "rent":
                return self._rent(int(params["ask"]), body)
            if endpoint == "list_v0":
                if emu.legacy_v0_list:
                    rows = [emu._public(i) for i in emu.instances.values() if not i["_destroyed"]]
                    return 200, {"instances_found": len(rows), "instances": rows}
                return 410, {"success": False, "error": "deprecated_endpoint",
                             "msg": "/api/v0/instances/ is deprecated. Use /api/v1/instances/ instead."}
            if endpoint == "list":
                return self._list_v1(query)
            iid = int(params["iid"]) if params.get("iid") else -1  # -1: no instance has it
            inst: dict = emu.instances.get(iid) or {}  # {} when there is no such instance (live is then False)
            live = bool(inst) and not inst["_destroyed"]
            if endpoint == "show":
                if not live:
                    return 200, {"instances": None}
                emu._advance(inst)
                return 200, {"instances": emu._public(inst)}
            if endpoint == "manage":
                if not live:
                    return 404, {"success": False, "error": "not_found", "msg": "Instance not found"}
                if "label" in body:
                    inst["label"] = body["label"]
                state = body.get("state")
                if state == "stopped":
                    inst["actual_status"] = inst["intended_status"] = inst["cur_state"] = "stopped"
                    emu._kill_onstart(iid)
                elif state == "running":
                    inst["intended_status"] = inst["cur_state"] = "running"
                    inst["_forced"] = False
                    emu._become_running(inst)
                elif state is not None:
                    return 400, {"success": False, "error": "invalid_args", "msg": f"invalid state {state!r}"}
                return 200, {"success": True}
            if endpoint == "destroy":
                if not live:
                    return 404, {"success": False, "error": "not_found", "msg": "Instance not found"}
                by = "container" if self.request_key(request, query) == inst["_container_key"] else "api"
                emu._destroy(iid, by=by)
                return 200, {"success": True}
            if endpoint in ("attach_ssh", "instance_ssh", "detach_ssh") and not live:
                return 404, {"success": False, "error": "not_found", "msg": "Instance not found"}
            if endpoint == "attach_ssh":
                key = str(body.get("ssh_key") or "").strip()
                if not re.match(r"^(ssh-(ed25519|rsa)|ecdsa-sha2-\S+) [A-Za-z0-9+/=]+( .*)?$", key):
                    return 400, {"success": False, "error": "invalid_args", "msg": "Invalid ssh key"}
                kid = emu._next_key_id
                emu._next_key_id += 1
                inst["_keys"][kid] = key
                emu._write_authorized_keys()
                return 200, {"success": True, "msg": "SSH key attached successfully"}
            if endpoint == "instance_ssh":
                keys = [{"id": k, "name": "", "public_key": v} for k, v in inst["_keys"].items()]
                return 200, {"success": True, "ssh_keys": json.dumps(keys)}
            if endpoint == "detach_ssh":
                if inst["_keys"].pop(int(params["kid"]), None) is None:
                    return 404, {"success": False, "error": "not_found", "msg": "SSH key not found"}
                emu._write_authorized_keys()
                return 200, {"success": True, "msg": "SSH key removed from instance."}
            if endpoint == "ssh_keys":
                return self._ssh_keys(method, params, body)
            if endpoint == "logs":
                if not live:
                    return 404, {"success": False, "error": "not_found", "msg": "Instance not found"}
                return 200, {"success": True, "result_url": f"{emu.url}/_emulator/logs/{iid}"}
        raise ApiError(404, "unknown endpoint")


    def _rent(self, ask_id: int, body: dict) -> tuple[int, Any]:
        emu = self
        offer = emu.offers.get(ask_id)
        if offer is None or not offer["rentable"]:
            return 404, {"success": False, "error": "invalid_args", "ask_id": ask_id,
                         "msg": f"error 404/3603: no_such_ask Instance type by id {ask_id} is not available."}
        errors = []
        if not body.get("image") or len(str(body["image"])) > 1024:
            errors.append("image is required (at most 1024 characters)")
        try:
            disk = float(body.get("disk", 10.0))
            if disk < 8.0:
                errors.append("disk must be at least 8.0 GB")
        except (TypeError, ValueError):
            errors.append("disk must be a number")
        if body.get("label") is not None and len(str(body["label"])) > 256:
            errors.append("label is longer than 256 characters")
        env = body.get("env")
        if env is not None and not isinstance(env, (dict, str)):
            errors.append("env must be a JSON object")
        if errors:
            return 400, {"success": False, "error": "invalid_args", "msg": "; ".join(errors), "ask_id": ask_id}
        inst = emu._new_instance(offer, body)
        return 200, {"success": True, "new_contract": inst["id"], "instance_api_key": inst["_container_key"]}

    def _list_v1(self, query: dict) -> tuple[int, Any]:
        emu = self

        def jparam(name: str, default: Any) -> Any:
            if name not in query:
                return default
            try:
                return json.loads(query[name][0])
            except ValueError:
                raise ApiError(400, f"{name} must be JSON") from None

        filters = jparam("select_filters", {}) or {}
        order_by = jparam("order_by", [{"col": "id", "dir": "asc"}]) or [{"col": "id", "dir": "asc"}]
        cols = jparam("select_cols", None)
        try:
            limit = min(25, max(1, int(query.get("limit", ["25"])[0])))
        except ValueError:
            raise ApiError(400, "limit must be an integer") from None
        for f in filters:
            if f in _COMPUTED:
                raise ApiError(400, f"Computed field {f!r} is not filterable")
        live = [i for i in emu.instances.values() if not i["_destroyed"]]
        rows = [emu._public(i) for i in live]
        for f, cond in filters.items():
            rows = [r for r in rows if emu._match(r, f, cond)]
        for spec in reversed(order_by):
            col = spec.get("col", "id")
            rows.sort(key=lambda r: (r.get(col) is None, r.get(col) or 0), reverse=spec.get("dir") == "desc")
        total_matching = len(rows)
        if "after_token" in query:
            try:
                after = json.loads(base64.b64decode(query["after_token"][0]))["values"]["id"]
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, "bad after_token") from None
            ids = [r["id"] for r in rows]
            rows = rows[ids.index(after) + 1:] if after in ids else [r for r in rows if r["id"] > after]
        page = rows[:limit]
        next_token = None
        if len(rows) > limit:
            next_token = base64.b64encode(json.dumps({"values": {"id": page[-1]["id"]}}).encode()).decode()
        if cols and cols != ["*"]:
            page = [{c: r.get(c) for c in cols} for r in page]
        counts: dict[str, int] = {}
        for i in live:
            counts[i["label"] or ""] = counts.get(i["label"] or "", 0) + 1
        return 200, {"success": True, "instances_found": total_matching, "total_instances": len(live),
                     "label_counts": counts, "next_token": next_token, "instances": page}

    def _ssh_keys(self, method: str, params: dict, body: dict) -> tuple[int, Any]:
        emu = self
        if method == "GET":
            return 200, [dict(k) for k in emu.account_keys.values()]
        if method == "POST":
            key = str(body.get("ssh_key") or "").strip()
            if not key.startswith(("ssh-", "ecdsa-")):
                return 400, {"success": False, "error": "invalid_args", "msg": "Invalid ssh key"}
            kid = emu._next_key_id
            emu._next_key_id += 1
            row = {"id": kid, "user_id": 271828, "public_key": key, "key": key,
                   "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "deleted_at": None}
            emu.account_keys[kid] = row
            return 200, {"success": True, "key": row}
        if emu.account_keys.pop(int(params["kid"]), None) is None:
            return 404, {"success": False, "error": "not_found", "msg": "SSH key not found"}
        return 200, {"success": True}


    # ------------------------------------------------------------------------------ control plane
    def control(self, method: str, path: str, body: Any) -> Reply:
        """The base's faults and state, plus forcing an instance's status, a scheduled destroy and logs."""
        emu = self
        m = re.match(r"^/_emulator/instances/(\d+)/(status|schedule_destroy)/?$", path)
        if m and method == "POST":
            iid = int(m.group(1))
            if iid not in emu.instances:
                return self.error_reply(404, "Instance not found")
            if m.group(2) == "status":
                emu.set_status(iid, body.get("actual_status"))
            else:
                emu.schedule_destroy(iid, float(body.get("after_s", 0)))
            return Reply(200, {"success": True})
        m = re.match(r"^/_emulator/logs/(\d+)/?$", path)
        if m:
            inst = emu.instances.get(int(m.group(1)))
            text = "" if inst is None else f"onstart: {inst.get('onstart') or ''}\n{inst.get('status_msg') or ''}\n"
            return Reply(200, {"logs": text})
        return super().control(method, path, body)



def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nursery_core.emulators.vast",
                                description="Serve a local emulator of the Vast.ai REST API.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--api-key", action="append", dest="api_keys",
                   help="accepted API key (repeatable; default: $VAST_API_KEY or 'emulator-key')")
    p.add_argument("--ssh-host", default="127.0.0.1", help="where the instances' sshd listens")
    p.add_argument("--ssh-port", type=int, default=22)
    p.add_argument("--authorized-keys", help="the sshd's authorized_keys file; attached keys are written here")
    p.add_argument("--boot-polls", default="1,2", help="polls spent at null and at loading (default 1,2)")
    p.add_argument("--auth-error-status", type=int, choices=(401, 404), default=401)
    p.add_argument("--run-onstart", action="store_true",
                   help="run each instance's onstart script on this machine (with CONTAINER_ID/CONTAINER_API_KEY)")
    p.add_argument("--legacy-v0-list", action="store_true", help="answer GET /api/v0/instances/ instead of 410")
    a = p.parse_args(argv)
    keys = a.api_keys or [os.environ.get("VAST_API_KEY") or "emulator-key"]
    null_polls, loading_polls = (int(x) for x in a.boot_polls.split(","))
    emu = VastEmulator(keys, ssh_host=a.ssh_host, ssh_port=a.ssh_port, authorized_keys=a.authorized_keys,
                       boot_polls=(null_polls, loading_polls), auth_error_status=a.auth_error_status,
                       run_onstart=a.run_onstart, legacy_v0_list=a.legacy_v0_list, host=a.host, port=a.port)
    return serve_forever(emu, lambda e: f"Vast.ai emulator on {e.url} (set VAST_API_URL={e.url}); instances -> "
                                        f"ssh root@{a.ssh_host}:{a.ssh_port}; {len(e.offers)} offers. Ctrl-C stops.")


if __name__ == "__main__":
    raise SystemExit(main())
