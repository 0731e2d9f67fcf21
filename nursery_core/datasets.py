"""The single place that writes datasets: validate every record, write datasets/<name>.jsonl atomically, record it.

Also reads them back (`load_examples`, used by training and evaluation), lists, shows and deletes them.
Lengths are estimated without a tokenizer: CHARS_PER_TOKEN characters of the stored JSON line per token, a
conservative figure for BPE tokenizers (SmolLM2, Qwen2.5) on English text mixed with JSON, which runs at about
3-4 characters per token; the tool schemas are counted because every chat template renders them.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from pathlib import Path
from typing import Callable, Iterator, Sequence

from . import paths
from .data.diversity import diversity_report
from .errors import AlreadyExists, InvalidInput, NotFound
from .jsontext import read_text, records as json_records
from .overlap import request_index
from .records import CATEGORIES, SCHEMA_VERSION, Where, dumps, normalise_example
from .store import get_store

CHARS_PER_TOKEN = 3.2
DEFAULT_EVAL_FRACTION = 0.1
SPLITS = ("all", "train", "eval")


def max_import_bytes() -> int:
    """NURSERY_MAX_IMPORT_MB (default 200) in bytes."""
    raw = os.environ.get("NURSERY_MAX_IMPORT_MB", "200")
    try:
        mb = float(raw)
    except ValueError:
        raise InvalidInput(f"NURSERY_MAX_IMPORT_MB must be a number of megabytes, not {raw!r}",
                           field="NURSERY_MAX_IMPORT_MB") from None
    return int(mb * 1024 * 1024)


def check_source_file(path: str | Path) -> Path:
    """An existing, non-empty file within the import size limit, or InvalidInput naming it."""
    p = Path(path)
    if not p.exists():
        raise InvalidInput("file not found", file=str(path))
    if p.is_dir():
        raise InvalidInput("is a folder, not a file", file=str(path))
    size = p.stat().st_size
    if size == 0:
        raise InvalidInput("the file is empty", file=str(path))
    limit = max_import_bytes()
    if size > limit:
        raise InvalidInput(f"the file is {size / 1048576:.1f} MB, over the {limit / 1048576:g} MB import limit "
                           "(set NURSERY_MAX_IMPORT_MB to raise it)", file=str(path))
    return p


# ------------------------------------------------------------------------------------ split and stats
def _rank(seed: int, example_id: str) -> str:
    return hashlib.sha256(f"{seed}:{example_id}".encode()).hexdigest()


def assign_split(examples: list[dict], seed: int = 0, eval_fraction: float = DEFAULT_EVAL_FRACTION) -> dict:
    """Sets meta.split on every example: round(n * eval_fraction) go to eval, shared fairly across categories;
    within a category the ids ranked by sha256(seed:id) decide. Deterministic for the same ids and seed; returns the split summary."""
    # 1.0 (everything eval) is for evaluation-only sets such as imported BFCL files.
    if not isinstance(eval_fraction, (int, float)) or not 0 <= eval_fraction <= 1:
        raise InvalidInput(f"eval fraction must be between 0 and 1, not {eval_fraction!r}",
                           field="eval_fraction")
    by_cat: dict[str, list[dict]] = {}
    for ex in examples:
        by_cat.setdefault(ex["meta"]["category"], []).append(ex)
        ex["meta"]["split"] = "train"
    # Largest-remainder allocation: the total is round(n * fraction), each category gets its fair share.
    total = int(round(len(examples) * eval_fraction))
    quota = {c: int(len(g) * eval_fraction) for c, g in by_cat.items()}
    by_remainder = sorted(by_cat, key=lambda c: (-(len(by_cat[c]) * eval_fraction - quota[c]), c))
    for c in by_remainder[: max(0, total - sum(quota.values()))]:
        quota[c] += 1
    n_eval = 0
    for cat, group in by_cat.items():
        for ex in sorted(group, key=lambda e: _rank(seed, e["id"]))[: quota[cat]]:
            ex["meta"]["split"] = "eval"
            n_eval += 1
    if n_eval == 0 and eval_fraction > 0 and len(examples) >= 2:
        # Small datasets still get one eval example, so evaluation has something to run on.
        min(examples, key=lambda e: _rank(seed, e["id"]))["meta"]["split"] = "eval"
        n_eval = 1
    return {"method": "per-category ranking by sha256(seed:id)", "seed": seed,
            "eval_fraction": eval_fraction, "train": len(examples) - n_eval, "eval": n_eval}


def _summary(values: Sequence[float]) -> dict:
    if not values:
        return {"min": 0, "mean": 0, "p50": 0, "p95": 0, "max": 0}
    v = sorted(values)
    return {"min": v[0], "mean": round(sum(v) / len(v), 1), "p50": v[len(v) // 2],
            "p95": v[min(len(v) - 1, int(math.ceil(0.95 * len(v))) - 1)], "max": v[-1]}


def approx_tokens(chars: int) -> int:
    return int(math.ceil(chars / CHARS_PER_TOKEN))


def compute_stats(examples: list[dict], line_chars: list[int]) -> dict:
    """Lengths (chars, approx tokens), calls per tool and the diversity report (data/diversity.py)."""
    calls: dict[str, int] = {}
    user_chars = []
    for ex in examples:
        for m in ex["messages"]:
            if m["role"] == "user":
                user_chars.append(len(m["content"]))
            for c in m.get("tool_calls") or ():
                n = c["function"]["name"]
                calls[n] = calls.get(n, 0) + 1
    return {"chars": _summary(line_chars), "approx_tokens": _summary([approx_tokens(c) for c in line_chars]),
            "chars_per_token": CHARS_PER_TOKEN, "user_chars_mean": _summary(user_chars)["mean"],
            "calls_per_tool": dict(sorted(calls.items(), key=lambda kv: -kv[1])),
            "diversity": diversity_report(examples)}


def _ids(examples: list[dict]) -> int:
    """Gives every example a unique id: kept when the source has one, else a hash of its content."""
    seen: set[str] = set()
    renamed = 0
    for ex in examples:
        eid = ex.get("id") or ""
        if not eid:
            # Messages plus tool names identify an example; hashing full schemas would cost more for nothing.
            body = json.dumps([[t["function"]["name"] for t in ex["tools"]], ex["messages"]], ensure_ascii=False,
                              sort_keys=True)
            eid = "ex-" + hashlib.sha256(body.encode()).hexdigest()[:12]
        base, n = eid, 1
        while eid in seen:
            n += 1
            eid = f"{base}-{n}"
        if n > 1 and ex.get("id"):
            renamed += 1
        seen.add(eid)
        ex["id"] = eid
    return renamed


# ------------------------------------------------------------------------------------------ writing
def _refuse_existing(name: str) -> Path:
    paths.check_name(name, "dataset name")
    target = paths.dataset_path(name)
    if get_store().has_dataset(name):
        raise AlreadyExists(f"dataset {name!r} already exists: choose another dataset name, or delete "
                            "the existing one first")
    if target.exists():
        raise AlreadyExists(f"a file {target} already exists but is not a registered dataset: move it away "
                            "or choose another dataset name")
    return target


def write_dataset(name: str, examples: list[dict], *, source: str, description: str | None = None,
                  created_by: str | None = None, report: dict | None = None, seed: int = 0,
                  eval_fraction: float = DEFAULT_EVAL_FRACTION, file: str | None = None,
                  lines: list[int] | None = None, prevalidated: bool = False, kind: str = "training") -> dict:
    """Validates every example (the first error names file, line and field), then writes the JSONL file
    atomically and records it. Nothing is written when anything is wrong; nothing existing is replaced.
    `prevalidated`: the examples are fresh outputs of records.normalise_example (the generator and the
    importers validate each one as they go), so they are only checked for the canonical shape, not again.
    `kind` 'golden' marks a hand-written evaluation set (see golden.py). A request shared between a golden set
    and a training dataset raises SharedRequest naming both, and nothing is stored."""
    target = _refuse_existing(name)
    if not examples:
        raise InvalidInput("there are no examples to store", file=file)
    if prevalidated:
        for i, ex in enumerate(examples):
            if not isinstance(ex, dict) or ex.get("schema_version") != SCHEMA_VERSION or "category" not in ex.get("meta", {}):
                raise InvalidInput("not a normalised example", file=file, line=lines[i] if lines else i + 1)
        normalised = examples
    else:
        normalised = [normalise_example(ex, Where(file, lines[i] if lines else i + 1))
                      for i, ex in enumerate(examples)]
    for ex in normalised:
        ex["meta"].setdefault("source", source)
    renamed = _ids(normalised)
    split = assign_split(normalised, seed, eval_fraction)
    report = dict(report or {})
    if renamed:
        report["duplicate_ids_renamed"] = renamed
    encoded, summary = _summarise(normalised)
    tmp, sha = _write_tmp(target, encoded)
    try:
        try:
            os.link(tmp, target)  # fails if the target appeared meanwhile: never overwrites
        except FileExistsError:
            raise AlreadyExists(f"dataset file {target.name} appeared while writing: choose another dataset name") from None
        except OSError:
            if target.exists():
                raise AlreadyExists(f"dataset file {target.name} already exists: choose another dataset name") from None
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    row = {"name": name, "path": str(target), "kind": kind, **summary, "source": source,
           "description": description, "created_by": created_by, "split": split, "report": report,
           "sha256": sha}
    try:
        return get_store().add_dataset(row, requests=request_index(normalised))
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def rewrite_dataset(name: str, examples: list[dict], *, expect_sha256: str | None = None) -> dict:
    """Replaces a stored dataset's examples (already normalised, ids and meta.split set): golden-set edits.
    The row and request index change in one transaction (refused, with nothing changed, when a request is
    shared with a training dataset or the file changed meanwhile); then the new file replaces the old one."""
    row = get_dataset(name)
    target = Path(row["path"])
    encoded, summary = _summarise(examples)
    split = {**(row.get("split") or {}), "train": sum(1 for e in examples if e["meta"].get("split") != "eval"),
             "eval": sum(1 for e in examples if e["meta"].get("split") == "eval")}
    tmp, sha = _write_tmp(target, encoded)
    try:
        out = get_store().replace_dataset(name, {**summary, "split": split, "sha256": sha},
                                          request_index(examples), expect_sha256=expect_sha256)
        os.replace(tmp, target)
        return out
    finally:
        tmp.unlink(missing_ok=True)


def _summarise(normalised: list[dict]) -> tuple[list[str], dict]:
    """(the stored lines, the row's num_examples/tools/categories/stats)."""
    tools: list[str] = []
    cats = {c: 0 for c in CATEGORIES}
    for ex in normalised:
        cats[ex["meta"]["category"]] += 1
        for t in ex["tools"]:
            n = t["function"]["name"]
            if n not in tools:
                tools.append(n)
    encoded = [dumps(ex) for ex in normalised]
    return encoded, {"num_examples": len(normalised), "tools": tools,
                     "categories": {k: v for k, v in cats.items() if v},
                     "stats": compute_stats(normalised, [len(s) for s in encoded])}


def _write_tmp(target: Path, encoded: list[str]) -> tuple[Path, str]:
    """The lines written and fsynced to a temporary file beside `target`; returns (its path, sha256)."""
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    digest = hashlib.sha256()
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for line in encoded:
                data = line + "\n"
                digest.update(data.encode("utf-8"))
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, digest.hexdigest()


# ------------------------------------------------------------------------------------------ importing
def _read_canonical(path: Path) -> tuple[list[dict], list[int], dict]:
    """Canonical JSONL (or a JSON array of records); the first bad line stops the import. Strict JSON
    (jsontext.loads_strict): NaN, Infinity, duplicate keys and lone surrogates are refused with line and field."""
    records = json_records(read_text(path), str(path))
    if not records:
        raise InvalidInput("the file has no examples (only blank lines)", file=str(path))
    out, lines = [], []
    changed: dict[str, int] = {}
    for i, rec in records:
        if isinstance(rec, dict) and "messages" not in rec:
            hint = ("flat rows {user_query, tool_name, tool_arguments}" if "user_query" in rec else
                    "a ShareGPT/Hermes record" if "conversations" in rec else
                    "a chat export" if "mapping" in rec or "chat_messages" in rec else None)
            if hint:
                raise InvalidInput(f"this looks like {hint}, not the canonical format: use "
                                   "extract-conversations for it", file=str(path), line=i, field="messages")
        earlier = set(((rec.get("meta") or {}).get("fixups") or []) if isinstance(rec, dict) else [])
        ex = normalise_example(rec, Where(str(path), i))
        for code in set(ex["meta"].get("fixups", [])) - earlier:  # this import's changes, not an earlier one's
            changed[code] = changed.get(code, 0) + 1
        out.append(ex)
        lines.append(i)
    return out, lines, {"format": "canonical", "records": len(out), "transformations": changed}


def _read_bfcl(path: Path, answers: Path | None = None) -> tuple[list[dict], list[int], dict]:
    """A BFCL test file with its possible answers (the Model Cradle's importer, loaded on demand)."""
    from .evaluation.bfcl import read_bfcl
    return read_bfcl(path, answers)


IMPORT_FORMATS: dict[str, Callable[..., tuple[list[dict], list[int], dict]]] = {  # bfcl also takes answers
    "canonical": _read_canonical,
    "bfcl": _read_bfcl,
}


def register_import_format(fmt: str, reader: Callable[[Path], tuple[list[dict], list[int], dict]]) -> None:
    """Adds a format to import-dataset: reader(path) → (raw examples, their line numbers, report)."""
    IMPORT_FORMATS[fmt] = reader


def nursery_import_dataset(file: str | Path, name: str | None = None, format: str = "canonical",
                           description: str | None = None, created_by: str | None = None, seed: int = 0,
                           eval_fraction: float = DEFAULT_EVAL_FRACTION, answers: str | Path | None = None) -> dict:
    """Imports a dataset file (canonical JSONL by default) after validating every line; returns its metadata."""
    if format not in IMPORT_FORMATS:
        raise InvalidInput(f"unknown format {format!r}; supported: {', '.join(sorted(IMPORT_FORMATS))}",
                           file=str(file), field="format")
    path = check_source_file(file)
    name = name if name is not None else (paths.slugify(path.stem) or "imported")
    _refuse_existing(name)
    if format == "bfcl":  # a BFCL test file (+ its possible answers) is an evaluation-only dataset
        examples, lines, report = IMPORT_FORMATS[format](path, check_source_file(answers) if answers else None)
        eval_fraction = 1.0
    elif answers is not None:
        raise InvalidInput("answers are only read with format 'bfcl'", file=str(answers), field="answers")
    else:
        examples, lines, report = IMPORT_FORMATS[format](path)
    return write_dataset(name, examples, source=f"import:{format}", description=description or f"imported from {path.name}",
                         created_by=created_by, report=report, seed=seed, eval_fraction=eval_fraction,
                         file=str(path), lines=lines)


# ------------------------------------------------------------------------------------------- reading
def nursery_list_datasets(limit: int | None = None, offset: int | None = None, kind: str | None = None) -> list[dict]:
    """Datasets, newest first: name, kind ('training' | 'golden'), examples, tools, categories, source, created,
    stats, split."""
    return get_store().list_datasets(limit=limit, offset=offset, kind=kind)


def get_dataset(name: str) -> dict:
    return get_store().get_dataset(name)


def _iter_file(name: str) -> Iterator[dict]:
    row = get_store().get_dataset(name)
    p = Path(row["path"])
    if not p.is_file():
        raise NotFound(f"the file of dataset {name!r} is missing ({p}); delete the dataset and recreate it")
    with open(p, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def iter_examples(name: str, split: str = "all") -> Iterator[dict]:
    if split not in SPLITS:
        raise InvalidInput(f"split must be one of {', '.join(SPLITS)}, not {split!r}", field="split")
    for ex in _iter_file(name):
        if split == "all" or ex.get("meta", {}).get("split", "train") == split:
            yield ex


def load_examples(name: str, split: str = "all", limit: int | None = None) -> list[dict]:
    """The stored examples of a dataset: all of them, or its 'train' or 'eval' part (meta.split)."""
    out: list[dict] = []
    for ex in iter_examples(name, split):
        if limit is not None and len(out) >= limit:
            break
        out.append(ex)
    return out


def show_dataset(name: str, limit: int = 5, split: str = "all") -> dict:
    """A dataset's metadata plus its first `limit` examples."""
    row = get_dataset(name)
    row["examples"] = load_examples(name, split, limit=max(0, int(limit)))
    return row


def example_lengths(name: str, limit: int = 20000) -> list[dict]:
    """Per-example approx tokens, category and tools called, for charts (at most `limit` examples)."""
    out: list[dict] = []
    for ex in iter_examples(name):
        if len(out) >= limit:
            break
        calls = [c["function"]["name"] for m in ex["messages"] for c in (m.get("tool_calls") or ())]
        out.append({"approx_tokens": approx_tokens(len(dumps(ex))), "category": ex["meta"]["category"],
                    "split": ex["meta"].get("split", "train"), "tools_called": calls})
    return out


def dataset_diversity(name: str, limit: int = 20000) -> dict:
    """The diversity report of a dataset (see data/diversity.py): the stored one, or for datasets stored
    before it existed, computed from the first `limit` examples."""
    stored = (get_dataset(name).get("stats") or {}).get("diversity")
    if stored:
        return stored
    return diversity_report(load_examples(name, limit=limit))


def delete_dataset(name: str) -> dict:
    """Removes a dataset's row and file; returns what was deleted."""
    st = get_store()
    row = st.get_dataset(name)
    st.delete_dataset(name)
    Path(row["path"]).unlink(missing_ok=True)
    return {"deleted": name, "path": row["path"], "num_examples": row["num_examples"]}


def dataset_tools(name: str) -> list[dict]:
    """The distinct tool schemas a dataset's examples carry, in first-seen order (the row keeps names only)."""
    wanted = set(get_dataset(name).get("tools") or [])
    found: dict[str, dict] = {}
    for ex in iter_examples(name):
        for t in ex.get("tools") or []:
            found.setdefault(t["function"]["name"], t)
        if wanted and wanted <= set(found):
            break
    return list(found.values())
