"""`make setup` refuses bad machines with a message that says what to install."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SETUP = REPO / "scripts" / "setup.sh"
BASH = shutil.which("bash")


def run_setup(env_overrides: dict, path: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, **env_overrides)
    if path is not None:
        env["PATH"] = path
    return subprocess.run([BASH, str(SETUP)], env=env, capture_output=True, text=True, timeout=300)


def bin_dir_with(tmp_path: Path, tools: list[str]) -> str:
    """A PATH folder holding only the named tools (symlinks to the real ones)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in tools:
        # the interpreter itself, not a version-manager shim that needs bash and more on PATH
        real = os.path.realpath(sys._base_executable) if tool == "python3.11" else shutil.which(tool)
        assert real, f"{tool} must exist on this machine for the test"
        (folder / tool).symlink_to(real)
    return str(folder)


def test_wrong_python_version_is_named(tmp_path):
    other = tmp_path / "python-other"
    other.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'print(\"3.9\")'\n")
    other.chmod(0o755)
    result = run_setup({"DFER_PYTHON": str(other), "DFER_VENV": str(tmp_path / "venv")})
    assert result.returncode != 0
    assert "Python 3.11 is required" in result.stderr and "3.9" in result.stderr


def test_missing_python_is_named(tmp_path):
    result = run_setup({"DFER_PYTHON": str(tmp_path / "no-such-python"), "DFER_VENV": str(tmp_path / "venv")})
    assert result.returncode != 0
    assert "Python 3.11 is required but" in result.stderr


def test_missing_cmake_is_named(tmp_path):
    path = bin_dir_with(tmp_path, ["dirname", "python3.11"])
    result = run_setup({"DFER_VENV": str(tmp_path / "venv")}, path=path)
    assert result.returncode != 0
    assert "cmake is required" in result.stderr


def test_missing_compiler_is_named(tmp_path):
    path = bin_dir_with(tmp_path, ["dirname", "python3.11", "cmake"])
    result = run_setup({"DFER_VENV": str(tmp_path / "venv")}, path=path)
    assert result.returncode != 0
    assert "C compiler is required" in result.stderr


def test_unreachable_registry_is_named(tmp_path):
    # An index on a closed local port, no local wheel folders: pip cannot get anything.
    result = run_setup({
        "DFER_VENV": str(tmp_path / "venv"),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_EXTRA_INDEX_URL": "",
        "PIP_FIND_LINKS": "",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "2",
    })
    assert result.returncode != 0
    assert "cannot reach the package registry (http://127.0.0.1:9/simple)" in result.stderr, result.stderr[-2000:]
    assert not (REPO / ".venv" / "MARK_SHOULD_NOT_EXIST").exists()
