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
