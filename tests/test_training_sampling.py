"""Clip sampling, class balancing, augmentation and the masked multi-task losses."""
import numpy as np
import pytest
import torch

from dfer_ros.scoring.metrics import ccc
from dfer_ros.training.augment import AugmentConfig, augment_clip
from dfer_ros.training.losses import MultiTaskLoss, au_loss, au_pos_weights, ccc_loss, expression_loss
from dfer_ros.training.sampling import (balanced_sample_weights, class_weights, clip_indices, epoch_order,
                                        window_ends, window_indices)


def test_clip_indices_modes():
    rng = np.random.default_rng(0)
    idx, mask = clip_indices(20, 4, 3, "random", rng)
    assert mask.all() and np.all(np.diff(idx) == 3) and 0 <= idx[0] and idx[-1] < 20
    assert clip_indices(20, 4, 3, "center")[0].tolist() == [5, 8, 11, 14]
    assert clip_indices(16, 4, 1, "uniform")[0].tolist() == [2, 6, 10, 14]
    idx, mask = clip_indices(3, 5, 1, "random", rng)  # too short: repeat last, mask the padding
    assert idx.tolist() == [0, 1, 2, 2, 2] and mask.tolist() == [True, True, True, False, False]
    starts = {int(clip_indices(30, 4, 2, "random", np.random.default_rng(s))[0][0]) for s in range(50)}
    assert len(starts) > 10


def test_causal_windows():
    idx, mask = window_indices(3, 4, 2)
    assert idx.tolist() == [0, 0, 1, 3] and mask.tolist() == [False, False, True, True]
    labelled = np.array([0, 1, 1, 0, 1, 1, 1], bool)
    assert window_ends(labelled, 2).tolist() == [1, 4, 6]


def test_class_balance():
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, -1])
    w = class_weights(y, 4)
    assert w[3] == 0 and w[1] == pytest.approx(3 * w[0]) and w[:3].mean() == pytest.approx(1.0)
    p = balanced_sample_weights(y, 4)
    per_class = [p[y == c].sum() for c in range(3)]
    assert np.allclose(per_class[0], per_class[1]) and np.allclose(per_class[1], per_class[2])
    draws = epoch_order(len(y), 0, 1, p)
    assert len(draws) == len(y)
    assert epoch_order(10, 3, 7).tolist() == epoch_order(10, 3, 7).tolist()
    assert epoch_order(10, 3, 7).tolist() != epoch_order(10, 4, 7).tolist()


def test_augment_keeps_geometry_and_is_seeded():
    frames = np.zeros((3, 32, 32, 3), np.uint8)
    frames[:, 8:12, 2:6] = 255  # a bright block on the left
    cfg = AugmentConfig(hflip=1.0, min_scale=1.0, max_shift=0.0, brightness=0, contrast=0, saturation=0)
    out = augment_clip(frames, cfg, np.random.default_rng(0))
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert out[0, 8:12, 26:30].min() == 255 and out[0, 8:12, 2:6].max() == 0  # mirrored, not rotated
    full = AugmentConfig()
    a = augment_clip(frames, full, np.random.default_rng(5))
    b = augment_clip(frames, full, np.random.default_rng(5))
    assert np.array_equal(a, b)
    assert np.array_equal(a[0], a[1])  # one draw for the whole clip: no fake motion


def test_losses_mask_ignored_labels():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [5.0, -5.0]])
    target = torch.tensor([0, 1, -1])
    ref = torch.nn.functional.cross_entropy(logits[:2], target[:2])
    assert expression_loss(logits, target, 0.0).item() == pytest.approx(ref.item())
    assert expression_loss(logits, torch.full((3,), -1), 0.0).item() == 0.0
    pred = torch.tensor([[0.1, 0.5], [0.4, 0.2], [0.3, 0.9], [0.9, 0.0]])
    true = torch.tensor([[0.0, 0.4], [0.5, float("nan")], [0.2, 1.0], [1.0, -0.1]])
    v = 1 - ccc(true[:, 0].numpy(), pred[:, 0].numpy())
    a = 1 - ccc(true[[0, 2, 3], 1].numpy(), pred[[0, 2, 3], 1].numpy())
    assert ccc_loss(pred, true).item() == pytest.approx((v + a) / 2, abs=1e-5)
    au_logits = torch.tensor([[3.0, -1.0], [0.5, 2.0]])
    au_t = torch.tensor([[1.0, -1.0], [-1.0, 0.0]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor([3.0, 2.0]), torch.tensor([1.0, 0.0]))
    assert au_loss(au_logits, au_t).item() == pytest.approx(bce.item())
    pw = au_pos_weights(np.array([[1, 0], [0, 0], [0, -1], [0, 0]]))
    assert pw.tolist() == [3.0, 1.0]


def test_multitask_loss_gradients_flow_only_from_valid_targets():
    out = {"expression_logits": torch.zeros(2, 3, requires_grad=True),
           "valence_arousal": torch.zeros(2, 2, requires_grad=True),
           "au_logits": torch.zeros(2, 2, requires_grad=True)}
    batch = {"expression": torch.tensor([1, -1]), "va": torch.full((2, 2), float("nan")),
             "aus": torch.tensor([[-1.0, -1.0], [-1.0, 1.0]])}
    total, parts = MultiTaskLoss()(out, batch)
    total.backward()
    assert parts["va"] == 0.0 and out["valence_arousal"].grad.abs().sum() == 0
    assert out["expression_logits"].grad[1].abs().sum() == 0 and out["expression_logits"].grad[0].abs().sum() > 0
    assert out["au_logits"].grad[0].abs().sum() == 0 and out["au_logits"].grad[1, 1] != 0


def test_training_config_coerces_yaml_numbers_and_names_bad_keys():
    from dfer_ros.training.config import TrainConfigError, train_config_from_dict

    cfg = train_config_from_dict({"optim": {"lr": "1e-3", "epochs": 3.0}, "data": {"frames": "4"}})
    assert cfg.optim.lr == 1e-3 and isinstance(cfg.optim.lr, float) and cfg.optim.epochs == 3
    assert cfg.data.frames == 4
    with pytest.raises(TrainConfigError, match=r"optim.lr: could not convert"):
        train_config_from_dict({"optim": {"lr": "fast"}})
    with pytest.raises(TrainConfigError, match=r"unknown key\(s\) \['lrate'\]"):
        train_config_from_dict({"optim": {"lrate": 1}})
