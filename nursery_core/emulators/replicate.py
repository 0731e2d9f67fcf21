"""A local emulator of Replicate's trainings API (as the official `replicate` 1.0.7 SDK speaks it) for tests
and demos. Point the SDK at it with `replicate.Client(base_url=emu.url)` or `REPLICATE_BASE_URL` (no `/v1`).

Served: the files API (multipart `content` upload; `urls.get` is this server's authenticated
`/v1/files/{id}`), destination models (`POST /v1/models`, `GET /v1/models/{owner}/{name}`), trainer
versions (`GET /v1/models/{owner}/{name}/versions/{id}`), trainings (create on a trainer version with a
destination, get, list, cancel). Errors are RFC 7807 `application/problem+json`; auth takes `Bearer` or
`Token`. The trainers are LoRA trainers whose `train_data` is JSONL of `{"text"}` or
`{"prompt", "completion"}` rows, like Replicate's LLM trainers: a `messages` row fails the training.

Status transitions (the SDK's Literal), one step per `GET /v1/trainings/{id}`: starting (`boot_polls`
polls) -> processing (`running_polls` polls, `logs` grows) -> succeeded once the adapter is built (a real
PEFT LoRA adapter for the trainer's base, zipped like cog trainers' `training_output.zip`, served at
`output.weights` without auth like a signed delivery URL); cancel moves a non-terminal training to
canceled; bad data or `fail_training()` to failed. Billing is per second of hardware while processing
(`started_at` to `completed_at`), so nothing is billed while starting and billing stops at every end.

Standalone: `python -m nursery_core.emulators.replicate --port 8767 [--api-key K] [--local-base NAME=DIR]`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import lora_artifact
from ._server import ApiError, EmulatorServer, Reply, serve_forever

TERMINAL = {"succeeded", "failed", "canceled"}
PRICE_PER_SECOND = 0.000975   # USD: Replicate's L40S hardware rate, billed per second of training
SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEFAULT_TRAINER = "replicate-emulator/smollm2-135m-lora"
LLAMA2_TRAINER = "meta/llama-2-7b"


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _version_id(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def read_train_rows(data: bytes) -> tuple[int, str | None]:
    """(rows, error) for a Replicate LLM trainer's train_data: JSONL of {"text"} or {"prompt","completion"}."""
    n = 0
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return 0, "train_data is not UTF-8"
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            return n, f"train_data line {i}: not valid JSON"
        if not isinstance(row, dict) or not (isinstance(row.get("text"), str) or (
                isinstance(row.get("prompt"), str) and isinstance(row.get("completion"), str))):
            keys = sorted(row) if isinstance(row, dict) else type(row).__name__
            return n, (f"train_data line {i}: expected a 'text' field or 'prompt' and 'completion' fields, "
                       f"got {keys}")
        n += 1
    return n, None if n else "train_data has no rows"


