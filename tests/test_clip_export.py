"""dfer export and the exported model at run time: ONNX parity, dynamic batch, backends agree,
streaming through the runtime equals recomputation, torch-free runtime, tamper/bad-input refusals."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from clip_helpers import REPO, TINY, export_tiny, random_crops, tiny_cfg, tiny_tokenizer_dir
from dfer_ros.estimators.clip_model import ClipModelError, load_clip_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    tok = tiny_tokenizer_dir(tmp)
    assert export_tiny(tmp / "tiny", tok) == 0
    return tmp / "tiny"


def test_export_writes_manifest_and_passes_parity(exported, capsys):
    manifest = json.loads((exported / "manifest.json").read_text())
    for key in ("image_tower", "temporal_head", "torch_weights", "text"):
        assert (exported / manifest[key]["file"]).is_file()
    assert manifest["parity"]["ok"]
    diffs = [d for part in manifest["parity"]["max_abs_diff"].values() for d in part.values()]
    assert len(diffs) == 5 and max(diffs) <= manifest["parity"]["tolerance"]
    assert manifest["text"]["labels"] == manifest["expression_labels"]
    assert np.load(exported / "text_embeddings.npy").shape == (8, 16)


def test_onnx_has_dynamic_batch_and_matches_torch(exported):
    from dfer_ros.backends.onnxruntime_backend import OnnxRuntimeSession
    from dfer_ros.clip_adapter.export import HeadExport, ImageTowerExport
    from dfer_ros.clip_adapter.model import ClipAdapterModel

    model = ClipAdapterModel(tiny_cfg()).eval()
    tower, head = OnnxRuntimeSession(exported / "image_tower.onnx"), OnnxRuntimeSession(exported / "temporal_head.onnx")
    rng = np.random.default_rng(1)
    for batch in (1, 5):
        px = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
        with torch.no_grad():
            ref = ImageTowerExport(model)(torch.from_numpy(px)).numpy()
        np.testing.assert_allclose(tower.run({"pixel_values": px})["embeddings"], ref, atol=1e-4)
        emb = rng.standard_normal((batch, 8, 16)).astype(np.float32)
        mask = np.arange(8)[None] < rng.integers(1, 9, (batch, 1))
        with torch.no_grad():
            ref_head = HeadExport(model)(torch.from_numpy(emb), torch.from_numpy(mask))
        out = head.run({"embeddings": emb, "mask": mask})
        np.testing.assert_allclose(out["expression_logits"], ref_head[0].numpy(), atol=1e-4)
        np.testing.assert_allclose(out["au_logits"], ref_head[2].numpy(), atol=1e-4)


def test_runtime_backends_agree_and_handle_short_windows(exported):
    ort = load_clip_model(exported, backend="onnxruntime")
    pt = load_clip_model(exported, backend="torch")
    crops = random_crops(11, seed=5)
    e_ort, e_pt = ort.encoder.encode(crops), pt.encoder.encode(crops)
    np.testing.assert_allclose(e_ort, e_pt, atol=1e-4)
    assert ort.encoder.encode(crops[:0]).shape == (0, 16)
    windows = [e_ort[:1], e_ort[:5], e_ort]  # 1 frame, 5 frames, 11 > window (last 8 used)
    a, b = ort.head.predict(windows), pt.head.predict(windows)
    assert len(a) == 3
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.expression_probs, y.expression_probs, atol=1e-4)
        assert abs(x.expression_probs.sum() - 1) < 1e-5 and -1 <= x.valence <= 1 and x.au_probs.shape == (12,)
        assert x.compound_probs.shape == (7,)
    assert a[0].va_confidence == pytest.approx(1 / 8) and a[2].va_confidence == 1.0
    # the 11-frame window is the same as its last 8 frames
    np.testing.assert_allclose(a[2].expression_probs, ort.head.predict([e_ort[-8:]])[0].expression_probs, atol=1e-6)


def test_streaming_runtime_equals_recomputation(exported):
    """Per-frame encoding cached step by step == the PyTorch model run on the whole window."""
    from dfer_ros.clip_adapter.model import ClipAdapterModel
    from dfer_ros.clip_adapter.preprocess import to_pixel_values

    rt = load_clip_model(exported, backend="onnxruntime")
    model = ClipAdapterModel(tiny_cfg()).eval()
    crops = random_crops(10, seed=9)
    cache = []
    for step in range(len(crops)):
        cache.append(rt.encoder.encode(crops[step:step + 1])[0])
        est = rt.head.predict([np.stack(cache[-8:])])[0]
        clip = to_pixel_values(crops[max(0, step - 7):step + 1])[None]
        with torch.no_grad():
            ref = torch.softmax(model(clip)["expression_logits"], -1)[0].numpy()
        np.testing.assert_allclose(est.expression_probs, ref, atol=1e-4)


def test_text_modes(exported):
    zs = load_clip_model(exported, text_mode="zero_shot")
    fused = load_clip_model(exported, text_mode="fuse", fusion_weight=0.5)
    head_only = load_clip_model(exported, text_mode="off")
    emb = head_only.encoder.encode(random_crops(4))
    p_zs, p_f, p_h = (m.head.predict([emb])[0].expression_probs for m in (zs, fused, head_only))
    np.testing.assert_allclose(p_f, 0.5 * p_zs + 0.5 * p_h, atol=1e-5)
    weights = np.load(exported / "text_embeddings.npy")[:3]
    zs.head.set_text_classes(["curious", "bored", "calm"], weights, mode="zero_shot")
    est = zs.head.predict([emb])[0]
    assert est.expression_labels == ("curious", "bored", "calm") and est.compound_labels == ()
    with pytest.raises(ValueError, match="cannot fuse"):
        zs.head.set_text_classes(["curious", "bored", "calm"], weights, mode="fuse")


def test_unpublished_outputs_stay_empty(exported):
    from dfer_ros.estimators.clip_model import ClipTemporalHead

    rt = load_clip_model(exported)
    head = ClipTemporalHead(rt.head.session, rt.head.expression_labels, rt.head.au_names, 8, outputs=("expression",))
    est = head.predict([rt.encoder.encode(random_crops(3))])[0]
    assert not est.has_va and est.au_names == () and est.au_probs.size == 0


def test_runtime_imports_no_torch(exported):
    code = f"""
