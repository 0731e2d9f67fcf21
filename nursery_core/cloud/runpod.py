"""RunPod transport: the GraphQL calls the official `runpod` SDK 1.12.0 sends (same documents, same endpoint
`{base}/graphql`, Bearer auth), over httpx with tenacity retries on 429/5xx/connection errors.

Pure transport: no job logic. The API key is passed in and lives only in this object's request headers; it
never reaches URLs, messages or logs. The base URL defaults to $RUNPOD_API_BASE_URL (the SDK's own override)
or https://api.runpod.io. Retry waits come from the constructor or NURSERY_RUNPOD_RETRY_WAIT /
NURSERY_RUNPOD_RETRY_MAX_WAIT / NURSERY_RUNPOD_RETRY_ATTEMPTS, so tests against the emulator stay fast.
Billing fact that drives `terminate_pod`: a stopped pod still pays for its volume (runpod/docs
pods/pricing.mdx), so teardown always terminates and confirms the pod is gone.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from typing import Any, Callable

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from ..errors import BackendError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.runpod.io"
RETRY_STATUSES = {429, 500, 502, 503, 504}

_GPU_FIELDS = ("id displayName manufacturer memoryInGb maxGpuCount secureCloud communityCloud securePrice "
               "communityPrice secureSpotPrice communitySpotPrice")
_POD_FIELDS = ("id name imageName desiredStatus lastStatusChange costPerHr gpuCount vcpuCount memoryInGb "
               "containerDiskInGb volumeInGb volumeMountPath env machineId ports uptimeSeconds "
               "runtime { ports { ip isIpPublic privatePort publicPort type } } machine { gpuDisplayName }")


class RunPodAPIError(BackendError):
    """RunPod refused or failed a call; `status` is the HTTP status (None: no reply), `transient` says whether a
    retry may help."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status

    @property
    def transient(self) -> bool:
        return self.status is None or self.status in RETRY_STATUSES


class RunPodAuthError(RunPodAPIError):
    """The API key was rejected (HTTP 401)."""


class RunPodNotFound(RunPodAPIError):
    """The pod does not exist (any more)."""


def gql_string(value: Any) -> str:
    """A GraphQL string literal. JSON's escapes (\\" \\\\ \\n \\uXXXX) are exactly GraphQL's (spec §2.9.4),
    so a key or name with quotes or newlines cannot break out of the document."""
    return json.dumps(str(value), ensure_ascii=True)


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


