"""Evaluation paths agree: streaming per-frame evaluation (encode each frame once) equals clip-wise."""
from pathlib import Path

import numpy as np
import torch

from dfer_ros.training import synthetic
from dfer_ros.training.config import train_config_from_dict
from dfer_ros.training.trainer import build_dataset, build_model, predict, score

REPO = Path(__file__).resolve().parent.parent


def test_streaming_equals_clipwise_on_per_frame_data(tmp_path):
    torch.set_num_threads(1)
    root = synthetic.write_affwild2(tmp_path / "AW", videos=2, frames=15, size=32, seed=4)
    # one missing frame (masked) exercises the padding/mask path of both
    next((root / "cropped_aligned").iterdir()).joinpath("00005.jpg").unlink()
    cfg = train_config_from_dict({"model": str(REPO / "models" / "tiny_test.yaml"),
                                  "data": {"kind": "affwild2", "root": str(root), "frames": 4, "stride": 2,
                                           "options": {"missing_frames": "mask"}},
                                  "progress": False})
    model, mcfg = build_model(cfg)
    ds = build_dataset(cfg, mcfg, "validation", train=False)
    assert len(ds) == sum(int(((r.frame_expression >= 0) | np.isfinite(r.frame_va).any(1)).sum())
                          for r in ds.split.records)
    a = predict(model, ds, 4, torch.device("cpu"), streaming=True)
    b = predict(model, ds, 4, torch.device("cpu"), streaming=False)
    for k in a:
        assert np.allclose(a[k], b[k], atol=1e-5, equal_nan=True), k
    m = score(a, 8, tune_thresholds=True)
    assert {"war", "uar", "macro_f1", "ccc_mean", "au_f1", "au_f1@0.5"} <= set(m)
    assert m["au_f1"] >= m["au_f1@0.5"] - 1e-9  # tuned on the same data: never worse
