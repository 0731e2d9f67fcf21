"""A local emulator of RunPod's GraphQL API (`POST /graphql`, as the official `runpod` SDK 1.12.0 speaks it).

Queries are parsed and executed by graphql-core against a schema covering what the SDK sends: GPU types with
prices, `podFindAndDeployOnDemand`, `pod`, `myself { pods }`, `podStop`, `podResume`, `podTerminate` and
`updateUserSettings`. Errors go out the way RunPod sends them: HTTP 200 with `{"errors": [{"message": ...}]}`;
a bad key is HTTP 401. Point the SDK at it with `RUNPOD_API_BASE_URL=http://127.0.0.1:PORT`.

Its "pods" are one local OpenSSH server: a running pod's `PUBLIC_KEY` env (or the account key) is written into
that server's authorized_keys, and `runtime.ports` maps privatePort 22 to it once the pod has booted
(`boot_polls` pod queries after create or resume; until then `runtime` is null, as on RunPod).
Billing follows RunPod's pricing page (runpod/docs pods/pricing.mdx): per second, a running pod pays its GPUs
(`costPerHr`) plus container disk and volume at $0.10/GB/month; a stopped pod pays only its volume, at
$0.20/GB/month; a terminated pod pays nothing. Faults (429, 5xx, dropped connections) are injected per
root field (`podFindAndDeployOnDemand`, `podTerminate`, ...) through `add_fault()` or `POST /_emulator/faults`.

Standalone: `python -m nursery_core.emulators.runpod --port 8766 --ssh-port 2222 --authorized-keys FILE`.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from graphql import GraphQLError, build_schema, graphql_sync, parse
from graphql.language import OperationDefinitionNode

from ._server import Fault, serve_forever

# Storage prices in $/GB/month (runpod/docs pods/pricing.mdx), billed per second over a 30-day month.
DISK_RUNNING_GB_MONTH = 0.10
VOLUME_STOPPED_GB_MONTH = 0.20
_HOURS_PER_MONTH = 720.0
NO_INSTANCES = ("There are no longer any instances available with the requested specifications. "
                "Please refresh and try again.")

SCHEMA_SDL = """
scalar Void

type Query {
  gpuTypes(input: GpuTypeFilter): [GpuType]
  pod(input: PodFilter): Pod
  myself: User
}

type Mutation {
  podFindAndDeployOnDemand(input: PodFindAndDeployOnDemandInput): Pod
  podStop(input: PodStopInput): Pod
  podResume(input: PodResumeInput): Pod
  podTerminate(input: PodTerminateInput): Void
  updateUserSettings(input: UpdateUserSettingsInput): User
}

input GpuTypeFilter { id: String }
input LowestPriceInput { gpuCount: Int }
input PodFilter { podId: String! }
input PodStopInput { podId: String! }
input PodResumeInput { podId: String!, gpuCount: Int }
input PodTerminateInput { podId: String! }
input UpdateUserSettingsInput { pubKey: String }
input EnvironmentVariableInput { key: String!, value: String }
enum CloudTypeEnum { ALL SECURE COMMUNITY }
enum PodStatus { CREATED RUNNING RESTARTING EXITED PAUSED DEAD TERMINATED }

input PodFindAndDeployOnDemandInput {
  name: String
  imageName: String
  cloudType: CloudTypeEnum
  startSsh: Boolean
  startJupyter: Boolean
  gpuTypeId: String
  supportPublicIp: Boolean
  gpuCount: Int
  volumeInGb: Int
  containerDiskInGb: Int
  minVcpuCount: Int
  minMemoryInGb: Int
  dataCenterId: String
  countryCode: String
  dockerArgs: String
  ports: String
  volumeMountPath: String
  env: [EnvironmentVariableInput]
  templateId: String
  networkVolumeId: String
  allowedCudaVersions: [String]
  minDownload: Int
  minUpload: Int
}

type LowestPrice { minimumBidPrice: Float, uninterruptablePrice: Float }