class RunPodClient:
    """A thin client over the pod calls Nursery uses; every call retries 429/5xx/connection errors."""

    def __init__(self, api_key: str, base_url: str | None = None, *, attempts: int | None = None,
                 wait: float | None = None, max_wait: float | None = None, timeout: float = 30.0,
                 poll_interval: float | None = None, transport: httpx.BaseTransport | None = None):
        if not api_key:
            raise RunPodAuthError("no RunPod API key: set RUNPOD_API_KEY or [runpod] api_key in "
                                  ".streamlit/secrets.toml")
        self.base_url = (base_url or os.environ.get("RUNPOD_API_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.attempts = int(attempts if attempts is not None else _env_float("NURSERY_RUNPOD_RETRY_ATTEMPTS", 6))
        self.wait = wait if wait is not None else _env_float("NURSERY_RUNPOD_RETRY_WAIT", 1.0)
        self.max_wait = max_wait if max_wait is not None else _env_float("NURSERY_RUNPOD_RETRY_MAX_WAIT", 30.0)
        self.poll_interval = (poll_interval if poll_interval is not None
                              else _env_float("NURSERY_RUNPOD_POLL_S", 5.0))
        self._secret = api_key
        self.last_attempts = 0  # tries the last query() took
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport,
                                  headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json",
                                           "User-Agent": "nursery/0.1 (runpod client)"})

    def __repr__(self) -> str:  # never shows the key
        return f"RunPodClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "RunPodClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----------------------------------------------------------------------------------- plumbing
    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _once(self, document: str, what: str) -> dict:
        try:
            r = self._http.post("/graphql", content=json.dumps({"query": document}))
        except httpx.TransportError as e:
            raise RunPodAPIError(f"cannot reach the RunPod API at {self.base_url} ({what}): {type(e).__name__}: "
                                 f"{self._redact(str(e)) or 'connection failed'}") from None
        if r.status_code == 401:
            raise RunPodAuthError("RunPod rejected the API key (401): check RUNPOD_API_KEY or "
                                  ".streamlit/secrets.toml", 401)
        try:
            body = r.json()
        except ValueError:
            body = None
        if r.status_code != 200:
            title = re.search(r"<title>(.*?)</title>", r.text, re.S | re.I)
            text = " ".join((title.group(1) if title else r.text).split())[:160]
            if isinstance(body, dict) and body.get("errors"):
                text = str(body["errors"][0].get("message"))[:300]
            raise RunPodAPIError(f"RunPod API ({what}) answered {r.status_code}: {self._redact(text)}",
                                 r.status_code)
        if not isinstance(body, dict):
            raise RunPodAPIError(f"RunPod API ({what}) answered 200 with a body that is not JSON "
                                 f"({r.headers.get('content-type')})", r.status_code)
        if body.get("errors"):  # GraphQL failures come back as HTTP 200 with an errors list
            msg = self._redact(str(body["errors"][0].get("message") or body["errors"][0]))[:300]
            cls = RunPodNotFound if "not found" in msg.lower() else RunPodAPIError
            raise cls(f"RunPod refused {what}: {msg}", 200)
        data = body.get("data")
        if not isinstance(data, dict):
            raise RunPodAPIError(f"RunPod API ({what}) answered without a data object: {str(body)[:200]}", 200)
        return data

    def query(self, document: str, what: str = "a GraphQL call", *, attempts: int | None = None) -> dict:
        """Runs one GraphQL document with retries on 429/5xx/connection errors; returns its `data` object.

        Raises RunPodAuthError (401), RunPodNotFound, or RunPodAPIError (GraphQL errors are not retried)."""
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("RunPod API call failed (attempt %d): %s; retrying", state.attempt_number, exc)

        for attempt in Retrying(stop=stop_after_attempt(max(1, attempts or self.attempts)),
                                wait=wait_exponential_jitter(initial=self.wait, max=self.max_wait,
                                                             jitter=self.wait / 2),
                                retry=retry_if_exception(lambda e: isinstance(e, RunPodAPIError) and e.transient),
                                before_sleep=before_sleep, reraise=True):
            with attempt:
                self.last_attempts = attempt.retry_state.attempt_number
                return self._once(document, what)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------------------------ catalogue
    def gpu_types(self, gpu_count: int = 1) -> list[dict]:
        """Every GPU type with its $/GPU/hour prices and `lowestPrice` for `gpu_count` GPUs."""
        doc = (f"query GpuTypes {{ gpuTypes {{ {_GPU_FIELDS} lowestPrice(input: {{gpuCount: {int(gpu_count)}}}) "
               "{ minimumBidPrice uninterruptablePrice } } }")
        rows = self.query(doc, "the GPU type list").get("gpuTypes")
        if not isinstance(rows, list):
            raise RunPodAPIError("RunPod's GPU type list is not a list")
        return rows

    def gpu_type(self, gpu_type_id: str, gpu_count: int = 1) -> dict:
        """One GPU type (the SDK's `get_gpu` query); raises RunPodNotFound for an unknown id."""
        doc = (f"query GpuTypes {{ gpuTypes(input: {{id: {gql_string(gpu_type_id)}}}) {{ {_GPU_FIELDS} "
               f"lowestPrice(input: {{gpuCount: {int(gpu_count)}}}) {{ minimumBidPrice uninterruptablePrice }} }} }}")
        rows = self.query(doc, f"GPU type {gpu_type_id!r}").get("gpuTypes") or []
        if not rows:
            raise RunPodNotFound(f"RunPod has no GPU type {gpu_type_id!r}")
        return rows[0]

    def offers(self, *, gpu_count: int = 1, min_memory_gb: float = 0.0, max_usd_per_hour: float | None = None,
               cloud_type: str = "SECURE") -> list[dict]:
        """GPU types that can be rented now as a box of `gpu_count`, cheapest first: {'gpu_type_id', 'gpu_name',
        'memory_gb' (per GPU), 'gpu_count', 'usd_per_gpu_hour', 'usd_per_hour' (the box, disk excluded)}.

        RunPod's API has no server-side filter, so the filter runs here. A type whose `lowestPrice` for that
        many GPUs is null has none free (the web console shows it as unavailable), and is left out."""
        price_field = {"SECURE": ("securePrice",), "COMMUNITY": ("communityPrice",),
                       "ALL": ("securePrice", "communityPrice")}.get(cloud_type)
        if price_field is None:
            raise ValueError(f"cloud_type must be ALL, SECURE or COMMUNITY, not {cloud_type!r}")
        out = []
        for g in self.gpu_types(gpu_count):
            prices = [float(g[f]) for f in price_field if g.get(f)]
            if not prices or not (g.get("lowestPrice") or {}).get("uninterruptablePrice"):
                continue
            if int(g.get("maxGpuCount") or 0) < gpu_count or float(g.get("memoryInGb") or 0) < min_memory_gb:
                continue
            per_gpu = min(prices)
            if max_usd_per_hour is not None and per_gpu * gpu_count > max_usd_per_hour:
                continue
            out.append({"gpu_type_id": g["id"], "gpu_name": g.get("displayName") or g["id"],
                        "memory_gb": g.get("memoryInGb"), "gpu_count": int(gpu_count),
                        "usd_per_gpu_hour": per_gpu, "usd_per_hour": round(per_gpu * gpu_count, 4)})
        return sorted(out, key=lambda o: (o["usd_per_hour"], o["gpu_type_id"]))

    # ----------------------------------------------------------------------------------------- pods
    @staticmethod
    def create_document(*, name: str, image: str, gpu_type_id: str, gpu_count: int = 1, public_key: str = "",
                        container_disk_gb: int = 20, volume_gb: int = 0, cloud_type: str = "SECURE",
                        ports: str = "22/tcp", env: dict | None = None) -> str:
        """The `podFindAndDeployOnDemand` mutation (the SDK's shape) for an SSH-reachable pod: startSsh, a public
        IP, port 22/tcp exposed (direct SSH; RunPod's proxied SSH has no SFTP) and the key in PUBLIC_KEY."""
        if cloud_type not in ("ALL", "SECURE", "COMMUNITY"):
            raise ValueError(f"cloud_type must be ALL, SECURE or COMMUNITY, not {cloud_type!r}")
        all_env = dict(env or {})
        if public_key:
            all_env["PUBLIC_KEY"] = public_key.strip()
        env_items = ", ".join(f"{{ key: {gql_string(k)}, value: {gql_string(v)} }}" for k, v in all_env.items())
        fields = [f"name: {gql_string(name)}", f"imageName: {gql_string(image)}", f"cloudType: {cloud_type}",
                  "startSsh: true", f"gpuTypeId: {gql_string(gpu_type_id)}", "supportPublicIp: true",
                  f"gpuCount: {int(gpu_count)}", f"volumeInGb: {int(volume_gb)}",
                  f"containerDiskInGb: {int(container_disk_gb)}", "minVcpuCount: 1", "minMemoryInGb: 1",
                  "dataCenterId: null", f"ports: {gql_string(ports.replace(' ', ''))}", f"env: [{env_items}]"]
        return ("mutation { podFindAndDeployOnDemand(input: { " + ", ".join(fields) + " }) "
                "{ id imageName env machineId costPerHr machine { podHostId } } }")

    def create_pod(self, *, name: str, image: str, gpu_type_id: str, gpu_count: int = 1, public_key: str = "",
                   container_disk_gb: int = 20, volume_gb: int = 0, cloud_type: str = "SECURE",
                   ports: str = "22/tcp", env: dict | None = None) -> dict:
        """Creates an on-demand pod; returns {'pod_id', 'adopted', 'duplicates', 'pod'}.

        A create is not idempotent: after a 5xx or a lost reply the pod may exist anyway, so before any retry
        the name (unique per job) is looked up and a pod found there is adopted; `duplicates` lists any further
        pods under that name (the caller terminates them)."""
        doc = self.create_document(name=name, image=image, gpu_type_id=gpu_type_id, gpu_count=gpu_count,
                                   public_key=public_key, container_disk_gb=container_disk_gb,
                                   volume_gb=volume_gb, cloud_type=cloud_type, ports=ports, env=env)
        last: RunPodAPIError | None = None
        for attempt in range(max(1, self.attempts)):
            if attempt:
                time.sleep(min(self.max_wait, self.wait * (1.5 ** attempt)))
            try:
                data = self._once(doc, f"creating pod {name!r}")
            except RunPodAPIError as e:
                if not e.transient:
                    raise
                last = e
                try:
                    found = self.list_pods(name=name)
                except RunPodAPIError:
                    found = []
                if found:
                    return {"pod_id": found[0]["id"], "adopted": True, "duplicates": [p["id"] for p in found[1:]],
                            "pod": found[0]}
                continue
            pod = data.get("podFindAndDeployOnDemand")
            if not isinstance(pod, dict) or not pod.get("id"):
                raise RunPodAPIError(f"RunPod created no pod for {name!r}: {str(data)[:200]}")
            return {"pod_id": pod["id"], "adopted": False, "duplicates": [], "pod": pod}
        assert last is not None
        raise RunPodAPIError(f"creating pod {name!r} failed after {self.attempts} attempts: {last}", last.status)

    def get_pod(self, pod_id: str) -> dict | None:
        """The pod (the SDK's `get_pod` selection), or None once it is terminated."""
        doc = f"query pod {{ pod(input: {{podId: {gql_string(pod_id)}}}) {{ {_POD_FIELDS} }} }}"
        try:
            return self.query(doc, f"pod {pod_id}").get("pod") or None
        except RunPodNotFound:
            return None

    def list_pods(self, *, name: str | None = None, name_prefix: str | None = None) -> list[dict]:
        """Every pod on the account that is not terminated (`myself { pods }`), optionally by name or prefix."""
        pods = (self.query(f"query myPods {{ myself {{ pods {{ {_POD_FIELDS} }} }} }}", "the pod list")
                .get("myself") or {}).get("pods") or []
        if name is not None:
            pods = [p for p in pods if p.get("name") == name]
        if name_prefix is not None:
            pods = [p for p in pods if str(p.get("name") or "").startswith(name_prefix)]
        return pods

    @staticmethod
    def ssh_endpoint(pod: dict) -> tuple[str, int] | None:
        """(ip, public port) of the pod's direct SSH (privatePort 22 on a public IP), as the SDK's
        `get_pod_ssh_ip_port` finds it; None while the pod is not running or not yet mapped."""
        if pod.get("desiredStatus") != "RUNNING":
            return None
        for p in ((pod.get("runtime") or {}).get("ports") or []):
            if p.get("privatePort") == 22 and p.get("isIpPublic") and p.get("publicPort"):
                return str(p["ip"]), int(p["publicPort"])
        return None

    def wait_ssh(self, pod_id: str, *, timeout: float = 900.0, poll_interval: float | None = None,
                 on_poll: Callable[[dict], None] | None = None) -> tuple[str, int, dict]:
        """Polls until the pod is RUNNING with public port 22 mapped; returns (ip, port, pod).

        `on_poll(pod)` runs after each poll (it may raise to abandon the wait, e.g. on a cancel). Raises
        RunPodNotFound if the pod went away, RunPodAPIError if it stopped or timed out."""
        interval = self.poll_interval if poll_interval is None else poll_interval
        deadline = time.monotonic() + timeout
        while True:
            pod = self.get_pod(pod_id)
            if pod is None:
                raise RunPodNotFound(f"pod {pod_id} disappeared while starting (terminated elsewhere)")
            if on_poll is not None:
                on_poll(pod)
            ep = self.ssh_endpoint(pod)
            if ep is not None:
                return ep[0], ep[1], pod
            if pod.get("desiredStatus") in ("EXITED", "TERMINATED", "DEAD"):
                raise RunPodAPIError(f"pod {pod_id} went to {pod.get('desiredStatus')} before SSH was up")
            if time.monotonic() >= deadline:
                raise RunPodAPIError(f"pod {pod_id} had no public SSH port after {timeout:.0f} s (status "
                                     f"{pod.get('desiredStatus')}; is 22/tcp exposed?)")
            time.sleep(interval)

    def stop_pod(self, pod_id: str) -> dict:
        """Stops a pod. It keeps billing its volume disk: use terminate_pod to end a run."""
        doc = f"mutation {{ podStop(input: {{ podId: {gql_string(pod_id)} }}) {{ id desiredStatus }} }}"
        return self.query(doc, f"stopping pod {pod_id}").get("podStop") or {}

    def terminate_pod(self, pod_id: str, *, confirm: bool = True, attempts: int = 10,
                      confirm_timeout: float = 120.0) -> bool:
        """Terminates the pod (retried), then polls until the API no longer has it. False if it was already gone.

        Raises RunPodAPIError if it still exists `confirm_timeout` seconds later."""
        doc = f"mutation {{ podTerminate(input: {{ podId: {gql_string(pod_id)} }}) }}"
        try:
            self.query(doc, f"terminating pod {pod_id}", attempts=max(attempts, self.attempts))
            existed = True
        except RunPodNotFound:
            # gone on the first try: it was already terminated; gone on a retry: an earlier try that got a
            # 5xx or no reply had terminated it
            existed = self.last_attempts > 1
        if confirm:
            deadline = time.monotonic() + confirm_timeout
            while self.get_pod(pod_id) is not None:
                if time.monotonic() >= deadline:
                    raise RunPodAPIError(f"pod {pod_id} still exists {confirm_timeout:.0f} s after terminate: "
                                         "check the RunPod console (a stopped pod still bills its disk)")
                time.sleep(min(self.poll_interval, 2.0))
                try:
                    self.query(doc, f"terminating pod {pod_id}", attempts=attempts)
                except RunPodNotFound:
                    pass
        return existed
