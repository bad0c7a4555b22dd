"""The node's parameters, derived from the typed settings: declarations, descriptors, validation, generated files.

Every setting is declared once, with ``typed_config.setting`` metadata (default, range, choices, description,
read-only): the node-level ones on ``NodeSettings`` below, the pipeline ones on ``perception.config``'s
dataclasses (``detection.score_threshold``, ...). From that one declaration come the node's
``ParameterDescriptor``s (``ParamSpec`` is the flat ROS view), the validation of start-up values and run-time
changes, ``config/dfer.yaml``, ``config/pipeline.yaml`` and the parameters table of ``docs/node.md``
(``dfer params --write``; a test fails when one is stale). Adding a setting is one
``setting(...)`` field.

Validation is ROS-free (``validate_values``): it is used by the node's on-set-parameters callback to
reject a bad value with a reason, and by tests. Accepted pipeline changes are applied to the running
pipeline between two frames by ``PerceptionPipeline.reconfigure``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from dfer_ros.assets import REPO_ROOT
from dfer_ros.backends.factory import BACKENDS
from dfer_ros.perception.config import ConfigError, PipelineConfig
from dfer_ros.typed_config import iter_settings, setting

RELIABILITIES = ("best_effort", "reliable")
EXECUTORS = ("events", "single_threaded")


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter as ROS sees it: name, default, meaning and constraints (derived, never written)."""

    name: str
    default: Any
    description: str
    read_only: bool = False
    low: Optional[float] = None  # numeric range (inclusive)
    high: Optional[float] = None
    choices: tuple = ()  # allowed string values
    pipeline_field: Optional[str] = None  # dotted PipelineConfig field this parameter maps to


@dataclass
class NodeSettings:
    """The node-level parameters, typed; each field is the one place its parameter is declared."""

    autostart: bool = setting(True, read_only=True, description="Configure and activate by itself at start-up "
                              "(false: wait for a lifecycle manager to call configure/activate).")
    # events: rclpy's EventsExecutor (experimental in Jazzy; C++ event queue): the executor thread took 3.7 % of a core
    # at 30 Hz instead of 5.4 % (dfer bench latency, same run, docs/benchmarks.md)
    executor: str = setting("events", read_only=True, choices=EXECUTORS,
                            description="The rclpy executor that runs the node's callbacks: 'events' "
                                        "(rclpy.experimental.EventsExecutor) or 'single_threaded' "
                                        "(SingleThreadedExecutor, the executor before).")
    model: str = setting("default", read_only=True, description="A registered model name ('default': the embedded "
                         "model, face-api expression net + blendshape AUs + circumplex VA; 'fer2013': the same with "
                         "the FER2013 mini-Xception), a dfer export folder, or a CLIP-adapter config YAML (torch "
                         "backend); the rule of dfer_ros.estimators.loader. Loaded on configure.")
    checkpoint: str = setting("", read_only=True, description="Checkpoint (.safetensors) for a CLIP-adapter config "
                              "YAML model (torch backend); empty: none.")
    backend: str = setting("onnxruntime", read_only=True, choices=BACKENDS,
                           description="Inference backend: " + " | ".join(BACKENDS) + ".")
    with_action_units: bool = setting(True, read_only=True, description="Default model: estimate action units "
                                      "(MediaPipe blendshape proxies).")
    pipeline_config: str = setting("", read_only=True, description="Optional pipeline YAML (config/pipeline.yaml "
                                   "format) giving the defaults of the pipeline parameters; explicit parameters "
                                   "override it.")
    subscribe_compressed: bool = setting(False, read_only=True, description="Also subscribe to "
                                         "sensor_msgs/CompressedImage on image/compressed.")
    image_qos_reliability: str = setting("best_effort", read_only=True, choices=RELIABILITIES,
                                         name="image_qos.reliability",
                                         description="Reliability of the image subscription(s): best_effort (sensor "
                                                     "data, default) or reliable (to match a reliable-only publisher).")
    image_qos_depth: int = setting(5, low=1, high=100, read_only=True, name="image_qos.depth",
                                   description="History depth of the image subscription(s). Only the newest frame "
                                               "is processed either way.")
    output_qos_depth: int = setting(10, low=1, high=1000, read_only=True, name="output_qos.depth",
                                    description="History depth of the reliable output publishers.")
    hri_enabled: bool = setting(False, read_only=True, name="hri.enabled", description="Also publish the REP-155 "
                                "(ROS4HRI) topics under /humans (hri.mode says which; needs the hri_msgs package; off "
                                "by default because REP-155 has one face detector own the face ids, which another "
                                "node may already do).")
    hri_mode: str = setting("beside", read_only=True, name="hri.mode", choices=("beside", "producer"),
                            description="beside: next to hri_face_detect, only /humans/faces/tracked, "
                                        "/humans/faces/<id>/{expression,facs} and the person ids; producer: this node "
                                        "is the stack's only face producer and also publishes /humans/faces/<id>/"
                                        "{roi,landmarks,cropped,aligned} and /humans/persons/<id>/{anonymous,"
                                        "engagement_status}.")
    publish_debug_image: bool = setting(False, read_only=True, description="Publish an annotated bgr8 image (boxes, "
                                        "ids, label, VA) on debug_image (only then is the topic advertised).")
    max_image_pixels: int = setting(3840 * 2160, low=1, high=200_000_000, description="Images with more pixels "
                                    "(width*height) are rejected before decoding.")
    au_threshold: float = setting(0.5, low=0.0, high=1.0, description="Action-unit probability at or above which "
                                  "FaceActionUnits.active is true.")
    diagnostics_period: float = setting(1.0, low=0.1, high=60.0, read_only=True,
                                        description="Seconds between DiagnosticArray messages on /diagnostics.")
    warn_throttle_seconds: float = setting(5.0, low=0.0, high=3600.0, description="Repeated warnings of the same "
                                           "kind (bad image, ...) are logged at most once per this many seconds "
                                           "(each is still counted).")

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> "NodeSettings":
        """From parameter values by ROS name; names that are not node settings are ignored."""
        by_name = {info.outside_name: info.name for info in iter_settings(cls)}
        return cls(**{by_name[k]: v for k, v in values.items() if k in by_name})


