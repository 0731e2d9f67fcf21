"""A local emulator of Together.ai's fine-tuning API (as the official `together` 3.1.1 SDK speaks it) for
tests and demos. Point the SDK at it with `Together(base_url=emu.url)` or `TOGETHER_BASE_URL` (no `/v1`).

Files: `POST /v1/files` answers 302 with a one-time presigned `Location` (a PUT on this server) and
`X-Together-File-Id`; `POST /v1/files/{id}/preprocess` validates the JSONL (CONVERSATION = `messages`
(+ `tools`), INSTRUCTION = `prompt`/`completion`, GENERAL = `text`). Fine-tunes: model limits, price
estimate, create (LoRA fields checked against the model's limits), retrieve, list, events, checkpoints,
cancel, and `GET /v1/finetune/download` (a zstd tar, or gzip with `Content-Type: application/x-tar` when
asked with `?format=gz`) holding a real PEFT LoRA adapter for the requested base (see `lora_artifact`).

Status transitions (the SDK's `FinetuneJobStatus` names), one step per `GET /v1/fine-tunes/{id}`:
pending -> queued -> running (over `running_polls` polls, steps advance) -> compressing (until the adapter
is built) -> uploading -> completed; cancel moves any non-terminal job to cancel_requested, the next poll
to cancelled; `fail_job()` moves a job to error / user_error. Billing is per token like Together's
(n_epochs x training tokens, tokens = ceil(bytes / 4)): tokens accrue only with training steps, so nothing
is billed while queued, and billing stops at cancel_requested, error or completed.

Standalone: `python -m nursery_core.emulators.together --port 8766 [--api-key K] [--local-base NAME=DIR]`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import secrets
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import lora_artifact
from ._server import ApiError, EmulatorServer, Reply, query_value, serve_forever

TERMINAL = {"completed", "cancelled", "error", "user_error"}
BILLING_STOPPED = TERMINAL | {"cancel_requested", "compressing", "uploading"}
PRICE_PER_MTOK = 0.48   # USD per million tokens: Together's LoRA SFT rate for models up to 16B (pricing page)
_FILE_PURPOSES = {"fine-tune", "calibration", "eval", "batch-api"}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def validate_dataset(data: bytes) -> dict:
    """Together's validation report for a JSONL training file: valid, dataset_format, nlines, tools flags;
    `error` names the first bad line."""
    report: dict[str, Any] = {"valid": False, "nlines": 0, "dataset_has_tools": False,
                              "dataset_has_parallel_tool_calls": False}
    fmt = None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {**report, "error": "the file is not UTF-8", "error_type": "INVALID_FORMAT"}
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            return {**report, "error": f"line {i}: not valid JSON", "error_type": "INVALID_FORMAT"}
        if not isinstance(row, dict):
            return {**report, "error": f"line {i}: not a JSON object", "error_type": "INVALID_FORMAT"}
        if "messages" in row:
            this = "CONVERSATION"
            msgs = row["messages"]
            if not isinstance(msgs, list) or not msgs:
                return {**report, "error": f"line {i}: 'messages' must be a non-empty list",
                        "error_type": "INVALID_FORMAT"}
            for j, m in enumerate(msgs):
                if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "tool"):
                    return {**report, "error": f"line {i}: message {j} has no valid role "
                                               "(system, user, assistant, tool)", "error_type": "INVALID_FORMAT"}
                calls = m.get("tool_calls") or []
                for k, call in enumerate(calls):
                    args = (call.get("function") or {}).get("arguments") if isinstance(call, dict) else None
                    try:
                        ok = isinstance(args, str) and isinstance(json.loads(args), dict)
                    except ValueError:
                        ok = False
                    if not ok:  # Together's format: arguments as a JSON-encoded object (docs: function-calling)
                        return {**report, "error": f"line {i}: message {j} tool_calls[{k}].function.arguments "
                                                   "must be a JSON object encoded as a string",
                                "error_type": "INVALID_FORMAT"}
                if calls:
                    report["dataset_has_tools"] = True
                    report["dataset_has_parallel_tool_calls"] |= len(calls) > 1
            if row.get("tools"):
                report["dataset_has_tools"] = True
        elif "prompt" in row and "completion" in row:
            this = "INSTRUCTION"
        elif "text" in row:
            this = "GENERAL"
        else:
            return {**report, "error": f"line {i}: no 'messages', 'prompt'/'completion' or 'text' field",
                    "error_type": "INVALID_FORMAT"}
        if fmt is not None and this != fmt:
            return {**report, "error": f"line {i}: {this} row in a {fmt} dataset", "error_type": "INVALID_FORMAT"}
        fmt = this
        report["nlines"] += 1
    if not report["nlines"]:
        return {**report, "error": "the file has no samples", "error_type": "INVALID_FORMAT"}
    return {**report, "valid": True, "dataset_format": fmt}


def model_limits(model: str) -> dict:
    """The `FinetuneModelLimits` the emulator reports for every base it knows."""
    return {"model_name": model, "default_gradient_accumulation_steps": 1, "max_learning_rate": 1.0,
            "min_learning_rate": 1e-8, "max_num_epochs": 20, "max_num_evals": 100, "max_num_checkpoints": 10,
            "max_seq_length_sft": 8192, "max_seq_length_dpo": 8192, "min_max_seq_length": 128,
            "merge_output_lora": False, "supports_full_training": False, "supports_reasoning": False,
            "supports_tools": True, "supports_vision": False,
            "lora_training": {"default_rank": 8, "max_rank": 64, "max_batch_size": 8, "max_batch_size_dpo": 8,
                              "min_batch_size": 1,
                              "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                 "down_proj"]}}


class TogetherEmulator(EmulatorServer):
    """The emulated API. `local_bases` maps extra model names to local HF directories (their config.json
    shapes the adapter); `running_polls` polls spend a job's steps; `credit` is the account's limit (USD)."""

    name = "together"
    routes = [
        ("POST", r"/v1/files", "files_upload", True),
        ("PUT", r"/_upload/(?P<token>[A-Za-z0-9_-]+)", "files_put", False),
        ("POST", r"/v1/files/(?P<fid>[A-Za-z0-9._-]+)/preprocess", "files_preprocess", True),
        ("GET", r"/v1/files", "files_list", True),
        ("GET", r"/v1/files/(?P<fid>[A-Za-z0-9._-]+)", "files_get", True),
        ("DELETE", r"/v1/files/(?P<fid>[A-Za-z0-9._-]+)", "files_delete", True),
        ("GET", r"/v1/fine-tunes/models/limits", "limits", True),
        ("POST", r"/v1/fine-tunes/estimate-price", "estimate", True),
        ("POST", r"/v1/fine-tunes", "create", True),
        ("GET", r"/v1/fine-tunes", "list", True),
        ("GET", r"/v1/fine-tunes/(?P<jid>ft-[A-Za-z0-9-]+)", "retrieve", True),
        ("GET", r"/v1/fine-tunes/(?P<jid>ft-[A-Za-z0-9-]+)/events", "events", True),
        ("GET", r"/v1/fine-tunes/(?P<jid>ft-[A-Za-z0-9-]+)/checkpoints", "checkpoints", True),
        ("POST", r"/v1/fine-tunes/(?P<jid>ft-[A-Za-z0-9-]+)/cancel", "cancel", True),
        ("GET", r"/v1/finetune/download", "download", True),
    ]

    def __init__(self, api_keys: list[str] | str = "emulator-key", *,
                 local_bases: dict[str, Path | str] | None = None, running_polls: int = 3,
                 queue_polls: tuple[int, int] = (1, 1), credit: float = 25.0,
                 price_per_mtok: float = PRICE_PER_MTOK, work_dir: Path | str | None = None,
                 host: str = "127.0.0.1", port: int = 0):
        super().__init__(api_keys, host=host, port=port)
        self.local_bases = {k: Path(v) for k, v in (local_bases or {}).items()}
        self.running_polls = max(1, int(running_polls))
        self.queue_polls = (int(queue_polls[0]), int(queue_polls[1]))
        self.credit, self.price_per_mtok = float(credit), float(price_per_mtok)
        self._tmp = None if work_dir else tempfile.TemporaryDirectory(prefix="together-emu-")
        self.work_dir = Path(work_dir) if work_dir else Path(self._tmp.name) if self._tmp else Path()
        self.files: dict[str, dict] = {}
        self.jobs: dict[str, dict] = {}
        self._uploads: dict[str, str] = {}        # one-time upload token -> file id

    def stop(self) -> None:
        super().stop()
        with self._lock:  # joined outside the lock: a finishing builder takes it to store its result
            builders = [j["_builder"] for j in self.jobs.values() if j.get("_builder")]
        for b in builders:
            b.join(timeout=60)
        if self._tmp is not None:
            self._tmp.cleanup()

    # ------------------------------------------------------------------------------- test controls
    def known_models(self) -> list[str]:
        return sorted(set(lora_artifact.SHAPES) | set(self.local_bases))

    def fail_job(self, job_id: str, status: str = "error", message: str = "training crashed") -> None:
        """Moves a non-terminal job to error or user_error (billing stops there)."""
        if status not in ("error", "user_error"):
            raise ValueError("status must be error or user_error")
        with self._lock:
            job = self.jobs[job_id]
            if job["status"] not in TERMINAL:
                self._set_status(job, status, "JOB_ERROR" if status == "error" else "JOB_USER_ERROR",
                                 message, level="error")

    def live_jobs(self) -> list[str]:
        """Ids of jobs that are not terminal (what a leak check asserts empty)."""
        with self._lock:
            return [j["id"] for j in self.jobs.values() if j["status"] not in TERMINAL]

    def billing(self) -> list[dict]:
        """Per job: tokens billed so far, cost (USD) and status; tokens accrue only with training steps."""
        with self._lock:
            return [{"id": j["id"], "status": j["status"], "tokens": j["_billed_tokens"],
                     "cost": j["_billed_tokens"] * self.price_per_mtok / 1e6, "steps": j["steps_completed"]}
                    for j in self.jobs.values()]

    def state(self) -> dict:
        with self._lock:
            return {**super().state(), "files": [self._file_public(f) for f in self.files.values()],
                    "jobs": [self._job_public(j) for j in self.jobs.values()], "live": self.live_jobs(),
                    "billing": self.billing()}

    def control(self, method: str, path: str, body: Any) -> Reply:
        parts = path.strip("/").split("/")
        if method == "POST" and len(parts) == 4 and parts[1] == "jobs" and parts[3] == "fail":
            if parts[2] not in self.jobs:
                return Reply(404, {"error": "no such job"})
            self.fail_job(parts[2], body.get("status", "error"), body.get("message", "training crashed"))
            return Reply(200, {"ok": True})
        return super().control(method, path, body)

    # ---------------------------------------------------------------------------------- protocol
    def error_reply(self, status: int, message: str, **extra: Any) -> Reply:
        kind = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found",
                409: "conflict", 429: "rate_limit_exceeded"}.get(status, "server_error")
        headers = {"x-should-retry": "false"} if status == 409 else None  # a deliberate conflict
        # extra fields (409's file_id) sit at the top level, where the SDK reads them
        return Reply(status, {"error": {"message": message, "type": kind, "code": status}, **extra},
                     headers=headers)

    def route(self, endpoint: str, method: str, params: dict, query: dict, request) -> Reply:
        if endpoint == "files_upload":
            return self._upload_start(request.form())
        if endpoint == "files_put":
            return self._upload_put(params["token"], request.raw)
        if endpoint == "download":
            return self._download(query, request.headers.get("Range"))
        body = request.json_body() if method == "POST" and endpoint != "files_preprocess" else {}
        with self._lock:
            if endpoint in ("files_preprocess", "files_get", "files_delete"):
                f = self.files.get(params["fid"])
                if f is None or not f["_uploaded"]:
                    raise ApiError(404, f"file {params['fid']!r} not found")
                if endpoint == "files_preprocess":
                    report = validate_dataset(f["_data"])
                    f["validation_report"] = {**report, "file_id": f["id"]}
                    f["processing_status"] = "COMPLETED" if report["valid"] else "INVALID_FORMAT"
                elif endpoint == "files_delete":
                    del self.files[f["id"]]
                    return Reply(200, {"id": f["id"], "deleted": True})
                return Reply(200, self._file_public(f))
            if endpoint == "files_list":
                return Reply(200, {"data": [self._file_public(f) for f in self.files.values() if f["_uploaded"]]})
            if endpoint == "limits":
                model = query_value(query, "model_name") or ""
                if model not in self.known_models():
                    raise ApiError(404, f"model {model!r} is not available for fine-tuning")
                return Reply(200, model_limits(model))
            if endpoint == "estimate":
                return Reply(200, self._estimate(body))
            if endpoint == "create":
                return Reply(200, self._job_public(self._create(body)))
            if endpoint == "list":
                return Reply(200, {"data": [self._job_public(j, truncated=True) for j in self.jobs.values()]})
            job = self.jobs.get(params.get("jid", ""))
            if job is None:
                raise ApiError(404, f"fine-tune job {params.get('jid')!r} not found")
            if endpoint == "retrieve":
                self._advance(job)
                return Reply(200, self._job_public(job))
            if endpoint == "events":
                return Reply(200, {"data": list(job["_events"])})
            if endpoint == "checkpoints":
                return Reply(200, {"data": list(job["_checkpoints"])})
            if endpoint == "cancel":
                if job["status"] in TERMINAL:
                    raise ApiError(400, f"job {job['id']} is already {job['status']} and cannot be cancelled")
                if job["status"] != "cancel_requested":
                    self._set_status(job, "cancel_requested", "CANCEL_REQUESTED", "Cancel requested by the user")
                return Reply(200, self._job_public(job, truncated=True))
        raise ApiError(404, f"no route for {endpoint}")

    # -------------------------------------------------------------------------------------- files
    def _upload_start(self, form: dict) -> Reply:
        def field(name: str) -> str:
            if name not in form:
                raise ApiError(400, f"missing form field {name!r}")
            return form[name]["data"].decode()

        purpose, name, ftype, checksum = field("purpose"), field("file_name"), field("file_type"), field("checksum")
        if purpose not in _FILE_PURPOSES:
            raise ApiError(400, f"purpose must be one of {sorted(_FILE_PURPOSES)}, got {purpose!r}")
        if ftype not in ("jsonl", "parquet", "csv"):
            raise ApiError(400, f"file_type must be jsonl, parquet or csv, got {ftype!r}")
        with self._lock:
            for f in self.files.values():
                if f["_uploaded"] and f["_checksum"] == checksum and f["purpose"] == purpose:
                    raise ApiError(409, "a file with this checksum already exists", file_id=f["id"])
            fid = "file-" + secrets.token_hex(12)
            token = secrets.token_urlsafe(18)
            self.files[fid] = {"id": fid, "object": "file", "bytes": 0, "created_at": int(time.time()),
                               "filename": name, "FileType": ftype, "purpose": purpose,
                               "processing_status": "PENDING", "_checksum": checksum, "_data": b"",
                               "_uploaded": False}
            self._uploads[token] = fid
        # the file id is both a header and (as the real API does) not in the body
        return Reply(302, b"", "text/plain", headers={"Location": f"{self.url}/_upload/{token}",
                                                      "X-Together-File-Id": fid})

    def _upload_put(self, token: str, data: bytes) -> Reply:
        with self._lock:
            fid = self._uploads.pop(token, None)
            if fid is None or fid not in self.files:
                raise ApiError(403, "the upload URL is unknown or was already used")
            f = self.files[fid]
            if hashlib.sha256(data).hexdigest() != f["_checksum"]:
                del self.files[fid]
                raise ApiError(400, "the uploaded bytes do not match the announced checksum")
            f.update({"_data": data, "bytes": len(data), "_uploaded": True})
        return Reply(200, b"", "text/plain")

    @staticmethod
    def _file_public(f: dict) -> dict:
        return {k: v for k, v in f.items() if not k.startswith("_")}

    # -------------------------------------------------------------------------------------- jobs
    def _file_for(self, fid: str | None, what: str) -> dict:
        f = self.files.get(fid or "")
        if f is None or not f["_uploaded"]:
            raise ApiError(400, f"{what} {fid!r} does not exist")
        if f["purpose"] != "fine-tune":
            raise ApiError(400, f"{what} {fid!r} was uploaded with purpose {f['purpose']!r}, not 'fine-tune'")
        if f.get("processing_status") == "INVALID_FORMAT":
            raise ApiError(400, f"{what} {fid!r} is invalid: {f['validation_report'].get('error')}")
        return f

    def _tokens(self, f: dict) -> int:
        return math.ceil(len(f["_data"]) / 4)

    def _estimate(self, body: dict) -> dict:
        with self._lock:
            f = self.files.get(body.get("training_file") or "")
            if f is None or not f["_uploaded"]:
                return {"estimation_available": False, "unavailable_reason": "train_file_not_validated"}
            if f.get("processing_status") == "INVALID_FORMAT":
                return {"estimation_available": False, "unavailable_reason": "train_file_invalid"}
            v = self.files.get(body.get("validation_file") or "")
            train = self._tokens(f) * int(body.get("n_epochs") or 1)
            evals = (self._tokens(v) if v else 0) * int(body.get("n_evals") or 0)
            price = (train + evals) * self.price_per_mtok / 1e6
            return {"estimation_available": True, "allowed_to_proceed": price <= self.credit,
                    "estimated_total_price": price, "estimated_train_token_count": float(train),
                    "estimated_eval_token_count": float(evals), "user_limit": self.credit}

    def _create(self, body: dict) -> dict:
        model = body.get("model") or ""
        if model not in self.known_models():
            raise ApiError(400, f"model {model!r} is not available for fine-tuning")
        limits = model_limits(model)
        train = self._file_for(body.get("training_file"), "training_file")
        val = self._file_for(body["validation_file"], "validation_file") if body.get("validation_file") else None
        ttype = body.get("training_type") or {"type": "Lora"}
        if ttype.get("type") != "Lora":
            raise ApiError(400, f"model {model!r} supports only LoRA fine-tuning (training_type.type 'Lora')")
        lora = limits["lora_training"]
        r = int(ttype.get("lora_r") or lora["default_rank"])
        errors = []
        if not 1 <= r <= lora["max_rank"]:
            errors.append(f"training_type.lora_r must be between 1 and {lora['max_rank']}, got {r}")
        alpha = ttype.get("lora_alpha") or 2 * r
        dropout = float(ttype.get("lora_dropout") or 0.0)
        if not 0 <= dropout < 1:
            errors.append(f"training_type.lora_dropout must be in [0, 1), got {dropout}")
        modules = ttype.get("lora_trainable_modules") or "all-linear"
        if modules != "all-linear":
            bad = [m for m in str(modules).split(",") if m.strip() not in lora["target_modules"]]
            if bad:
                errors.append(f"training_type.lora_trainable_modules: unknown modules {bad}")
        n_epochs = int(body.get("n_epochs") or 1)
        if not 1 <= n_epochs <= limits["max_num_epochs"]:
            errors.append(f"n_epochs must be between 1 and {limits['max_num_epochs']}, got {n_epochs}")
        lr = body.get("learning_rate")
        if lr is not None and not limits["min_learning_rate"] <= float(lr) <= limits["max_learning_rate"]:
            errors.append(f"learning_rate must be between {limits['min_learning_rate']} and "
                          f"{limits['max_learning_rate']}, got {lr}")
        bs = body.get("batch_size", "max")
        if bs == "max":
            bs = lora["max_batch_size"]
        elif not isinstance(bs, int) or not lora["min_batch_size"] <= bs <= lora["max_batch_size"]:
            errors.append(f"batch_size must be 'max' or an integer between {lora['min_batch_size']} and "
                          f"{lora['max_batch_size']}, got {bs!r}")
        suffix = body.get("suffix")
        if suffix is not None and len(str(suffix)) > 40:
            errors.append("suffix is longer than 40 characters")
        if errors:
            raise ApiError(400, "; ".join(errors))
        nlines = (train.get("validation_report") or {}).get("nlines") or max(1, train["_data"].count(b"\n"))
        total_steps = max(1, math.ceil(nlines / bs)) * n_epochs
        now = time.time()
        jid = "ft-" + secrets.token_hex(4) + "-" + secrets.token_hex(2) + "-" + secrets.token_hex(6)
        out_name = f"emulator/{model.split('/')[-1]}" + (f"-{suffix}" if suffix else "") + f"-{jid[3:11]}"
        job = {
            "id": jid, "object": "fine-tune", "status": "pending", "created_at": _iso(now), "updated_at": _iso(now),
            "started_at": None, "user_id": "emulator-user", "owner_address": "0xemulator", "model": model,
            "model_output_name": out_name, "adapter_output_name": out_name + "-adapter", "suffix": suffix,
            "training_file": train["id"], "validation_file": val["id"] if val else None,
            "training_type": {"type": "Lora", "lora_r": r, "lora_alpha": int(alpha), "lora_dropout": dropout,
                              "lora_trainable_modules": modules},
            "training_method": body.get("training_method") or {"method": "sft", "train_on_inputs": "auto"},
            "n_epochs": n_epochs, "n_checkpoints": int(body.get("n_checkpoints") or 1),
            "n_evals": int(body.get("n_evals") or 0), "batch_size": bs, "learning_rate": lr,
            "lr_scheduler": body.get("lr_scheduler"), "warmup_ratio": body.get("warmup_ratio"),
            "weight_decay": body.get("weight_decay"), "max_grad_norm": body.get("max_grad_norm"),
            "max_seq_length": body.get("max_seq_length"), "random_seed": body.get("random_seed"),
            "token_count": self._tokens(train) * n_epochs, "param_count": None, "total_price": 0,
            "total_steps": total_steps, "steps_completed": 0, "epochs_completed": 0, "evals_completed": 0,
            "queue_depth": 0, "wandb_url": None, "TrainingFileNumLines": nlines, "TrainingFileSize": train["bytes"],
            "_polls": 0, "_events": [], "_checkpoints": [], "_billed_tokens": 0, "_archive": None, "_packed": {},
            "_builder": None, "_build_error": None, "_seed": int(body.get("random_seed") or 0),
        }
        self.jobs[jid] = job
        self._event(job, "JOB_PENDING", "Fine-tune job created and pending")
        return job

    def _event(self, job: dict, etype: str, message: str, level: str = "info", **extra: Any) -> None:
        job["_events"].append({"object": "fine-tune-event", "created_at": _iso(time.time()), "level": level,
                               "message": message, "type": etype, **extra})

    def _set_status(self, job: dict, status: str, etype: str, message: str, level: str = "info") -> None:
        job["status"] = status
        job["updated_at"] = _iso(time.time())
        self._event(job, etype, message, level=level)

    def _advance(self, job: dict) -> None:
        """One poll moves a job one step along its lifecycle (see the module docstring)."""
        st = job["status"]
        if st in TERMINAL:
            return
        job["_polls"] += 1
        pending_polls, queued_polls = self.queue_polls
        if st == "cancel_requested":
            self._set_status(job, "cancelled", "JOB_STOPPED", "Job cancelled")
        elif st == "pending" and job["_polls"] > pending_polls:
            job["queue_depth"] = 1
            self._set_status(job, "queued", "JOB_PENDING", "Job queued")
        elif st == "queued" and job["_polls"] > pending_polls + queued_polls:
            job["queue_depth"] = 0
            job["started_at"] = _iso(time.time())
            self._set_status(job, "running", "JOB_START", "Training started")
            self._event(job, "MODEL_DOWNLOAD_COMPLETE", f"Model {job['model']} downloaded")
            self._event(job, "TRAINING_DATA_DOWNLOAD_COMPLETE", "Training data downloaded")
            self._event(job, "TRAINING_START", "Training started", total_steps=job["total_steps"])
        elif st == "running":
            per_poll = math.ceil(job["total_steps"] / self.running_polls)
            done = min(job["total_steps"], job["steps_completed"] + per_poll)
            job["steps_completed"] = done
            steps_per_epoch = job["total_steps"] // job["n_epochs"]
            epochs = done // steps_per_epoch
            for e in range(job["epochs_completed"] + 1, epochs + 1):
                self._event(job, "EPOCH_COMPLETE", f"Epoch {e}/{job['n_epochs']} completed", step=done)
            job["epochs_completed"] = epochs
            job["_billed_tokens"] = job["token_count"] * done // job["total_steps"]
            job["total_price"] = int(round(job["_billed_tokens"] * self.price_per_mtok / 1e6 * 100))
            job["progress"] = {"estimate_available": True,
                               "seconds_remaining": (job["total_steps"] - done) * 10}
            if done >= job["total_steps"]:
                job["_checkpoints"].append({"checkpoint_type": "Final", "created_at": _iso(time.time()),
                                            "path": f"s3://emulator/{job['id']}/final", "step": done,
                                            "checkpoint": "adapter"})
                self._event(job, "CHECKPOINT_SAVE", f"Checkpoint saved at step {done}", step=done,
                            checkpoint_path=job["_checkpoints"][-1]["path"])
                self._event(job, "TRAINING_COMPLETE", "Training completed", token_count=job["_billed_tokens"])
                self._set_status(job, "compressing", "COMPRESSING_MODEL", "Compressing the output model")
                self._start_build(job)
        elif st == "compressing":
            if job["_build_error"]:
                self._set_status(job, "error", "JOB_ERROR", f"compressing failed: {job['_build_error']}",
                                 level="error")
            elif job["_archive"] is not None:
                self._set_status(job, "uploading", "MODEL_COMPRESSION_COMPLETE", "Model compressed")
                self._event(job, "MODEL_UPLOADING", "Uploading the output model")
        elif st == "uploading":
            self._event(job, "MODEL_UPLOAD_COMPLETE", "Model uploaded")
            self._set_status(job, "completed", "JOB_COMPLETE", "Fine-tune job completed")

    def _start_build(self, job: dict) -> None:
        tt = job["training_type"]
        config = lora_artifact.base_config(job["model"], self.local_bases)
        out = self.work_dir / job["id"] / "adapter"

        def build() -> Path:
            lora_artifact.build_adapter(out, job["model"], config, r=tt["lora_r"], alpha=tt["lora_alpha"],
                                        dropout=tt["lora_dropout"], target_modules=tt["lora_trainable_modules"],
                                        seed=job["_seed"])
            (out / "README.md").write_text(f"LoRA adapter of {job['model']} from fine-tune {job['id']}\n")
            return out

        lora_artifact.build_in_background(job, self._lock, "_archive", build, f"together-build-{job['id']}")

    def wait_built(self, job_id: str, timeout: float = 120.0) -> None:
        """Blocks until a compressing job's adapter is built (tests poll without sleeping on it)."""
        t = self.jobs[job_id].get("_builder")
        if t is not None:
            t.join(timeout)

    def _download(self, query: dict, range_header: str | None) -> Reply:
        jid = query_value(query, "ft_id") or ""
        checkpoint = query_value(query, "checkpoint") or "merged"
        with self._lock:
            job = self.jobs.get(jid)
            if job is None:
                raise ApiError(404, f"fine-tune job {jid!r} not found")
            if job["status"] != "completed" or job["_archive"] is None:
                raise ApiError(400, f"job {jid} is {job['status']}: there is no output to download yet")
            if checkpoint not in ("adapter", "merged", "model_output_path"):
                raise ApiError(400, "checkpoint must be adapter, merged or model_output_path")
            if checkpoint != "adapter":
                raise ApiError(400, f"this emulator keeps only the LoRA adapter of {jid}; ask checkpoint=adapter")
            src = job["_archive"]
        gz = query_value(query, "format") == "gz"
        with self._lock:
            data = job["_packed"].get(gz)
        if data is None:
            data = lora_artifact.pack_tar(src, "gz" if gz else "zst")
            with self._lock:
                job["_packed"][gz] = data
        name = job["model_output_name"].split("/")[-1] + ("-adapter.tar.gz" if gz else "-adapter.tar.zst")
        headers = {"Content-Disposition": f'attachment; filename="{name}"', "Accept-Ranges": "bytes"}
        ctype = "application/x-tar" if gz else "application/octet-stream"
        rng = re.fullmatch(r"bytes=(\d+)-(\d*)", (range_header or "").strip())
        if rng:  # the SDK's downloader reads the size from a 2-byte range, then resumes with ranges
            start = int(rng.group(1))
            end = min(int(rng.group(2)) if rng.group(2) else len(data) - 1, len(data) - 1)
            if start >= len(data) or end < start:
                raise ApiError(416, f"range {range_header!r} is outside the {len(data)}-byte archive",
                               headers={"Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return Reply(206, data[start:end + 1], ctype, headers=headers)
        return Reply(200, data, ctype, headers=headers)

    def _job_public(self, job: dict, truncated: bool = False) -> dict:
        row = {k: v for k, v in job.items() if not k.startswith("_")}
        if truncated and row["status"] == "user_error":  # the list/cancel schema lacks it
            row["status"] = "error"
        return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nursery_core.emulators.together",
                                description="Serve a local emulator of Together.ai's fine-tuning API.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8766)
    p.add_argument("--api-key", action="append", dest="api_keys",
                   help="accepted API key (repeatable; default: $TOGETHER_API_KEY or 'emulator-key')")
    p.add_argument("--local-base", action="append", default=[], metavar="NAME=DIR",
                   help="also offer model NAME, shaped like the HF directory DIR (repeatable)")
    p.add_argument("--running-polls", type=int, default=3, help="polls a job spends running (default 3)")
    p.add_argument("--credit", type=float, default=25.0, help="the account's credit limit in USD")
    a = p.parse_args(argv)
    bases = {}
    for item in a.local_base:
        name, sep, path = item.partition("=")
        if not sep or not Path(path, "config.json").is_file():
            p.error(f"--local-base {item!r}: expected NAME=DIR where DIR holds a config.json")
        bases[name] = path
    keys = a.api_keys or [os.environ.get("TOGETHER_API_KEY") or "emulator-key"]
    emu = TogetherEmulator(keys, local_bases=bases, running_polls=a.running_polls, credit=a.credit,
                           host=a.host, port=a.port)
    return serve_forever(emu, lambda e: f"Together.ai emulator on {e.url} (set TOGETHER_BASE_URL={e.url}); "
                                        f"models: {', '.join(e.known_models())}. Ctrl-C stops.")


if __name__ == "__main__":
    raise SystemExit(main())
