"""The two-part model interface that makes streaming cheap.

A model is split into
  * a FrameEncoder, run once per aligned face crop (all faces of a frame in one batch), whose
    per-frame embedding is cached in the track's buffer, and
  * a TemporalHead, run over a track's cached embeddings to give the face's estimate.

A face's embedding never depends on other frames, so a step costs one encoder call per face plus a
small head call over cached vectors, never a re-encoding of the whole clip.

The interface belongs to the core (``dfer_ros.perception``) because the pipeline is written against it;
concrete models live in ``dfer_ros.estimators`` and depend on this module, never the other way round.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Optional

import numpy as np

from dfer_ros.perception.types import AffectEstimate


@dataclass(frozen=True)
class CropSpec:
    """How the aligner must cut faces for an encoder.

    One spec per encoder: an encoder that needs several framings asks for the widest and cuts the others
    out of it (the aligner scales its template about the crop centre, so the central 1/k of a crop at
    face_scale k*s is the crop at face_scale s; the default model in ``dfer_ros.estimators`` does this).
    """

    size: int  # output side in pixels (64 for the default model, 224 for CLIP)
    face_scale: float = 1.0  # >1 keeps more context around the 5-point template
    color: str = "bgr"  # "bgr", "rgb" or "gray"


@dataclass(frozen=True)
class EncoderStage:
    """A part of an encoder the pipeline's scheduler runs on its own set of faces per frame.

    Stages exist because the parts of one encoder can differ in cost by 10x (the default model's
    expression net ~1-2 ms per face, its landmarker for action units ~12 ms): each gets its own queue,
    cost estimate and refresh floor (``perception.scheduler``). A stage writes only its ``columns`` of the
    embedding; columns it did not write on a frame hold ``FrameEncoder.missing_value``.
    """

    name: str
    columns: slice  # embedding columns this stage fills
    outputs: tuple[str, ...]  # estimate parts it feeds: "expression", "valence_arousal", "action_units", ...
    cost_hint_ms: float = 5.0  # cost per face assumed until the scheduler has measured it
    max_age_seconds: float = 0.5  # default refresh floor for this stage
    min_frames_between: int = 1  # default rate cap: at most every n-th frame of a face
    background: bool = False  # releases the GIL (native inference): may run on the pipeline's worker thread
    crop_spec: Optional[CropSpec] = None  # its own (cheaper) framing; None: the encoder's ``crop_spec``
    # views of one crop whose mean is the stage's value (the expression net's crop and its mirror image: 2). With
    # more than one, ``encode_stage`` takes a view per crop, so the pipeline can run one view per refresh in turn
    # (``compute.alternate_views``) and let the temporal head's mean over frames average them
    views: int = 1


ALL_OUTPUTS = ("expression", "valence_arousal", "action_units", "compound")
ALL_VIEWS = -1  # ``encode_stage``'s view index for "the mean of all the stage's views"


class FrameEncoder(ABC):
    """Per-frame encoder: aligned face crops in, one embedding per crop out."""

    crop_spec: CropSpec
    embedding_dim: int
    missing_value: float = float("nan")  # embedding entries a stage did not fill on a frame

    @property
    def stages(self) -> tuple[EncoderStage, ...]:
        """Separately scheduled parts; by default one stage that is the whole encoder."""
        return (EncoderStage("encoder", slice(0, self.embedding_dim), ALL_OUTPUTS),)

    def encode_stage(self, stage: str, crops: np.ndarray, views: Optional[np.ndarray] = None) -> np.ndarray:
        """crops (N, S, S, 3) -> (N, len(columns)) float32 of one stage (N may be 0).

        ``views`` (only for a stage with ``views`` > 1; None = all views of every crop): per crop, ``ALL_VIEWS``
        for the mean of all the stage's views, or k in [0, views) for view k alone.
        The default covers the single-stage case; multi-stage encoders override it. Must be safe to call
        for a ``background`` stage on a worker thread while other stages run on the caller's thread.
        """
        if stage != "encoder":
            raise ValueError(f"unknown encoder stage {stage!r}")
        return self.encode(crops)

    @abstractmethod
    def encode(self, crops: np.ndarray) -> np.ndarray:
        """crops: (N, S, S, 3) uint8 in crop_spec.color order (N may be 0) -> (N, embedding_dim) float32."""

    def reset(self) -> None:
        """Forget per-stream state (e.g. which frames ran an expensive sub-model); the pipeline calls it on reset."""

    def close(self) -> None:
        """Release native resources (sessions, landmarkers) that must not outlive the interpreter; idempotent."""


class TemporalHead(ABC):
    """Temporal head over the cached embeddings of tracks."""

    min_frames: int = 1  # frames needed before a track counts as warmed up
    max_frames: int = 16  # the longest window the head uses

    @abstractmethod
    def predict(self, windows: list[np.ndarray]) -> list[AffectEstimate]:
        """windows: one (T_i, D) float32 array per track, oldest first, 1 <= T_i <= max_frames."""

    def close(self) -> None:
        """Release native resources; idempotent."""


@dataclass
class AffectModel:
    """An encoder and a head that belong together, plus a human-readable description."""

    encoder: FrameEncoder
    head: TemporalHead
    name: str
    backend: str
    # optional parts that could not be loaded, each "<part>: <reason>"; the model runs without them, and
    # whoever serves it (the node's diagnostics) must say so instead of reporting all is well
    missing_parts: tuple[str, ...] = ()

    def close(self) -> None:
        """Close the encoder and the head; the owner (node, CLI) calls it once it stops using the model."""
        self.encoder.close()
        self.head.close()


class FaceDescriptor(ABC):
    """Identity descriptor for re-identification: aligned crops in, one vector per face out.

    Faces of one person lie closer (Euclidean distance) than faces of different people; the gallery
    (``perception.gallery``) compares them against a distance threshold measured for the descriptor.
    Run sparingly (a track's first face and later clearly better views), never on every frame.
    """

    crop_spec: CropSpec
    size: int  # descriptor length
    name: str = "descriptor"

    @abstractmethod
    def describe(self, crops: np.ndarray) -> np.ndarray:
        """crops: (N, S, S, 3) uint8 in crop_spec.color order (N may be 0) -> (N, size) float32."""

    def close(self) -> None:
        """Release native resources; idempotent."""
