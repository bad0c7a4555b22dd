"""Build typed dataclass configs from YAML mappings, shared by every config module of the package.

The perception pipeline (``config/pipeline.yaml``), the CLIP-adapter model (``models/*.yaml``) and the
training run (``models/train_*.yaml``) are all nested dataclasses read from YAML. ``build_dataclass``
turns such a mapping into the dataclass, checking it the same way for all three:

* nested dataclass fields recurse (a missing or empty section, ``vision:`` with nothing under it,
  keeps that section's defaults);
* unknown keys are an error that names the section and lists the allowed keys, so a typo never
  silently falls back to a default (fields with ``metadata={"internal": True}`` are not settable);
* every value is checked against the field's type hint and the error names the dotted key:

  - ``bool`` accepts only true/false (never 0/1);
  - ``int`` accepts integers and whole floats (``3.0``), ``float`` accepts ints and floats; neither
    accepts a bool. Numeric strings are parsed, because YAML 1.1 (PyYAML) reads ``1e-3`` (no dot) as
    a string;
  - ``str`` accepts only strings;
  - ``Optional[X]`` accepts null, otherwise checks X;
  - ``list[X]`` accepts a list, ``tuple[X, ...]`` / ``tuple[X, Y]`` a list or tuple (YAML has no
    tuples; a fixed-length tuple must have that many items), each item checked as X;
  - ``dict[K, V]`` accepts a mapping, each value checked as V;
  - ``Any`` and other types pass through unchecked.

Each config module passes its own exception class, so callers keep catching ``ConfigError`` /
``TrainConfigError``. Messages read ``"<where>: <dotted.key>: <problem>"``.

``read_yaml_mapping`` reads such a file (missing file, bad YAML and a non-mapping top level are
errors of the same class) and ``resolve_near`` resolves a relative path in it against its folder.

Settings metadata: a field declared with ``setting(default, description=..., low=..., high=...,
choices=..., read_only=...)`` carries everything said about it, once. ``check_settings`` validates an
instance against it (ranges, choices), ``iter_settings`` lists the fields of a nested config with their
dotted names, and the ROS layer builds its ``ParameterDescriptor``s, ``config/*.yaml`` and the docs table
from the same list. Adding a setting is one ``setting(...)`` line.
"""
from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from dfer_ros.user_files import read_user_yaml, UserFileError

__all__ = ["Setting", "SettingInfo", "build_dataclass", "check_settings", "iter_settings", "read_yaml_mapping",
           "resolve_near", "setting"]


