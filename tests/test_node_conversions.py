"""In-process checks of the ROS layer's pieces: image decoding, result messages, parameters, diagnostics."""
from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")

from builtin_interfaces.msg import Time  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from dfer_ros.perception.config import PipelineConfig  # noqa: E402
from dfer_ros.perception.types import AffectEstimate, FaceResult, FrameResult  # noqa: E402
from dfer_ros.ros import conversions, parameters  # noqa: E402
from dfer_ros.ros.conversions import ImageError, array_to_image, image_to_array  # noqa: E402
from dfer_ros.ros.diagnostics import NodeStats, diagnostic_values, to_diagnostic_array  # noqa: E402
from ros_helpers import REPO  # noqa: E402


def _image(width, height, encoding, step, data: bytes) -> Image:
    msg = Image()
    msg.width, msg.height, msg.encoding, msg.step = width, height, encoding, step
    msg.data = data
    return msg


def test_round_trip_and_padded_rows():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (5, 7, 3), dtype=np.uint8)
    decoded, encoding = image_to_array(array_to_image(frame, "rgb8"))
    assert encoding == "rgb8" and np.array_equal(decoded, frame)
    padded = np.zeros((5, 7 * 3 + 11), np.uint8)  # 11 bytes of row padding
    padded[:, :21] = frame.reshape(5, 21)
    decoded, _ = image_to_array(_image(7, 5, "bgr8", 32, padded.tobytes()))
    assert np.array_equal(decoded, frame)
    mono, enc = image_to_array(_image(4, 3, "mono8", 4, bytes(range(12))))
    assert enc == "mono8" and mono.shape == (3, 4) and mono[2, 3] == 11
    bgra, enc = image_to_array(_image(2, 2, "bgra8", 8, bytes(range(16))))
    assert enc == "bgra8" and bgra.shape == (2, 2, 4) and bgra[1, 1, 3] == 15


@pytest.mark.parametrize("width, height, encoding, step, size, kind, words", [
    (4, 4, "yuv422", 8, 32, "encoding", "unsupported encoding 'yuv422'"),
    (4, 4, "16UC1", 8, 32, "encoding", "16-bit mono"),
    (4, 4, "mono16", 8, 32, "encoding", "16-bit mono"),
    (4, 4, "bgr8", 11, 44, "step", "step 11 is smaller than width*channels"),
    (4, 4, "bgr8", 12, 47, "truncated", "truncated data: 47 bytes, need"),
    (0, 0, "bgr8", 0, 0, "empty", "empty image (0x0)"),
    (7680, 4320, "bgr8", 7680 * 3, 16, "too_large", "max_image_pixels"),
])
def test_bad_images_give_a_reason(width, height, encoding, step, size, kind, words):
    with pytest.raises(ImageError) as info:
        image_to_array(_image(width, height, encoding, step, bytes(size)), max_pixels=1920 * 1080)
    assert info.value.kind == kind
    assert words in str(info.value)


def test_compressed_images_decode_and_garbage_is_rejected():
    import cv2

    frame = np.full((6, 8, 3), 200, np.uint8)
    ok, jpg = cv2.imencode(".png", frame)
    msg = CompressedImage(format="png", data=jpg.tobytes())
    decoded, enc = conversions.compressed_to_array(msg)
    assert enc == "bgr8" and np.array_equal(decoded, frame)
    with pytest.raises(ImageError, match="cannot decode"):
        conversions.compressed_to_array(CompressedImage(format="jpeg", data=b"not a jpeg"))



@pytest.mark.parametrize("ext, flags", [(".png", []), (".jpg", []), (".jpg", ["progressive"])])
def test_compressed_size_comes_from_the_header(ext, flags):
    import cv2

    frame = np.zeros((37, 53, 3), np.uint8)
    params = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if flags else []
    ok, data = cv2.imencode(ext, frame, params)
    kind, width, height = conversions.compressed_size(data.tobytes())
    assert (kind, width, height) == ("png" if ext == ".png" else "jpeg", 53, 37)


def test_jpeg_header_segments_and_fill_bytes_are_skipped():
    import cv2

    ok, data = cv2.imencode(".jpg", np.zeros((21, 34, 3), np.uint8))
    data = data.tobytes()
    exif = b"\xff\xe1" + (2 + 300).to_bytes(2, "big") + bytes(300)  # an APP1 segment before the frame header
    padded = data[:2] + exif + b"\xff\xff" + data[2:]  # and fill bytes before the next marker
    assert conversions.compressed_size(padded) == ("jpeg", 34, 21)
    with pytest.raises(ImageError, match="SOFn"):
        conversions.compressed_size(data[:2] + exif)  # cut off before the frame header


