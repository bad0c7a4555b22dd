"""The node's parameters: one table of specs -> declarations with descriptors, validation and the typed settings.

Every parameter is declared from ``PARAMETERS`` (node settings) plus one parameter per ``PipelineConfig``
field (``detection.score_threshold``, ...), each with a ``ParameterDescriptor`` carrying a description, a
numeric range where there is one, and ``read_only`` where a change needs a restart (model, backend, QoS,
detector). The same table generates ``config/dfer.yaml`` and the docs table, so they cannot drift apart.

Validation is ROS-free (``validate_values``): it is used by the node's on-set-parameters callback to
reject a bad value with a reason, and by tests. Accepted pipeline changes are applied to the running
pipeline between two frames by ``PerceptionPipeline.reconfigure``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from dfer_ros.perception.config import ConfigError, PipelineConfig

BACKENDS = ("onnxruntime", "torch", "tensorrt")
RELIABILITIES = ("best_effort", "reliable")


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter: name, default, meaning and constraints."""

    name: str
    default: Any
    description: str
    read_only: bool = False
    low: Optional[float] = None  # numeric range (inclusive)
    high: Optional[float] = None
    choices: tuple = ()  # allowed string values
    pipeline_field: Optional[str] = None  # dotted PipelineConfig field this parameter maps to


# Node-level parameters (the pipeline ones are generated from PipelineConfig below).
NODE_PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("autostart", True, "Configure and activate by itself at start-up (false: wait for a lifecycle "
              "manager to call configure/activate).", read_only=True),
    ParamSpec("model", "default", "'default' (embedded FER2013 mini-Xception + blendshape AUs + circumplex VA), a "
              "dfer-export folder of a CLIP-adapter model, or a CLIP-adapter config YAML (torch backend). "
              "Loaded on configure.", read_only=True),
    ParamSpec("checkpoint", "", "Checkpoint (.safetensors) for a CLIP-adapter config YAML model (torch backend); "
              "empty: none.", read_only=True),
    ParamSpec("backend", "onnxruntime", "Inference backend: onnxruntime | torch | tensorrt.", read_only=True,
              choices=BACKENDS),
    ParamSpec("with_action_units", True, "Default model: estimate action units (MediaPipe blendshape proxies).",
              read_only=True),
    ParamSpec("pipeline_config", "", "Optional pipeline YAML (config/pipeline.yaml format) giving the defaults of "
              "the detection/tracking/buffer/aggregation parameters; explicit parameters override it.",
              read_only=True),
    ParamSpec("subscribe_compressed", False, "Also subscribe to sensor_msgs/CompressedImage on image/compressed.",
              read_only=True),
    ParamSpec("image_qos.reliability", "best_effort", "Reliability of the image subscription(s): best_effort "
              "(sensor data, default) or reliable (to match a reliable-only publisher).", read_only=True,
              choices=RELIABILITIES),
    ParamSpec("image_qos.depth", 5, "History depth of the image subscription(s). Only the newest frame is "
              "processed either way.", read_only=True, low=1, high=100),
    ParamSpec("output_qos.depth", 10, "History depth of the reliable output publishers.", read_only=True, low=1, high=1000),
    ParamSpec("hri.enabled", False, "Also publish the REP-155 (ROS4HRI) topics /humans/faces/tracked and "
              "/humans/faces/<id>/{expression,facs} (needs the hri_msgs package; off by default because REP-155 "
              "has one face detector own the face ids, which another node may already do).", read_only=True),
    ParamSpec("publish_debug_image", False, "Publish an annotated bgr8 image (boxes, ids, label, VA) on debug_image."),
    ParamSpec("max_image_pixels", 3840 * 2160, "Images with more pixels (width*height) are rejected before decoding.",
              low=1, high=200_000_000),
    ParamSpec("au_threshold", 0.5, "Action-unit probability at or above which FaceActionUnits.active is true.",
              low=0.0, high=1.0),
    ParamSpec("diagnostics_period", 1.0, "Seconds between DiagnosticArray messages on /diagnostics.",
              read_only=True, low=0.1, high=60.0),
    ParamSpec("warn_throttle_seconds", 5.0, "Repeated warnings of the same kind (bad image, ...) are logged at most "
              "once per this many seconds (each is still counted).", low=0.0, high=3600.0),
)

# Which pipeline fields need a restart (the detector is built once) and the ranges documented for the rest.
_PIPELINE_READ_ONLY = {"detection.detector", "detection.max_side", "detection.threads", "compute.overlap",
                       "compute.opencv_threads"}
