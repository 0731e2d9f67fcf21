"""Data Garden commands: generate-data, extract-conversations, import-dataset, list/show/delete-dataset."""
from __future__ import annotations

import argparse

from ..errors import InvalidInput
from . import positive_int

META_KEYS = ("name", "kind", "path", "num_examples", "tools", "categories", "split", "source", "created_at", "stats")


def _meta(row: dict) -> dict:
    """A dataset's metadata for --json (the report rides along when there is one)."""
    out = {k: row.get(k) for k in META_KEYS}
    if row.get("report"):
        out["report"] = row["report"]
    return out


def _human_meta(row: dict) -> str:
    cats = ", ".join(f"{k} {v}" for k, v in (row.get("categories") or {}).items())
    split = row.get("split") or {}
    tok = (row.get("stats") or {}).get("approx_tokens") or {}
    lines = [f"dataset {row['name']}: {row['num_examples']} examples ({cats})",
             f"  tools: {', '.join(row.get('tools') or []) or '-'}",
             f"  split: {split.get('train', '?')} train / {split.get('eval', '?')} eval",
             f"  approx tokens per example: mean {tok.get('mean', '?')}, p95 {tok.get('p95', '?')}, max {tok.get('max', '?')}",
             f"  file: {row['path']}"]
    rep = row.get("report") or {}
    if rep.get("skipped"):
        lines.append("  skipped: " + "; ".join(f"{r} ({n})" for r, n in rep["skipped"].items()))
    if rep.get("transformations"):
        from ..records import TRANSFORMATIONS
        lines.append("  changed: " + "; ".join(f"{TRANSFORMATIONS.get(c, c)} ({n})"
                                              for c, n in rep["transformations"].items()))
    for note in rep.get("notes") or []:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def _generate(args: argparse.Namespace) -> dict:
    from ..data.generator import nursery_generate_data
    from ..data.tools import load_tool_schemas
    if args.tool and args.tool_schema:
        raise InvalidInput("use either --tool or --tool-schema, not both", field="tool")
    if not args.tool and not args.tool_schema:
        raise InvalidInput("pass --tool NAME (a built-in tool) or --tool-schema FILE (your own schema)", field="tool")
    tools = load_tool_schemas(args.tool_schema) if args.tool_schema else list(args.tool)
    queries = None
    if args.example_queries:
        from pathlib import Path
        p = Path(args.example_queries)
        if not p.is_file():
            raise InvalidInput("example queries file not found", file=args.example_queries)
        queries = [q.strip() for q in p.read_text(encoding="utf-8-sig").splitlines() if q.strip()]
    return _meta(nursery_generate_data(tools, args.num_examples, args.variation, seed=args.seed, name=args.name,
                                       example_queries=queries, created_by=args.created_by,
                                       requests_per_tool_set=args.requests_per_tool_set))


def _extract(args: argparse.Namespace) -> dict:
    from ..data.importers import nursery_extract_conversations
    return _meta(nursery_extract_conversations(args.source, format=args.format, name=args.name,
                                               keep_plain=args.keep_plain, redact=args.redact,
                                               created_by=args.created_by))


def _hub(args: argparse.Namespace) -> dict:
    import sys
    from ..data.hub import nursery_import_hub

    def progress(p: dict) -> None:
        if p["stage"] == "reading":
            print(f"reading: {p['read']} rows", file=sys.stderr)
        else:
            print(f"converting: {p['read']}/{p['total']} rows read, {p['kept']} kept, {p['skipped']} skipped",
                  file=sys.stderr)
    return _meta(nursery_import_hub(args.dataset, split=args.split, revision=args.revision, limit=args.limit,
                                    name=args.name, format=args.format, keep_plain=args.keep_plain,
                                    redact=args.redact, created_by=args.created_by, progress=progress))


def _import(args: argparse.Namespace) -> dict:
    from ..datasets import nursery_import_dataset
    return _meta(nursery_import_dataset(args.file, name=args.name, format=args.format, created_by=args.created_by,
                                        answers=args.answers))


def _list(args: argparse.Namespace) -> list[dict]:
    from ..datasets import nursery_list_datasets
    return [_meta(r) for r in nursery_list_datasets(limit=args.limit)]


def _human_list(rows: list[dict]) -> str:
    if not rows:
        return "no datasets yet: try `python -m nursery_core generate-data --tool get_weather`"
    w = max(len(r["name"]) for r in rows)
    return "\n".join(f"{r['name']:<{w}}  {r['num_examples']:>6} examples  {', '.join(r['tools'] or [])}"
                     + ("  [golden set]" if r.get("kind") == "golden" else "") for r in rows)


def _show(args: argparse.Namespace) -> dict:
    from ..datasets import show_dataset
    row = show_dataset(args.name, limit=args.limit)
    out = _meta(row)
    out["examples"] = row["examples"]
    return out