def _spec(info, pipeline_field: Optional[str] = None, default: Any = None) -> ParamSpec:
    meta = info.setting
    return ParamSpec(info.outside_name, info.default if default is None else default, meta.description,
                     read_only=meta.read_only, low=meta.low, high=meta.high, choices=meta.choices,
                     pipeline_field=pipeline_field)


# Node-level parameters (the pipeline ones are generated from PipelineConfig below).
NODE_PARAMETERS: tuple[ParamSpec, ...] = tuple(_spec(info) for info in iter_settings(NodeSettings))


def pipeline_parameter_specs(base: Optional[PipelineConfig] = None) -> tuple[ParamSpec, ...]:
    """One ParamSpec per PipelineConfig field, with defaults from ``base`` (default: PipelineConfig())."""
    return tuple(_spec(info, pipeline_field=info.name) for info in iter_settings(base or PipelineConfig()))


def all_parameter_specs(base: Optional[PipelineConfig] = None) -> tuple[ParamSpec, ...]:
    return NODE_PARAMETERS + pipeline_parameter_specs(base)


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
    elif isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            return f"{spec.name} must be a list of strings, got {value!r}"
        return None
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


def _yaml_value(value: Any) -> str:
    import yaml

    if isinstance(value, str):
        return '"' + value + '"'
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _comment(spec: ParamSpec) -> str:
    rng = f" [{spec.low}, {spec.high}]" if spec.low is not None else ""
    choices = f" {{{'|'.join(spec.choices)}}}" if spec.choices else ""
    ro = " (ro)" if spec.read_only else ""
    return f"{spec.description}{rng}{choices}{ro}"


