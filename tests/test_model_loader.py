"""The model-spec rule of ``estimators.loader``: names, exported folders, config YAMLs, and the refusals."""
from __future__ import annotations

import pytest

from clip_helpers import TINY
from dfer_ros.estimators.loader import ModelSpec, crop_spec_for, parse_model_spec


def test_registered_names_folders_and_configs(tmp_path):
    assert parse_model_spec("default") == ModelSpec("registered", "default")
    assert parse_model_spec("fer2013") == ModelSpec("registered", "fer2013")
    (tmp_path / "export").mkdir()
    assert parse_model_spec(str(tmp_path / "export")) == ModelSpec("export", "clip", tmp_path / "export")
    ckpt = tmp_path / "model.safetensors"
    ckpt.write_bytes(b"")
    assert parse_model_spec(str(TINY), ckpt) == ModelSpec("config", "clip", TINY, ckpt)
    # a folder that happens to be called like a registered model is reached with a folder part
    (tmp_path / "default").mkdir()
    assert parse_model_spec(tmp_path / "default").kind == "export"


def test_refusals_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        parse_model_spec(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        parse_model_spec(str(TINY), tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="checkpoint goes with a model config"):
        parse_model_spec("default", str(TINY))
    with pytest.raises(ValueError, match="empty model spec"):
        parse_model_spec(" ")


def test_crop_spec_of_a_config_is_read_without_building_the_model():
    from dfer_ros.clip_adapter.config import load_config

    cfg = load_config(TINY)
    spec = crop_spec_for(str(TINY))
    assert (spec.size, spec.face_scale, spec.color) == (cfg.image_size, cfg.face_scale, "rgb")
