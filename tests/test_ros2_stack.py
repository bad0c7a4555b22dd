"""tests/ros2_stack.py, the installer of the real launch system / ros2 tools / hri_msgs: the sources are checked
against SHA256SUMS before anything is installed, and where they are absent the tests that need them skip with
the reason (what CI without ../shared and a machine without them get)."""
from __future__ import annotations

import pytest

import ros2_stack


def test_absent_sources_give_the_reason(tmp_path):
    with pytest.raises(ros2_stack.StackUnavailable, match="SHA256SUMS missing"):
        ros2_stack.verify_sources(tmp_path)


def test_an_altered_archive_is_refused(tmp_path):
    real = ros2_stack.sources_dir()
    if not (real / "SHA256SUMS").is_file():
        pytest.skip(f"no ROS 2 sources at {real}")
    for path in real.iterdir():
        (tmp_path / path.name).symlink_to(path)
    altered = tmp_path / "hri_msgs-2.0.0.tar.gz"
    data = bytearray(altered.read_bytes())
    altered.unlink()
    data[-1] ^= 0xFF
    altered.write_bytes(bytes(data))
    with pytest.raises(ros2_stack.StackUnavailable, match=r"hri_msgs-2.0.0.tar.gz has sha256 [0-9a-f]{64}, SHA256SUMS"):
        ros2_stack.verify_sources(tmp_path)
    assert set(ros2_stack.verify_sources(real)) == {a for a, _ in ros2_stack.PURE_PYTHON} | \
        {a for a, _, _ in ros2_stack.INTERFACES}


def test_require_skips_with_the_reason(monkeypatch, tmp_path):
    monkeypatch.setenv(ros2_stack.SOURCES_ENV, str(tmp_path))
    with pytest.raises(pytest.skip.Exception, match=r"no_such_module is not installed and cannot be: no ROS 2 "
                                                    r"sources at .*SHA256SUMS missing"):
        ros2_stack.require(pytest, "no_such_module")
