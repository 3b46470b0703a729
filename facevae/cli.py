"""What every facevae command line shares: one-line errors with exit code 2, typed flag checks.

A bad flag prints ``error: argument --epochs: must be a positive integer; received 0`` and
exits with code 2, with no usage dump and no traceback.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, NoReturn, Sequence

from data_prep.quiet import quiet_tensorflow_startup

# Command lines show TensorFlow's warnings and errors only, not its start-up notices (data_prep.quiet; set
# TF_CPP_MIN_LOG_LEVEL=0 to see them). Library imports leave the setting alone.
quiet_tensorflow_startup()

__all__ = ["ArgumentParser", "positive_int", "positive_float", "non_negative_int", "run"]


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) and defaults shown in --help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _number(kind: type, name: str, accept: Callable[[float], bool]) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {name}; received {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {name}; received {text}")
        return value

    return parse


positive_int = _number(int, "a positive integer", lambda v: v > 0)
non_negative_int = _number(int, "an integer >= 0", lambda v: v >= 0)
positive_float = _number(float, "a positive number", lambda v: v > 0)


def run(main: Callable[[Sequence[str] | None], int], prog: str, user_errors: tuple[type, ...] = ()) -> NoReturn:
    """Call ``main`` and exit with its code; ``user_errors`` become one line on stderr and exit code 2."""
    try:
        code = main(None)
    except user_errors as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        code = 130
    raise SystemExit(code)
