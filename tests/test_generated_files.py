"""Files generated from the typed settings (config/dfer.yaml, config/pipeline.yaml, the docs/node.md table)
are current, and the generated pipeline file reads back as the built-in defaults."""
from __future__ import annotations

from dfer_ros.perception.config import PipelineConfig
from dfer_ros.ros import parameters
from dfer_ros.typed_config import iter_settings


def test_no_generated_file_is_stale():
    stale = parameters.stale_generated_files()
    assert stale == [], f"stale: {[str(p) for p in stale]}; run dfer params --write"


def test_generated_pipeline_yaml_is_the_defaults():
    assert PipelineConfig.from_yaml(parameters.REPO_ROOT / "config" / "pipeline.yaml") == PipelineConfig()


def test_every_setting_has_a_description_and_a_range_or_choices_where_it_is_numeric():
    for config in (PipelineConfig, parameters.NodeSettings):
        for info in iter_settings(config):
            assert info.setting.description, info.name
            if info.type in (int, float):
                assert info.setting.low is not None and info.setting.high is not None, info.name
    names = [s.name for s in parameters.all_parameter_specs()]
    assert len(names) == len(set(names))


def test_validation_ranges_are_the_parameter_ranges():
    """One range per setting: a value at the ROS descriptor's bound is valid, one beyond it is rejected."""
    import pytest

    from dfer_ros.perception.config import ConfigError

    for spec in parameters.pipeline_parameter_specs():
        if spec.low is None or spec.name in ("detection.low_score_threshold", "detection.score_threshold",
                                             "events.onset_threshold", "events.offset_threshold",
                                             "engagement.engage_max_degrees",
                                             "engagement.disengage_min_degrees"):  # cross-field
            continue
        for value, ok in ((spec.low, True), (spec.high, True), (spec.high * 2 + 1, False)):
            flat = {**PipelineConfig().to_flat(), spec.name: type(spec.default)(value)}
            if ok:
                PipelineConfig.from_flat(flat)
            else:
                with pytest.raises(ConfigError, match=spec.name):
                    PipelineConfig.from_flat(flat)
    # the cross-field rule of the event thresholds: offset above onset is rejected naming the offset
    with pytest.raises(ConfigError, match="events.offset_threshold"):
        PipelineConfig.from_flat({**PipelineConfig().to_flat(), "events.onset_threshold": 0.2})
    # ... and of the engagement angles: a disengage angle below the engage angle is rejected naming it
    with pytest.raises(ConfigError, match="engagement.disengage_min_degrees"):
        PipelineConfig.from_flat({**PipelineConfig().to_flat(), "engagement.engage_max_degrees": 89.0})
