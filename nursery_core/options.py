"""Options declared once, as dataclass field metadata, and turned into every surface: argparse options, form
widgets (webui/config_form.py) and the equivalent command line.

A field's metadata may carry: help (required), label (the form's words; default: the name in words), group,
min / max / min_exclusive, choices, step and format (number inputs), cli (extra flag spellings kept for old
command lines, e.g. "--lr"; the canonical flag is always --<name-with-dashes>). The pattern is TRL's
HfArgumentParser: the dataclass is the declaration, the surfaces are generated from it.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class Option:
    """One declared setting. kind is one of int, float, bool, str, list (a list of strings)."""

    name: str
    kind: type
    default: Any
    help: str
    label: str
    group: str = ""
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    choices: tuple | None = None
    step: float | None = None
    format: str | None = None
    aliases: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        """The canonical command-line spelling: --max-length for max_length."""
        return "--" + self.name.replace("_", "-")

    @property
    def flags(self) -> tuple[str, ...]:
        return (self.flag, *[a for a in self.aliases if a != self.flag])


def _kind(tp: Any) -> type:
    """int, float, bool, str or list from a (possibly Optional) field annotation."""
    origin = typing.get_origin(tp)
    if origin is list:
        return list
    if origin is not None:  # Optional[X] / X | None
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _kind(args[0])
    if tp in (int, float, bool, str, list):
        return tp
    raise TypeError(f"no surface for a setting of type {tp!r}: use int, float, bool, str or list[str]")


def options_of(cls: type) -> list[Option]:
    """Every field of the dataclass `cls` as an Option, in declaration order. Raises TypeError for a field
    without help text or of a type no surface can show."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = dict(f.metadata)
        if not meta.get("help"):
            raise TypeError(f"{cls.__name__}.{f.name}: declare its help text in the field metadata")
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None if f.default is dataclasses.MISSING else f.default
        choices = meta.get("choices")
        out.append(Option(
            name=f.name, kind=_kind(hints[f.name]), default=default, help=meta["help"],
            label=meta.get("label") or f.name.replace("_", " ").capitalize(), group=meta.get("group", ""),
            min=meta.get("min"), max=meta.get("max"), min_exclusive=bool(meta.get("min_exclusive")),
            choices=tuple(choices) if choices else None, step=meta.get("step"), format=meta.get("format"),
            aliases=tuple(meta.get("cli", ()))))
    return out


def split_list(value: str) -> list[str]:
    """A comma-separated list as typed on a command line or in a text box: "q_proj, v_proj" → [q_proj, v_proj]."""
    return [part.strip() for part in value.split(",") if part.strip()]


def add_arguments(parser: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    """One argparse option per Option, dest = the field name, default None (= not given). Bounds are not
    checked here: the dataclass's own validation names the field, the same words on every surface."""
    for o in options:
        help_text = o.help.replace("%", "%%")
        if o.choices:
            help_text += f" ({', '.join(map(str, o.choices))})"
        kw: dict[str, Any] = {"dest": o.name, "default": None, "help": help_text}
        if o.kind is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif o.kind is list:
            kw.update(type=split_list, metavar="A,B,...")
        else:
            kw.update(type=o.kind, metavar=o.name.upper())
            if o.choices:
                kw["choices"] = o.choices
        parser.add_argument(*o.flags, **kw)


def given(args: argparse.Namespace, options: Sequence[Option]) -> dict[str, Any]:
    """The options given on the command line (those left at None are not)."""
    return {o.name: getattr(args, o.name) for o in options if getattr(args, o.name, None) is not None}


def to_argv(values: dict[str, Any], options: Sequence[Option], defaults: dict[str, Any] | None = None) -> list[str]:
    """The canonical flags that reproduce `values` (in declaration order), leaving out values equal to
    `defaults` and None/empty values; the inverse of add_arguments + given."""
    argv: list[str] = []
    for o in options:
        if o.name not in values:
            continue
        v = values[o.name]
        if v is None or v == "" or (defaults is not None and o.name in defaults and defaults[o.name] == v):
            continue
        if o.kind is bool:
            argv.append(o.flag if v else "--no-" + o.flag[2:])
        elif o.kind is list:
            argv += [o.flag, ",".join(map(str, v))]
        else:
            argv += [o.flag, _number_text(v) if o.kind is float else str(v)]
    return argv


def _number_text(v: Any) -> str:
    """2e-3 as 0.002, 32.0 as 32.0: repr keeps every digit a float has."""
    return repr(float(v))
