"""Chat history → training examples: nursery_extract_conversations with format detection and a report.

One module per source format (chatgpt, claude, openai, sharegpt incl. Hermes, flat, glaive, xlam); each turns one record
into a rough example or raises Skip with a reason. This module loads the source (file, folder or zip),
detects the format, infers schemas for calls that come without one, redacts on request, and hands the
examples to datasets.write_dataset, which validates and stores them.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Callable, Sequence

from ... import paths
from ...errors import InvalidInput
from ...jsontext import decode_bytes, lines as text_lines, loads_marked, marked_problem, read_text
from ...records import Where, decode_arguments, infer_tool_from_calls, normalise_example, normalise_tool
from . import chatgpt, claude, flat, glaive, openai, sharegpt, xlam
from .common import Redactor, Skip

FORMATS = ("chatgpt", "claude", "openai", "sharegpt", "hermes", "flat", "glaive", "xlam")
MODULES = {"chatgpt": chatgpt, "claude": claude, "openai": openai, "sharegpt": sharegpt, "hermes": sharegpt,
           "flat": flat, "glaive": glaive, "xlam": xlam}
MAX_REFS = 10
PROGRESS_EVERY = 500


# ------------------------------------------------------------------------------------------- loading
def _json_records(text: str, label: str) -> list[tuple[str | None, Any]]:
    """[(line ref or None, record)] from JSON (an array, or one object) or JSON Lines. A record holding NaN,
    Infinity, duplicate keys or lone surrogates becomes a _Bad with the reason and field (skipped, counted)."""
    stripped = text.lstrip("\ufeff").lstrip()
    if stripped.startswith("["):
        try:
            data, suspicious = loads_marked(stripped)
        except json.JSONDecodeError as e:
            raise InvalidInput(f"not valid JSON: {e.msg} (column {e.colno})", file=label, line=e.lineno) from None
        return [(None, _checked(r) if suspicious else r) for r in data]
    try:
        data, suspicious = loads_marked(stripped)
    except ValueError:
        data, suspicious = None, False
    if isinstance(data, dict):
        for key in ("conversations", "data", "examples", "rows"):
            inner = data.get(key)
            if isinstance(inner, list) and inner and isinstance(inner[0], dict) and not any(
                    m.matches(data) for m in (sharegpt,)):
                return [(None, _checked(r) if suspicious else r) for r in inner]
        # one line of JSON Lines holding one record: keep its line number for the report
        one_line = "\n" not in stripped.strip()
        ref = f"line {text[: text.find(stripped.strip()[:1])].count(chr(10)) + 1}" if one_line else None
        return [(ref, _checked(data) if suspicious else data)]
    out: list[tuple[str | None, Any]] = []
    bad = 0
    for i, line in text_lines(text):
        try:
            rec, suspicious = loads_marked(line)
            out.append((f"line {i}", _checked(rec) if suspicious else rec))
        except json.JSONDecodeError as e:
            bad += 1
            out.append((f"line {i}", _Bad(f"not valid JSON ({e.msg})")))
    if out and bad == len(out):
        raise InvalidInput("not JSON or JSON Lines", file=label, line=1)
    return out


def _checked(rec: Any) -> Any:
    found = marked_problem(rec)
    return _Bad(f"{found[1]} (field {found[0]})") if found else rec


class _Bad:
    def __init__(self, reason: str):
        self.reason = reason


def load_source(source: str | Path) -> tuple[list[tuple[str | None, Any]], str]:
    """Records from a file, a folder with conversations*.json, or an export .zip; returns (records, label)."""
    from ...datasets import check_source_file, max_import_bytes
    p = Path(source)
    label = str(source)
    if p.is_dir():
        files = sorted(p.glob("conversations*.json")) or sorted(list(p.glob("*.jsonl")) + list(p.glob("*.json")))
        if not files:
            raise InvalidInput("the folder has no conversations.json (nor other .json/.jsonl files)", file=label)
        out = []
        for f in files:
            check_source_file(f)
            out += _json_records(read_text(f), str(f))
        return out, label
    check_source_file(p)
    if zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as z:
            names = [n for n in z.namelist() if Path(n).name.startswith("conversations") and n.endswith(".json")]
            if not names:
                raise InvalidInput("the zip has no conversations.json: is it a ChatGPT or Claude export?", file=label)
            if sum(z.getinfo(n).file_size for n in names) > max_import_bytes():
                raise InvalidInput("the conversations in the zip are over the import size limit "
                                   "(set NURSERY_MAX_IMPORT_MB to raise it)", file=label)
            out = []
            for n in sorted(names):
                out += _json_records(decode_bytes(z.read(n), f"{label}!{n}"), f"{label}!{n}")
            return out, label
    text = read_text(p, label)
    if not text.strip():
        raise InvalidInput("the file is empty", file=label)
    return _json_records(text, label), label


def detect_format(records: Sequence[tuple[str | None, Any]], label: str = "") -> str:
    """The format most of the first records match; InvalidInput when none does."""
    votes = {f: 0 for f in FORMATS}
    sample = [r for _, r in records if isinstance(r, dict)][:25]
    bad = [(ref, r.reason) for ref, r in records if isinstance(r, _Bad)]
    if not sample and bad:
        raise InvalidInput(f"no examples could be extracted from {len(records)} record(s): none could be read; "
                           f"first: {bad[0][0] or 'record 1'}, {bad[0][1]}", file=label)
    if sample and all("schema_version" in r and "messages" in r for r in sample):
        # Read as OpenAI rows, canonical ones would lose their ids and meta, and no-call rows would be skipped.
        raise InvalidInput("this file is in Nursery's canonical format: import it as a canonical dataset instead, "
                           "which keeps its ids, meta and no-call examples", file=label, field="format")
    for r in sample:
        if chatgpt.matches(r):
            votes["chatgpt"] += 1
        elif claude.matches(r):
            votes["claude"] += 1
        elif flat.matches(r):
            votes["flat"] += 1
        elif glaive.matches(r):
            votes["glaive"] += 1
        elif xlam.matches(r):
            votes["xlam"] += 1
        elif sharegpt.matches(r):
            votes["hermes" if sharegpt.is_hermes(r) else "sharegpt"] += 1
        elif openai.matches(r):
            votes["openai"] += 1
    if votes["hermes"] and votes["sharegpt"]:
        votes["hermes"] += votes.pop("sharegpt")  # one module reads both; Hermes tags may be in some rows only
    best = max(votes, key=lambda f: votes[f])
    if not votes[best]:
        keys = sorted(sample[0])[:8] if sample else []
        raise InvalidInput(f"unknown format (first record has keys {keys}); supported: {', '.join(FORMATS)}",
                           file=label, field="format")
    return best


# ------------------------------------------------------------------------------------------ reasons
def _reason(detail: str) -> str:
    d = detail.lower()
    for needle, reason in [
        ("do not match its schema", "a tool call does not match its tool's schema"),
        ("not among the example's tools", "a call to a tool missing from the record's tools"),
        ("cannot follow", "turns in an order a chat template cannot render"),
        ("must start with a user", "no user message before the answer"),
        ("must end with an assistant", "no assistant answer"),
        ("not valid json", "arguments that are not JSON"),
        ("arguments must be an object", "arguments that are not an object"),
        ("invalid json schema", "an invalid tool schema"),
        ("tool has no name", "a tool without a name"),
        ("duplicate tool", "duplicate tool names"),
    ]:
        if needle in d:
            return reason
    return detail[:80]


class _Report:
    def __init__(self, fmt: str, label: str):
        self.data: dict[str, Any] = {"format": fmt, "source": Path(label).name, "conversations_read": 0,
                                     "examples": 0, "categories": {}, "skipped": {}, "skipped_refs": [],
                                     "inferred_tools": [], "transformations": {}}

    def count(self, counts: dict[str, int]) -> None:
        tr = self.data["transformations"]
        for reason, n in counts.items():
            tr[reason] = tr.get(reason, 0) + n

    def skip(self, ref: str, reason: str, error: InvalidInput | None = None) -> None:
        self.data["skipped"][reason] = self.data["skipped"].get(reason, 0) + 1
        if len(self.data["skipped_refs"]) < MAX_REFS:
            entry = {"ref": ref, "reason": reason}
            if error is not None:
                entry["detail"] = (f"field '{error.field}': " if error.field else "") + error.detail
            self.data["skipped_refs"].append(entry)


# ------------------------------------------------------------------------------------------ extraction
def extract_examples(source: str | Path, format: str = "auto", keep_plain: bool = False,
                     redact: bool = False) -> tuple[list[dict], dict, str]:
    """(normalised examples, report, source label); nothing is stored."""
    if format != "auto" and format not in FORMATS:
        raise InvalidInput(f"unknown format {format!r}; supported: auto, {', '.join(FORMATS)}", field="format")
    records, label = load_source(source)
    examples, report = examples_from_records(records, label, format, keep_plain, redact)
    return examples, report, label


Progress = Callable[[dict], None]


def examples_from_records(records: Sequence[tuple[str | None, Any]], label: str, format: str = "auto",
                          keep_plain: bool = False, redact: bool = False,
                          progress: Progress | None = None) -> tuple[list[dict], dict]:
    """(normalised examples, report) from already loaded records [(ref or None, record)]; `progress` gets
    {read, kept, skipped, total} every PROGRESS_EVERY records and once at the end."""
    if format != "auto" and format not in FORMATS:
        raise InvalidInput(f"unknown format {format!r}; supported: auto, {', '.join(FORMATS)}", field="format")
    fmt = detect_format(records, label) if format == "auto" else format
    module = MODULES[fmt]
    rep = _Report(fmt, label)
    redactor = Redactor() if redact else None
    rough: list[tuple[str, dict, dict]] = []
    for i, (line_ref, rec) in enumerate(records):
        rep.data["conversations_read"] += 1
        if progress and i and i % PROGRESS_EVERY == 0:
            progress({"read": i, "kept": len(rough), "skipped": sum(rep.data["skipped"].values()),
                      "total": len(records)})
        ref = line_ref or (module.ref(rec, i) if isinstance(rec, dict) else f"record {i + 1}")
        if isinstance(rec, _Bad):
            rep.skip(ref, rec.reason)
            continue
        ok = module.matches(rec) or (fmt == "hermes" and openai.matches(rec))
        if not ok:
            rep.skip(ref, f"does not look like {fmt} data")
            continue
        try:
            ex = (openai.convert(rec) if fmt == "hermes" and not sharegpt.matches(rec) else module.convert(rec))
        except Skip as e:
            rep.skip(ref, str(e))
            continue
        except InvalidInput as e:
            rep.skip(ref, _reason(e.detail), e)
            continue
        if not ex["messages"]:
            rep.skip(ref, "no user message followed by an assistant answer")
            continue
        has_calls = any(m.get("tool_calls") for m in ex["messages"])
        if not has_calls and not keep_plain:
            rep.skip(ref, "plain conversation without tool calls (skipped unless plain conversations are kept)")
            continue
        if redactor:
            ex = redactor.example(ex)
        counts = ex.pop("transformations", None) or {}
        ex["meta"] = {"source": f"import:{fmt}", "source_ref": ref}
        if counts:
            ex["meta"]["fixups"] = sorted(counts)
        rough.append((ref, ex, counts))

    inferred = _infer_tools(rough)
    out: list[dict] = []
    for ref, ex, counts in rough:
        counts = dict(counts)
        if not ex.get("tools"):
            called = {c["function"]["name"] for m in ex["messages"] for c in m.get("tool_calls") or ()}
            names = sorted(called) if called else (sorted(inferred) if len(inferred) <= 8 else [])
            if names:
                ex["tools"] = [inferred[n] for n in names if n in inferred]
                ex["meta"]["inferred_tools"] = [n for n in names if n in inferred]
                counts["tool_schemas_inferred"] = 1
        line = int(ref.split()[1]) if ref.startswith("line ") else None
        try:
            norm = normalise_example(ex, Where(label, line))
        except InvalidInput as e:
            rep.skip(ref, _reason(e.detail), e)
            continue
        out.append(norm)
        cat = norm["meta"]["category"]
        rep.data["categories"][cat] = rep.data["categories"].get(cat, 0) + 1
        rep.count({**{fx: 1 for fx in norm["meta"].get("fixups", []) if fx not in counts}, **counts})
    rep.data["examples"] = len(out)
    rep.data["inferred_tools"] = sorted(inferred)
    if redactor:
        rep.data["redactions"] = redactor.counts
    if progress:
        progress({"read": len(records), "kept": len(out), "skipped": sum(rep.data["skipped"].values()),
                  "total": len(records)})
    return out, rep.data


def _infer_tools(rough: list[tuple[str, dict, dict]]) -> dict[str, dict]:
    """Schemas for tools that are called in records carrying no tools, from every observed call."""
    seen: dict[str, list[dict]] = {}
    for _, ex, _ in rough:
        if ex.get("tools"):
            continue
        for m in ex["messages"]:
            for c in m.get("tool_calls") or ():
                try:
                    args, _ = decode_arguments(c["function"].get("arguments"))
                except InvalidInput:
                    continue
                seen.setdefault(c["function"]["name"], []).append(args)
    return {name: normalise_tool(infer_tool_from_calls(name, calls)) for name, calls in seen.items()}


def nursery_extract_conversations(source: str | Path, format: str = "auto", name: str | None = None,
                                  keep_plain: bool = False, redact: bool = False,
                                  created_by: str | None = None, seed: int = 0) -> dict:
    """Imports chat history (ChatGPT, Claude, OpenAI JSONL, ShareGPT, Hermes or flat rows) as a dataset;
    returns its metadata with the import report under 'report'."""
    from ...datasets import _refuse_existing, write_dataset
    if name is not None:
        paths.check_name(name, "dataset name")
        _refuse_existing(name)
    examples, report, label = extract_examples(source, format, keep_plain, redact)
    if not examples:
        reasons = "; ".join(f"{r} ({n})" for r, n in report["skipped"].items()) or "nothing to read"
        first = report["skipped_refs"][0] if report["skipped_refs"] else None
        if first and first.get("detail"):
            reasons += f"; first: {first['ref']}, {first['detail']}"
        raise InvalidInput(f"no examples could be extracted from {report['conversations_read']} record(s): "
                           f"{reasons}", file=label)
    if name is None:
        name = paths.slugify(Path(str(source)).stem) or "imported"
        _refuse_existing(name)
    return write_dataset(name, examples, source=f"import:{report['format']}", created_by=created_by,
                         report=report, description=f"{report['format']} import of {Path(label).name}",
                         seed=seed, prevalidated=True)
