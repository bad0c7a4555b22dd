"""Argument helpers shared by the console scripts: the one KEY=VALUE parser, the model arguments and a ROS
tool's own arguments split from ``--ros-args`` (old flag and command names: ``dfer_ros.deprecation``)."""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from dfer_ros.user_files import parse_user_yaml


def load_target(target: str) -> Callable:
    """``"module:function"`` -> the function (imports the module only now: how ``dfer`` loads a verb lazily)."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def parse_key_values(items: Sequence[str], what: str = "option") -> dict[str, Any]:
    """["key=value", ...] -> {key: YAML-parsed value} (``KEY=`` gives None); ValueError naming a malformed item.

    Used for ``--model-option`` (builder options) and ``--set`` (dotted config overrides) alike.
    """
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{what} {item!r} must look like KEY=VALUE")
        options[key.strip()] = parse_user_yaml(value, f"{what} {key.strip()!r}")
    return options


def split_ros_args(argv: Optional[Sequence[str]]) -> tuple[list[str], list[str]]:
    """(the tool's own arguments, ``--ros-args ...``): a typo in the former is an error, not a ROS argument."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--ros-args" in argv:
        i = argv.index("--ros-args")
        return argv[:i], argv[i:]
    return argv, []


def run_bag_tool(prog: str, verb: str, call) -> int:
    """Run a bag tool's ``call()`` (topic -> message count) and report it as the bag tools do: the counts on
    stdout, exit 0; a ``BagError`` on stderr, exit 2; Ctrl-C, exit 130."""
    import logging

    from dfer_ros.bag_io import BagError

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        counts = call()
    except BagError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(f"{prog}: {verb} " + ", ".join(f"{t}: {n}" for t, n in counts.items()), flush=True)
    return 0


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


def report_result(result: dict, text: Optional[str], out: Optional[Path]) -> int:
    """A benchmark's end: its markdown ``text`` (if any) after a blank line, and all its numbers as JSON at ``out``."""
    if text is not None:
        print()
        print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {out}")
    return 0
