"""Together.ai fine-tuning client: the calls Nursery makes, in the shapes the official `together` 3.1.1 SDK
sends (see shared reference more-providers.md §1): presigned file upload, model limits, price estimate,
LoRA fine-tune create, retrieve, events, cancel, and the adapter download unpacked into a directory.

Pure transport (httpx + tenacity): no job bookkeeping here. Base URL: the constructor, else
TOGETHER_BASE_URL (no `/v1`, like the SDK), else https://api.together.ai. Key: the constructor, else
TOGETHER_API_KEY or secrets.toml `[together] api_key`.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .http_api import JsonApiClient, ProviderAPIError, unpack_archive

TERMINAL_STATUSES = {"completed", "cancelled", "error", "user_error"}  # the SDK's COMPLETED_STATUSES
FAILED_STATUSES = {"cancelled", "error", "user_error"}

# Together bills a LoRA SFT fine-tune per token processed, n_epochs x training tokens + n_evals x validation
# tokens, at $0.48 per million tokens for models up to 16B parameters (docs.together.ai/docs/fine-tuning/pricing).
PRICING_SOURCE = "docs.together.ai/docs/fine-tuning/pricing"
LORA_SFT_USD_PER_MTOK = 0.48
LORA_SFT_RATE_MAX_PARAMS = 16e9


def nursery_price(train_tokens: int, n_epochs: int, eval_tokens: int = 0, n_evals: int = 0,
                  params: float | None = None) -> dict:
    """Nursery's own estimate of a Together LoRA SFT run from token counts (per epoch / per eval pass):
    {"usd" (None above 16B parameters, where Nursery has no rate), "tokens" processed, "usd_per_mtok", "how"}."""
    tokens = int(train_tokens) * int(n_epochs) + int(eval_tokens) * int(n_evals)
    if params is not None and params > LORA_SFT_RATE_MAX_PARAMS:
        return {"usd": None, "tokens": tokens, "usd_per_mtok": None,
                "how": f"no Nursery rate for bases above 16B parameters ({PRICING_SOURCE})"}
    return {"usd": round(tokens * LORA_SFT_USD_PER_MTOK / 1e6, 6), "tokens": tokens,
            "usd_per_mtok": LORA_SFT_USD_PER_MTOK,
            "how": f"{tokens:,} tokens processed ({int(n_epochs)} epoch(s)"
                   + (f" + {int(n_evals)} eval pass(es)" if n_evals and eval_tokens else "")
                   + f") at ${LORA_SFT_USD_PER_MTOK}/M tokens ({PRICING_SOURCE})"}


def write_training_file(examples: list[dict], path: Path | str) -> dict:
    """Writes canonical examples as Together's conversational tool-calling JSONL (`messages` + `tools` per
    line; docs.together.ai/docs/fine-tuning-function-calling): tool-call arguments become JSON strings, `id`
    and `meta` are left out. Returns the counts {"rows", "arguments_encoded", "tools_rows"}."""
    counts = {"rows": 0, "arguments_encoded": 0, "tools_rows": 0}
    lines = []
    for ex in examples:
        messages = []
        for m in ex["messages"]:
            m = dict(m)
            if m.get("tool_calls"):
                calls = []
                for c in m["tool_calls"]:
                    fn = dict(c["function"])
                    if not isinstance(fn.get("arguments"), str):
                        fn["arguments"] = json.dumps(fn.get("arguments") or {}, ensure_ascii=False)
                        counts["arguments_encoded"] += 1
                    calls.append({**c, "function": fn})
                m["tool_calls"] = calls
            messages.append(m)
        row: dict[str, Any] = {"messages": messages}
        if ex.get("tools"):
            row["tools"] = ex["tools"]
            counts["tools_rows"] += 1
        lines.append(json.dumps(row, ensure_ascii=False))
        counts["rows"] += 1
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return counts


class TogetherClient(JsonApiClient):
    provider, label = "together", "Together.ai"
    url_env, default_url = "TOGETHER_BASE_URL", "https://api.together.ai"

    def error_text(self, r) -> str:
        try:
            body = r.json()
        except ValueError:
            return r.text
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            return str(err.get("message") or err)
        return str(err or body)

    # -------------------------------------------------------------------------------------- files
    def upload_file(self, path: Path | str, purpose: str = "fine-tune") -> dict:
        """Uploads a .jsonl file (POST /v1/files -> 302 presigned PUT -> preprocess); returns the FileResponse
        dict (`id`, `bytes`, `processing_status`, `validation_report`). A file Together already holds (409)
        is reused. Raises ProviderAPIError when Together finds the file invalid (naming its error)."""
        path = Path(path)
        if path.suffix != ".jsonl":
            raise ProviderAPIError(f"{path.name}: Together takes .jsonl training files")
        data = path.read_bytes()
        form = {"purpose": purpose, "file_name": path.name, "file_type": "jsonl",
                "checksum": hashlib.sha256(data).hexdigest()}
        r = self.request("POST", "/v1/files", files={k: (None, v) for k, v in form.items()}, ok=(302, 409))
        if r.status_code == 409:
            info = self.json("GET", f"/v1/files/{r.json()['file_id']}")
        else:
            location, fid = r.headers.get("Location"), r.headers.get("X-Together-File-Id")
            if not location or not fid:
                raise ProviderAPIError("Together's upload answer lacks Location or X-Together-File-Id", r.status_code)
            self.unauthenticated("PUT", location, f"upload of {path.name}", content=data)
            info = self.json("POST", f"/v1/files/{fid}/preprocess")
        report = info.get("validation_report") or {}
        if info.get("processing_status") == "INVALID_FORMAT" or report.get("valid") is False:
            raise ProviderAPIError(f"Together rejected {path.name}: {report.get('error') or 'invalid format'}")
        return info

    def delete_file(self, file_id: str) -> bool:
        """Deletes an uploaded file (the training data need not stay with Together after the run); False
        when Together no longer has it."""
        return self.delete(f"/v1/files/{file_id}")

    # ------------------------------------------------------------------------------------ fine-tunes
    def model_limits(self, model: str) -> dict:
        """FinetuneModelLimits for `model` (lora_training.max_rank, supports_tools, ...)."""
        return self.json("GET", "/v1/fine-tunes/models/limits", params={"model_name": model})

    def estimate_price(self, *, training_file: str, model: str, n_epochs: int, n_evals: int = 0,
                       validation_file: str | None = None) -> dict:
        """Together's own price estimate (`estimated_total_price` in USD, `allowed_to_proceed`)."""
        body = {"training_file": training_file, "model": model, "n_epochs": n_epochs, "n_evals": n_evals,
                "training_type": {"type": "Lora"}, "training_method": {"method": "sft"}}
        if validation_file:
            body["validation_file"] = validation_file
        return self.json("POST", "/v1/fine-tunes/estimate-price", json=body)

    @staticmethod
    def lora_request(*, model: str, training_file: str, suffix: str, n_epochs: int, learning_rate: float,
                     batch_size: int, lora_r: int, lora_alpha: int, lora_dropout: float = 0.0,
                     lora_trainable_modules: str = "all-linear", validation_file: str | None = None,
                     n_evals: int = 0, n_checkpoints: int = 1, warmup_ratio: float = 0.0,
                     max_seq_length: int | None = None, random_seed: int = 42) -> dict:
        """The create body for a LoRA SFT run. Rank, rate and batch size are always explicit: Together's
        defaults changed silently before (together-python#226)."""
        body = {"training_file": training_file, "model": model, "n_epochs": n_epochs,
                "learning_rate": learning_rate, "batch_size": batch_size, "suffix": suffix[:40],
                "lr_scheduler": {"lr_scheduler_type": "cosine",
                                 "lr_scheduler_args": {"min_lr_ratio": 0.0, "num_cycles": 0.5}},
                "warmup_ratio": warmup_ratio, "max_grad_norm": 1.0, "weight_decay": 0.0,
                "n_checkpoints": n_checkpoints, "n_evals": n_evals, "packing": True,
                "training_type": {"type": "Lora", "lora_r": lora_r, "lora_alpha": lora_alpha,
                                  "lora_dropout": lora_dropout, "lora_trainable_modules": lora_trainable_modules},
                "training_method": {"method": "sft", "train_on_inputs": "auto"}, "random_seed": random_seed}
        if validation_file:
            body["validation_file"] = validation_file
        if max_seq_length:
            body["max_seq_length"] = max_seq_length
        return body

    def create_fine_tune(self, body: dict) -> dict:
        """POST /v1/fine-tunes; after a lost answer the job with the same training file and suffix is
        adopted instead of a second one being created. Returns the FinetuneResponse dict."""
        def find() -> dict | None:
            for job in self.list_jobs():
                if job.get("training_file") == body["training_file"] and job.get("suffix") == body.get("suffix"):
                    return job
            return None

        return self.create_once(lambda: self.once("POST", "/v1/fine-tunes", json=body).json(), find)

    def retrieve(self, job_id: str) -> dict:
        return self.json("GET", f"/v1/fine-tunes/{job_id}")

    def list_jobs(self) -> list[dict]:
        return self.json("GET", "/v1/fine-tunes").get("data", [])

    def events(self, job_id: str) -> list[dict]:
        """The job's events, oldest first ({type, message, level, created_at, step?, ...})."""
        return self.json("GET", f"/v1/fine-tunes/{job_id}/events").get("data", [])

    def cancel(self, job_id: str) -> dict:
        """Asks Together to cancel; a job already terminal is returned as it is (not an error)."""
        try:
            return self.json("POST", f"/v1/fine-tunes/{job_id}/cancel")
        except ProviderAPIError as e:
            if e.status == 400:
                job = self.retrieve(job_id)
                if job.get("status") in TERMINAL_STATUSES:
                    return job
            raise

    def download_adapter(self, job_id: str, dest: Path | str) -> list[str]:
        """Downloads the LoRA adapter archive (checkpoint=adapter, not the CLI's default merged model) and
        unpacks it into `dest` (which must not exist); returns the file names."""
        r = self.request("GET", "/v1/finetune/download", params={"ft_id": job_id, "checkpoint": "adapter"},
                         headers={"Accept": "application/octet-stream"})
        return unpack_archive(r.content, dest, require="adapter_config.json", what=f"the archive of {job_id}")
