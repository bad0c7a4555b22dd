"""Loading real CLIP weights (HF openai/clip-vit-* layout, OpenAI layout) and our own checkpoints,
and clear refusals for missing, truncated and mismatched files."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from clip_helpers import hf_clip, random_crops, tiny_cfg
from dfer_ros.clip_adapter.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from dfer_ros.clip_adapter.model import ClipAdapterModel
from dfer_ros.clip_adapter.preprocess import to_pixel_values
from dfer_ros.clip_adapter.text_prompts import build_text_tower


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    cfg = tiny_cfg()
    clip = hf_clip(cfg)
    folder = tmp_path_factory.mktemp("clip-vit-tiny")
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(folder / "model.safetensors"))
    return folder, clip


def test_hf_safetensors_folder_loads_vision_and_text(hf_folder):
    folder, clip = hf_folder
    cfg = tiny_cfg(clip_weights=str(folder), adapter__kind="none")
    model = ClipAdapterModel(cfg).eval()
    x = to_pixel_values(random_crops(2))
    with torch.no_grad():
        ours = model.encode_frames(x)
        ref = torch.nn.functional.normalize(clip.get_image_features(pixel_values=x).pooler_output, dim=-1)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    text = build_text_tower(cfg)
    assert torch.equal(text.text_projection.weight, clip.text_projection.weight)


def test_pytorch_model_bin_loads_with_weights_only(tmp_path, hf_folder):
    _, clip = hf_folder
    torch.save(clip.state_dict(), tmp_path / "pytorch_model.bin")
    model = ClipAdapterModel(tiny_cfg(clip_weights=str(tmp_path)))
    assert torch.equal(model.vision.visual_projection.weight, clip.visual_projection.weight)


def test_openai_layout_is_converted(tmp_path, hf_folder):
    _, clip = hf_folder
    sd, vm = clip.state_dict(), "vision_model."
    oa = {"visual.class_embedding": sd[vm + "embeddings.class_embedding"],
          "visual.positional_embedding": sd[vm + "embeddings.position_embedding.weight"],
          "visual.conv1.weight": sd[vm + "embeddings.patch_embedding.weight"],
          "visual.proj": sd["visual_projection.weight"].t().contiguous()}
    for ln_oa, ln_hf in (("ln_pre", "pre_layrnorm"), ("ln_post", "post_layernorm")):
        for p in ("weight", "bias"):
            oa[f"visual.{ln_oa}.{p}"] = sd[f"{vm}{ln_hf}.{p}"]
    for i in range(2):
        hf = f"{vm}encoder.layers.{i}."
        oa_ = f"visual.transformer.resblocks.{i}."
        for p in ("weight", "bias"):
            oa[oa_ + f"attn.in_proj_{p}"] = torch.cat([sd[hf + f"self_attn.{n}_proj.{p}"] for n in "qkv"])
            oa[oa_ + f"attn.out_proj.{p}"] = sd[hf + f"self_attn.out_proj.{p}"]
            oa[oa_ + f"ln_1.{p}"], oa[oa_ + f"ln_2.{p}"] = sd[hf + f"layer_norm1.{p}"], sd[hf + f"layer_norm2.{p}"]
            oa[oa_ + f"mlp.c_fc.{p}"], oa[oa_ + f"mlp.c_proj.{p}"] = sd[hf + f"mlp.fc1.{p}"], sd[hf + f"mlp.fc2.{p}"]
    torch.save(oa, tmp_path / "ViT-tiny.pt")
    model = ClipAdapterModel(tiny_cfg(clip_weights=str(tmp_path / "ViT-tiny.pt"), adapter__kind="none")).eval()
    x = to_pixel_values(random_crops(2))
    with torch.no_grad():
        ref = torch.nn.functional.normalize(clip.get_image_features(pixel_values=x).pooler_output, dim=-1)
        torch.testing.assert_close(model.encode_frames(x), ref, atol=1e-5, rtol=0)


def test_mismatched_clip_checkpoint_is_refused_with_reason(tmp_path):
    wrong = hf_clip(tiny_cfg(), hidden=48)  # other tower width: like pointing a B/16 config at L/14 weights
    save_file({k: v.contiguous() for k, v in wrong.state_dict().items()}, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*shape mismatch.*vision_model"):
        ClipAdapterModel(tiny_cfg(clip_weights=str(tmp_path)))


def test_missing_truncated_and_foreign_files(tmp_path, hf_folder):
    with pytest.raises(CheckpointError, match="not found"):
        ClipAdapterModel(tiny_cfg(clip_weights=str(tmp_path / "nope.safetensors")))
    with pytest.raises(CheckpointError, match="holds none of"):
        ClipAdapterModel(tiny_cfg(clip_weights=str(tmp_path)))
    data = (hf_folder[0] / "model.safetensors").read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.safetensors.*truncated"):
        ClipAdapterModel(tiny_cfg(clip_weights=str(cut)))
    foreign = tmp_path / "foreign.safetensors"
    save_file({"backbone.conv.weight": torch.zeros(3)}, str(foreign))
    with pytest.raises(CheckpointError, match="no CLIP vision weights"):
        ClipAdapterModel(tiny_cfg(clip_weights=str(foreign)))


def test_save_and_load_checkpoint_round_trip(tmp_path):
    cfg = tiny_cfg()
    model = ClipAdapterModel(cfg)
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(torch.randn_like(p))
    path = save_checkpoint(tmp_path / "run" / "best", model, cfg, extra={"epoch": 3})
    assert path.suffix == ".safetensors" and path.with_suffix(".yaml").is_file()
    fresh = ClipAdapterModel(cfg)
    assert load_checkpoint(path, fresh) == {"epoch": 3}
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))


def test_checkpoint_of_other_config_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "a.safetensors", ClipAdapterModel(tiny_cfg()), tiny_cfg())
    other = ClipAdapterModel(tiny_cfg(adapter__bottleneck_dim=4))
    with pytest.raises(CheckpointError, match=r"a\.safetensors.*shape mismatch"):
        load_checkpoint(path, other)
    data = path.read_bytes()
    (tmp_path / "t.safetensors").write_bytes(data[:100])
    with pytest.raises(CheckpointError, match=r"t\.safetensors.*truncated"):
        load_checkpoint(tmp_path / "t.safetensors", other)
    save_file({"x": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="not a dfer_ros CLIP-adapter checkpoint"):
        load_checkpoint(tmp_path / "plain.safetensors", other)
