"""Vast.ai REST client (httpx) as the official client speaks it: Bearer auth, retries, and safe teardown.

The API key lives only in this object's request headers: it is never put in URLs, messages or logs.
Retry waits come from the constructor or NURSERY_VAST_RETRY_WAIT / NURSERY_VAST_RETRY_MAX_WAIT /
NURSERY_VAST_RETRY_ATTEMPTS so tests against the emulator stay fast.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from ..errors import BackendError
from . import credentials
from .errors import StopRequested

log = logging.getLogger(__name__)

PENDING_STATES = {None, "created", "loading", "rebooting", "restarting", "scheduling"}
FAILED_STATES = {"exited", "unknown", "offline", "stopped", "frozen"}
RETRY_STATUSES = {429, 500, 502, 503, 504}


class VastAPIError(BackendError):
    """The Vast.ai API refused or failed a call; `status` and `error` carry what it said."""

    def __init__(self, message: str, status: int | None = None, error: str | None = None):
        super().__init__(message)
        self.status, self.error = status, error

    @property
    def transient(self) -> bool:
        return self.status is None or self.status in RETRY_STATUSES and self.error != "search_quota_exceeded"


class VastAuthError(VastAPIError):
    """The API key was rejected (the live API says 401 or 404 with error 'auth_error')."""


def env_float(name: str, default: float) -> float:
    """A float from the environment, or default when unset, empty or not a number."""
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


class VastClient:
    """A thin client over the endpoints Nursery uses; every call retries 429/5xx/connection errors."""

    def __init__(self, api_key: str | None = None, base_url: str | None = None, *,
                 attempts: int | None = None, wait: float | None = None, max_wait: float | None = None,
                 timeout: float = 60.0, poll_interval: float | None = None,
                 transport: httpx.BaseTransport | None = None):
        key = api_key if api_key is not None else credentials.vast_api_key()
        self.base_url = (base_url or credentials.vast_api_url()).rstrip("/")
        self.attempts = int(attempts if attempts is not None else env_float("NURSERY_VAST_RETRY_ATTEMPTS", 6))
        self.wait = wait if wait is not None else env_float("NURSERY_VAST_RETRY_WAIT", 1.0)
        self.max_wait = max_wait if max_wait is not None else env_float("NURSERY_VAST_RETRY_MAX_WAIT", 30.0)
        self.poll_interval = (poll_interval if poll_interval is not None
                              else env_float("NURSERY_VAST_POLL_S", 10.0))
        self._secret = key
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport,
                                  headers={"Authorization": f"Bearer {key}",
                                           "User-Agent": "nursery/0.1 (vast client)",
                                           "Accept": "application/json"})

    def __repr__(self) -> str:  # never shows the key
        return f"VastClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> VastClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----------------------------------------------------------------------------------- plumbing
    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _once(self, method: str, path: str, *, json_body: Any = None, params: dict | None = None,
              ok_statuses: tuple[int, ...] = ()) -> Any:
        try:
            r = self._http.request(method, path, json=json_body, params=params)
        except httpx.TransportError as e:
            raise VastAPIError(f"cannot reach the Vast.ai API at {self.base_url} ({method} {path}): "
                               f"{type(e).__name__}: {self._redact(str(e)) or 'connection failed'}") from None
        if r.status_code in ok_statuses or 200 <= r.status_code < 300:
            try:
                body = r.json()
            except ValueError:
                body = None
            if isinstance(body, dict) and body.get("error") == "auth_error":
                raise VastAuthError("Vast.ai rejected the API key (auth_error: " + str(body.get("msg"))[:100]
                                    + "): check VAST_API_KEY or .streamlit/secrets.toml", r.status_code,
                                    "auth_error")
            if body is None and 200 <= r.status_code < 300:
                raise VastAPIError(f"Vast.ai API {method} {path} answered {r.status_code} with a body that is "
                                   f"not JSON ({r.headers.get('content-type')})", r.status_code)
            if body is not None:
                return body
        err, msg = None, r.text.strip()
        try:
            body = r.json()
            if isinstance(body, dict):
                err = body.get("error")
                msg = body.get("msg") or body.get("detail") or body.get("error") or msg
        except ValueError:
            if "<html" in msg.lower():
                msg = " ".join(msg.split())[:120]
        msg = self._redact(str(msg))[:300]
        if err == "auth_error" or r.status_code == 401:
            raise VastAuthError("Vast.ai rejected the API key (auth_error: " + msg + "): check VAST_API_KEY "
                                "or .streamlit/secrets.toml", r.status_code, "auth_error")
        raise VastAPIError(f"Vast.ai API {method} {path} answered {r.status_code}: {msg}", r.status_code, err)

    def _retrying(self, attempts: int | None = None) -> Retrying:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("Vast.ai API call failed (attempt %d): %s; retrying", state.attempt_number, exc)

        return Retrying(stop=stop_after_attempt(max(1, attempts or self.attempts)),
                        wait=wait_exponential_jitter(initial=self.wait, max=self.max_wait, jitter=self.wait / 2),
                        retry=retry_if_exception(lambda e: isinstance(e, VastAPIError) and e.transient),
                        before_sleep=before_sleep, reraise=True)

    def request(self, method: str, path: str, *, json_body: Any = None, params: dict | None = None,
                attempts: int | None = None, ok_statuses: tuple[int, ...] = ()) -> Any:
        """One API call with retries on 429/5xx/connection errors; raises VastAPIError otherwise."""
        for attempt in self._retrying(attempts):
            with attempt:
                return self._once(method, path, json_body=json_body, params=params, ok_statuses=ok_statuses)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------------------------- offers
    @staticmethod
    def offer_query(*, max_dph: float | None = None, min_gpu_ram_gb: float | None = None,
                    disk_gb: float = 20.0, gpu_name: str | None = None, min_reliability: float = 0.95,
                    num_gpus: int = 1, limit: int = 20) -> dict:
        """The JSON query the official client would send for these needs (gpu_ram in MB, as it scales)."""
        q: dict[str, Any] = {"verified": {"eq": True}, "external": {"eq": False}, "rentable": {"eq": True},
                             "rented": {"eq": False}, "reliability": {"gt": float(min_reliability)},
                             "num_gpus": {"eq": int(num_gpus)}, "disk_space": {"gte": float(disk_gb)}}
        if max_dph is not None:
            q["dph_total"] = {"lte": float(max_dph)}
        if min_gpu_ram_gb:
            q["gpu_ram"] = {"gte": float(min_gpu_ram_gb) * 1000.0}
        if gpu_name:
            q["gpu_name"] = {"eq": gpu_name.replace("_", " ")}
        q.update({"order": [["dph_total", "asc"]], "type": "on-demand", "limit": int(limit),
                  "allocated_storage": float(disk_gb)})
        return q

    def search_offers(self, **needs: Any) -> list[dict]:
        """Rentable, verified offers matching the needs, cheapest first (POST /api/v0/bundles/)."""
        body = self.request("POST", "/api/v0/bundles/", json_body=self.offer_query(**needs))
        offers = body.get("offers") if isinstance(body, dict) else None
        if not isinstance(offers, list):
            raise VastAPIError("Vast.ai offer search returned no 'offers' list")
        return offers

    # ---------------------------------------------------------------------------------- instances
    def rent(self, offer_id: int, *, image: str, disk_gb: float, label: str, onstart: str = "",
             env: dict | None = None) -> dict:
        """Rents an offer (PUT /api/v0/asks/{id}/); returns {'instance_id', 'adopted'}.

        A rent is not idempotent: after a 5xx or a lost reply the instance may exist anyway, so before any
        retry the label (unique per job) is looked up and an instance found there is adopted."""
        body = {"client_id": "me", "image": image, "env": env or {}, "price": None, "disk": float(disk_gb),
                "label": label, "extra": None, "onstart": onstart, "image_login": None,
                "python_utf8": False, "lang_utf8": False, "use_jupyter_lab": False, "jupyter_dir": None,
                "force": False, "cancel_unavail": False, "template_hash_id": None, "user": None,
                "runtype": "ssh_direc ssh_proxy"}
        last: VastAPIError | None = None
        for attempt in range(max(1, self.attempts)):
            if attempt:
                time.sleep(min(self.max_wait, self.wait * (1.5 ** attempt)))
            try:
                r = self._once("PUT", f"/api/v0/asks/{int(offer_id)}/", json_body=body)
            except VastAPIError as e:
                if not e.transient and not (e.status == 404 and last is not None):
                    raise
                last = e
                found = self._find_label_after_error(label)
                if found:
                    return {"instance_id": int(found[0]["id"]), "adopted": True,
                            "duplicates": [int(i["id"]) for i in found[1:]]}
                if e.status == 404:  # our own earlier attempt took the offer, yet no instance: give up
                    raise
                continue
            if not isinstance(r, dict) or not r.get("success") or not r.get("new_contract"):
                raise VastAPIError(f"Vast.ai did not rent offer {offer_id}: {str(r)[:200]}")
            return {"instance_id": int(r["new_contract"]), "adopted": False, "duplicates": []}
        assert last is not None
        raise VastAPIError(f"renting offer {offer_id} failed after {self.attempts} attempts: {last}",
                           last.status, last.error)

    def _find_label_after_error(self, label: str) -> list[dict]:
        try:
            return self.list_instances(label=label)
        except VastAPIError:
            return []

    def show(self, instance_id: int) -> dict | None:
        """The instance (GET /api/v0/instances/{id}/?owner=me), or None once it is gone."""
        body = self.request("GET", f"/api/v0/instances/{int(instance_id)}/", params={"owner": "me"})
        if not isinstance(body, dict) or "instances" not in body:
            raise VastAPIError(f"unexpected reply for instance {instance_id}: {str(body)[:200]}")
        inst = body["instances"]
        if isinstance(inst, list):  # tolerate the list form some API versions used
            inst = inst[0] if inst else None
        return inst or None

    def wait_running(self, instance_id: int, *, timeout: float = 1800.0, poll_interval: float | None = None,
                     should_stop: Callable[[], bool] | None = None,
                     on_status: Callable[[dict], None] | None = None) -> dict:
        """Polls until actual_status is 'running' (with an SSH endpoint); terminal states fail at once (VastAPIError),
        should_stop() returning True raises StopRequested."""
        interval = self.poll_interval if poll_interval is None else poll_interval
        deadline = time.monotonic() + timeout
        last: Any = object()
        while True:
            inst = self.show(instance_id)
            if inst is None:
                raise VastAPIError(f"instance {instance_id} disappeared while starting (destroyed elsewhere)")
            status = inst.get("actual_status")
            if on_status and status != last:
                on_status(inst)
            last = status
            if status == "running" and (inst.get("ssh_port") or inst.get("ports")):
                return inst
            if status in FAILED_STATES:
                raise VastAPIError(f"instance {instance_id} went to '{status}' before it was running"
                                   + (f" ({inst.get('status_msg')})" if inst.get("status_msg") else ""))
            if time.monotonic() >= deadline:
                raise VastAPIError(f"instance {instance_id} was not running after {timeout:.0f} s "
                                   f"(last status: {status or 'provisioning'})")
            if should_stop is not None and should_stop():
                raise StopRequested("cancelled while the instance was starting")
            time.sleep(interval)

    @staticmethod
    def ssh_endpoint(inst: dict) -> tuple[str, int]:
        """(host, port) for root SSH, as `vastai ssh-url` picks it: direct port 22 map, else the proxy."""
        port_22 = (inst.get("ports") or {}).get("22/tcp") if isinstance(inst.get("ports"), dict) else None
        if port_22:
            return str(inst["public_ipaddr"]).strip(), int(port_22[0]["HostPort"])
        port = int(inst["ssh_port"])
        if "jupyter" in str(inst.get("image_runtype") or ""):
            port += 1
        return str(inst["ssh_host"]), port

    def attach_ssh_key(self, instance_id: int, public_key: str) -> None:
        self.request("POST", f"/api/v0/instances/{int(instance_id)}/ssh/", json_body={"ssh_key": public_key})

    def list_instances(self, *, label: str | None = None, label_prefix: str | None = None) -> list[dict]:
        """Every instance on the account (GET /api/v1/instances/, following next_token pages)."""
        params: dict[str, Any] = {"select_filters": json.dumps({"label": {"eq": label}} if label else {}),
                                  "order_by": json.dumps([{"col": "id", "dir": "asc"}]), "limit": 25}
        rows: list[dict] = []
        for _ in range(10000):
            body = self.request("GET", "/api/v1/instances/", params=params)
            page = body.get("instances") if isinstance(body, dict) else None
            if not isinstance(page, list):
                raise VastAPIError(f"unexpected instance list reply: {str(body)[:200]}")
            rows.extend(page)
            token = body.get("next_token")
            if not token:
                break
            params["after_token"] = token
        if label_prefix:
            rows = [r for r in rows if str(r.get("label") or "").startswith(label_prefix)]
        return rows

    def destroy(self, instance_id: int, *, confirm: bool = True, attempts: int = 10,
                confirm_timeout: float = 120.0) -> bool:
        """DELETE the instance (retried), then poll until the API says it is gone. False if it was gone."""
        body = self.request("DELETE", f"/api/v0/instances/{int(instance_id)}/", json_body={},
                            attempts=max(attempts, self.attempts), ok_statuses=(404,))
        existed = not (isinstance(body, dict) and body.get("error") == "not_found")
        if confirm:
            deadline = time.monotonic() + confirm_timeout
            while self.show(instance_id) is not None:
                if time.monotonic() >= deadline:
                    raise VastAPIError(f"instance {instance_id} still exists {confirm_timeout:.0f} s after "
                                       "destroy: check the Vast.ai console")
                time.sleep(min(self.poll_interval, 2.0))
                self.request("DELETE", f"/api/v0/instances/{int(instance_id)}/", json_body={},
                             attempts=attempts, ok_statuses=(404,))
        return existed

    def current_user(self) -> dict:
        return self.request("GET", "/api/v0/users/current")
