"""Bounded reading of the YAML and JSON files users control (``dfer_ros.user_files``): a file that is not
UTF-8, nested deeper than the parsers' recursion allows, too large, or holding non-finite numbers is refused
with a ``UserFileError`` naming the file and the reason, never a ``UnicodeDecodeError``, ``RecursionError`` or
``OverflowError``; the typed configs (``pipeline_config`` and model configs) turn it into their ``ConfigError``."""
from __future__ import annotations

import pytest

from dfer_ros.perception.config import ConfigError, PipelineConfig
from dfer_ros.user_files import UserFileError, parse_user_json, read_user_json, read_user_yaml

HOSTILE_YAML = {
    "not_utf8": (b"\xff\xfe", "not UTF-8"),
    "deep_flow": (b"a: " + b"[" * 50_000 + b"]" * 50_000, "nested more than"),
    "deep_block": (b"".join(b"  " * i + b"k:\n" for i in range(2_000)) + b"  " * 2_000 + b"1\n", "nested more than"),
    "infinity": (b"detection:\n  min_score: .inf\n", "not a finite number"),
    "nan": (b"x: .nan\n", "not a finite number"),
    "huge_int": (b"x: " + b"9" * 5_000 + b"\n", "x.yaml"),
    "not_yaml": (b"a: [1, 2\n", "not valid YAML"),
}

HOSTILE_JSON = {
    "deep": ("[" * 200_000 + "]" * 200_000, "nested more than"),
    "infinity": ('{"next_id": Infinity}', "Infinity is not a finite number"),
    "overflow": ('{"next_id": 1e400}', "1e400 is not a finite number"),
    "nan": ('[NaN]', "NaN is not a finite number"),
    "huge_int": ("[" + "9" * 5_000 + "]", "not valid JSON"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_YAML))
def test_hostile_yaml_is_refused_with_the_reason(tmp_path, name):
    content, reason = HOSTILE_YAML[name]
    path = tmp_path / "x.yaml"
    path.write_bytes(content)
    with pytest.raises(UserFileError, match=reason) as info:
        read_user_yaml(path)
    assert str(path) in str(info.value)
    with pytest.raises(ConfigError, match=reason):  # what the node's pipeline_config and model configs read
        PipelineConfig.from_yaml(path)


@pytest.mark.parametrize("name", sorted(HOSTILE_JSON))
def test_hostile_json_is_refused_with_the_reason(tmp_path, name):
    content, reason = HOSTILE_JSON[name]
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(UserFileError, match=reason):
        read_user_json(path)


def test_size_is_checked_before_reading(tmp_path):
    path = tmp_path / "big.json"
    path.write_text("[" + "1," * 1000 + "1]")
    with pytest.raises(UserFileError, match="more than the 100 allowed"):
        read_user_json(path, max_bytes=100)
    with pytest.raises(UserFileError, match="cannot be read"):
        read_user_json(tmp_path / "missing.json")


def test_ordinary_documents_read_as_before(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("a: 1\nb: [1.5, -2.0e+3, {c: 'x'}]\nanchor: &A {k: 1}\nalias: *A\n")
    assert read_user_yaml(path) == {"a": 1, "b": [1.5, -2000.0, {"c": "x"}], "anchor": {"k": 1}, "alias": {"k": 1}}
    assert parse_user_json('{"s": "[[[[ not nesting ]]]] \\" {", "v": [1, 2.5]}', max_depth=2) == {
        "s": '[[[[ not nesting ]]]] " {', "v": [1, 2.5]}
    assert read_user_yaml(tmp_path / "ok.yaml", max_depth=3)["alias"] == {"k": 1}
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert read_user_yaml(empty) is None