_PIPELINE_META: dict[str, tuple[str, Optional[float], Optional[float], tuple]] = {
    "detection.detector": ("Face detector: yunet (boxes + 5 landmarks) or haar (boxes only).", None, None, ("yunet", "haar")),
    "detection.score_threshold": ("Detections at/above this score may start tracks.", 0.0, 1.0, ()),
    "detection.low_score_threshold": ("Detections in [low, score) only keep existing tracks alive; must be <= "
                                      "detection.score_threshold.", 0.0, 1.0, ()),
    "detection.min_face_size": ("Smaller faces (pixels, full resolution) are ignored.", 1, 4096, ()),
    "detection.max_faces": ("Most faces reported and encoded per image, largest first.", 1, 64, ()),
    "detection.max_side": ("Images are downscaled to this side for detection only.", 32, 4096, ()),
    "detection.every": ("Run the detector on every k-th image; the tracker predicts in between.", 1, 100, ()),
    "detection.threads": ("OpenMP threads of the YuNet detector.", 1, 64, ()),
    "tracking.iou_threshold": ("Minimum IoU for a detection to match a track.", 0.01, 0.99, ()),
    "tracking.min_hits": ("Detections before a new face gets an id.", 1, 100, ()),
    "tracking.lost_seconds": ("A face unseen for longer than this (stamp time) ends.", 0.01, 600.0, ()),
    "buffer.window_frames": ("Embeddings kept per face (capped by the model head); applies to new faces.", 1, 1024, ()),
    "buffer.window_seconds": ("Embeddings older than this are dropped (0 = no time limit).", 0.0, 600.0, ()),
    "buffer.gap_reset_seconds": ("A gap in a face's embeddings above this restarts its window.", 0.01, 600.0, ()),
    "aggregation.enabled": ("Temporal smoothing on (false: each frame's estimate as is).", None, None, ()),
    "aggregation.half_life_seconds": ("Half-life of the exponential smoothing (stamp time).", 0.001, 600.0, ()),
    "aggregation.switch_margin": ("A new label must beat the current one's smoothed probability by this.", 0.0, 0.99, ()),
    "aggregation.switch_min_seconds": ("... for at least this long before the published label switches.", 0.0, 600.0, ()),
    "compute.budget_ms": ("Model milliseconds started per image and lane (main thread, worker thread); the "
                          "scheduler picks the faces. 0 = budget off: every face, every stage, every image.",
                          0.0, 10000.0, ()),
    "compute.expression_max_age": ("Refresh floor: no face's expression/valence-arousal gets older than this "
                                   "(seconds); wins over the budget.", 0.001, 600.0, ()),
    "compute.action_units_max_age": ("Refresh floor of the action units (seconds); wins over the budget.",
                                     0.001, 600.0, ()),
    "compute.overlap": ("Run GIL-releasing stages (the landmarker) on one worker thread, overlapping the "
                        "next images' detection and expression net.", None, None, ()),
    "compute.opencv_threads": ("OpenCV threads for the process (cv2.setNumThreads).", 1, 64, ()),
    "max_frame_side": ("Images with a larger side are rejected as corrupt.", 64, 65536, ()),
    "encode_predicted": ("Also encode faces whose box is a tracker prediction.", None, None, ()),
    "stamp_reorder_tolerance": ("Seconds: an image stamped at most this much older than the previous one is dropped as late; older by more resets all faces (bag loop, clock reset).", 0.0, 600.0, ()),
}


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out.update(_flatten(value, prefix + f.name + "."))
        else:
            out[prefix + f.name] = value
    return out


def pipeline_parameter_specs(base: Optional[PipelineConfig] = None) -> tuple[ParamSpec, ...]:
    """One ParamSpec per PipelineConfig field, with defaults from ``base`` (default: PipelineConfig())."""
    values = _flatten(base or PipelineConfig())
    specs = []
    for name, default in values.items():
        description, low, high, choices = _PIPELINE_META.get(name, (f"Pipeline setting {name}.", None, None, ()))
        specs.append(ParamSpec(name, default, description, read_only=name in _PIPELINE_READ_ONLY,
                               low=low, high=high, choices=choices, pipeline_field=name))
    return tuple(specs)


def all_parameter_specs(base: Optional[PipelineConfig] = None) -> tuple[ParamSpec, ...]:
    return NODE_PARAMETERS + pipeline_parameter_specs(base)


@dataclass
class NodeSettings:
    """The node-level parameter values, typed."""

    autostart: bool = True
    model: str = "default"
    checkpoint: str = ""
    backend: str = "onnxruntime"
    with_action_units: bool = True
    pipeline_config: str = ""
    subscribe_compressed: bool = False
    image_qos_reliability: str = "best_effort"
    image_qos_depth: int = 5
    output_qos_depth: int = 10
    publish_debug_image: bool = False
    hri_enabled: bool = False
    max_image_pixels: int = 3840 * 2160
    au_threshold: float = 0.5
    diagnostics_period: float = 1.0
    warn_throttle_seconds: float = 5.0

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> "NodeSettings":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k.replace(".", "_"): v for k, v in values.items() if k.replace(".", "_") in known})