class ReplicateEmulator(EmulatorServer):
    """The emulated API. Trainers: `DEFAULT_TRAINER` (SmolLM2-135M), `LLAMA2_TRAINER` (meta/llama-2-7b, as
    Replicate offers) plus one per `local_bases` entry, named `replicate-emulator/<NAME's last part>-lora`;
    `trainers()` lists them with their version ids and bases."""

    name = "replicate"
    routes = [
        ("POST", r"/v1/files", "files_create", True),
        ("GET", r"/v1/files", "files_list", True),
        ("GET", r"/v1/files/(?P<fid>[A-Za-z0-9]+)", "files_get", True),
        ("GET", r"/v1/files/(?P<fid>[A-Za-z0-9]+)/download", "files_download", True),
        ("DELETE", r"/v1/files/(?P<fid>[A-Za-z0-9]+)", "files_delete", True),
        ("POST", r"/v1/models", "models_create", True),
        ("GET", r"/v1/models/(?P<owner>[\w.-]+)/(?P<name>[\w.-]+)", "models_get", True),
        ("GET", r"/v1/models/(?P<owner>[\w.-]+)/(?P<name>[\w.-]+)/versions/(?P<vid>[0-9a-f]+)", "version_get", True),
        ("POST", r"/v1/models/(?P<owner>[\w.-]+)/(?P<name>[\w.-]+)/versions/(?P<vid>[0-9a-f]+)/trainings",
         "create", True),
        ("GET", r"/v1/trainings", "list", True),
        ("GET", r"/v1/trainings/(?P<tid>[a-z0-9]+)", "get", True),
        ("POST", r"/v1/trainings/(?P<tid>[a-z0-9]+)/cancel", "cancel", True),
        ("GET", r"/delivery/(?P<token>[A-Za-z0-9_-]+)/training_output.zip", "weights", False),
    ]

    def __init__(self, api_keys: list[str] | str = "emulator-key", *, owner: str = "nursery-user",
                 local_bases: dict[str, Path | str] | None = None, boot_polls: int = 1, running_polls: int = 2,
                 price_per_second: float = PRICE_PER_SECOND, work_dir: Path | str | None = None,
                 host: str = "127.0.0.1", port: int = 0):
        super().__init__(api_keys, host=host, port=port)
        self.owner = owner
        self.local_bases = {k: Path(v) for k, v in (local_bases or {}).items()}
        self.boot_polls, self.running_polls = int(boot_polls), max(1, int(running_polls))
        self.price_per_second = float(price_per_second)
        self._tmp = None if work_dir else tempfile.TemporaryDirectory(prefix="replicate-emu-")
        self.work_dir = Path(work_dir) if work_dir else Path(self._tmp.name) if self._tmp else Path()
        self.files: dict[str, dict] = {}
        self.models: dict[str, dict] = {}
        self.trainings: dict[str, dict] = {}
        self._trainers: dict[str, dict] = {}       # "owner/name" -> {"version": id, "base": model name}
        for base in [SMOL, *self.local_bases]:
            name = DEFAULT_TRAINER if base == SMOL else f"replicate-emulator/{base.split('/')[-1].lower()}-lora"
            self._trainers[name] = {"version": _version_id(name), "base": base}
        # Replicate's own LLM trainer: a base Nursery does not ship (a provider may refuse it)
        self._trainers[LLAMA2_TRAINER] = {"version": _version_id(LLAMA2_TRAINER), "base": "meta-llama/Llama-2-7b-hf"}
        self._weights: dict[str, str] = {}         # delivery token -> training id

    def stop(self) -> None:
        super().stop()
        with self._lock:
            builders = [t["_builder"] for t in self.trainings.values() if t.get("_builder")]
        for b in builders:
            b.join(timeout=60)
        if self._tmp is not None:
            self._tmp.cleanup()

    # ------------------------------------------------------------------------------- test controls
    def trainers(self) -> dict[str, dict]:
        """"owner/name" -> {"version": version id, "base": the base model it trains}."""
        return {k: dict(v) for k, v in self._trainers.items()}

    def fail_training(self, training_id: str, error: str = "CUDA error: an illegal memory access") -> None:
        with self._lock:
            t = self.trainings[training_id]
            if t["status"] not in TERMINAL:
                self._finish(t, "failed", error=error)

    def live_trainings(self) -> list[str]:
        with self._lock:
            return [t["id"] for t in self.trainings.values() if t["status"] not in TERMINAL]

    def billing(self) -> list[dict]:
        """Per training: seconds of hardware billed (processing start to end, or to now) and cost (USD)."""
        with self._lock:
            out = []
            for t in self.trainings.values():
                start, end = t["_started"], t["_completed"] or time.time()
                secs = max(0.0, end - start) if start else 0.0
                out.append({"id": t["id"], "status": t["status"], "seconds": secs,
                            "cost": secs * self.price_per_second})
            return out

    def state(self) -> dict:
        with self._lock:
            return {**super().state(), "files": [self._file_public(f) for f in self.files.values()],
                    "models": list(self.models.values()),
                    "trainings": [self._public(t) for t in self.trainings.values()],
                    "live": self.live_trainings(), "billing": self.billing(), "trainers": self.trainers()}

    def control(self, method: str, path: str, body: Any) -> Reply:
        parts = path.strip("/").split("/")
        if method == "POST" and len(parts) == 4 and parts[1] == "trainings" and parts[3] == "fail":
            if parts[2] not in self.trainings:
                return Reply(404, {"detail": "no such training"})
            self.fail_training(parts[2], body.get("error", "training crashed"))
            return Reply(200, {"ok": True})
        return super().control(method, path, body)

    # ---------------------------------------------------------------------------------- protocol
    def error_reply(self, status: int, message: str, **extra: Any) -> Reply:
        titles = {400: "Bad Request", 401: "Unauthenticated", 404: "Not found", 409: "Conflict",
                  422: "Input validation failed", 429: "Too Many Requests", 500: "Internal Server Error",
                  502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
        if status == 401:
            message = "You did not pass a valid authentication token"
        return Reply(status, {"title": titles.get(status, "Error"), "detail": message, "status": status, **extra},
                     "application/problem+json")

    def route(self, endpoint: str, method: str, params: dict, query: dict, request) -> Reply:
        if endpoint == "files_create":
            return Reply(201, self._file_create(request.form()))
        if endpoint == "weights":
            return self._weights_reply(params["token"])
        body = request.json_body() if method == "POST" else {}
        with self._lock:
            if endpoint in ("files_get", "files_download", "files_delete"):
                f = self.files.get(params["fid"])
                if f is None:
                    raise ApiError(404, "The requested resource could not be found.")
                if endpoint == "files_download":
                    return Reply(200, f["_data"], f["content_type"])
                if endpoint == "files_delete":
                    del self.files[f["id"]]
                    return Reply(204, b"", "text/plain")
                return Reply(200, self._file_public(f))
            if endpoint == "files_list":
                return Reply(200, {"next": None, "previous": None,
                                   "results": [self._file_public(f) for f in self.files.values()]})
            if endpoint == "models_create":
                return Reply(201, self._model_create(body))
            if endpoint == "models_get":
                return Reply(200, self._model(params["owner"], params["name"]))
            if endpoint == "version_get":
                tr = self._trainer(params["owner"], params["name"], params["vid"])
                return Reply(200, {"id": tr["version"], "created_at": _iso(0), "cog_version": "0.9.9",
                                   "openapi_schema": {"components": {"schemas": {"TrainingInput": {
                                       "required": ["train_data"]}}}}})
            if endpoint == "create":
                return Reply(201, self._public(self._create(params, body)))
            if endpoint == "list":
                rows = sorted(self.trainings.values(), key=lambda t: t["_created"], reverse=True)
                return Reply(200, {"next": None, "previous": None, "results": [self._public(t) for t in rows]})
            t = self.trainings.get(params.get("tid", ""))
            if t is None:
                raise ApiError(404, "The requested resource could not be found.")
            if endpoint == "get":
                self._advance(t)
                return Reply(200, self._public(t))
            if endpoint == "cancel":
                if t["status"] not in TERMINAL:
                    self._log(t, "Training canceled by the user")
                    self._finish(t, "canceled")
                return Reply(200, self._public(t))
        raise ApiError(404, f"no route for {endpoint}")

    # -------------------------------------------------------------------------------------- files
    def _file_create(self, form: dict) -> dict:
        part = form.get("content")
        if part is None:
            raise ApiError(400, "missing the multipart field 'content'")
        meta = {}
        if "metadata" in form:
            try:
                meta = json.loads(form["metadata"]["data"] or b"{}")
            except ValueError:
                raise ApiError(400, "metadata must be a JSON object") from None
        data, now = part["data"], time.time()
        fid = secrets.token_hex(6) + secrets.token_hex(6)
        f = {"id": fid, "name": part["filename"] or "file", "content_type": part["content_type"],
             "size": len(data), "etag": hashlib.md5(data).hexdigest(),  # noqa: S324 - an etag, not security
             "checksums": {"sha256": hashlib.sha256(data).hexdigest(), "md5": hashlib.md5(data).hexdigest()},  # noqa: S324
             "metadata": meta, "created_at": _iso(now), "expires_at": _iso(now + 86400),
             "urls": {"get": f"{self.url}/v1/files/{fid}"}, "_data": data}
        with self._lock:
            self.files[fid] = f
        return self._file_public(f)

    @staticmethod
    def _file_public(f: dict) -> dict:
        return {k: v for k, v in f.items() if not k.startswith("_")}

    # ------------------------------------------------------------------------------------- models
    def _model_create(self, body: dict) -> dict:
        owner, name = body.get("owner"), body.get("name")
        if owner != self.owner:
            raise ApiError(403 if owner else 422, f"you cannot create models under {owner!r}")
        if not name or not all(c.isalnum() or c in "-_." for c in name) or name != name.lower():
            raise ApiError(422, "name: must be lowercase letters, digits, '-', '_' or '.'")
        if body.get("visibility") not in ("public", "private"):
            raise ApiError(422, "visibility: must be 'public' or 'private'")
        key = f"{owner}/{name}"
        if key in self.models:
            raise ApiError(409, f"A model with that name and owner already exists: {key}")
        self.models[key] = {"url": f"{self.url}/{key}", "owner": owner, "name": name,
                            "description": body.get("description"), "visibility": body["visibility"],
                            "github_url": None, "paper_url": None, "license_url": None, "run_count": 0,
                            "cover_image_url": None, "default_example": None, "latest_version": None}
        return self.models[key]

    def _model(self, owner: str, name: str) -> dict:
        key = f"{owner}/{name}"
        if key in self.models:
            return self.models[key]
        if key in self._trainers:
            return {"url": f"{self.url}/{key}", "owner": owner, "name": name, "visibility": "public",
                    "description": f"LoRA trainer for {self._trainers[key]['base']}", "github_url": None,
                    "paper_url": None, "license_url": None, "run_count": 0, "cover_image_url": None,
                    "default_example": None,
                    "latest_version": {"id": self._trainers[key]["version"], "created_at": _iso(0),
                                       "cog_version": "0.9.9", "openapi_schema": {}}}
        raise ApiError(404, "The requested resource could not be found.")

    def _trainer(self, owner: str, name: str, vid: str) -> dict:
        tr = self._trainers.get(f"{owner}/{name}")
        if tr is None or tr["version"] != vid:
            raise ApiError(404, f"version {vid} of {owner}/{name} does not exist or is not trainable")
        return tr

    # ----------------------------------------------------------------------------------- trainings
    def _create(self, params: dict, body: dict) -> dict:
        tr = self._trainer(params["owner"], params["name"], params["vid"])
        dest = body.get("destination")
        if not isinstance(dest, str) or dest.count("/") != 1:
            raise ApiError(422, "destination: must be 'owner/name'")
        if dest not in self.models:
            raise ApiError(404, "The specified training destination does not exist")
        inp = body.get("input")
        if not isinstance(inp, dict) or not inp.get("train_data"):
            raise ApiError(422, "input: train_data is required")
        errors = []
        for field, lo, hi in (("lora_rank", 1, 128), ("num_train_epochs", 1, 50), ("train_batch_size", 1, 64)):
            if field in inp and not (isinstance(inp[field], int) and lo <= inp[field] <= hi):
                errors.append(f"input.{field}: must be an integer between {lo} and {hi}")
        if "learning_rate" in inp and not (isinstance(inp["learning_rate"], (int, float))
                                           and 0 < inp["learning_rate"] <= 1):
            errors.append("input.learning_rate: must be a number in (0, 1]")
        if errors:
            raise ApiError(422, "; ".join(errors))
        now = time.time()
        tid = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(26))
        t = {"id": tid, "model": f"{params['owner']}/{params['name']}", "version": tr["version"],
             "destination": dest, "status": "starting", "input": inp, "output": None, "logs": "",
             "error": None, "source": "api", "metrics": {}, "webhook": body.get("webhook"),
             "urls": {"get": f"{self.url}/v1/trainings/{tid}", "cancel": f"{self.url}/v1/trainings/{tid}/cancel",
                      "web": f"{self.url}/p/{tid}"},
             "_base": tr["base"], "_polls": 0, "_created": now, "_started": None, "_completed": None,
             "_builder": None, "_built": None, "_build_error": None, "_rows": 0}
        self.trainings[tid] = t
        return t

    def _log(self, t: dict, line: str) -> None:
        t["logs"] += line + "\n"

    def _finish(self, t: dict, status: str, error: str | None = None) -> None:
        t["status"], t["error"] = status, error
        t["_completed"] = time.time()
        if t["_started"]:
            t["metrics"] = {"predict_time": t["_completed"] - t["_started"]}

    def _resolve_train_data(self, url: str) -> bytes | None:
        prefix = f"{self.url}/v1/files/"
        fid = url[len(prefix):].split("/")[0] if url.startswith(prefix) else None
        f = self.files.get(fid or "")
        return f["_data"] if f else None

    def _advance(self, t: dict) -> None:
        """One poll moves a training one step along its lifecycle (see the module docstring)."""
        if t["status"] in TERMINAL:
            return
        t["_polls"] += 1
        if t["status"] == "starting":
            if t["_polls"] <= self.boot_polls:
                self._log(t, "Booting the trainer...")
                return
            t["status"], t["_started"] = "processing", time.time()
            data = self._resolve_train_data(str(t["input"]["train_data"]))
            if data is None:
                self._log(t, f"Downloading {t['input']['train_data']} failed")
                self._finish(t, "failed", error="could not download train_data (only files uploaded to this "
                                                "account's files API can be fetched)")
                return
            rows, err = read_train_rows(data)
            if err:
                self._log(t, f"Error: {err}")
                self._finish(t, "failed", error=err)
                return
            t["_rows"] = rows
            self._log(t, f"Loaded {rows} training rows; base {t['_base']}")
            self._start_build(t)
            return
        if t["status"] == "processing":
            running = t["_polls"] - self.boot_polls - 1
            epochs = int(t["input"].get("num_train_epochs", 1))
            if running <= self.running_polls:
                self._log(t, f"{{'loss': {2.5 / (1 + running):.4f}, 'epoch': {epochs * running / self.running_polls:.2f}}}")
                return
            if t["_build_error"]:
                self._log(t, f"Error: {t['_build_error']}")
                self._finish(t, "failed", error=t["_build_error"])
            elif t["_built"] is not None:
                token = secrets.token_urlsafe(16)
                self._weights[token] = t["id"]
                self._log(t, "Training complete; weights written to training_output.zip")
                t["output"] = {"version": f"{t['destination']}:{_version_id(t['id'])}",
                               "weights": f"{self.url}/delivery/{token}/training_output.zip"}
                self._finish(t, "succeeded")

    def _start_build(self, t: dict) -> None:
        inp = t["input"]
        config = lora_artifact.base_config(t["_base"], self.local_bases)
        out = self.work_dir / t["id"] / "adapter"

        def build() -> bytes:
            lora_artifact.build_adapter(out, t["_base"], config, r=int(inp.get("lora_rank", 8)),
                                        alpha=float(inp.get("lora_alpha", 16)),
                                        dropout=float(inp.get("lora_dropout", 0.1)),
                                        target_modules=inp.get("lora_target_modules", "q_proj,v_proj"),
                                        seed=int(inp.get("seed", 0)))
            return lora_artifact.pack_zip(out)

        lora_artifact.build_in_background(t, self._lock, "_built", build, f"replicate-build-{t['id']}")

    def wait_built(self, training_id: str, timeout: float = 120.0) -> None:
        """Blocks until a processing training's adapter is built (tests poll without sleeping on it)."""
        th = self.trainings[training_id].get("_builder")
        if th is not None:
            th.join(timeout)

    def _weights_reply(self, token: str) -> Reply:
        with self._lock:
            tid = self._weights.get(token)
            data = self.trainings[tid]["_built"] if tid else None
        if data is None:
            raise ApiError(404, "The requested resource could not be found.")
        return Reply(200, data, "application/zip")

    def _public(self, t: dict) -> dict:
        row = {k: v for k, v in t.items() if not k.startswith("_")}
        row["created_at"], row["started_at"] = _iso(t["_created"]), _iso(t["_started"])
        row["completed_at"] = _iso(t["_completed"])
        return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nursery_core.emulators.replicate",
                                description="Serve a local emulator of Replicate's trainings API.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8767)
    p.add_argument("--api-key", action="append", dest="api_keys",
                   help="accepted API token (repeatable; default: $REPLICATE_API_TOKEN or 'emulator-key')")
    p.add_argument("--owner", default="nursery-user", help="the account's user name (destination owner)")
    p.add_argument("--local-base", action="append", default=[], metavar="NAME=DIR",
                   help="also offer a LoRA trainer for model NAME, shaped like the HF directory DIR")
    p.add_argument("--running-polls", type=int, default=2, help="polls a training spends processing")
    a = p.parse_args(argv)
    bases = {}
    for item in a.local_base:
        name, sep, path = item.partition("=")
        if not sep or not Path(path, "config.json").is_file():
            p.error(f"--local-base {item!r}: expected NAME=DIR where DIR holds a config.json")
        bases[name] = path
    keys = a.api_keys or [os.environ.get("REPLICATE_API_TOKEN") or "emulator-key"]
    emu = ReplicateEmulator(keys, owner=a.owner, local_bases=bases, running_polls=a.running_polls,
                            host=a.host, port=a.port)
    trainers = ", ".join(f"{k}:{v['version'][:12]}... ({v['base']})" for k, v in emu.trainers().items())
    return serve_forever(emu, lambda e: f"Replicate emulator on {e.url} (set REPLICATE_BASE_URL={e.url}); "
                                        f"trainers: {trainers}. Ctrl-C stops.")


if __name__ == "__main__":
    raise SystemExit(main())
