"""Replicate trainings client: the calls Nursery makes, in the shapes the official `replicate` 1.0.7 SDK
sends (see shared reference more-providers.md §3): files API upload (no public URL needed), destination
model, training on a trainer version, get / list / cancel, logs, and the output weights unpacked.

Pure transport (httpx + tenacity). Replicate's LLM trainers take `{"text"}` or `{"prompt", "completion"}`
JSONL rows, not tool schemas: the caller renders examples before `upload_file`. Base URL: the
constructor, else REPLICATE_BASE_URL (no `/v1`, like SDK 1.x), else https://api.replicate.com. Key: the
constructor, else REPLICATE_API_TOKEN or secrets.toml `[replicate] api_token`.
"""
from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

from .http_api import JsonApiClient, ProviderAPIError, unpack_archive

TERMINAL_STATUSES = {"succeeded", "failed", "canceled"}

# USD per second of each hardware SKU, from replicate.com/pricing (the table replicate.com/docs/billing shows);
# a training bills the seconds its trainer's hardware spends processing.
HARDWARE_USD_PER_S = {
    "cpu": 0.000100, "gpu-t4": 0.000225, "gpu-a40-small": 0.000575,
    "gpu-a40-large": 0.000725, "gpu-a40-large-2x": 0.001450, "gpu-a40-large-4x": 0.002900,
    "gpu-a40-large-8x": 0.005800,
    "gpu-l40s": 0.000975, "gpu-2x-l40s": 0.001950, "gpu-4x-l40s": 0.003900, "gpu-8x-l40s": 0.007800,
    "gpu-a100-large": 0.001400, "gpu-a100-large-2x": 0.002800, "gpu-a100-large-4x": 0.005600,
    "gpu-a100-large-8x": 0.011200,
    "gpu-h100": 0.001525, "gpu-h100-2x": 0.003050, "gpu-h100-4x": 0.006100, "gpu-h100-8x": 0.012200,
}
# Replicate's LLM trainers run on 8x A40 (Large): "$0.0058 per second" on their train pages (more-providers.md §3.2).
DEFAULT_TRAINING_HARDWARE = "gpu-a40-large-8x"
RATE_ENV = "NURSERY_REPLICATE_USD_PER_S"


def usd_per_second(hardware: str | None = None) -> tuple[float, str]:
    """(USD per second, where that rate comes from) for a hardware SKU (default: the LLM trainers' 8x A40).
    NURSERY_REPLICATE_USD_PER_S overrides the table (a trainer on hardware not listed, a negotiated price).
    Raises ValueError for a SKU not in HARDWARE_USD_PER_S or a malformed override."""
    import os

    override = os.environ.get(RATE_ENV, "").strip()
    if override:
        try:
            rate = float(override)
        except ValueError:
            raise ValueError(f"{RATE_ENV} must be a number of US dollars per second, got {override!r}") from None
        if rate < 0:
            raise ValueError(f"{RATE_ENV} must not be negative, got {override!r}")
        return rate, RATE_ENV
    sku = (hardware or DEFAULT_TRAINING_HARDWARE).strip()
    if sku not in HARDWARE_USD_PER_S:
        raise ValueError(f"unknown Replicate hardware {sku!r}; known: {', '.join(sorted(HARDWARE_USD_PER_S))} "
                         f"(or set {RATE_ENV})")
    return HARDWARE_USD_PER_S[sku], f"replicate.com/pricing ({sku})"


