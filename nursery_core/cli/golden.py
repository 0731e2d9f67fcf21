"""Golden-set commands: `golden add | import | list | show | edit | remove-row | delete` (hand-written
evaluation sets; see nursery_core/golden.py for the file formats and the rules)."""
from __future__ import annotations

import argparse
import json

from ..errors import InvalidInput
from . import Command

ACTIONS = ("add", "import", "list", "show", "edit", "remove-row", "delete")


def _tools(args: argparse.Namespace) -> list | None:
    from ..data.tools import load_tool_schemas

    tools = list(args.tool or [])
    for f in args.tool_schema or []:
        tools += load_tool_schemas(f)
    return tools or None


def _add(args: argparse.Namespace) -> dict:
    from ..golden import nursery_golden_add

    return nursery_golden_add(args.name, args.request, _tools(args), list(args.call or []), note=args.note,
                              created_by=args.created_by)


def _human_row(r: dict) -> str:
    from ..golden import row_view

    row = row_view(r["row"]) if "row" in r else r
    calls = "; ".join(f"{c['name']}({json.dumps(c['arguments'], ensure_ascii=False)})" for c in row["calls"])
    return f"{row['id']}  {row['request']!r} → {calls or 'no call'}" + (f"  ({row['note']})" if row.get("note") else "")


def _human_added(r: dict) -> str:
    return f"golden set {r['set']['name']} ({r['set']['num_examples']} rows): added\n  {_human_row(r)}"


def _import(args: argparse.Namespace) -> dict:
    from ..golden import nursery_golden_import

    return nursery_golden_import(args.file, name=args.name, created_by=args.created_by)


def _human_import(r: dict) -> str:
    from ..data.tools import conversion_notes

    return "\n".join([f"golden set {r['name']}: {r['imported']} row(s) imported, {r['num_examples']} in all "
                      f"({r['path']})"] + [f"  changed: {n}" for n in conversion_notes(r.get("schema_conversions") or {})])


def _list(args: argparse.Namespace) -> list[dict]:
    from ..golden import nursery_golden_list

    return nursery_golden_list()


def _human_list(rows: list[dict]) -> str:
    if not rows:
        return "no golden sets yet: try `python -m nursery_core golden add NAME --request TEXT --tool NAME --call JSON`"
    w = max(len(r["name"]) for r in rows)
    return "\n".join(f"{r['name']:<{w}}  {r['num_examples']:>5} rows  {', '.join(r['tools'] or [])}" for r in rows)


def _show(args: argparse.Namespace) -> dict:
    from ..golden import nursery_golden_show

    out = nursery_golden_show(args.name)
    if not args.examples:
        for row in out["rows"]:
            row.pop("example", None)
    return out


def _human_show(r: dict) -> str:
    lines = [f"golden set {r['name']}: {r['num_examples']} rows; tools: {', '.join(r['tools'] or []) or '-'}"]
    lines += ["  " + _human_row(row) for row in r["rows"]]
    return "\n".join(lines)


def _edit(args: argparse.Namespace) -> dict:
    from ..golden import nursery_golden_edit_row

    if args.no_call and args.call:
        raise InvalidInput("use either --call or --no-call, not both", field="call")
    calls = [] if args.no_call else (list(args.call) if args.call else None)
    return nursery_golden_edit_row(args.name, args.row_id, request=args.request, tools=_tools(args), calls=calls,
                                   note=args.note)


def _remove(args: argparse.Namespace) -> dict:
    from ..golden import nursery_golden_remove_row

    return nursery_golden_remove_row(args.name, args.row_id)


def _delete(args: argparse.Namespace) -> dict:
    from ..golden import nursery_golden_delete

    return nursery_golden_delete(args.name)


def _no_action(args: argparse.Namespace) -> None:
    raise InvalidInput(f"choose an action: golden {' | '.join(ACTIONS)} (see golden --help)", field="action")


def _row_args(cmd: Command, required: bool) -> Command:
    return (cmd.arg("--request", required=required, metavar="TEXT", help="what the user asks")
            .arg("--tool", action="append", metavar="NAME", help="a built-in tool the model is offered (repeat)")
            .arg("--tool-schema", action="append", metavar="FILE", help="a JSON file with your own tool schema(s)")
            .arg("--call", action="append", metavar="JSON",
                 help='an expected call {"name": ..., "arguments": {...}} (repeat for parallel calls; none: no call)')
            .arg("--note", metavar="TEXT", help="why this row is there"))


def register(sub) -> None:
    help_text = ("Golden sets: hand-written evaluation data (requests with their expected calls), never split "
                 "and never trained on.")
    parser = sub.add_parser("golden", help=help_text, description=help_text)
    parser.set_defaults(cli_handler=_no_action, cli_human=None)
    gsub = parser.add_subparsers(dest="golden_action", metavar="<action>")
    _row_args(Command(gsub, "add", "Add one row to a golden set (created when new); without --call the row "
                      "expects no call.", _add, _human_added).arg("name", metavar="NAME"), required=True) \
        .arg("--created-by", metavar="WHO", help=argparse.SUPPRESS)
    (Command(gsub, "import", "Import a golden file: simple JSONL {request, tools, calls, note}, CSV (request, "
             "calls, tools, note) or canonical JSONL; every row is checked, one bad row stores nothing.",
             _import, _human_import)
     .arg("file", metavar="FILE")
     .arg("--name", metavar="NAME", help="the golden set (default: from the file name; appended to if it exists)")
     .arg("--created-by", metavar="WHO", help=argparse.SUPPRESS))
    Command(gsub, "list", "List golden sets, newest first.", _list, _human_list)
    (Command(gsub, "show", "Show a golden set's rows.", _show, _human_show)
     .arg("name", metavar="NAME")
     .arg("--examples", action="store_true", help="include each row's stored canonical example"))
    _row_args(Command(gsub, "edit", "Change one row (options not given keep their value).", _edit, _human_added)
              .arg("name", metavar="NAME").arg("row_id", metavar="ROW_ID"), required=False) \
        .arg("--no-call", action="store_true", help="the row expects no call")
    (Command(gsub, "remove-row", "Delete one row of a golden set.", _remove)
     .arg("name", metavar="NAME").arg("row_id", metavar="ROW_ID"))
    Command(gsub, "delete", "Delete a golden set.", _delete).arg("name", metavar="NAME")
