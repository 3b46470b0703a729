"""Command line of data_prep: `python -m data_prep <command> ...`.

Each command lives in its own module that defines ``register(subparsers)``; the
registered parser carries ``func``, called with the parsed arguments and returning
an exit code. Errors a user can fix are raised as ``data_prep.errors.DataError`` and
printed as one line (exit code 2), never as a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from data_prep.errors import DataError
from data_prep.quiet import quiet_tensorflow_startup

__all__ = ["main", "build_parser"]

# Modules of data_prep that register a sub-command, in the order --help lists them.
_COMMAND_MODULES = [
    "data_prep.prepare_cli",
    "data_prep.synthetic_cli",
    "data_prep.inspect_cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data_prep",
        description="Turn image data into training-ready shards, or generate the built-in faces.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    quiet_tensorflow_startup()  # before any command imports TensorFlow
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to continue", file=sys.stderr)
        return 130