class ReplicateClient(JsonApiClient):
    provider, label = "replicate", "Replicate"
    url_env, default_url = "REPLICATE_BASE_URL", "https://api.replicate.com"

    def error_text(self, r) -> str:
        try:
            body = r.json()
        except ValueError:
            return r.text
        if isinstance(body, dict):
            return str(body.get("detail") or body.get("title") or body)
        return str(body)

    def upload_file(self, path: Path | str, metadata: dict | None = None) -> dict:
        """POST /v1/files (multipart `content`); returns the File dict, whose `urls.get` is the URL a
        training's `train_data` takes."""
        path = Path(path)
        ctype = "application/jsonl" if path.suffix == ".jsonl" else (
            mimetypes.guess_type(path.name)[0] or "application/octet-stream")
        files: dict[str, Any] = {"content": (path.name, path.read_bytes(), ctype)}
        if metadata:
            import json
            files["metadata"] = (None, json.dumps(metadata), "application/json")
        return self.json("POST", "/v1/files", files=files)

    def delete_file(self, file_id: str) -> bool:
        """Deletes an uploaded file (Replicate keeps them 24 h otherwise); False when it is already gone."""
        return self.delete(f"/v1/files/{file_id}")

    def ensure_model(self, owner: str, name: str, *, visibility: str = "private", hardware: str = "cpu",
                     description: str | None = None) -> dict:
        """The destination model `owner/name`, created when it does not exist yet."""
        try:
            return self.json("GET", f"/v1/models/{owner}/{name}")
        except ProviderAPIError as e:
            if e.status != 404:
                raise
        body = {"owner": owner, "name": name, "visibility": visibility, "hardware": hardware}
        if description:
            body["description"] = description
        r = self.request("POST", "/v1/models", json=body, ok=(409,))
        return self.json("GET", f"/v1/models/{owner}/{name}") if r.status_code == 409 else r.json()

    def trainer_version(self, trainer: str) -> str:
        """The latest version id of a trainer model "owner/name"."""
        model = self.json("GET", f"/v1/models/{trainer}")
        version = (model.get("latest_version") or {}).get("id")
        if not version:
            raise ProviderAPIError(f"Replicate model {trainer} has no version to train")
        return version

    def create_training(self, trainer: str, version: str, *, destination: str, input: dict,
                        webhook: str | None = None) -> dict:
        """POST /v1/models/{trainer}/versions/{version}/trainings; after a lost answer a training with the
        same destination and train_data is adopted instead of a second one. Returns the Training dict."""
        body: dict[str, Any] = {"input": input, "destination": destination}
        if webhook:
            body["webhook"] = webhook

        def find() -> dict | None:
            for t in self.list_trainings():
                if t.get("destination") == destination and (t.get("input") or {}).get("train_data") == \
                        input.get("train_data"):
                    return t
            return None

        path = f"/v1/models/{trainer}/versions/{version}/trainings"
        return self.create_once(lambda: self.once("POST", path, json=body).json(), find)

    def get_training(self, training_id: str) -> dict:
        return self.json("GET", f"/v1/trainings/{training_id}")

    def list_trainings(self) -> list[dict]:
        """The account's trainings, newest first (first page)."""
        return self.json("GET", "/v1/trainings").get("results", [])

    def cancel_training(self, training_id: str) -> dict:
        return self.json("POST", f"/v1/trainings/{training_id}/cancel")

    @staticmethod
    def new_log_lines(training: dict, seen: int) -> tuple[list[str], int]:
        """Lines of `training["logs"]` (the full text so far) after the first `seen`; and the new count."""
        lines = (training.get("logs") or "").splitlines()
        return lines[seen:], len(lines)

    def download_weights(self, training: dict, dest: Path | str) -> list[str]:
        """Fetches a succeeded training's `output.weights` and unpacks it into `dest` (which must not
        exist); returns the file names. The weights URL is signed: the API key is not sent there."""
        url = (training.get("output") or {}).get("weights") if isinstance(training.get("output"), dict) else None
        if training.get("status") != "succeeded" or not url:
            raise ProviderAPIError(f"training {training.get('id')} is {training.get('status')}: it has no weights")
        data = self.unauthenticated("GET", url, f"download of the weights of {training['id']}").content
        return unpack_archive(data, dest, require="adapter_config.json",
                              what=f"the weights of {training['id']}")