def _human_show(row: dict) -> str:
    import json
    parts = [_human_meta(row), ""]
    for ex in row.get("examples", []):
        parts.append(f"--- {ex['id']} [{ex['meta']['category']}, {ex['meta'].get('split')}]")
        for m in ex["messages"]:
            if m.get("tool_calls"):
                for c in m["tool_calls"]:
                    parts.append(f"  assistant → {c['function']['name']}"
                                 f"({json.dumps(c['function']['arguments'], ensure_ascii=False)})")
            else:
                weight = " [weight 0: context, not trained on]" if m.get("weight") == 0 else ""
                parts.append(f"  {m['role']}{weight}: {m['content'][:300]}")
    return "\n".join(parts)


def _delete(args: argparse.Namespace) -> dict:
    from ..datasets import delete_dataset
    return delete_dataset(args.name)


def register(sub) -> None:
    from . import Command
    from ..data.generator import REQUESTS_PER_TOOL_SET
    from ..data.importers import FORMATS
    (Command(sub, "generate-data", "Generate synthetic tool-calling examples for built-in tools or your own "
             "schema and store them as a dataset.", _generate, _human_meta)
     .arg("--tool", action="append", metavar="NAME", help="a built-in tool (repeat for a combined dataset)")
     .arg("--tool-schema", metavar="FILE", help="a JSON file with your tool schema(s) (OpenAI function format "
          "or {name, description, parameters}, or a list)")
     .arg("--num-examples", type=positive_int, default=100, metavar="N")
     .arg("--variation", choices=["low", "medium", "high"], default="medium")
     .arg("--seed", type=int, default=0, metavar="S")
     .arg("--name", metavar="NAME", help="dataset name (default: from the tool names)")
     .arg("--example-queries", metavar="FILE", help="a text file with example user queries, one per line")
     .arg("--requests-per-tool-set", type=positive_int, default=REQUESTS_PER_TOOL_SET, metavar="K",
          help="examples in a row that offer one drawn tool list (1 = each draws its own); training runs a "
               "shared tool list once per batch")
     .arg("--created-by", metavar="WHO", help=argparse.SUPPRESS))
    (Command(sub, "extract-conversations", "Import chat history (ChatGPT/Claude exports, OpenAI JSONL, "
             "ShareGPT, Hermes, flat rows, glaive v2, xLAM/APIGen) as tool-calling examples.", _extract, _human_meta)
     .arg("source", metavar="SOURCE", help="a file, a folder with conversations.json, or an export .zip")
     .arg("--format", choices=["auto", *FORMATS], default="auto")
     .arg("--name", metavar="NAME")
     .arg("--keep-plain", action="store_true", help="keep conversations without tool calls as no_call examples")
     .arg("--redact", action="store_true", help="replace e-mail addresses and API-key-like strings")
     .arg("--created-by", metavar="WHO", help=argparse.SUPPRESS))
    (Command(sub, "import-hub", "Import a Hugging Face dataset (or local Parquet/Arrow/JSON files) with the "
             "datasets library, through the same importers as extract-conversations; progress on stderr.",
             _hub, _human_meta)
     .arg("dataset", metavar="DATASET", help="a Hub dataset name (owner/name) or a local file or folder")
     .arg("--split", default="train", metavar="SPLIT")
     .arg("--revision", metavar="REV", help="a Hub branch, tag or commit")
     .arg("--limit", type=positive_int, default=None, metavar="N", help="read the first N rows only")
     .arg("--format", choices=["auto", *FORMATS], default="auto")
     .arg("--name", metavar="NAME")
     .arg("--keep-plain", action="store_true", help="keep conversations without tool calls as no_call examples")
     .arg("--redact", action="store_true", help="replace e-mail addresses and API-key-like strings")
     .arg("--created-by", metavar="WHO", help=argparse.SUPPRESS))
    (Command(sub, "import-dataset", "Import a dataset file in the canonical JSONL format (every line is "
             "validated; nothing is written on error).", _import, _human_meta)
     .arg("file", metavar="FILE")
     .arg("--name", metavar="NAME")
     .arg("--format", default="canonical", help="input format: canonical (default) or bfcl")
     .arg("--answers", metavar="FILE", help="with --format bfcl: the matching BFCL possible_answer file")
     .arg("--created-by", metavar="WHO", help=argparse.SUPPRESS))
    (Command(sub, "list-datasets", "List datasets, newest first.", _list, _human_list)
     .arg("--limit", type=positive_int, default=None, metavar="N"))
    (Command(sub, "show-dataset", "Show a dataset's metadata and its first examples.", _show, _human_show)
     .arg("name", metavar="NAME")
     .arg("--limit", type=int, default=5, metavar="N", help="examples to show (default 5)"))
    (Command(sub, "delete-dataset", "Delete a dataset (its file and its record).", _delete)
     .arg("name", metavar="NAME"))