def _check_one(spec: ParamSpec, value: Any) -> Optional[str]:
    """Why ``value`` is not acceptable for ``spec`` (type, range, choice), or None."""
    default = spec.default
    if isinstance(default, bool):
        if not isinstance(value, bool):
            return f"{spec.name} must be a bool, got {value!r}"
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{spec.name} must be an integer, got {value!r}"
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{spec.name} must be a number, got {value!r}"
        if value != value:
            return f"{spec.name} must not be NaN"
    elif isinstance(default, str):
        if not isinstance(value, str):
            return f"{spec.name} must be a string, got {value!r}"
    if spec.low is not None and value < spec.low:
        return f"{spec.name} = {value} is below the minimum {spec.low}"
    if spec.high is not None and value > spec.high:
        return f"{spec.name} = {value} is above the maximum {spec.high}"
    if spec.choices and value not in spec.choices:
        return f"{spec.name} = {value!r} is not one of {', '.join(map(str, spec.choices))}"
    return None


def pipeline_config_from_values(values: dict[str, Any]) -> PipelineConfig:
    """Build and validate a PipelineConfig from flat ``section.field`` values (ConfigError names the field).

    Integer values of float fields are accepted (ROS has no implicit int -> double)."""
    return PipelineConfig.from_flat(values, "parameters")


def validate_values(current: dict[str, Any], changes: dict[str, Any],
                    specs: tuple[ParamSpec, ...]) -> tuple[Optional[str], Optional[PipelineConfig]]:
    """Check ``changes`` on top of ``current`` (all values by name).

    Returns (reason, None) when a value is bad, else (None, the resulting PipelineConfig). Cross-field rules
    (e.g. low_score_threshold <= score_threshold) are checked by PipelineConfig.validate().
    """
    by_name = {s.name: s for s in specs}
    for name, value in changes.items():
        spec = by_name.get(name)
        if spec is None:
            continue  # use_sim_time and other rclpy parameters: rclpy checks them
        problem = _check_one(spec, value)
        if problem:
            return problem, None
    merged = {**current, **changes}
    pipeline_values = {s.name: merged[s.name] for s in specs if s.pipeline_field and s.name in merged}
    try:
        return None, pipeline_config_from_values(pipeline_values)
    except ConfigError as exc:
        return str(exc), None


def load_pipeline_defaults(path: str) -> PipelineConfig:
    """The PipelineConfig named by the ``pipeline_config`` parameter ('' = built-in defaults)."""
    if not path:
        return PipelineConfig()
    return PipelineConfig.from_yaml(Path(path))


def apply_pipeline_config(pipeline, new: PipelineConfig) -> list[str]:
    """Apply an accepted change to the running pipeline between two frames (``PerceptionPipeline.reconfigure``);
    returns the changed field names (for the log)."""
    return pipeline.reconfigure(new)


def yaml_text(specs: tuple[ParamSpec, ...]) -> str:
    """``config/dfer.yaml``: every parameter with its default under ``/**: ros__parameters:``."""
    import yaml

    lines = ["# dfer_ros node parameters: EVERY parameter with its default (generated from",
             "# dfer_ros/ros/parameters.py; `python -m dfer_ros.ros.parameters > config/dfer.yaml`).",
             "# (ro) = read-only: takes effect on restart. Others can be changed at run time (ros2 param set).",
             "/**:", "  ros__parameters:"]
    for spec in specs:
        value = yaml.safe_dump(spec.default, default_flow_style=True).strip().removesuffix("...").strip()
        if isinstance(spec.default, str):
            value = '"' + spec.default + '"'
        rng = f" [{spec.low}, {spec.high}]" if spec.low is not None else ""
        choices = f" {{{'|'.join(spec.choices)}}}" if spec.choices else ""
        ro = " (ro)" if spec.read_only else ""
        lines.append(f"    # {spec.description}{rng}{choices}{ro}")
        lines.append(f"    {spec.name}: {value}")
    return "\n".join(lines) + "\n"


def markdown_table(specs: tuple[ParamSpec, ...]) -> str:
    """The parameters table of docs/node.md."""
    rows = ["| parameter | default | range / choices | run-time | meaning |", "| --- | --- | --- | --- | --- |"]
    for s in specs:
        rng = f"[{s.low}, {s.high}]" if s.low is not None else ("|".join(s.choices) if s.choices else "")
        rng = rng.replace("|", "\\|")
        rows.append(f"| `{s.name}` | `{s.default!r}` | {rng} | {'restart' if s.read_only else 'yes'} | {s.description} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    import sys

    print(markdown_table(all_parameter_specs()) if "--markdown" in sys.argv else yaml_text(all_parameter_specs()), end="")
