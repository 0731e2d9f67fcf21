"""Where cloud settings and secrets come from: the environment, then `.streamlit/secrets.toml`.

Secrets are read on demand and handed only to the HTTP client; nothing here writes them anywhere. The
secrets file is the project's `.streamlit/secrets.toml` (Streamlit's own convention), or
$NURSERY_SECRETS_FILE when set (tests, other deployments).
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import InvalidConfig, InvalidInput

DEFAULT_VAST_URL = "https://console.vast.ai"
# The budget caps a cloud run starts with in the dashboard's form and through MCP (an agent may lower them).
DEFAULT_MAX_DPH = 0.5    # US dollars per GPU hour
DEFAULT_MAX_HOURS = 2.0  # wall-clock hours


def secrets_file() -> Path:
    env = os.environ.get("NURSERY_SECRETS_FILE")
    return Path(env).expanduser() if env else paths.PROJECT_ROOT / ".streamlit" / "secrets.toml"


def load_secrets() -> dict[str, Any]:
    """The parsed secrets.toml, or {} when there is none; a malformed file is a clear error."""
    f = secrets_file()
    if not f.is_file():
        return {}
    try:
        with f.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise InvalidInput(f"cannot parse: {e}", file=str(f)) from None


def _secret(env_name: str, *toml_paths: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(value, where it came from) for a secret; where is 'env' or 'secrets.toml'."""
    val = os.environ.get(env_name)
    if val and val.strip():
        return val.strip(), "env"
    data = load_secrets()
    for path in ((env_name,),) + toml_paths:
        node: Any = data
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, str) and node.strip():
            return node.strip(), "secrets.toml"
    return None, None


def vast_api_key(required: bool = True) -> str | None:
    """The Vast.ai API key from VAST_API_KEY or secrets.toml (`VAST_API_KEY = ...` or `[vast] api_key`)."""
    key, _ = _secret("VAST_API_KEY", ("vast", "api_key"))
    if key is None and required:
        raise InvalidConfig("no Vast.ai API key: set the VAST_API_KEY environment variable or add "
                            "VAST_API_KEY = \"...\" to .streamlit/secrets.toml")
    return key


def vast_api_url() -> str:
    """The API base URL: VAST_API_URL (e.g. the local emulator), else the real console."""
    url, _ = _secret("VAST_API_URL", ("vast", "api_url"))
    return (url or DEFAULT_VAST_URL).rstrip("/")


# Keys of the providers in the table (see providers.py); only whether they are set is ever shown.
PROVIDER_KEYS = {
    "vast": ("VAST_API_KEY", ("vast", "api_key")),
    "replicate": ("REPLICATE_API_TOKEN", ("replicate", "api_token")),
    "together": ("TOGETHER_API_KEY", ("together", "api_key")),
    "runpod": ("RUNPOD_API_KEY", ("runpod", "api_key")),
    "modal": ("MODAL_TOKEN_ID", ("modal", "token_id")),
}


def provider_secret(provider: str) -> str | None:
    """The provider's key (its environment variable first, then secrets.toml), or None; for the transport
    clients only, which never log or show it."""
    env_name, toml_path = PROVIDER_KEYS[provider]
    return _secret(env_name, toml_path)[0]


def key_status(provider: str) -> dict:
    """{'set': bool, 'source': 'env'|'secrets.toml'|None, 'name': env var}; never the value."""
    env_name, toml_path = PROVIDER_KEYS[provider]
    value, source = _secret(env_name, toml_path)
    return {"set": value is not None, "source": source, "name": env_name}


@dataclass
class SSHServer:
    """A GPU server reachable over SSH (the `ssh` provider)."""

    name: str
    host: str
    port: int = 22
    user: str = "root"
    key_path: str | None = None
    python: str = "python3"
    remote_root: str = "nursery-jobs"

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


def ssh_servers() -> dict[str, SSHServer]:
    """Configured servers: `[ssh_servers.<name>]` tables in secrets.toml, plus NURSERY_SSH_HOST as 'default'."""
    out: dict[str, SSHServer] = {}
    tables = load_secrets().get("ssh_servers") or {}
    if not isinstance(tables, dict):
        raise InvalidInput("[ssh_servers] must be a table of servers", file=str(secrets_file()),
                           field="ssh_servers")
    for name, t in tables.items():
        if not isinstance(t, dict) or not t.get("host"):
            raise InvalidInput("each [ssh_servers.<name>] needs host = \"...\"", file=str(secrets_file()),
                               field=f"ssh_servers.{name}.host")
        out[name] = make_server(name, t.get("host"), t.get("port"), t.get("user"), t.get("key_path"),
                                python=t.get("python"), remote_root=t.get("remote_root"),
                                where=f"ssh_servers.{name}")
    if os.environ.get("NURSERY_SSH_HOST"):
        out["default"] = make_server("default", os.environ["NURSERY_SSH_HOST"],
                                     os.environ.get("NURSERY_SSH_PORT"), os.environ.get("NURSERY_SSH_USER"),
                                     os.environ.get("NURSERY_SSH_KEY_PATH"),
                                     python=os.environ.get("NURSERY_SSH_PYTHON"),
                                     remote_root=os.environ.get("NURSERY_SSH_REMOTE_ROOT"), where="NURSERY_SSH_*")
    return out


def make_server(name: str, host: Any, port: Any = None, user: Any = None, key_path: Any = None, *,
                python: Any = None, remote_root: Any = None, where: str = "ssh") -> SSHServer:
    """Validates one server's settings; the key file must exist when given."""
    host = str(host or "").strip()
    if not host or any(c in host for c in " /\\@'\""):
        raise InvalidConfig(f"{where}: host {host!r} is not a host name or address")
    try:
        port_n = int(port) if port not in (None, "") else 22
    except (TypeError, ValueError):
        raise InvalidConfig(f"{where}: port {port!r} is not a number") from None
    if not 0 < port_n < 65536:
        raise InvalidConfig(f"{where}: port {port_n} is out of range")
    kp = None
    if key_path:
        kp = str(Path(str(key_path)).expanduser())
        if not Path(kp).is_file():
            raise InvalidConfig(f"{where}: key file {kp} does not exist")
    return SSHServer(name=name, host=host, port=port_n, user=str(user or "root"), key_path=kp,
                     python=str(python or "python3"), remote_root=str(remote_root or "nursery-jobs"))