def yaml_text(specs: tuple[ParamSpec, ...]) -> str:
    """``config/dfer.yaml``: the node parameters with their defaults under ``/**: ros__parameters:``, and
    every pipeline parameter with its default as a comment.

    The pipeline parameters are comments so that this file, which the default launch file loads, does
    not override the ``pipeline_config`` file: uncomment a line to set that parameter explicitly.
    """
    lines = ["# dfer_ros node parameters: EVERY parameter with its default (generated from the typed settings;",
             "# `dfer params --write`).",
             "# (ro) = read-only: takes effect on restart. Others can be changed at run time (ros2 param set).",
             "# The pipeline parameters are commented out so that `pipeline_config` gives their values; uncomment",
             "# one to override that file.",
             "/**:", "  ros__parameters:"]
    for spec in specs:
        lines.append(f"    # {_comment(spec)}")
        prefix = "    # " if spec.pipeline_field else "    "
        lines.append(f"{prefix}{spec.name}: {_yaml_value(spec.default)}")
    return "\n".join(lines) + "\n"


def pipeline_yaml_text() -> str:
    """``config/pipeline.yaml``: every pipeline setting with its default and description, by section."""
    lines = ["# Perception pipeline defaults (dfer_ros.perception.config.PipelineConfig; generated from its typed",
             "# settings: `dfer params --write`).",
             "# Every key is optional; unknown keys and out-of-range values are rejected at start-up with the key's name.",
             "# Times are seconds of IMAGE STAMP time (sim time for bags), so behaviour is the same at 5 and 30 fps."]
    section = None
    for spec in pipeline_parameter_specs():
        parts = spec.name.split(".")
        if len(parts) == 2 and parts[0] != section:
            section = parts[0]
            lines += ["", f"{section}:"]
        elif len(parts) == 1 and section is not None:
            section = None
            lines.append("")
        indent = "  " if len(parts) == 2 else ""
        lines.append(f"{indent}# {_comment(spec)}")
        lines.append(f"{indent}{parts[-1]}: {_yaml_value(spec.default)}")
    return "\n".join(lines) + "\n"


def markdown_table(specs: tuple[ParamSpec, ...]) -> str:
    """The parameters table of docs/node.md."""
    rows = ["| parameter | default | range / choices | run-time | meaning |", "| --- | --- | --- | --- | --- |"]
    for s in specs:
        rng = f"[{s.low}, {s.high}]" if s.low is not None else ("|".join(s.choices) if s.choices else "")
        rng = rng.replace("|", "\\|")
        rows.append(f"| `{s.name}` | `{s.default!r}` | {rng} | {'restart' if s.read_only else 'yes'} | {s.description} |")
    return "\n".join(rows) + "\n"


TABLE_BEGIN = "<!-- parameters table: generated by `dfer params --write`, do not edit -->"
TABLE_END = "<!-- end of the generated parameters table -->"


def _docs_with_table(current: str) -> str:
    head, sep, rest = current.partition(TABLE_BEGIN)
    if not sep:
        raise ValueError(f"docs/node.md has no line {TABLE_BEGIN!r}")
    _, sep, tail = rest.partition(TABLE_END)
    if not sep:
        raise ValueError(f"docs/node.md has no line {TABLE_END!r}")
    return head + TABLE_BEGIN + "\n" + markdown_table(all_parameter_specs()) + TABLE_END + tail


def generated_files(root: Path = REPO_ROOT) -> dict[Path, str]:
    """Every file generated from the typed settings -> the text it must have."""
    docs = root / "docs" / "node.md"
    return {root / "config" / "dfer.yaml": yaml_text(all_parameter_specs()),
            root / "config" / "pipeline.yaml": pipeline_yaml_text(),
            docs: _docs_with_table(docs.read_text())}


def stale_generated_files(root: Path = REPO_ROOT) -> list[Path]:
    """The generated files whose content differs from what the settings give (empty: all current)."""
    return [path for path, text in generated_files(root).items()
            if not path.is_file() or path.read_text() != text]


def write_generated_files(root: Path = REPO_ROOT) -> list[Path]:
    """Rewrite the stale generated files; returns the paths written."""
    written = []
    for path, text in generated_files(root).items():
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written


if __name__ == "__main__":  # the command line: dfer_ros/cli/parameters.py
    from dfer_ros.commands import exec_cli

    exec_cli("parameters", "dfer params")
