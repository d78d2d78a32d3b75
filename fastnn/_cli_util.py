"""What the ``fastnn`` subcommands share to check their arguments before any work:
argparse ``type=`` functions for numbers in a range, the one-line error parser, the
usage error, lists split on commas outside parentheses, output paths.

Every bad argument ends as one line on stderr, ``fastnn <cmd>: error: <message>``,
and exit status 2 (argparse's convention).
"""
from __future__ import annotations

import argparse
import copy
import math
import re

from ._paths import check_output_path


class UsageError(Exception):
    """A bad command-line argument found after parsing (a missing file, a size that
    does not fit the data, ...): ``fastnn.cli.main`` prints it as one line, exit 2.
    The message starts with the option, e.g. ``--save: the folder /x does not exist``."""


class HelpFormatter(argparse.HelpFormatter):
    """``--help`` with every option's default, ``(default: 0.1)``, where it has one and its
    help does not already say it; docstring markup (double backticks, ``:mod:`x```) as
    plain text."""

    @staticmethod
    def _has_default(action) -> bool:
        d = action.default
        return (bool(action.option_strings) and action.nargs != 0
                and d is not None and d is not False and not (isinstance(d, str) and d == argparse.SUPPRESS))

    def _format_action(self, action):
        if not action.help and self._has_default(action):
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action):
        text = action.help or ""
        if self._has_default(action) and "default" not in text:
            text = (text.rstrip() + " (default: %(default)s)").lstrip()
        return text


def plain(text: str) -> str:
    """Docstring markup as plain text: ``x`` and :role:`x` -> x."""
    return re.sub(r":[a-z]+:`([^`]*)`", r"\1", text or "").replace("``", "")


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (argparse prints the usage first,
    several lines for ``fastnn train``): ``fastnn train: error: argument --lr: ...``;
    its ``--help`` shows the defaults (:class:`HelpFormatter`)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        if kwargs.get("description"):
            kwargs["description"] = plain(kwargs["description"])
        super().__init__(*args, **kwargs)

    def _get_values(self, action, arg_strings):
        # Python 3.11's argparse drops a value that is exactly "--" (``--lr=--``) and
        # stores [] without calling the option's type: refuse it as the type would.
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            raise argparse.ArgumentError(action, "expected a value, got '--'")
        return super()._get_values(action, arg_strings)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (or its type's name when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def int_in(lo: int, hi: int | None = None):
    """An argparse type: an integer ``lo <= n (<= hi)``."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if n < lo or (hi is not None and n > hi):
            want = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
            raise argparse.ArgumentTypeError(f"expected an integer {want}, got {n}")
        return n
    parse.__name__ = "integer"
    return parse


def real_in(lo: float | None = None, hi: float | None = None, *, hi_open: bool = False,
            allow_inf: bool = False):
    """An argparse type: a finite number (or +inf with ``allow_inf``) within the bounds,
    ``hi`` excluded when ``hi_open``; NaN never."""
    def parse(text: str) -> float:
        try:
            x = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if math.isnan(x) or (math.isinf(x) and not (allow_inf and x > 0)):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if (lo is not None and x < lo) or (hi is not None and (x > hi or (hi_open and x == hi))):
            if hi is None:
                want = f">= {lo:g}"
            elif lo is None:
                want = f"{'<' if hi_open else '<='} {hi:g}"
            else:
                want = f"in [{lo:g}, {hi:g}{')' if hi_open else ']'}"
            raise argparse.ArgumentTypeError(f"expected a number {want}, got {text!r}")
        return x
    parse.__name__ = "number"
    return parse


def split_list(text: str | None) -> list | None:
    """``"a, Z(256,10) ,b"`` -> ``["a", "Z(256,10)", "b"]``: split on the commas outside
    parentheses, items stripped, empty items dropped; None for None or ''. Unbalanced
    parentheses are a ValueError."""
    if not text:
        return None
    items, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ')' in {text!r}")
        if ch == "," and depth == 0:
            items.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise ValueError(f"unbalanced '(' in {text!r}")
    items.append("".join(cur))
    return [t.strip() for t in items if t.strip()] or None


def output_path(path: str, option: str) -> str:
    """``path`` checked as a file to be written (see :func:`fastnn._paths.check_output_path`),
    or a UsageError naming ``option``."""
    try:
        return check_output_path(path, option)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def need_matplotlib(option: str) -> None:
    """A UsageError naming ``option`` unless matplotlib imports."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(f"{option} needs matplotlib: pip install 'fastnn-kernels[plot]' "
                         "(or pip install matplotlib)") from None
