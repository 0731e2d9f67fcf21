"""Hugging Face datasets as a source: `import-hub DATASET` loads rows with the `datasets` library (a Hub name,
or local Parquet/Arrow/JSON files read by the same library) and routes them through the chat-history
importers (data/importers), so a row is read, detected, converted, counted and refused exactly as in a file.

Rows are streamed (`streaming=True`): nothing is cached on disk and `--limit` stops reading early.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..errors import InvalidInput

LOCAL_BUILDERS = {".parquet": "parquet", ".arrow": "arrow", ".json": "json", ".jsonl": "json"}
READ_PROGRESS_EVERY = 1000


def _local_files(path: Path) -> tuple[str, list[str]]:
    """(datasets builder name, files) for a local file or folder of one kind of data file."""
    files = sorted(f for f in path.rglob("*") if f.suffix in LOCAL_BUILDERS) if path.is_dir() else [path]
    if not files:
        raise InvalidInput(f"the folder has no {', '.join(LOCAL_BUILDERS)} files", file=str(path))
    if any(f.suffix not in LOCAL_BUILDERS for f in files):
        raise InvalidInput(f"not a data file the datasets library reads here (use one of "
                           f"{', '.join(LOCAL_BUILDERS)})", file=str(path))
    kinds = {LOCAL_BUILDERS[f.suffix] for f in files}
    if len(kinds) > 1:
        raise InvalidInput(f"the folder mixes {' and '.join(sorted(kinds))} files: point at one kind",
                           file=str(path))
    return kinds.pop(), [str(f) for f in files]


def load_rows(dataset: str, split: str = "train", revision: str | None = None, limit: int | None = None,
              progress: Callable[[dict], None] | None = None) -> tuple[list[tuple[str, Any]], str]:
    """([(row ref, row dict)], label) of the first `limit` rows of a split; InvalidInput when the dataset,
    split or revision cannot be loaded (offline, unknown, private, not a data file)."""
    import datasets

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidInput(f"limit must be a whole number of at least 1, not {limit!r}", field="limit")
    local = Path(dataset).expanduser()
    try:
        if local.exists():
            if revision:
                raise InvalidInput("--revision applies to Hub datasets, not local files", field="revision")
            builder, files = _local_files(local)
            stream = datasets.load_dataset(builder, data_files={split: files}, split=split, streaming=True)
            label = str(local)
        else:
            stream = datasets.load_dataset(dataset, split=split, revision=revision, streaming=True)
            label = f"hf:{dataset}" + (f"@{revision}" if revision else "") + f"[{split}]"
        rows: list[tuple[str, Any]] = []
        for i, row in enumerate(stream):
            if limit is not None and i >= limit:
                break
            rows.append((f"row {i + 1}", dict(row)))
            if progress and (i + 1) % READ_PROGRESS_EVERY == 0:
                progress({"stage": "reading", "read": i + 1})
    except InvalidInput:
        raise
    except Exception as e:  # noqa: BLE001 — re-raised as InvalidInput; the datasets library raises many types (FileNotFoundError, ConnectionError, …)
        raise InvalidInput(f"cannot load {dataset!r} (split {split!r}"
                           + (f", revision {revision!r}" if revision else "")
                           + f") with the datasets library: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}",
                           field="dataset") from None
    if not rows:
        raise InvalidInput(f"split {split!r} of {dataset!r} has no rows", field="split")
    return rows, label


def nursery_import_hub(dataset: str, split: str = "train", revision: str | None = None, limit: int | None = None,
                       name: str | None = None, format: str = "auto", keep_plain: bool = False,
                       redact: bool = False, created_by: str | None = None, seed: int = 0,
                       progress: Callable[[dict], None] | None = None) -> dict:
    """Imports a Hugging Face dataset (or local Parquet/Arrow/JSON files) through the chat-history importers;
    returns the stored dataset's metadata with the import report (its `hub` key says what was read).
    `progress` gets {stage: reading|converting, read, kept?, skipped?, total?} dicts."""
    from .. import paths
    from ..datasets import _refuse_existing, write_dataset
    from .importers import examples_from_records

    if name is not None:
        _refuse_existing(name)
    rows, label = load_rows(dataset, split, revision, limit, progress)
    examples, report = examples_from_records(
        rows, label, format, keep_plain, redact,
        progress=(lambda p: progress({"stage": "converting", **p})) if progress else None)
    report["hub"] = {"dataset": dataset, "split": split, "revision": revision, "limit": limit, "rows": len(rows)}
    if not examples:
        reasons = "; ".join(f"{r} ({n})" for r, n in report["skipped"].items()) or "nothing to read"
        raise InvalidInput(f"no examples could be extracted from {len(rows)} row(s): {reasons}", file=label)
    if name is None:
        name = paths.slugify(Path(dataset.rstrip("/")).name.split(".")[0]) or "hub-import"
        _refuse_existing(name)
    return write_dataset(name, examples, source=f"hub:{report['format']}", created_by=created_by, report=report,
                         description=f"{report['format']} rows of {label}", seed=seed, prevalidated=True)
