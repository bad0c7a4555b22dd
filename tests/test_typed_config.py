"""The shared YAML -> dataclass builder used by the perception, CLIP-adapter and training configs."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import pytest

from dfer_ros.typed_config import build_dataclass, read_yaml_mapping, resolve_near


class MyError(ValueError):
    pass


@dataclass
class Inner:
    rate: float = 0.5
    count: int = 2
    on: bool = True
    name: str = "a"
    limit: Optional[int] = None


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    betas: tuple[float, float] = (0.9, 0.999)
    dilations: list[int] = field(default_factory=lambda: [1, 2])
    options: dict[str, Any] = field(default_factory=dict)
    source: Optional[str] = field(default=None, metadata={"internal": True})


def build(data):
    return build_dataclass(Outer, data, "cfg.yaml", MyError)


def test_nested_sections_recurse_and_keep_defaults():
    cfg = build({"inner": {"count": 5}, "options": {"fold": 1}})
    assert cfg.inner == Inner(count=5) and cfg.options == {"fold": 1} and cfg.betas == (0.9, 0.999)
    assert build({}) == Outer() and build({"inner": None}) == Outer()


@pytest.mark.parametrize("data, msg", [
    ({"inner": {"rte": 1.0}}, r"cfg\.yaml: inner: unknown key\(s\) \['rte'\]; allowed: \['count', 'limit', 'name', 'on', 'rate'\]"),
    ({"extra": 1}, r"cfg\.yaml: unknown key\(s\) \['extra'\]"),
    ({"source": "x"}, r"unknown key\(s\) \['source'\]"),  # internal fields are not settable
])
def test_unknown_keys_name_the_section_and_list_the_allowed_ones(data, msg):
    with pytest.raises(MyError, match=msg):
        build(data)


@pytest.mark.parametrize("data, msg", [
    ({"inner": {"on": "yes"}}, r"inner\.on: must be true or false, got 'yes'"),
    ({"inner": {"on": 1}}, r"inner\.on: must be true or false"),
    ({"inner": {"count": True}}, r"inner\.count: must be an integer, got True"),
    ({"inner": {"rate": False}}, r"inner\.rate: must be a number, got False"),
    ({"inner": {"count": 2.5}}, r"inner\.count: must be an integer, got 2\.5"),
    ({"inner": {"rate": "fast"}}, r"inner\.rate: could not convert 'fast'"),
    ({"inner": {"name": 3}}, r"inner\.name: must be a string, got 3"),
    ({"inner": {"rate": None}}, r"inner\.rate: must be set"),
    ({"inner": 3}, r"cfg\.yaml: inner: must be a mapping, got int"),
    ({"dilations": [1, "x"]}, r"dilations\[1\]: could not convert 'x'"),
    ({"betas": [0.9]}, r"betas: must have 2 items, got 1"),
    ({"options": [1]}, r"options: must be a mapping"),
])
def test_wrong_types_name_the_dotted_key(data, msg):
    with pytest.raises(MyError, match=msg):
        build(data)
    with pytest.raises(MyError, match="top level must be a mapping"):
        build([1])


def test_yaml_numbers_are_coerced_to_the_field_type():
    cfg = build({"inner": {"rate": "1e-3", "count": 3.0, "limit": "4"}})
    assert cfg.inner.rate == 1e-3 and isinstance(cfg.inner.rate, float)
    assert cfg.inner.count == 3 and isinstance(cfg.inner.count, int)
    assert cfg.inner.limit == 4
    cfg = build({"inner": {"rate": 2, "limit": None}})
    assert cfg.inner.rate == 2.0 and isinstance(cfg.inner.rate, float) and cfg.inner.limit is None


def test_tuple_fields_accept_lists():
    cfg = build({"betas": [0.8, "0.99"], "dilations": (1, 4.0)})
    assert cfg.betas == (0.8, 0.99) and isinstance(cfg.betas, tuple)
    assert cfg.dilations == [1, 4] and isinstance(cfg.dilations, list)


def test_default_error_class_is_value_error():
    with pytest.raises(ValueError, match="<dict>: unknown"):
        build_dataclass(Inner, {"x": 1}, "<dict>")


def test_read_yaml_mapping_and_resolve_near(tmp_path):
    with pytest.raises(MyError, match="thing not found"):
        read_yaml_mapping(tmp_path / "missing.yaml", "thing", MyError)
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(MyError, match=r"bad\.yaml: not valid YAML"):
        read_yaml_mapping(bad, "thing", MyError)
    bad.write_text("- 1\n")
    with pytest.raises(MyError, match=r"bad\.yaml: top level must be a mapping, got list"):
        read_yaml_mapping(bad, "thing", MyError)
    bad.write_text("")
    assert read_yaml_mapping(bad, "thing", MyError) == {}
    assert resolve_near("bad.yaml", tmp_path) == str(tmp_path / "bad.yaml")
    assert resolve_near("nowhere.yaml", tmp_path) == "nowhere.yaml"
    assert resolve_near(None, tmp_path) is None and resolve_near("", tmp_path) == ""
