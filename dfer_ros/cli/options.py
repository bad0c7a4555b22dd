"""Argument helpers shared by the console scripts: the one KEY=VALUE parser and the model arguments."""
from __future__ import annotations

import argparse
from typing import Any, Sequence

import yaml


def parse_key_values(items: Sequence[str], what: str = "option") -> dict[str, Any]:
    """["key=value", ...] -> {key: YAML-parsed value} (``KEY=`` gives None); ValueError naming a malformed item.

    Used for ``--model-option`` (builder options) and ``--set`` (dotted config overrides) alike.
    """
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{what} {item!r} must look like KEY=VALUE")
        options[key.strip()] = yaml.safe_load(value)
    return options


def add_model_arguments(parser: argparse.ArgumentParser, default: str = "default") -> None:
    """``--model SPEC``, ``--checkpoint``, ``--backend``, ``--model-option``: the spec rule of ``estimators.loader``."""
    from dfer_ros.backends.factory import BACKENDS
    from dfer_ros.estimators.loader import SPEC_HELP

    parser.add_argument("--model", default=default, help=f"{SPEC_HELP} (default: %(default)s)")
    parser.add_argument("--checkpoint", help="training checkpoint for a model config YAML (torch backend)")
    parser.add_argument("--backend", default="onnxruntime",
                        help=f"inference backend: {', '.join(BACKENDS)} (default: %(default)s)")
    parser.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                        help="model builder option, value parsed as YAML (repeatable), e.g. with_action_units=false")


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
    import sys

    print(f"warning: {old} is deprecated and will be removed in the next release; use {new}", file=sys.stderr)


def deprecated_command(old: str, new: str, main):
    """An entry point for an old command name: warns, then runs ``main`` (the new command)."""

    def run(argv=None) -> int:
        warn_deprecated(old, new)
        return main(argv)

    return run
