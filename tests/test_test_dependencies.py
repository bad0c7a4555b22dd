"""The test tool chain works where ROS 2 Jazzy's launch_testing / launch_pytest are installed: pytest below 8.4
(with 8.4+ the launch_testing plugin stops pytest from starting at all), pinned alike in requirements/lock.txt and
setup.py's test extra, with pytest plugins whose own requirements accept that pytest."""
from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
PLUGINS = ("pytest-timeout", "pytest-xdist")


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements" / "lock.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def _test_extra() -> list[Requirement]:
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "extras_require":
            extras = ast.literal_eval(node.value)
            return [Requirement(r) for r in extras["test"]]
    raise AssertionError("setup.py has no extras_require")


def test_pytest_is_pinned_below_8_4_in_the_lock():
    assert Version(_lock()["pytest"]) < Version("8.4")


def test_setup_py_test_extra_agrees_with_the_lock():
    lock = _lock()
    extra = {r.name.lower(): r for r in _test_extra()}
    for name in ("pytest", *PLUGINS):
        assert name in extra, f"setup.py's test extra lacks {name}"
        assert Version(lock[name]) in extra[name].specifier, f"{name}: lock {lock[name]} vs extra {extra[name]}"
    assert not extra["pytest"].specifier.contains("8.4.0"), "the test extra allows pytest 8.4"


@pytest.mark.parametrize("plugin", PLUGINS)
def test_plugins_accept_the_pinned_pytest(plugin):
    """The installed plugin's own metadata accepts the locked pytest (and the installed one is the locked one)."""
    lock = _lock()
    assert importlib.metadata.version(plugin) == lock[plugin]
    wanted = [Requirement(r) for r in importlib.metadata.requires(plugin) or []]
    pytest_requirements = [r for r in wanted if r.name.lower() == "pytest" and not r.marker]
    assert pytest_requirements, f"{plugin} declares no pytest requirement"
    for requirement in pytest_requirements:
        assert Version(lock["pytest"]) in requirement.specifier, f"{plugin} needs {requirement}"


def test_the_running_pytest_is_the_locked_one():
    assert pytest.__version__ == _lock()["pytest"]
