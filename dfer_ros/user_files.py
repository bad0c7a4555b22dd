"""Reading YAML and JSON that a user (or anyone who can write the file) controls, with bounds.

Why: ``yaml.safe_load`` and ``json.loads`` trust their input's shape. A file that is not UTF-8 raises
``UnicodeDecodeError``, nesting 50,000 deep raises ``RecursionError`` (or exhausts the C stack), ``1e400`` and
``Infinity`` become ``inf`` (``int(inf)`` then raises ``OverflowError``), and a huge file is read whole. Those
escape the ``ValueError``/``OSError`` handling of their callers and end the process with a traceback.

Every reader of a user's YAML or JSON goes through ``read_user_yaml`` / ``read_user_json`` (or the
``parse_*`` forms for text already in memory). Each either returns plain data within the bounds or raises
``UserFileError`` (a ``ValueError``) whose message names the file and the reason:

* size: at most ``max_bytes`` (checked from ``stat`` before reading, and again on the bytes read);
* encoding: UTF-8 (a BOM is accepted);
* depth: at most ``max_depth`` nested mappings/sequences, checked BEFORE the recursive part of the parser
  runs (YAML: on the event stream, which PyYAML produces iteratively; JSON: a linear scan of the brackets
  outside strings);
* size of the document: at most ``max_nodes`` scalars and collections (YAML aliases count too);
* numbers: finite only (``.inf``, ``.nan``, ``Infinity``, ``NaN``, ``1e400`` are refused), integers of
  at most 4,300 digits (Python's own limit, turned into this error).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Union

import yaml

MAX_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 2_000_000


class UserFileError(ValueError):
    """A user's YAML/JSON file or text cannot be used; the message says which and why."""


def read_bytes(path: Union[str, Path], max_bytes: int = MAX_BYTES) -> bytes:
    """The file's bytes, refusing (``UserFileError``) a missing, unreadable or oversized file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise UserFileError(f"{path}: {size} bytes, more than the {max_bytes} allowed")
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise UserFileError(f"{path}: cannot be read ({type(exc).__name__}: {exc.strerror or exc})") from exc
    if len(data) > max_bytes:  # grew between stat and read (or a device file)
        raise UserFileError(f"{path}: more than the {max_bytes} bytes allowed")
    return data


def decode_text(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserFileError(f"{where}: not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 1]!r})") from exc


def read_user_yaml(path: Union[str, Path], max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH,
                   max_nodes: int = MAX_NODES) -> Any:
    """The YAML document in ``path`` (None for an empty file), within the bounds of the module docstring."""
    return parse_user_yaml(decode_text(read_bytes(path, max_bytes), str(path)), str(path), max_depth, max_nodes)


def read_user_json(path: Union[str, Path], max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH,
                   finite: bool = True) -> Any:
    """The JSON document in ``path``, within the bounds of the module docstring. ``finite=False`` accepts
    ``Infinity``/``NaN`` (files the project's own tools write with them, e.g. a best score of -Infinity)."""
    return parse_user_json(decode_text(read_bytes(path, max_bytes), str(path)), str(path), max_depth, finite)


def parse_user_yaml(text: str, where: str = "<yaml>", max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> Any:
    """``yaml.safe_load(text)`` after the depth and size checks; finite numbers only."""
    depth = nodes = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > max_depth:
                    raise UserFileError(f"{where}: nested more than {max_depth} levels deep")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            if isinstance(event, yaml.NodeEvent):  # scalars, aliases and collections
                nodes += 1
                if nodes > max_nodes:
                    raise UserFileError(f"{where}: more than {max_nodes} values")
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserFileError(f"{where}: not valid YAML: {exc}") from exc
    except (RecursionError, MemoryError) as exc:  # bounds above make this unreachable; kept as a refusal
        raise UserFileError(f"{where}: too complex to read ({type(exc).__name__})") from exc
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        if isinstance(exc, UserFileError):
            raise
        raise UserFileError(f"{where}: {exc}") from exc
    _check_finite(data, where)
    return data


def parse_user_json(text: str, where: str = "<json>", max_depth: int = MAX_DEPTH, finite: bool = True) -> Any:
    """``json.loads(text)`` after the depth check, refusing non-finite numbers (unless ``finite`` is False)."""
    _check_json_depth(text, where, max_depth)

    def constant(name: str):
        raise UserFileError(f"{where}: {name} is not a finite number")

    def number(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value):
            raise UserFileError(f"{where}: {literal} is not a finite number")
        return value

    try:
        return json.loads(text, **({"parse_constant": constant, "parse_float": number} if finite else {}))
    except UserFileError:
        raise
    except RecursionError as exc:  # the depth check makes this unreachable; kept as a refusal
        raise UserFileError(f"{where}: too complex to read ({type(exc).__name__})") from exc
    except ValueError as exc:  # json.JSONDecodeError, or an integer of more than 4,300 digits
        raise UserFileError(f"{where}: not valid JSON: {exc}") from exc


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def _check_json_depth(text: str, where: str, max_depth: int) -> None:
    depth = 0
    for match in _JSON_BRACKET.finditer(_JSON_STRING.sub("", text)):  # brackets outside strings
        depth += 1 if match.group() in "[{" else -1
        if depth > max_depth:
            raise UserFileError(f"{where}: nested more than {max_depth} levels deep")


def _check_finite(data: Any, where: str) -> None:
    """Walk the (depth-checked) document without recursion; refuse inf/nan floats."""
    stack = [data]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                raise UserFileError(f"{where}: {item} is not a finite number")
        elif isinstance(item, (dict, list, tuple)):
            if id(item) in seen:  # a YAML alias: already checked
                continue
            seen.add(id(item))
            stack.extend(item.keys() if isinstance(item, dict) else ())
            stack.extend(item.values() if isinstance(item, dict) else item)
