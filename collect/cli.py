"""Small helpers shared by the package's command-line tools: dataclass → argparse, one-line errors."""
from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import sys
import textwrap
from typing import get_type_hints


def field_docs(cls) -> dict[str, str]:
    """The docstring under each field of a dataclass (CleanRL's style of documenting ``Args``)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)):
            docs[node.target.id] = str(nxt.value.value).strip()
    return docs


def add_dataclass_args(parser: argparse.ArgumentParser, cls, metavars: dict[str, str] | None = None) -> None:
    """One option per field: ``--max-steps`` for ``max_steps``; a bool defaulting to False becomes
    ``--flag``, one defaulting to True ``--no-flag``."""
    docs, hints, metavars = field_docs(cls), get_type_hints(cls), metavars or {}
    for f in dataclasses.fields(cls):
        help_ = docs.get(f.name, "").replace("%", "%%")
        hint = hints[f.name]
        flag = "--" + f.name.replace("_", "-")
        default = None if f.default is dataclasses.MISSING else f.default
        if hint is bool:
            if default:
                parser.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false",
                                    help=f"do not {help_}")
            else:
                parser.add_argument(flag, action="store_true", help=help_)
            continue
        kind = {int: int, float: float}.get(hint, None)
        if kind is None:
            args = getattr(hint, "__args__", ())
            kind = int if int in args else float if float in args else str
        shown = "" if default in (None, "") else f" (default: {default})"
        parser.add_argument(flag, type=kind, default=default, help=help_ + shown,
                            metavar=metavars.get(f.name, f.name.upper()),
                            required=f.default is dataclasses.MISSING)


def summary(doc: str) -> str:
    """``"``python -m x DIR``: does things."`` (a module docstring's first line) → ``"Does things."``"""
    first = doc.strip().split("\n\n")[0].replace("\n", " ")
    text = first.split(": ", 1)[1] if ": " in first else first
    return text[:1].upper() + text[1:]


def die(prog: str, message: str, code: int = 2) -> None:
    """argparse-style error: ``prog: error: message`` on stderr, no traceback."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(code)