type GpuType {
  id: String!
  displayName: String
  manufacturer: String
  memoryInGb: Int
  cudaCores: Int
  maxGpuCount: Int
  secureCloud: Boolean
  communityCloud: Boolean
  securePrice: Float
  communityPrice: Float
  oneMonthPrice: Float
  threeMonthPrice: Float
  oneWeekPrice: Float
  communitySpotPrice: Float
  secureSpotPrice: Float
  lowestPrice(input: LowestPriceInput): LowestPrice
}

type Machine { podHostId: String, gpuDisplayName: String }
type PortMapping { ip: String, isIpPublic: Boolean, privatePort: Int, publicPort: Int, type: String }
type PodRuntime { uptimeInSeconds: Int, ports: [PortMapping] }

type Pod {
  id: String!
  name: String
  imageName: String
  desiredStatus: PodStatus
  lastStatusChange: String
  costPerHr: Float
  gpuCount: Int
  vcpuCount: Float
  memoryInGb: Float
  containerDiskInGb: Int
  volumeInGb: Float
  volumeMountPath: String
  dockerArgs: String
  dockerId: String
  env: [String]
  machineId: String
  machine: Machine
  podType: String
  port: Int
  ports: String
  uptimeSeconds: Int
  runtime: PodRuntime
}

type NetworkVolume { id: String, name: String, size: Int, dataCenterId: String }
type User { id: String, pubKey: String, pods: [Pod], networkVolumes: [NetworkVolume] }
"""


def default_gpu_types() -> list[dict]:
    """A small catalogue: id, display name, memory (GB), secure/community $/GPU/hour, most GPUs per pod, stock."""
    rows = [
        ("NVIDIA GeForce RTX 3090", "RTX 3090", 24, 0.43, 0.22, 8, 8),
        ("NVIDIA GeForce RTX 4090", "RTX 4090", 24, 0.69, 0.34, 8, 8),
        ("NVIDIA RTX A5000", "RTX A5000", 24, 0.27, 0.16, 8, 8),
        ("NVIDIA L40S", "L40S", 48, 0.86, 0.79, 8, 4),
        ("NVIDIA A100 80GB PCIe", "A100 PCIe", 80, 1.64, 1.19, 8, 4),
        ("NVIDIA H100 80GB HBM3", "H100 SXM", 80, 2.99, 2.69, 8, 2),
    ]
    out = []
    for gid, name, mem, secure, community, max_count, stock in rows:
        out.append({"id": gid, "displayName": name, "manufacturer": "Nvidia", "memoryInGb": mem,
                    "cudaCores": 10496 if mem == 24 else 16384, "maxGpuCount": max_count,
                    "secureCloud": secure is not None, "communityCloud": community is not None,
                    "securePrice": secure, "communityPrice": community,
                    "oneWeekPrice": round(secure * 0.95, 2), "oneMonthPrice": round(secure * 0.9, 2),
                    "threeMonthPrice": round(secure * 0.85, 2),
                    "secureSpotPrice": round(secure * 0.6, 2), "communitySpotPrice": round(community * 0.6, 2),
                    "stock": stock})
    return out


class _QueryFailed(Exception):
    """A resolver refusal; it reaches the client as a GraphQL error message."""


class RunPodEmulator:
    """The emulated API; `start()` serves it on 127.0.0.1 in a daemon thread (`.url`), `stop()` ends it.

    `clock` (seconds, default time.time) drives billing, so a test can move time forward exactly."""

    def __init__(self, api_keys: list[str] | str = "emulator-key", *, ssh_host: str = "127.0.0.1",
                 ssh_port: int = 22, authorized_keys: Path | str | None = None,
                 gpu_types: list[dict] | None = None, boot_polls: int = 2,
                 clock: Callable[[], float] = time.time, host: str = "127.0.0.1", port: int = 0):
        self.api_keys = {api_keys} if isinstance(api_keys, str) else set(api_keys)
        self.ssh_host, self.ssh_port = ssh_host, int(ssh_port)
        self.authorized_keys = Path(authorized_keys) if authorized_keys else None
        self._base_auth_lines: list[str] = []
        if self.authorized_keys and self.authorized_keys.exists():
            self._base_auth_lines = [ln for ln in self.authorized_keys.read_text().splitlines() if ln.strip()]
        self.gpu_types = {g["id"]: dict(g) for g in (gpu_types if gpu_types is not None else default_gpu_types())}
        self.boot_polls = int(boot_polls)
        self.clock = clock
        self.pods: dict[str, dict] = {}          # every pod ever created (terminated ones kept)
        self.account_pub_key = ""
        self.faults: list[Fault] = []
        self.requests: list[dict] = []           # ts, root fields, status
        self._lock = threading.RLock()
        self._schema = build_schema(SCHEMA_SDL)
        self._host, self._port = host, port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------------------------- lifecycle
    def start(self) -> "RunPodEmulator":
        emu = self

        class Handler(_Handler):
            emulator = emu

        self._server = ThreadingHTTPServer((self._host, self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="runpod-emulator",
                                        daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "RunPodEmulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------------------- test controls
    def add_fault(self, endpoint: str, status: int, count: int = 1, body: Any = None, apply: bool = False,
                  skip: int = 0) -> None:
        """Answers the next `count` requests whose root field is `endpoint` ('*': any) with HTTP `status`,
        after `skip` good ones. status 0 drops the connection; apply=True performs the call first (a pod that
        was created although the client saw a 5xx)."""
        with self._lock:
            self.faults.append(Fault(endpoint, int(status), int(count), body, bool(apply), int(skip)))

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def live_pods(self) -> list[dict]:
        """Pods not terminated (running or stopped): each still bills something."""
        with self._lock:
            return [self._public(p, internal=True) for p in self.pods.values() if p["desiredStatus"] != "TERMINATED"]

    def billing(self) -> list[dict]:
        """Per pod: running and stopped seconds, compute (GPU) and disk cost in USD, total `cost`, `billing`
        (whether it still accrues) and `rate_per_hr` now."""
        out = []
        now = self.clock()
        with self._lock:
            for p in self.pods.values():
                run_s = stop_s = compute = disk = 0.0
                for seg in p["_ledger"]:
                    secs = max(0.0, (seg["end"] if seg["end"] is not None else now) - seg["start"])
                    if seg["state"] == "running":
                        run_s += secs
                    else:
                        stop_s += secs
                    compute += secs * seg["compute_per_hr"] / 3600.0
                    disk += secs * seg["disk_per_hr"] / 3600.0
                open_seg = next((s for s in p["_ledger"] if s["end"] is None), None)
                out.append({"id": p["id"], "name": p["name"], "status": p["desiredStatus"],
                            "running_seconds": run_s, "stopped_seconds": stop_s, "compute_cost": compute,
                            "disk_cost": disk, "cost": compute + disk, "billing": open_seg is not None,
                            "rate_per_hr": (open_seg["compute_per_hr"] + open_seg["disk_per_hr"]) if open_seg
                            else 0.0})
        return out

    def state(self) -> dict:
        with self._lock:
            return {"pods": [self._public(p, internal=True) for p in self.pods.values()],
                    "live": [p["id"] for p in self.pods.values() if p["desiredStatus"] != "TERMINATED"],
                    "billing": self.billing(), "faults": [f.to_dict() for f in self.faults],
                    "requests": list(self.requests), "stock": {g: t["stock"] for g, t in self.gpu_types.items()}}

    def execute(self, query: str, variables: dict | None = None) -> dict:
        """Runs one GraphQL document against the emulated state; returns {"data": ...} or {"errors": [...]}."""
        with self._lock:
            result = graphql_sync(self._schema, query, root_value=_Root(self), variable_values=variables)
        if result.errors:
            # RunPod answers a failed operation without partial data; the SDK reads errors[0].message.
            return {"errors": [{"message": e.message, "path": e.path} for e in result.errors]}
        return {"data": result.data}

    # ---------------------------------------------------------------------------------- internals
    def _take_fault(self, endpoints: list[str]) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if (f.endpoint == "*" or f.endpoint in endpoints) and f.count > 0:
                    if f.skip > 0:
                        f.skip -= 1
                        continue
                    f.count -= 1
                    if f.count <= 0:
                        self.faults.remove(f)
                    return f
        return None

    def _gpu_price(self, gpu: dict, cloud: str) -> float:
        prices = {"SECURE": [gpu["securePrice"]], "COMMUNITY": [gpu["communityPrice"]],
                  "ALL": [gpu["securePrice"], gpu["communityPrice"]]}[cloud]
        prices = [p for p in prices if p is not None]
        if not prices:
            raise _QueryFailed(NO_INSTANCES)
        return min(prices)

    def _disk_rate(self, pod: dict, state: str) -> float:
        if state == "running":
            gb = pod["containerDiskInGb"] + pod["volumeInGb"]
            return gb * DISK_RUNNING_GB_MONTH / _HOURS_PER_MONTH
        return pod["volumeInGb"] * VOLUME_STOPPED_GB_MONTH / _HOURS_PER_MONTH

    def _open_segment(self, pod: dict, state: str) -> None:
        now = self.clock()
        for seg in pod["_ledger"]:
            if seg["end"] is None:
                seg["end"] = now
        if state == "terminated":
            return
        pod["_ledger"].append({"state": state, "start": now, "end": None,
                               "compute_per_hr": pod["costPerHr"] if state == "running" else 0.0,
                               "disk_per_hr": self._disk_rate(pod, state)})

    def _create(self, inp: dict) -> dict:
        gid = inp.get("gpuTypeId")
        gpu = self.gpu_types.get(gid or "")
        if gpu is None:
            raise _QueryFailed(f"GPU type {gid!r} not found")
        if not inp.get("imageName") and not inp.get("templateId"):
            raise _QueryFailed("imageName or templateId is required")
        count = int(inp.get("gpuCount") or 1)
        if count < 1 or count > gpu["maxGpuCount"]:
            raise _QueryFailed(f"gpuCount must be between 1 and {gpu['maxGpuCount']} for {gid}")
        for field in ("volumeInGb", "containerDiskInGb"):
            if inp.get(field) is not None and int(inp[field]) < 0:
                raise _QueryFailed(f"{field} must not be negative")
        cloud = inp.get("cloudType") or "ALL"
        price = self._gpu_price(gpu, cloud)
        if gpu["stock"] < count:
            raise _QueryFailed(NO_INSTANCES)
        env = {str(e["key"]): "" if e.get("value") is None else str(e["value"]) for e in inp.get("env") or []}
        if inp.get("startSsh") and "PUBLIC_KEY" not in env and self.account_pub_key:
            # startSsh injects the account's keys unless the request sets PUBLIC_KEY (REST v2 docs, CreatePodRequest)
            env["PUBLIC_KEY"] = self.account_pub_key
        gpu["stock"] -= count
        pid = secrets.token_hex(7)[:14]
        now = self.clock()
        pod = {"id": pid, "name": inp.get("name") or pid, "imageName": inp.get("imageName") or "",
               "desiredStatus": "RUNNING", "lastStatusChange": f"Rented by User: {time.ctime(now)}",
               "costPerHr": round(price * count, 4), "gpuCount": count,
               "vcpuCount": float(max(int(inp.get("minVcpuCount") or 1), 8 * count)),
               "memoryInGb": float(max(int(inp.get("minMemoryInGb") or 1), 31 * count)),
               "containerDiskInGb": int(inp.get("containerDiskInGb") or 0),
               "volumeInGb": float(inp.get("volumeInGb") or 0),
               "volumeMountPath": inp.get("volumeMountPath") or "/workspace",
               "dockerArgs": inp.get("dockerArgs") or "", "dockerId": None,
               "env": [f"{k}={v}" for k, v in env.items()], "machineId": secrets.token_hex(6),
               "podType": "RESERVED", "port": None, "ports": (inp.get("ports") or "").replace(" ", ""),
               "uptimeSeconds": 0, "_cloud": cloud, "_gpu": gid, "_env": env, "_polls": 0, "_started": now,
               "_start_ssh": bool(inp.get("startSsh")), "_public_ip": inp.get("supportPublicIp", True),
               "_ledger": [], "_terminated_at": None}
        pod["machine"] = {"podHostId": f"{pid}-{secrets.token_hex(4)}", "gpuDisplayName": gpu["displayName"]}
        self.pods[pid] = pod
        self._open_segment(pod, "running")
        self._write_authorized_keys()
        return self._public(pod)

    def _live(self, pod_id: str) -> dict:
        pod = self.pods.get(pod_id)
        if pod is None or pod["desiredStatus"] == "TERMINATED":
            raise _QueryFailed(f"Pod {pod_id} not found")
        return pod

    def _stop(self, pod_id: str) -> dict:
        pod = self._live(pod_id)
        if pod["desiredStatus"] == "RUNNING":
            pod["desiredStatus"] = "EXITED"
            pod["lastStatusChange"] = f"Stopped by User: {time.ctime(self.clock())}"
            self.gpu_types[pod["_gpu"]]["stock"] += pod["gpuCount"]  # a stopped pod holds no GPU
            self._open_segment(pod, "stopped")
            self._write_authorized_keys()
        return self._public(pod)

    def _resume(self, pod_id: str, gpu_count: int | None) -> dict:
        pod = self._live(pod_id)
        if pod["desiredStatus"] != "RUNNING":
            count = int(gpu_count or pod["gpuCount"])
            gpu = self.gpu_types[pod["_gpu"]]
            if gpu["stock"] < count:  # runpod/runpod-python#168: a stopped pod is pinned to its host
                raise _QueryFailed("There are not enough free GPUs on the host machine to start this pod.")
            gpu["stock"] -= count
            pod["gpuCount"], pod["costPerHr"] = count, round(self._gpu_price(gpu, pod["_cloud"]) * count, 4)
            pod["desiredStatus"], pod["_polls"], pod["_started"] = "RUNNING", 0, self.clock()
            pod["lastStatusChange"] = f"Resumed by User: {time.ctime(self.clock())}"
            self._open_segment(pod, "running")
            self._write_authorized_keys()
        return self._public(pod)

    def _terminate(self, pod_id: str) -> None:
        pod = self._live(pod_id)
        if pod["desiredStatus"] == "RUNNING":
            self.gpu_types[pod["_gpu"]]["stock"] += pod["gpuCount"]
        pod["desiredStatus"], pod["_terminated_at"] = "TERMINATED", self.clock()
        self._open_segment(pod, "terminated")
        self._write_authorized_keys()

    def _runtime(self, pod: dict) -> dict | None:
        """One pod query moves a booting pod along; after `boot_polls` queries its ports are mapped."""
        if pod["desiredStatus"] != "RUNNING":
            return None
        pod["_polls"] += 1
        if pod["_polls"] <= self.boot_polls:
            return None
        ports, extra = [], 0
        for spec in filter(None, pod["ports"].split(",")):
            num, _, kind = spec.partition("/")
            if not num.isdigit():
                continue
            if kind == "tcp" and int(num) == 22:
                ports.append({"ip": self.ssh_host, "isIpPublic": bool(pod["_public_ip"]), "privatePort": 22,
                              "publicPort": self.ssh_port, "type": "tcp"})
            elif kind == "tcp":
                extra += 1
                ports.append({"ip": self.ssh_host, "isIpPublic": bool(pod["_public_ip"]),
                              "privatePort": int(num), "publicPort": 40000 + extra, "type": "tcp"})
            else:  # http ports are served through RunPod's proxy, on the pod's private address
                ports.append({"ip": "100.65.0.2", "isIpPublic": False, "privatePort": int(num),
                              "publicPort": int(num), "type": "http"})
        return {"uptimeInSeconds": int(self.clock() - pod["_started"]), "ports": ports}

    def _write_authorized_keys(self) -> None:
        if not self.authorized_keys:
            return
        lines = list(self._base_auth_lines)
        for pod in self.pods.values():
            if pod["desiredStatus"] != "RUNNING" or not pod["_start_ssh"]:
                continue
            for key in pod["_env"].get("PUBLIC_KEY", "").splitlines():
                if key.strip() and key.strip() not in lines:
                    lines.append(key.strip())
        tmp = self.authorized_keys.with_name(self.authorized_keys.name + ".tmp")
        tmp.write_text("".join(ln + "\n" for ln in lines))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.authorized_keys)

    def _public(self, pod: dict, internal: bool = False) -> dict:
        row = {k: v for k, v in pod.items() if not k.startswith("_")}
        row["uptimeSeconds"] = int(self.clock() - pod["_started"]) if pod["desiredStatus"] == "RUNNING" else 0
        row["runtime"] = lambda info: self._runtime(pod)  # evaluated only when a query selects it
        if internal:
            row.pop("runtime")
            row.update(gpuTypeId=pod["_gpu"], terminated_at=pod["_terminated_at"])
        return row


class _Root:
    """Root resolvers: graphql-core calls `root.<field>(info, **arguments)`."""

    def __init__(self, emu: RunPodEmulator):
        self.emu = emu

    def gpuTypes(self, info, input: dict | None = None) -> list[dict]:  # noqa: A002, N802 - GraphQL names
        wanted = (input or {}).get("id")
        out = []
        for g in self.emu.gpu_types.values():
            if wanted is not None and g["id"] != wanted:
                continue
            row = {k: v for k, v in g.items() if k != "stock"}

            def lowest(info, input=None, g=g):  # noqa: A002
                n = int((input or {}).get("gpuCount") or 1)
                if g["stock"] < n:
                    return {"minimumBidPrice": None, "uninterruptablePrice": None}
                prices = [p for p in (g["securePrice"], g["communityPrice"]) if p is not None]
                return {"minimumBidPrice": min(g["secureSpotPrice"], g["communitySpotPrice"]),
                        "uninterruptablePrice": min(prices)}
            row["lowestPrice"] = lowest
            out.append(row)
        return out

    def pod(self, info, input: dict) -> dict | None:  # noqa: A002
        pod = self.emu.pods.get(input["podId"])
        if pod is None or pod["desiredStatus"] == "TERMINATED":
            return None
        return self.emu._public(pod)

    def myself(self, info) -> dict:
        pods = [self.emu._public(p) for p in self.emu.pods.values() if p["desiredStatus"] != "TERMINATED"]
        return {"id": "user_emulator", "pubKey": self.emu.account_pub_key, "pods": pods, "networkVolumes": []}

    def podFindAndDeployOnDemand(self, info, input: dict) -> dict:  # noqa: A002, N802
        return self._call(self.emu._create, input)

    def podStop(self, info, input: dict) -> dict:  # noqa: A002, N802
        return self._call(self.emu._stop, input["podId"])

    def podResume(self, info, input: dict) -> dict:  # noqa: A002, N802
        return self._call(self.emu._resume, input["podId"], input.get("gpuCount"))

    def podTerminate(self, info, input: dict) -> None:  # noqa: A002, N802
        return self._call(self.emu._terminate, input["podId"])

    def updateUserSettings(self, info, input: dict) -> dict:  # noqa: A002, N802
        self.emu.account_pub_key = str(input.get("pubKey") or "")
        return {"id": "user_emulator", "pubKey": self.emu.account_pub_key}

    @staticmethod
    def _call(fn, *args):
        try:
            return fn(*args)
        except _QueryFailed as e:
            raise GraphQLError(str(e)) from None


def root_fields(query: str) -> list[str]:
    """Names of the top-level fields a GraphQL document asks for ([] when it does not parse)."""
    try:
        doc = parse(query)
    except GraphQLError:
        return []
    names = []
    for d in doc.definitions:
        if isinstance(d, OperationDefinitionNode):
            names += [s.name.value for s in d.selection_set.selections if hasattr(s, "name")]
    return names


class _Handler(BaseHTTPRequestHandler):
    emulator: RunPodEmulator
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "cloudflare"
    sys_version = ""

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet: tests read emulator.requests instead
        return

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self._record(status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self, status: int) -> None:
        if getattr(self, "_recorded", True):
            return
        self._recorded = True
        with self.emulator._lock:
            self.emulator.requests.append({"method": self.command, "path": urlsplit(self.path).path,
                                           "fields": self._fields, "status": status, "ts": time.time()})

    def _dispatch(self, method: str) -> None:
        emu = self.emulator
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        path = urlsplit(self.path).path
        self._fields, self._recorded = [], False
        if path.startswith("/_emulator/"):
            self._fields = ["control"]
            self._send(*self._control(method, path, raw))
            return
        if path.rstrip("/") != "/graphql" or method != "POST":
            self._send(404, {"errors": [{"message": f"No route for {method} {path}"}]})
            return
        auth = self.headers.get("Authorization") or ""
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if key is None or key not in emu.api_keys:
            self._send(401, {"errors": [{"message": "Unauthorized: invalid API key"}]})
            return
        try:
            body = json.loads(raw or b"{}")
            query = body["query"]
            if not isinstance(query, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            self._send(400, {"errors": [{"message": "Must provide a JSON body with a 'query' string"}]})
            return
        self._fields = root_fields(query)
        fault = emu._take_fault(self._fields)
        if fault is not None and fault.apply:
            emu.execute(query, body.get("variables"))  # it happened, but the reply is an error
        if fault is not None:
            if fault.status == 0:
                self._record(0)
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self._send_fault(fault)
            return
        self._send(200, emu.execute(query, body.get("variables")))

    def _send_fault(self, fault: Fault) -> None:
        if fault.body is not None:
            self._send(fault.status, fault.body)
        elif fault.status == 429:
            self._send(429, {"errors": [{"message": "Too many requests, please slow down"}]})
        else:  # RunPod sits behind Cloudflare: gateway errors come back as HTML pages
            names = {500: "Internal Server Error", 502: "Bad gateway", 503: "Service Unavailable",
                     504: "Gateway time-out"}
            name = names.get(fault.status, "Error")
            self._send(fault.status, f"<!DOCTYPE html><html><head><title>api.runpod.io | {fault.status}: {name}"
                       f"</title></head><body><h1>{name}</h1></body></html>", "text/html; charset=UTF-8")

    def _control(self, method: str, path: str, raw: bytes) -> tuple[int, Any]:
        emu = self.emulator
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return 400, {"success": False, "msg": "body is not JSON"}
        if path.rstrip("/") == "/_emulator/faults":
            if method == "POST":
                for f in body if isinstance(body, list) else [body]:
                    emu.add_fault(f["endpoint"], f["status"], f.get("count", 1), f.get("body"),
                                  f.get("apply", False), f.get("skip", 0))
                return 200, {"success": True, "faults": [f.to_dict() for f in emu.faults]}
            if method == "DELETE":
                emu.clear_faults()
                return 200, {"success": True}
            return 200, {"faults": [f.to_dict() for f in emu.faults]}
        if path.rstrip("/") == "/_emulator/state":
            return 200, emu.state()
        m = re.match(r"^/_emulator/pods/([0-9a-z]+)/terminate/?$", path)
        if m and method == "POST":  # the host reclaims a pod (e.g. at a $0 balance)
            try:
                with emu._lock:
                    emu._terminate(m.group(1))
            except _QueryFailed as e:
                return 404, {"success": False, "msg": str(e)}
            return 200, {"success": True}
        return 404, {"success": False, "msg": "unknown emulator control path"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nursery_core.emulators.runpod",
                                description="Serve a local emulator of RunPod's GraphQL API.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8766)
    p.add_argument("--api-key", action="append", dest="api_keys",
                   help="accepted API key (repeatable; default: $RUNPOD_API_KEY or 'emulator-key')")
    p.add_argument("--ssh-host", default="127.0.0.1", help="where the pods' sshd listens")
    p.add_argument("--ssh-port", type=int, default=22)
    p.add_argument("--authorized-keys", help="the sshd's authorized_keys file; running pods' keys are written here")
    p.add_argument("--boot-polls", type=int, default=2, help="pod queries before runtime ports appear (default 2)")
    a = p.parse_args(argv)
    keys = a.api_keys or [os.environ.get("RUNPOD_API_KEY") or "emulator-key"]
    emu = RunPodEmulator(keys, ssh_host=a.ssh_host, ssh_port=a.ssh_port, authorized_keys=a.authorized_keys,
                         boot_polls=a.boot_polls, host=a.host, port=a.port)
    return serve_forever(emu, lambda e: f"RunPod emulator on {e.url} (set RUNPOD_API_BASE_URL={e.url}); pods -> "
                                        f"ssh root@{a.ssh_host}:{a.ssh_port}; {len(e.gpu_types)} GPU types. "
                                        "Ctrl-C stops.")

if __name__ == "__main__":
    raise SystemExit(main())
