"""CLIP-adapter model: config, shapes, freezing, per-frame independence, masks, streaming == recomputation."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from clip_helpers import REPO, random_crops, tiny_cfg
from dfer_ros.clip_adapter.config import ConfigError, config_from_dict, load_config
from dfer_ros.clip_adapter.model import ClipAdapterModel
from dfer_ros.clip_adapter.preprocess import to_pixel_values


@pytest.fixture(scope="module")
def model():
    return ClipAdapterModel(tiny_cfg()).eval()


def test_all_model_configs_load_and_validate():
    files = sorted((REPO / "models").glob("clip_*.yaml")) + [REPO / "models" / "tiny_test.yaml"]
    names = {f.stem for f in files}
    assert {"tiny_test", "clip_vitb16_abaw", "clip_vitb32_abaw", "clip_vitl14_abaw", "clip_vitb16_dfew",
            "clip_vitb16_ferv39k", "clip_vitb16_mafw"} <= names
    sizes = {"dfew": 7, "ferv39k": 7, "mafw": 11, "abaw": 8}
    for f in files:
        cfg = load_config(f)
        for key, n in sizes.items():
            if f.stem.endswith(key):
                assert len(cfg.expression_labels) == n, f
    assert load_config(REPO / "models" / "clip_vitl14_abaw.yaml").embedding_dim == 768


def test_config_errors_name_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nvision: {hiden_size: 3}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*hiden_size"):
        load_config(bad)
    with pytest.raises(ConfigError, match="patch_size"):
        config_from_dict({"image_size": 30, "vision": {"patch_size": 8}})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_shapes_and_ranges(model):
    cfg = model.cfg
    clips = torch.randn(2, cfg.window, 3, cfg.image_size, cfg.image_size)
    with torch.no_grad():
        out = model(clips)
    assert out["expression_logits"].shape == (2, len(cfg.expression_labels))
    assert out["valence_arousal"].shape == (2, 2)
    assert out["valence_arousal"].abs().max() <= 1.0
    assert out["au_logits"].shape == (2, len(cfg.au_names))
    assert model.encode_frames(torch.zeros(0, 3, 32, 32)).shape == (0, cfg.embedding_dim)


def test_only_adapters_lora_and_head_train(model):
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all(n.startswith(("adapters.", "head.")) or "lora_" in n for n in names)
    assert any("lora_" in n for n in names) and any(n.startswith("adapters.") for n in names)
    assert model.num_trainable == sum(p.numel() for p in model.trainable_parameters()) < model.num_parameters
    # training mode keeps the frozen tower in eval mode
    model.train()
    assert not model.vision.training and model.head.training
    model.eval()


def test_gradients_reach_adapters_not_tower():
    m = ClipAdapterModel(tiny_cfg())
    out = m(torch.randn(1, 4, 3, 32, 32))
    (out["expression_logits"].sum() + out["au_logits"].sum()).backward()
    assert m.adapters["0"].down.weight.grad is not None
    assert m.vision.vision_model.embeddings.patch_embedding.weight.grad is None


def test_frame_embedding_does_not_depend_on_other_frames(model):
    x = to_pixel_values(random_crops(5))
    with torch.no_grad():
        together = model.encode_frames(x)
        alone = torch.cat([model.encode_frames(x[i:i + 1]) for i in range(5)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


def test_random_init_is_reproducible_from_config():
    a, b = ClipAdapterModel(tiny_cfg()), ClipAdapterModel(tiny_cfg())
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    c = ClipAdapterModel(tiny_cfg(init_seed=1))
    assert not torch.equal(a.head.inp.weight, c.head.inp.weight)


@pytest.mark.parametrize("lifting,causal", [(True, False), (False, True)])
def test_padded_window_equals_short_window(lifting, causal):
    m = ClipAdapterModel(tiny_cfg(head__lifting=lifting, head__tcn_causal=causal)).eval()
    emb = torch.nn.functional.normalize(torch.randn(1, m.cfg.window, m.cfg.embedding_dim), dim=-1)
    for length in (1, 3, 5, m.cfg.window):
        mask = torch.zeros(1, m.cfg.window, dtype=torch.bool)
        mask[:, :length] = True
        padded = emb.clone()
        padded[:, length:] = 123.0  # garbage in padded frames must not matter
        with torch.no_grad():
            a = m.forward_head(padded, mask)
            b = m.forward_head(emb[:, :length])
        for key in a:
            torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=0, msg=f"{key} at length {length}")


def test_streaming_equals_full_recomputation(model):
    """Encode each frame once and cache (streaming) vs re-encode the whole window each step."""
    cfg = model.cfg
    frames = to_pixel_values(random_crops(12, seed=3))
    cache: list[torch.Tensor] = []
    with torch.no_grad():
        for step in range(len(frames)):
            cache.append(model.encode_frames(frames[step:step + 1])[0])
            window = torch.stack(cache[-cfg.window:])[None]
            streamed = model.forward_head(window)
            start = max(0, step + 1 - cfg.window)
            full = model(frames[start:step + 1][None])
            for key in full:
                torch.testing.assert_close(streamed[key], full[key], atol=1e-5, rtol=0)


def test_deepcopy_keeps_its_own_adapters(model):
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for p in twin.adapters.parameters():
            p.add_(0.5)
        x = to_pixel_values(random_crops(2))
        assert not torch.allclose(model.encode_frames(x), twin.encode_frames(x))


def test_window_longer_than_configured_is_refused(model):
    with pytest.raises(ValueError, match="longer than the configured"):
        model.forward_head(torch.zeros(1, model.cfg.window + 1, model.cfg.embedding_dim))


def test_pixel_values_normalized_with_clip_stats():
    crops = np.full((1, 32, 32, 3), 255, np.uint8)
    x = to_pixel_values(crops)
    assert x.shape == (1, 3, 32, 32)
    assert abs(float(x[0, 0, 0, 0]) - (1 - 0.48145466) / 0.26862954) < 1e-5
    with pytest.raises(ValueError, match="uint8"):
        to_pixel_values(np.zeros((1, 32, 32, 3), np.float32))
