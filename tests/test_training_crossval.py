"""k-fold cross-validation sweep: one run per fold, mean/std summary, finished folds not redone."""
import json
from pathlib import Path

import yaml

from dfer_ros.training import synthetic
from dfer_ros.cli.crossval import main
from dfer_ros.training.crossval import run_crossval

REPO = Path(__file__).resolve().parent.parent


def test_two_fold_sweep(tmp_path, capsys):
    root = synthetic.write_dfew(tmp_path / "DFEW", clips_per_class=2, frames=4, size=32)
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({
        "model": str(REPO / "models" / "tiny_test.yaml"),
        "data": {"kind": "dfew", "root": str(root), "options": {"fold": 1}, "frames": 2},
        "optim": {"epochs": 1, "batch_size": 8, "torch_threads": 1},
        "output_dir": str(tmp_path / "cv"), "progress": False}))
    summary = run_crossval(str(path), [1, 2])
    assert set(summary["folds"]) == {"1", "2"}
    wars = [summary["folds"][k]["war"] for k in ("1", "2")]
    assert abs(summary["war_mean"] - sum(wars) / 2) < 1e-12
    assert summary["folds"]["2"]["dataset"] == "dfew/fold2/test"
    assert json.loads((tmp_path / "cv" / "crossval.json").read_text())["war_mean"] == summary["war_mean"]
    capsys.readouterr()
    assert main([str(path), "--folds", "1", "2"]) == 0  # both folds done: nothing retrained
    out = capsys.readouterr().out
    assert out.count("already evaluated") == 2
