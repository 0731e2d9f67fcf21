"""Where Nursery keeps things: NURSERY_HOME and the layout under it (see README, 'Data directory')."""
from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import InvalidInput

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def home() -> Path:
    """The data directory: $NURSERY_HOME, else nursery_data/ in the project root. Created on demand."""
    env = os.environ.get("NURSERY_HOME")
    root = Path(env).expanduser() if env else PROJECT_ROOT / "nursery_data"
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def _sub(name: str) -> Path:
    p = home() / name
    p.mkdir(parents=True, exist_ok=True)
    return p


def db_path() -> Path:
    return home() / "nursery.db"


def datasets_dir() -> Path:
    return _sub("datasets")


def models_dir() -> Path:
    return _sub("models")


def base_models_dir() -> Path:
    return _sub("base_models")


def jobs_dir() -> Path:
    return _sub("jobs")


def exports_dir() -> Path:
    return _sub("exports")


def evaluations_dir() -> Path:
    return _sub("evaluations")


def gguf_cache_dir() -> Path:
    """GGUF copies of bases and adapters that interactive inference runs with llama.cpp (rebuildable cache)."""
    return _sub("gguf_cache")


def slugify(text: str) -> str:
    """Turns what a user typed into a safe lowercase name (letters, digits, '.', '_', '-')."""
    s = re.sub(r"[^a-z0-9._-]+", "-", str(text).strip().lower())
    s = re.sub(r"-{2,}", "-", s).strip("-._")
    return s[:64]


def check_name(name: str, what: str = "name") -> str:
    """Validates a user-given name for a file under NURSERY_HOME; never lets a path escape it."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"{what} must not be empty", field=what)
    if "/" in name or "\\" in name or ".." in name or name.startswith("."):
        raise InvalidInput(f"{what} {name!r} is not allowed: use letters, digits, '.', '_' and '-' "
                           f"(for example {slugify(name) or 'my-data'!r})", field=what)
    if not _NAME_RE.match(name):
        raise InvalidInput(f"{what} {name!r} is not allowed: use lowercase letters, digits, '.', '_' and "
                           f"'-', at most 64 characters (for example {slugify(name) or 'my-data'!r})",
                           field=what)
    return name


def dataset_path(name: str) -> Path:
    return datasets_dir() / f"{check_name(name, 'dataset name')}.jsonl"


def model_dir(name: str) -> Path:
    return models_dir() / check_name(name, "model name")


def job_dir(job_id: str) -> Path:
    return jobs_dir() / check_name(job_id, "job id")


def export_dir(name: str) -> Path:
    return exports_dir() / check_name(name, "export name")


def inside_home(path: Path) -> bool:
    """True when path resolves to somewhere under NURSERY_HOME."""
    try:
        Path(path).resolve().relative_to(home())
        return True
    except ValueError:
        return False
