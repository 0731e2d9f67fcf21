"""The README is the reference: every CLI command (sub-commands included) and every NURSERY_* environment
variable read in nursery_core/ is named in it (datasette checks its docs the same way)."""
from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
ENV = re.compile(r"NURSERY_[A-Z0-9_]*")


def commands(parser: argparse.ArgumentParser, prefix: str = "") -> list[str]:
    """Every command path of the parser: 'train-local', 'golden add', ..."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.append(prefix + name)
                out += commands(sub, prefix + name + " ")
    return out


def env_names() -> set[str]:
    """NURSERY_* names in nursery_core's string literals; an f-string such as f"NURSERY_MAX_{kind}_RUNS" counts
    as its literal prefix (NURSERY_MAX_), which the README writes as NURSERY_MAX_<KIND>_RUNS."""
    found = set()
    for path in (ROOT / "nursery_core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV.fullmatch(node.value):
                found.add(node.value)
            elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant) \
                    and ENV.fullmatch(str(node.values[0].value)):
                found.add(node.values[0].value)
    return found


def test_every_cli_command_is_in_the_readme():
    from nursery_core.cli import build_parser

    names = commands(build_parser())
    assert len(names) > 25 and "golden add" in names and "train-local" in names
    missing = [n for n in names if not re.search(r"`(?:python -m nursery_core |nursery )?" + re.escape(n) + r"[ `]",
                                                   README)]
    assert not missing, f"commands the README does not name (in backticks): {missing}"


def test_every_nursery_environment_variable_is_in_the_readme():
    names = env_names()
    assert {"NURSERY_HOME", "NURSERY_MAX_IMPORT_MB", "NURSERY_MAX_"} <= names
    missing = sorted(n for n in names if f"`{n}" not in README)
    assert not missing, f"NURSERY_* variables read in nursery_core/ but not in the README: {missing}"