def test_png_bomb_is_rejected_from_its_header_without_decoding(monkeypatch):
    from image_bombs import png_bomb

    bomb = png_bomb(16000, 16000)
    assert len(bomb) < 300_000
    monkeypatch.setattr(conversions.cv2, "imdecode", lambda *a: pytest.fail("decoded a bomb"))
    with pytest.raises(ImageError) as info:
        conversions.compressed_to_array(CompressedImage(format="png", data=bomb), max_pixels=3840 * 2160)
    assert info.value.kind == "too_large" and "16000x16000" in str(info.value) and "before decoding" in str(info.value)


def _face(face_id="f3", valence=0.25, au=True) -> FaceResult:
    est = AffectEstimate(expression_labels=("neutral", "happy"), expression_probs=np.array([0.3, 0.7], np.float32),
                         valence=valence, arousal=-0.5, va_confidence=0.8,
                         au_names=("AU6", "AU12") if au else (), au_probs=np.array([0.2, 0.9], np.float32) if au
                         else np.zeros(0, np.float32))
    return FaceResult(face_id=face_id, stamp=12.5, box=np.array([10.4, 20.6, 30, 40], np.float32),
                      detection_score=0.93, detected=True, landmarks=np.arange(10, dtype=np.float32).reshape(5, 2),
                      frame_estimate=est, estimate=est, expression="happy", expression_confidence=0.7,
                      window_frames=5, window_seconds=0.2, warmed_up=True, estimate_age=0.1,
                      action_units_age=0.4 if au else float("inf"))


def test_results_become_five_messages_with_the_source_header():
    header = Header(stamp=Time(sec=12, nanosec=500_000_000), frame_id="cam")
    result = FrameResult(stamp=12.5, frame_index=3, faces=[_face(), _face("f4", valence=float("nan"), au=False)])
    msgs = conversions.result_to_messages(result, header, au_threshold=0.5)
    assert sorted(msgs) == sorted(["faces/affect", "faces/expression", "faces/valence_arousal",
                                   "faces/action_units", "faces/tracked"])
    for msg in msgs.values():
        assert msg.header == header
    affect = msgs["faces/affect"].faces[0]
    assert affect.face_id == "f3" and affect.header == header and affect.expression.header == header
    assert (affect.roi.x_offset, affect.roi.y_offset, affect.roi.width, affect.roi.height) == (10, 21, 30, 40)
    assert list(affect.landmarks) == list(range(10))
    assert affect.expression.expression == "happy" and list(affect.expression.labels) == ["neutral", "happy"]
    assert list(affect.action_units.active) == [False, True]
    assert msgs["faces/tracked"].face_ids == ["f3", "f4"]
    no_va = msgs["faces/valence_arousal"].faces[1]
    assert no_va.confidence == 0.0 and no_va.valence == 0.0  # NaN (model has no VA) -> zeros, confidence 0
    assert math.isclose(msgs["faces/valence_arousal"].faces[0].valence, 0.25, abs_tol=1e-6)
    empty = conversions.result_to_messages(FrameResult(stamp=1.0, frame_index=0, faces=[]), header)
    assert all(len(getattr(m, "faces", getattr(m, "face_ids", None))) == 0 for m in empty.values())
    # the age of each estimate part; -1 where the model never produced it
    assert affect.expression.estimate_age == pytest.approx(0.1) and affect.valence_arousal.estimate_age == pytest.approx(0.1)
    assert affect.action_units.estimate_age == pytest.approx(0.4)
    second = msgs["faces/affect"].faces[1]
    assert second.action_units.estimate_age == -1.0 and second.valence_arousal.estimate_age == -1.0
    assert msgs["faces/expression"].faces[1].estimate_age == pytest.approx(0.1)
    as_dict = conversions.affect_array_to_dict(msgs["faces/affect"])
    assert as_dict["faces"][0]["estimate_age"] == pytest.approx(0.1)
    assert as_dict["stamp"] == 12.5 and as_dict["faces"][0]["probabilities"]["happy"] == pytest.approx(0.7)


