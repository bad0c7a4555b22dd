"""One way from a model spec (a string on a command line or in a ROS parameter) to a ready ``AffectModel``.

The rule, stated once (the node's ``model`` parameter, ``dfer eval``, ``dfer bench``, ``dfer demo``,
``dfer preprocess`` and training all follow it):

* a name registered in ``estimators.factory.MODEL_BUILDERS`` is that model: ``default`` (the embedded
  model), ``fer2013`` (the FER2013 mini-Xception with MediaPipe action units, by name, whatever
  ``default`` becomes), ``clip`` (options only);
* anything else is a path: a folder is a ``dfer export`` folder (any backend); a file is a CLIP-adapter
  model config YAML (``models/*.yaml``), run on the torch backend with an optional training checkpoint.

A path that happens to equal a registered name is written with a folder part (``./default``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from dfer_ros.estimators.factory import MODEL_BUILDERS, create_model
from dfer_ros.perception.model_interface import AffectModel, CropSpec

log = logging.getLogger(__name__)

SPEC_HELP = ("a registered name (default, fer2013, ...), a dfer export folder, or a CLIP-adapter config YAML "
             "(with --checkpoint)")


@dataclass(frozen=True)
class ModelSpec:
    """What a model spec string names: a registered model, an exported folder or a model config."""

    kind: str  # "registered", "export" or "config"
    name: str  # the registered name; for paths, the builder that reads them ("clip")
    path: Optional[Path] = None  # the folder or config file
    checkpoint: Optional[Path] = None  # training checkpoint for a config


def parse_model_spec(text: Union[str, Path], checkpoint: Union[str, Path, None] = None) -> ModelSpec:
    """Apply the module's rule; FileNotFoundError (naming the path) for a path that does not exist."""
    raw = str(text).strip()
    if not raw:
        raise ValueError(f"empty model spec: expected {SPEC_HELP}")
    ckpt = Path(checkpoint).expanduser() if checkpoint else None
    if raw in MODEL_BUILDERS and not isinstance(text, Path):
        if ckpt is not None:
            raise ValueError(f"a checkpoint goes with a model config YAML, not with the registered model {raw!r}")
        return ModelSpec("registered", raw)
    path = Path(raw).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"model path {str(path)!r} does not exist (model: {SPEC_HELP}; "
                                f"registered names: {', '.join(sorted(MODEL_BUILDERS))})")
    if path.is_dir():
        if ckpt is not None:
            raise ValueError(f"{path} is an exported folder, which carries its weights: drop the checkpoint")
        return ModelSpec("export", "clip", path)
    if ckpt is not None and not ckpt.is_file():
        raise FileNotFoundError(f"checkpoint {str(ckpt)!r} does not exist")
    return ModelSpec("config", "clip", path, ckpt)


def load_model(spec: Union[str, Path, ModelSpec], backend: str = "onnxruntime",
               checkpoint: Union[str, Path, None] = None, **options: Any) -> AffectModel:
    """The model a spec names on ``backend``; ``options`` go to its builder (e.g. ``with_action_units``
    for the default model, ``max_faces`` for exported folders)."""
    if not isinstance(spec, ModelSpec):
        spec = parse_model_spec(spec, checkpoint)
    if spec.kind == "registered":
        return create_model(spec.name, backend=backend, **options)
    if spec.kind == "export":
        return create_model(spec.name, backend=backend, model_dir=spec.path, **options)
    extra = {"checkpoint": spec.checkpoint} if spec.checkpoint is not None else {}
    return create_model(spec.name, backend=backend, config=spec.path, **extra, **options)


def build_pipeline(config, spec: Union[str, Path, ModelSpec] = "default", backend: str = "onnxruntime",
                   checkpoint: Union[str, Path, None] = None, measured_costs: bool = False, **model_options: Any):
    """A ``PerceptionPipeline`` with ``config`` around the model ``spec`` names (eval, bench, demo).

    ``measured_costs`` False (offline): the compute scheduler charges nominal stage costs, so the results do not
    depend on machine load; True simulates the live node (wall-clock costs, results vary with load)."""
    import time

    from dfer_ros.perception.pipeline import PerceptionPipeline

    descriptor, missing = load_reid_descriptor(config, backend)
    return PerceptionPipeline(config, load_model(spec, backend, checkpoint, **model_options),
                              clock=time.perf_counter if measured_costs else None, descriptor=descriptor,
                              descriptor_missing=missing)


def load_reid_descriptor(config, backend: str = "onnxruntime"):
    """(face descriptor or None, why it is missing) for ``config.reid``; nothing is loaded when re-identification
    is switched off."""
    if not config.reid.enabled:
        return None, ""
    from dfer_ros.estimators.faceapi_descriptor import load_descriptor

    descriptor, reason = load_descriptor(backend)
    if descriptor is None:
        log.warning("%s", reason)
    return descriptor, reason


def crop_spec_for(spec: Union[str, Path, ModelSpec], backend: str = "onnxruntime") -> CropSpec:
    """How the model a spec names wants faces cut (size, face scale, colour), for crop extraction.

    A config or an exported folder is read without loading any network; a registered model is built
    (and closed again) because its crop spec may depend on its options.
    """
    if not isinstance(spec, ModelSpec):
        spec = parse_model_spec(spec)
    if spec.kind == "config":
        from dfer_ros.clip_adapter.config import load_config

        cfg = load_config(spec.path)
        return CropSpec(size=cfg.image_size, face_scale=cfg.face_scale, color="rgb")
    if spec.kind == "export":
        from dfer_ros.estimators.clip_model import read_manifest

        manifest = read_manifest(spec.path, verify_hashes=False)
        return CropSpec(size=int(manifest["image_size"]), face_scale=float(manifest.get("face_scale", 1.25)),
                        color="rgb")
    model = load_model(spec, backend)
    try:
        return model.encoder.crop_spec
    finally:
        model.close()
