"""Resuming from last/ reproduces an uninterrupted run (weights, optimizer, schedule, RNG)."""
import json
from pathlib import Path

import pytest
import torch

from dfer_ros.training import synthetic
from dfer_ros.training.config import train_config_from_dict
from dfer_ros.training.trainer import Trainer

REPO = Path(__file__).resolve().parent.parent


def _cfg(data_root, out, epochs=2):
    return train_config_from_dict({
        "model": str(REPO / "models" / "tiny_test.yaml"),
        "data": {"kind": "manifest", "root": str(data_root), "train_split": "train", "val_split": "val",
                 "frames": 4, "stride": 2},
        "optim": {"epochs": epochs, "batch_size": 4, "lr": 3e-3, "warmup_steps": 2, "torch_threads": 1},
        "loss": {"class_balance": "sampler"},
        "output_dir": str(out), "progress": False, "seed": 3,
    })


def test_resume_matches_uninterrupted_run(tmp_path):
    data = synthetic.write_manifest(tmp_path / "data", clips_per_class=2, frames=6, size=32, val_every=5)
    full = Trainer(_cfg(data, tmp_path / "full"))
    full.fit()
    part = Trainer(_cfg(data, tmp_path / "part"))
    part.fit(stop_after=1)
    assert json.loads((tmp_path / "part" / "last" / "train_state.json").read_text())["epoch"] == 0
    resumed = Trainer(_cfg(data, tmp_path / "part"), resume=str(tmp_path / "part" / "last"))
    assert resumed.start_epoch == 1
    resumed.fit()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    print("max weight difference after resume:", worst)
    assert worst <= 1e-6, f"resumed weights differ by {worst}"
    assert [h["train_loss"] for h in full.history] == pytest.approx([h["train_loss"] for h in resumed.history],
                                                                     abs=1e-6)
    sa, sb = full.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.allclose(sa[i]["exp_avg"], sb[i]["exp_avg"], atol=1e-7) for i in sa)
    assert full.scheduler.last_epoch == resumed.scheduler.last_epoch
    lines = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and (tmp_path / "part" / "best" / "model.safetensors").is_file()


def test_resume_inside_epochs_matches_uninterrupted_run(tmp_path):
    data = synthetic.write_manifest(tmp_path / "data", clips_per_class=2, frames=6, size=32, val_every=5)
    full = Trainer(_cfg(data, tmp_path / "full"))
    full.fit()
    assert full.steps_per_epoch == 3
    out = tmp_path / "part"
    first = Trainer(_cfg(data, out))
    assert "stopped_in_epoch" in first.fit(max_steps=2)  # 2 of epoch 1's 3 steps
    state = json.loads((out / "last" / "train_state.json").read_text())
    assert state["in_epoch"]["epoch"] == 0 and state["in_epoch"]["steps_done"] == 2
    second = Trainer(_cfg(data, out), resume=str(out / "last"))
    assert second.fit(max_steps=2)["stopped_in_epoch"] == 2  # the last step of epoch 1, the first of epoch 2
    third = Trainer(_cfg(data, out), resume=str(out / "last"))
    third.fit()
    a, b = full.model.state_dict(), third.model.state_dict()
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    print("max weight difference after resume:", worst)
    assert worst <= 1e-6, f"resumed weights differ by {worst}"
    assert [h["train_loss"] for h in full.history] == pytest.approx([h["train_loss"] for h in third.history],
                                                                     abs=1e-6)
    assert [h.get("val_war") for h in full.history] == [h.get("val_war") for h in third.history]