@dataclass(frozen=True)
class Setting:
    """What is said about one setting besides its name, type and default."""

    description: str
    low: Optional[float] = None  # inclusive range; ROS ranges are closed, so open ends are written as a
    high: Optional[float] = None  # closed bound just inside them (0.001 for "> 0")
    choices: tuple = ()  # allowed values (strings)
    read_only: bool = False  # takes effect only when the owner is rebuilt (a node restart)
    name: Optional[str] = None  # outside name when it differs from the field's (a ROS parameter with dots)

    def problem(self, value: Any) -> Optional[str]:
        """Why ``value`` is out of range or not a choice ("must be in [1, 64]"), or None."""
        if self.choices and value not in self.choices:
            return "must be one of " + ", ".join(repr(c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return None
        if value != value or value in (float("inf"), float("-inf")):
            return f"must be a finite number{self.range_text(' in ')}"
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            return "must be" + self.range_text(" in ")
        return None

    def range_text(self, lead: str = "") -> str:
        """"[low, high]", ">= low" or "<= high" (with ``lead`` before a bracketed range), or ""."""
        if self.low is not None and self.high is not None:
            return f"{lead}[{_num(self.low)}, {_num(self.high)}]"
        if self.low is not None:
            return f" >= {_num(self.low)}"
        if self.high is not None:
            return f" <= {_num(self.high)}"
        return ""


@dataclass(frozen=True)
class SettingInfo:
    """One leaf setting of a (nested) config: its dotted name, type, default and metadata."""

    name: str  # dotted path of dataclass fields ("detection.every")
    outside_name: str  # the ``Setting.name`` override, else ``name``
    type: Any
    default: Any
    setting: Setting


def setting(default: Any = dataclasses.MISSING, *, description: str, low: Optional[float] = None,
            high: Optional[float] = None, choices: tuple = (), read_only: bool = False,
            name: Optional[str] = None, default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with its ``Setting`` metadata (see the module docstring)."""
    meta = {"setting": Setting(description, low, high, tuple(choices), read_only, name)}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def iter_settings(config: Any, prefix: str = "") -> list[SettingInfo]:
    """Every leaf field of the dataclass (class or instance) ``config`` that has ``Setting`` metadata,
    in declaration order, nested dataclasses flattened to dotted names; defaults are the instance's values
    when given an instance."""
    cls = config if isinstance(config, type) else type(config)
    instance = None if isinstance(config, type) else config
    if instance is None:
        instance = cls()
    hints = typing.get_type_hints(cls)
    out: list[SettingInfo] = []
    for f in dataclasses.fields(cls):
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value):
            out.extend(iter_settings(value, f"{prefix}{f.name}."))
            continue
        meta = f.metadata.get("setting")
        if meta is not None:
            dotted = prefix + f.name
            out.append(SettingInfo(dotted, meta.name or dotted, hints.get(f.name, Any), value, meta))
    return out


def check_settings(config: Any, where: str, error: type[Exception] = ValueError) -> None:
    """Raise ``error`` ("<where>: <name> = <value> must be in [a, b]") for the first field of ``config``
    whose value breaks its ``Setting`` range or choices."""
    for info in iter_settings(config):
        problem = info.setting.problem(info.default)
        if problem:
            raise error(f"{where}: {info.name} = {info.default!r} {problem}")


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def build_dataclass(cls: type, data: Any, where: str, error: type[Exception] = ValueError) -> Any:
    """Build dataclass ``cls`` from the mapping ``data``, checking keys and value types.

    ``where`` names the source (a file path, ``"<dict>"``, ...) at the start of every message;
    ``error`` is the exception class raised (it must take one message argument). Returns a new
    ``cls`` instance with unspecified fields left at their defaults. See the module docstring for
    the accepted values of each field type.
    """
    return _Builder(where, error).build(cls, data, "")


def read_yaml_mapping(path: Union[str, Path], what: str, error: type[Exception] = ValueError) -> dict[str, Any]:
    """The top-level mapping of the YAML file ``path`` (``{}`` for an empty file).

    Raises ``error`` naming the file when it is missing (``"<what> not found: <path>"``), is not valid
    YAML, or holds something other than a mapping at the top level.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    try:
        data = read_user_yaml(path)
    except UserFileError as exc:  # not UTF-8, not YAML, too deep or large, non-finite numbers
        raise error(str(exc)) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def resolve_near(value: Optional[str], base: Union[str, Path]) -> Optional[str]:
    """A relative path from a config file: ``base / value`` when that exists, else ``value`` unchanged.

    Empty values and absolute paths are returned as they are, so configs can name assets next to
    themselves and still fall back to paths relative to the working directory.
    """
    if not value or Path(value).is_absolute():
        return value
    return str(Path(base) / value) if (Path(base) / value).exists() else value


class _Builder:
    def __init__(self, where: str, error: type[Exception]) -> None:
        self.where = where
        self.error = error

    def fail(self, key: str, problem: str) -> Exception:
        return self.error(f"{self.where}: {key}: {problem}" if key else f"{self.where}: {problem}")

    def build(self, cls: type, data: Any, key: str) -> Any:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise self.fail(key, f"{'must' if key else 'the top level must'} be a mapping, "
                                 f"got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
        unknown = sorted(str(k) for k in set(data) - set(fields))
        if unknown:
            raise self.fail(key, f"unknown key(s) {unknown}; allowed: {sorted(fields)}")
        hints = typing.get_type_hints(cls)
        kwargs = {name: self.value(value, hints.get(name, Any), f"{key}.{name}" if key else name)
                  for name, value in data.items()}
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:  # a __post_init__ check of the dataclass itself
            raise self.fail(key, str(exc)) from exc

    def value(self, value: Any, hint: Any, key: str) -> Any:
        """``value`` checked against (and converted to) the type ``hint``; ``key`` is the dotted name."""
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            return self.build(hint, value, key)
        if origin is Union or origin is types.UnionType:  # Optional[X], X | None
            if value is None and type(None) in args:
                return None
            rest = [a for a in args if a is not type(None)]
            return self.value(value, rest[0], key) if len(rest) == 1 else value
        if hint is Any or hint is None:
            return value
        if value is None:
            raise self.fail(key, "must be set (got null)")
        if hint is bool:
            if not isinstance(value, bool):
                raise self.fail(key, f"must be true or false, got {value!r}")
            return value
        if hint is int or hint is float:
            return self.number(value, hint, key)
        if hint is str:
            if not isinstance(value, str):
                raise self.fail(key, f"must be a string, got {value!r}")
            return value
        if origin is list:
            if not isinstance(value, (list, tuple)):
                raise self.fail(key, f"must be a list, got {value!r}")
            item = args[0] if args else Any
            return [self.value(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        if origin is tuple:
            if not isinstance(value, (list, tuple)):
                raise self.fail(key, f"must be a list, got {value!r}")
            if len(args) == 2 and args[1] is Ellipsis:
                items = [args[0]] * len(value)
            elif args:
                if len(value) != len(args):
                    raise self.fail(key, f"must have {len(args)} items, got {len(value)}")
                items = list(args)
            else:
                items = [Any] * len(value)
            return tuple(self.value(v, t, f"{key}[{i}]") for i, (v, t) in enumerate(zip(value, items)))
        if origin is dict:
            if not isinstance(value, dict):
                raise self.fail(key, f"must be a mapping, got {value!r}")
            item = args[1] if len(args) == 2 else Any
            return {k: self.value(v, item, f"{key}.{k}") for k, v in value.items()}
        return value

    def number(self, value: Any, hint: type, key: str) -> Any:
        kind = "an integer" if hint is int else "a number"
        if isinstance(value, bool):
            raise self.fail(key, f"must be {kind}, got {value!r}")
        if isinstance(value, str):  # YAML 1.1: "1e-3" is a string, not a float
            text = value.strip()
            try:
                value = int(text) if hint is int and text.lstrip("+-").isdigit() else float(text)
            except ValueError:
                raise self.fail(key, f"could not convert {value!r} to {kind}") from None
        if not isinstance(value, numbers.Real):
            raise self.fail(key, f"must be {kind}, got {value!r}")
        if hint is int:
            if not isinstance(value, numbers.Integral) and not float(value).is_integer():
                raise self.fail(key, f"must be an integer, got {value!r}")
            return int(value)
        return float(value)