import sys
sys.modules['torch'] = None  # any 'import torch' now raises ImportError
import numpy as np
from dfer_ros.estimators.factory import create_model
m = create_model('clip', backend='onnxruntime', model_dir={str(exported)!r})
e = m.encoder.encode(np.zeros((2, 32, 32, 3), np.uint8))
r = m.head.predict([e])
assert 'torch' not in [k for k, v in sys.modules.items() if v is not None]
print('OK', r[0].top_expression)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK")


def test_tampered_or_missing_files_are_refused(exported, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    with open(copy / "temporal_head.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ClipModelError, match=r"temporal_head\.onnx.*sha256"):
        load_clip_model(copy)
    (copy / "image_tower.onnx").unlink()
    with pytest.raises(ClipModelError, match=r"image_tower\.onnx.*missing"):
        load_clip_model(copy)
    with pytest.raises(ClipModelError, match="dfer export"):
        load_clip_model(tmp_path / "nothing")


def test_export_cli_errors_and_tolerance(tmp_path, capsys):
    from dfer_ros.cli.export import main

    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    assert main(["--model", str(TINY), "--checkpoint", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "bad.safetensors" in capsys.readouterr().err
    # a zero tolerance cannot be met by float kernels: exit 1 with a message
    assert main(["--model", str(TINY), "--random-init", "--no-text", "--tolerance", "0", "--out", str(tmp_path / "z")]) == 1
    assert "differ by more than" in capsys.readouterr().err


def test_clip_model_factory_branch(exported):
    from dfer_ros.estimators.factory import create_model

    model = create_model("clip", backend="torch", config=str(TINY))
    assert model.backend == "torch" and model.encoder.crop_spec.size == 32 and model.encoder.crop_spec.color == "rgb"
    with pytest.raises(ValueError, match="dfer export"):
        create_model("clip", backend="onnxruntime", config=str(TINY))


def test_pretrained_only_export_is_self_contained(tmp_path):
    """--pretrained-only: HF CLIP folder weights + fresh head; the exported folder works after the
    HF folder is gone (torch backend included) and its config points at no external file."""
    import shutil

    import yaml
    from safetensors.torch import save_file

    from clip_helpers import hf_clip
    from dfer_ros.cli.export import main

    hf = tmp_path / "hf"
    tiny_tokenizer_dir(tmp_path)
    shutil.copytree(tmp_path / "tokenizer", hf)
    clip = hf_clip(tiny_cfg())
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(hf / "model.safetensors"))
    cfg_file = tmp_path / "cfg.yaml"
    data = yaml.safe_load(TINY.read_text())
    data.update(clip_weights=str(hf), adapter={"kind": "lora", "lora_r": 2, "lora_alpha": 4})  # LoRA starts as identity
    cfg_file.write_text(yaml.safe_dump(data))
    assert main(["--model", str(cfg_file), "--pretrained-only", "--out", str(tmp_path / "zs")]) == 0
    shutil.rmtree(hf)
    assert yaml.safe_load((tmp_path / "zs" / "config.yaml").read_text())["clip_weights"] is None
    crops = random_crops(3)
    from dfer_ros.clip_adapter.preprocess import to_pixel_values

    with torch.no_grad():
        ref = torch.nn.functional.normalize(clip.get_image_features(pixel_values=to_pixel_values(crops)).pooler_output, dim=-1)
    for backend in ("onnxruntime", "torch"):
        model = load_clip_model(tmp_path / "zs", backend=backend, text_mode="zero_shot")
        np.testing.assert_allclose(model.encoder.encode(crops), ref.numpy(), atol=1e-4)
        assert model.head.text_mode == "zero_shot"
