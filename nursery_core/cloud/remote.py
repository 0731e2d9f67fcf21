"""What a remote run needs from the transport side: the SSH target, and the code and packages to ship.

Nothing here knows of jobs; `nursery_core.jobs.backends.remote` drives a run with these.
"""
from __future__ import annotations

import hashlib
import io
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from .. import paths

# What the worker needs on the remote side; the versions come from requirements.txt.
REMOTE_PACKAGES = ("torch", "transformers", "peft", "accelerate", "safetensors", "tokenizers")


@dataclass
class RemoteTarget:
    """Where to run: an SSH endpoint plus the remote python and working root."""

    host: str
    port: int
    user: str
    key_path: str
    known_hosts: str
    python: str = "python3"
    remote_root: str = "nursery-jobs"
    name: str = ""

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


def remote_requirements() -> list[str]:
    """The pinned specs for REMOTE_PACKAGES from requirements.txt (torch only if the image lacks it)."""
    specs = {}
    req = paths.PROJECT_ROOT / "requirements.txt"
    for line in req.read_text().splitlines() if req.exists() else []:
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^([A-Za-z0-9_.-]+)", line)
        if m and m.group(1).lower() in REMOTE_PACKAGES:
            specs[m.group(1).lower()] = line
    return [specs.get(p, p) for p in REMOTE_PACKAGES]


def code_tarball() -> bytes:
    """Nursery's package source as a .tar.gz (no caches, no UI): what the remote worker imports."""
    pkg = paths.PROJECT_ROOT / "nursery_core"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for p in sorted(pkg.rglob("*")):
            rel = p.relative_to(paths.PROJECT_ROOT)
            if "__pycache__" in rel.parts or "webui" in rel.parts or not p.is_file():
                continue
            if p.suffix in (".pyc", ".pyo"):
                continue
            tar.add(str(p), arcname=str(rel))
    return buf.getvalue()


def dir_fingerprint(d: Path) -> str:
    """A short hash of a directory's file names, sizes and mtimes (a cache key for uploads)."""
    h = hashlib.sha256()
    for p in sorted(d.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(d)}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:12]