def test_only_the_topics_asked_for_are_built():
    """The node builds and publishes only the topics somebody subscribes to; each is the same as when all are."""
    header = Header(stamp=Time(sec=12, nanosec=500_000_000), frame_id="cam")
    result = FrameResult(stamp=12.5, frame_index=3, faces=[_face(), _face("f4")], people_in_view=["p1"])
    every = conversions.result_to_messages(result, header)
    for topics in (["faces/affect"], ["faces/tracked", "faces/action_units"], []):
        some = conversions.result_to_messages(result, header, topics=topics)
        assert sorted(some) == sorted(topics)
        assert all(some[t] == every[t] for t in topics)


def test_parameter_validation_reasons_and_cross_field_rule():
    specs = parameters.all_parameter_specs()
    current = {s.name: s.default for s in specs}
    ok, config = parameters.validate_values(current, {"detection.score_threshold": 0.7}, specs)
    assert ok is None and config.detection.score_threshold == 0.7
    for change, words in [({"au_threshold": 1.5}, "above the maximum"),
                          ({"backend": "cuda"}, "not one of"),
                          ({"detection.every": 0}, "below the minimum"),
                          ({"max_image_pixels": "many"}, "must be an integer"),
                          ({"detection.low_score_threshold": 0.9}, "detection.score_threshold")]:
        reason, config = parameters.validate_values(current, change, specs)
        assert config is None and words in reason, (change, reason)


def test_accepted_pipeline_changes_reach_a_running_pipeline():
    from dfer_ros.perception.pipeline import PerceptionPipeline

    class _Head:
        min_frames, max_frames = 1, 16

    from dfer_ros.perception.model_interface import CropSpec, FrameEncoder

    class _Encoder(FrameEncoder):
        crop_spec, embedding_dim = CropSpec(size=64), 1

        def encode(self, crops):
            raise AssertionError("no face is detected, so nothing is encoded")

    class _Model:
        encoder, head, name, backend = _Encoder(), _Head(), "stub", "none"

    pipeline = PerceptionPipeline(PipelineConfig(), _Model(), detector=type("D", (), {
        "min_score": 0.3, "min_face_size": 24, "max_faces": 8, "detect": lambda self, f: []})())
    specs = parameters.all_parameter_specs()
    current = {s.name: s.default for s in specs}
    _, new = parameters.validate_values(current, {"detection.min_face_size": 80, "tracking.lost_seconds": 3.0,
                                                  "aggregation.switch_margin": 0.3, "buffer.window_frames": 4}, specs)
    changed = parameters.apply_pipeline_config(pipeline, new)
    assert set(changed) == {"detection.min_face_size", "tracking.lost_seconds", "aggregation.switch_margin",
                            "buffer.window_frames"}
    assert pipeline.detector.min_face_size == 80 and pipeline.tracker.config.lost_seconds == 3.0
    assert pipeline.aggregators.config.switch_margin == 0.3 and pipeline.buffers.max_frames == 4


def test_config_file_lists_every_parameter_with_its_default():
    """Node parameters are set; pipeline parameters are listed as comments (so the default launch file does not
    override ``pipeline_config``), each with its default."""
    text = (REPO / "config" / "dfer.yaml").read_text()
    values = yaml.safe_load(text)["/**"]["ros__parameters"]
    specs = parameters.all_parameter_specs()
    assert {s.name for s in specs if not s.pipeline_field} == set(values)
    commented = {}
    for line in text.splitlines():
        key, sep, value = line.strip().removeprefix("# ").partition(": ")
        if sep and line.strip().startswith("# ") and key in {s.name for s in specs}:
            commented[key] = yaml.safe_load(value)
    values.update(commented)
    assert {s.name for s in specs} == set(values)
    for s in specs:
        assert values[s.name] == s.default and type(values[s.name]) is type(s.default), s.name
    assert text == parameters.yaml_text(specs), \
        "config/dfer.yaml is stale: dfer params --write"


def test_diagnostics_report_counts_and_levels():
    from diagnostic_msgs.msg import DiagnosticStatus

    stats = NodeStats()
    stats.state, stats.backend, stats.model = "active", "onnxruntime", "default"
    stats.on_received(False)
    stats.on_received(True)
    stats.on_bad_image("step", "step 3 is smaller than width*channels")
    stats.on_processed(12.0, 20.0, active_tracks=2)
    msg = to_diagnostic_array(stats.snapshot(), "/dfer_node", Time(sec=5))
    values = diagnostic_values(msg)
    assert msg.status[0].level == DiagnosticStatus.WARN and "bad image" in msg.status[0].message
    assert values["dropped_stale"] == "1" and values["bad_images"] == "1" and values["active_tracks"] == "2"
    assert values["bad_image_reasons"] == "step=1" and values["latency_ms_p50"] == "20.0"
    calm = to_diagnostic_array(stats.snapshot(), "/dfer_node", Time(sec=6))
    assert calm.status[0].level == DiagnosticStatus.OK  # no new bad image in this period


