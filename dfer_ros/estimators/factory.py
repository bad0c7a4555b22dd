"""The registry of models by name (``create_model``); ``estimators.loader`` turns any model spec into a call here.

``create_model("default")`` is the embedded model (``default_model``, face-api's expression net);
``create_model("fer2013")`` is the same model with the FER2013 mini-Xception as its expression net. Other
models register a builder in ``MODEL_BUILDERS``: the CLIP-adapter temporal model is added as "clip", taking
the path of its YAML config and its checkpoint as options. Builders import their heavy dependencies (torch)
themselves, lazily.
"""
from __future__ import annotations

from typing import Any, Callable

from dfer_ros.perception.model_interface import AffectModel

ModelBuilder = Callable[..., AffectModel]


def _build_default(backend: str, **options: Any) -> AffectModel:
    from dfer_ros.estimators.default_model import build_default_model

    return build_default_model(backend=backend, **options)


def _build_fer2013(backend: str, **options: Any) -> AffectModel:
    from dfer_ros.estimators.default_model import build_default_model

    if options.get("expression_net", "fer2013") != "fer2013":
        raise ValueError("model 'fer2013' has the mini-Xception as its expression net; use model 'default' for others")
    return build_default_model(backend=backend, **{**options, "expression_net": "fer2013"})


def _build_clip(backend: str, **options: Any) -> AffectModel:
    from dfer_ros.estimators.clip_model import build_clip_model

    return build_clip_model(backend=backend, **options)


# name -> builder(backend, **options); see each entry's comment for its options.
MODEL_BUILDERS: dict[str, ModelBuilder] = {
    "default": _build_default,
    "fer2013": _build_fer2013,  # the FER2013 mini-Xception (+ MediaPipe AUs) by name, whatever "default" becomes
    "clip": _build_clip,  # model_dir=<dfer export folder> (any backend) or config=<yaml>, checkpoint=<path> (torch)
}


def register_model(name: str, builder: ModelBuilder) -> None:
    """Make ``create_model(name, ...)`` call ``builder(backend, **options)``."""
    MODEL_BUILDERS[name] = builder


def create_model(name: str = "default", backend: str = "onnxruntime", **options: Any) -> AffectModel:
    """Build the model called ``name`` on ``backend``; ValueError listing the known names for an unknown one."""
    if name not in MODEL_BUILDERS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODEL_BUILDERS))}")
    return MODEL_BUILDERS[name](backend, **options)
