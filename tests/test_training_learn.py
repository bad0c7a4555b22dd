"""A tiny model learns a learnable synthetic task well above chance on a held-out split, through
the dfer train and dfer eval checkpoint entry points; the Aff-Wild2 multi-task path trains end to end."""
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from dfer_ros.cli.evaluate import main as evaluate_main
from dfer_ros.cli.train import main as train_main
from dfer_ros.training import synthetic

REPO = Path(__file__).resolve().parent.parent


def test_tiny_model_learns_dfew_layout_above_chance(tmp_path, capsys):
    root = synthetic.write_dfew(tmp_path / "DFEW", clips_per_class=6, frames=6, size=32, seed=1)
    cfg = {
        "model": str(REPO / "models" / "tiny_test.yaml"),
        "data": {"kind": "dfew", "root": str(root), "options": {"fold": 1}, "train_split": "train",
                 "val_split": "test", "frames": 4, "stride": 1},
        "optim": {"epochs": 6, "batch_size": 8, "lr": 5e-3, "warmup_steps": 2, "weight_decay": 0.01,
                  "torch_threads": 1},
        "loss": {"label_smoothing": 0.05, "class_balance": "weights"},
        "output_dir": str(tmp_path / "run"), "progress": False, "seed": 0,
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert train_main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "epoch 6/6" in out and "val war" in out
    history = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == 6 and history[-1]["train_loss"] < history[0]["train_loss"]
    # held-out fold: 7 classes, chance is 1/7
    assert max(h["val_war"] for h in history) >= 0.6, history
    assert (tmp_path / "run" / "curves.png").stat().st_size > 1000
    best = tmp_path / "run" / "best" / "model.safetensors"
    assert best.is_file() and best.with_suffix(".yaml").is_file()
    assert evaluate_main([str(path), "--checkpoint", str(best), "--split", "test",
                          "--out", str(tmp_path / "report")]) == 0
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["war"] >= 0.6 and metrics["items"] == 9 and 0 <= metrics["uar"] <= 1
    assert (tmp_path / "report" / "confusion.png").stat().st_size > 1000
    assert "| Happiness |" in (tmp_path / "report" / "per_class.md").read_text()


def test_affwild2_multitask_training_and_threshold_tuning(tmp_path, capsys):
    root = synthetic.write_affwild2(tmp_path / "AW", videos=2, frames=24, size=32, seed=2)
    cfg = {
        "model": str(REPO / "models" / "tiny_test.yaml"),
        "data": {"kind": "affwild2", "root": str(root), "train_split": "train", "val_split": "validation",
                 "frames": 4, "stride": 2, "window_step": 3},
        "optim": {"epochs": 1, "batch_size": 8, "lr": 2e-3, "warmup_steps": 1, "torch_threads": 1},
        "output_dir": str(tmp_path / "run"), "progress": False,
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert train_main([str(path)]) == 0
    rec = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    for key in ("train_expression", "train_va", "train_au", "val_macro_f1", "val_ccc_mean", "val_au_f1"):
        assert key in rec and np.isfinite(rec[key]), key
    extra = json.loads((tmp_path / "run" / "best" / "model.json").read_text())
    assert len(extra["au_thresholds"]) == 12
    assert "bad" not in capsys.readouterr().err


def test_train_cli_reports_bad_dataset(tmp_path, capsys):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"model": str(REPO / "models" / "tiny_test.yaml"),
                                    "data": {"kind": "dfew", "root": str(tmp_path / "nowhere")},
                                    "output_dir": str(tmp_path / "run")}))
    assert train_main([str(path)]) == 2
    assert "set_1.csv: DFEW split file not found" in capsys.readouterr().err
    path.write_text("model: x\nepochs: 3\n")
    assert train_main([str(path)]) == 2
    assert "unknown key(s) ['epochs']" in capsys.readouterr().err


def test_text_prompt_supervision_trains(tmp_path):
    from dfer_ros.clip_adapter.text_prompts import write_char_vocab

    vocab = write_char_vocab(tmp_path / "vocab", 128)
    data = synthetic.write_manifest(tmp_path / "data", clips_per_class=1, frames=4, size=32, val_every=3)
    cfg = {
        "model": str(REPO / "models" / "tiny_test.yaml"),
        "data": {"kind": "manifest", "root": str(data), "train_split": "train", "val_split": None, "frames": 2},
        "optim": {"epochs": 1, "batch_size": 4, "torch_threads": 1},
        "loss": {"text": 0.5, "text_tokenizer": str(vocab), "va": 0.0, "au": 0.0},
        "output_dir": str(tmp_path / "run"), "progress": False,
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert train_main([str(path)]) == 0
    rec = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert np.isfinite(rec["train_text"]) and rec["train_text"] > 0
    assert rec["train_loss"] == pytest.approx(rec["train_expression"] + 0.5 * rec["train_text"], rel=1e-5)