def test_diagnostics_carry_the_oldest_estimate_of_the_period_abstentions_and_events():
    stats = NodeStats()
    stats.state = "active"
    stats.on_processed(10.0, 15.0, active_tracks=3)
    stats.on_faces([0.0, 0.21, float("inf")], abstained=1, events=2)  # inf: a face without an estimate yet
    stats.on_faces([0.05], abstained=0, events=0)
    values = diagnostic_values(to_diagnostic_array(stats.snapshot(), "/dfer_node", Time(sec=1)))
    assert values["estimate_age_max_s"] == "0.21" and values["abstained_faces"] == "1"
    assert values["expression_events"] == "2"
    stats.on_faces([float("inf")], abstained=0, events=1)
    values = diagnostic_values(to_diagnostic_array(stats.snapshot(), "/dfer_node", Time(sec=2)))
    assert "estimate_age_max_s" not in values  # per period: none published in this one
    assert values["abstained_faces"] == "1" and values["expression_events"] == "3"  # totals


def test_diagnostics_carry_the_work_per_image_of_the_period():
    stats = NodeStats()
    stats.state = "active"
    for work in ({"detector_calls": 1, "regions": 4, "expression_faces": 4}, {"detector_calls": 0, "regions": 0},
                 {"detector_calls": 0, "regions": 1}, {"detector_calls": 1, "regions": 4, "expression_faces": 2}):
        stats.on_processed(5.0, 10.0, active_tracks=4)
        stats.on_work(work)
    values = diagnostic_values(to_diagnostic_array(stats.snapshot(), "/dfer_node", Time(sec=1)))
    assert (values["detector_calls_per_image"], values["regions_per_image"], values["expression_faces_per_image"]) \
        == ("0.50", "2.25", "1.50")
    values = diagnostic_values(to_diagnostic_array(stats.snapshot(), "/dfer_node", Time(sec=2)))
    assert not [key for key in values if key.endswith("_per_image")]  # per period: no image in this one


def test_diagnostics_levels_tell_configure_failures_missing_parts_and_stamp_events():
    from diagnostic_msgs.msg import DiagnosticStatus

    stats = NodeStats()
    stats.on_configure_failed("parameters: image_qos.reliability = 'foo' is not one of best_effort, reliable")
    failed = to_diagnostic_array(stats.snapshot(), "/dfer_node", Time(sec=1)).status[0]
    assert failed.level == DiagnosticStatus.ERROR and "image_qos.reliability" in failed.message

    stats.on_configured(("action units: face landmarker task file not found: /x/face_landmarker.task",))
    stats.state = "active"
    degraded = to_diagnostic_array(stats.snapshot(), "/dfer_node", Time(sec=2))
    assert degraded.status[0].level == DiagnosticStatus.WARN and "face landmarker" in degraded.status[0].message
    assert "action units" in diagnostic_values(degraded)["missing_parts"]

    stats.on_configured(())
    for kind in ("duplicate_stamp", "duplicate_stamp", "late_frame_dropped", "clock_jump_reset"):
        stats.on_stamp_event(kind)
    stats.on_processed(5.0, -30.0, active_tracks=1)  # stamped 30 ms in the future of the node clock
    msg = to_diagnostic_array(stats.snapshot(), "/dfer_node", Time(sec=3))
    values = diagnostic_values(msg)
    assert msg.status[0].level == DiagnosticStatus.WARN and "jumped back" in msg.status[0].message
    assert (values["duplicate_stamp"], values["late_frame_dropped"], values["clock_jump_reset"]) == ("2", "1", "1")
    assert values["future_stamps"] == "1" and "latency_ms_p50" not in values  # never a negative latency
    assert values["processing_ms_p50"] == "5.0"
    idle = to_diagnostic_array(stats.snapshot(), "/dfer_node", Time(sec=4))
    idle_values = diagnostic_values(idle)
    assert idle.status[0].level == DiagnosticStatus.OK  # counts stay, the jump was in an earlier period
    assert "processing_ms_p50" not in idle_values and idle_values["duplicate_stamp"] == "2"
    assert "nan" not in " ".join(idle_values.values())
