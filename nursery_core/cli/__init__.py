"""`python -m nursery_core <command> [--json]`: every dashboard action as a command for scripts and agents.

Each area registers its commands from its own module (cli/<area>.py). A handler returns a JSON-able value;
with --json it is printed as one JSON document, else as readable text. A NurseryError becomes one line on
stderr and exit code 2; anything unexpected, exit code 1.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any, Callable

from ..errors import NurseryError

# Areas, in help order. Each module defines `register(subparsers)`.
AREAS = ["data", "golden", "training", "cradle", "cloud", "deploy", "serving", "system"]


class Command:
    """Adds a sub-command whose handler returns data; `human` optionally formats it for people."""

    def __init__(self, sub, name: str, help: str, handler: Callable[[argparse.Namespace], Any],
                 human: Callable[[Any], str] | None = None):
        # argparse %-formats a sub-command's help (not its description): "95%" must not read as a format
        self.parser = sub.add_parser(name, help=help.replace("%", "%%"), description=help)
        self.parser.add_argument("--json", action="store_true", help="print one JSON document")
        self.parser.set_defaults(cli_handler=handler, cli_human=human)

    def arg(self, *a, **kw) -> "Command":
        self.parser.add_argument(*a, **kw)
        return self


def positive_int(v: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {v!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def build_parser() -> argparse.ArgumentParser:
    # `nursery` (the console script) or `python -m nursery_core`: help names the way it was called
    prog = "nursery" if os.path.basename(sys.argv[0]) == "nursery" else "python -m nursery_core"
    parser = argparse.ArgumentParser(prog=prog,
                                     description="Nursery: turn a small open LLM into a reliable tool caller.")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for area in AREAS:
        try:
            mod = importlib.import_module(f"{__name__}.{area}")
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{area}":
                continue  # an area not built yet
            raise
        mod.register(sub)
    return parser


def to_text(value: Any, indent: int = 0) -> str:
    """A plain, readable rendering of nested data for terminals."""
    pad = "  " * indent
    if isinstance(value, dict):
        lines = []
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{k}:")
                lines.append(to_text(v, indent + 1))
            else:
                lines.append(f"{pad}{k}: {v}")
        return "\n".join(lines)
    if isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            return pad + ", ".join(str(v) for v in value)
        return "\n".join((pad + "-\n" + to_text(v, indent + 1)) for v in value)
    return pad + str(value)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "cli_handler", None):
        parser.print_help()
        return 2
    try:
        result = args.cli_handler(args)
    except NurseryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 — unexpected: still one line, with the type, for a bug report
        print(f"error: internal {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    exit_code = 0
    if isinstance(result, CommandResult):
        exit_code, result = result.exit_code, result.value
    if args.json:
        print(json.dumps(result, ensure_ascii=False, default=str, indent=None))
    elif result is not None:
        human = args.cli_human
        print(human(result) if human else to_text(result))
    return exit_code


class CommandResult:
    """A result with a non-zero exit code (a failed verification, a run that did not succeed)."""

    def __init__(self, value: Any, exit_code: int):
        self.value, self.exit_code = value, exit_code
