"""The provider table shown in Settings: what Nursery supports, what the others would need, which keys are set.

Only whether a key is set (and where from) is ever reported, never its value.
"""
from __future__ import annotations

from typing import Any

from .credentials import key_status, ssh_servers

PROVIDER_TABLE: list[dict[str, Any]] = [
    {"id": "vast", "name": "Vast.ai", "supported": True, "kind": "rented GPU + SSH",
     "summary": "Rents the cheapest verified GPU that fits your caps, checks its GPUs (a faulty machine is "
                "replaced), trains over SSH on every GPU, destroys it afterwards.",
     "needs": "VAST_API_KEY (env or .streamlit/secrets.toml); VAST_API_URL points at another API (the emulator)."},
    {"id": "ssh", "name": "Your own GPU server (SSH)", "supported": True, "kind": "SSH",
     "summary": "Same upload / run / stream / download path on a machine you own; nothing to rent or destroy.",
     "needs": "[ssh_servers.<name>] host, port, user, key_path (python, remote_root optional) in "
              ".streamlit/secrets.toml, NURSERY_SSH_HOST/PORT/USER/KEY_PATH, or --host/--port/--user/--key-path."},
    {"id": "runpod", "name": "RunPod", "supported": True, "kind": "rented GPU + SSH",
     "summary": "Creates the cheapest fitting pod (every GPU of it trains, DDP), checks its GPUs (a faulty pod is "
                "replaced), trains over SSH, always terminates it (a stopped pod still bills its disk).",
     "needs": "RUNPOD_API_KEY (env or [runpod] api_key in .streamlit/secrets.toml); RUNPOD_API_BASE_URL points "
              "at another API (the emulator)."},
    {"id": "together", "name": "Together.ai fine-tuning", "supported": True, "kind": "managed fine-tuning",
     "summary": "Uploads the data in Together's messages + tools format, runs a LoRA fine-tune with your "
                "hyper-parameters (changes are logged), follows it live, downloads the adapter into models/. "
                "Refused when Together's own price estimate is above max_cost.",
     "needs": "TOGETHER_API_KEY (env or [together] api_key in .streamlit/secrets.toml); TOGETHER_BASE_URL points "
              "at another API (the emulator)."},
    {"id": "replicate", "name": "Replicate trainings", "supported": True, "kind": "managed fine-tuning",
     "summary": "Renders each example with Nursery's chat template into a text row (Replicate's LLM trainers take "
                "text, not tool schemas; prompts are not masked), uploads it through Replicate's files API, trains "
                "on the trainer you name, downloads the weights into models/. Trainers whose base Nursery cannot "
                "load are refused.",
     "needs": "REPLICATE_API_TOKEN (env or [replicate] api_token); REPLICATE_OWNER (or [replicate] owner) for the "
              "destination model, or --destination; --trainer owner/name; REPLICATE_BASE_URL points at another "
              "API (the emulator)."},
    {"id": "modal", "name": "Modal", "supported": True, "kind": "serverless GPU functions",
     "summary": "Generates a Modal app for the run (pinned training stack, gpu= and timeout= from max_hours, a "
                "Volume for the adapter), spawns it, cancels it with FunctionCall.cancel, copies the adapter "
                "into models/. Progress arrives when the function returns; max_cost is not enforceable.",
     "needs": "the modal package and MODAL_TOKEN_ID / MODAL_TOKEN_SECRET (or `modal token new`)."},
]


def provider_table() -> list[dict]:
    """Every provider with its support status, what it needs, and whether its key is set."""
    rows = []
    for p in PROVIDER_TABLE:
        row = dict(p)
        if p["id"] == "ssh":
            try:
                servers = ssh_servers()
                row["servers"] = [s.to_dict() for s in servers.values()]
                row["configured"] = bool(servers)
            except Exception as e:  # noqa: BLE001 — a bad secrets.toml is shown, not raised, in the table
                row["servers"], row["configured"], row["config_error"] = [], False, str(e)
        else:
            try:
                ks = key_status(p["id"])
            except Exception as e:  # noqa: BLE001 — as above: the table shows the error instead of failing
                ks = {"set": False, "source": None, "error": str(e)}
            row["key"] = ks
            row["configured"] = ks["set"]
        rows.append(row)
    return rows
