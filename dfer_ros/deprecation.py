"""Old command and flag names kept for one release: they keep working and print one warning line.

A ground-floor module so that the console scripts in ``cli/`` and the ROS tools in ``ros/`` (which parse
their own arguments) rename flags the same way.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any


class _DeprecatedFlag(argparse.Action):
    """An old spelling of a flag: works as the new one, with a warning on stderr."""

    def __init__(self, option_strings, dest, new_flag: str = "", store_true: bool = False, **kwargs):
        self.new_flag = new_flag
        self.store_true = store_true
        if store_true:
            kwargs["nargs"] = 0
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        warn_deprecated(f"{parser.prog}: {option_string}", self.new_flag)
        setattr(namespace, self.dest, True if self.store_true else values)


def add_deprecated_flag(parser: argparse.ArgumentParser, old: str, new: str, dest: str, store_true: bool = False,
                        type: Any = None) -> None:
    """Accept ``old`` as a hidden alias of ``new`` (same ``dest``) for one release, warning when used."""
    kwargs = {} if type is None else {"type": type}
    parser.add_argument(old, dest=dest, action=_DeprecatedFlag, new_flag=new, store_true=store_true,
                        help=argparse.SUPPRESS, default=argparse.SUPPRESS, **kwargs)


def warn_deprecated(old: str, new: str) -> None:
    """One line on stderr: ``old`` still works for this release; ``new`` is the name to use."""
    print(f"warning: {old} is deprecated and will be removed in the next release; use {new}", file=sys.stderr)


def deprecated_command(old: str, new: str, main):
    """An entry point for an old command name: warns, then runs ``main`` (the new command)."""

    def run(argv=None) -> int:
        warn_deprecated(old, new)
        return main(argv)

    return run
