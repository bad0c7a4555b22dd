"""Offline bag evaluation: the frames of the real face video in mcap and sqlite3 bags give the same
prediction records as ``dfer eval video`` on the same frames; ``dfer eval bag`` with a compressed
topic, CSV labels, a metrics report, plots and an output bag works end to end; bad input is refused
with a clear message."""
from __future__ import annotations

import json

import pytest

from dfer_ros import assets
from dfer_ros.cli import eval as eval_cli
from dfer_ros import bag_io
from dfer_ros.evaluation.bag_eval import evaluate_bag
from dfer_ros.evaluation.predictions import read_predictions
from dfer_ros.evaluation.video_eval import evaluate_video
from dfer_ros.perception.config import PipelineConfig
from dfer_ros.perception.pipeline import PerceptionPipeline

pytestmark = pytest.mark.slow

N = 30
EXACT = ("frame", "bbox", "detected", "expression", "frame_expression", "window_frames", "warmed_up")


def fresh_pipeline() -> PerceptionPipeline:
    """A new model per run, as each dfer eval run has (a model may keep per-call state, e.g. which frames
    run the AU landmarker). The compute budget is off: with it, which face gets the model on a frame depends
    on measured milliseconds, and two runs on a busy machine would differ for reasons other than the source."""
    from dfer_ros.estimators.factory import create_model

    config = PipelineConfig()
    config.compute.budget_ms = 0.0
    return PerceptionPipeline(config.validate(), create_model("default", backend="onnxruntime"))


@pytest.fixture(scope="module")
def video_records(tmp_path_factory):
    out = tmp_path_factory.mktemp("video") / "video.jsonl"
    evaluate_video(assets.sample_video(), fresh_pipeline(), out, max_frames=N, progress=False)
    return list(read_predictions(out))


def assert_same_records(got: list[dict], want: list[dict]) -> None:
    """Same records, face ids equal up to renaming: ids come from one process-wide counter, so a second
    run in the same process numbers its tracks on, but the same faces must map one-to-one."""
    assert len(got) == len(want) > 0
    id_map: dict[str, str] = {}
    for g, w in zip(got, want):
        assert set(g) == set(w)
        assert id_map.setdefault(g["face_id"], w["face_id"]) == w["face_id"], ("face_id", g["frame"])
        for key in EXACT:
            assert g[key] == w[key], (key, g["frame"])
        assert g["stamp"] == pytest.approx(w["stamp"], abs=1e-6)
        for key in ("valence", "arousal", "expression_confidence", "detection_score"):
            assert g[key] == pytest.approx(w[key], abs=1e-5), (key, g["frame"])
        for key in ("expression_probs", "action_units"):
            assert g[key].keys() == w[key].keys()
            assert list(g[key].values()) == pytest.approx(list(w[key].values()), abs=1e-5)
    assert len(set(id_map.values())) == len(id_map), id_map


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_offline_bag_equals_video_evaluation(tmp_path, video_records, storage):
    # stamps 0, 1/25, ... as the video source uses (frame index / fps)
    bag = tmp_path / "bag"
    bag_io.video_to_bag(assets.sample_video(), bag, storage=storage, limit=N, start_stamp=0.0)
    out = tmp_path / "bag.jsonl"
    run = evaluate_bag(bag, fresh_pipeline(), out, progress=False)
    assert run.summary.frames == N and run.topic == "/camera/image_raw"
    assert len(run.frame_stamps) == N and len(run.latencies_ms) == N
    assert_same_records(list(read_predictions(out)), video_records)
    assert {r["expression"] for r in video_records} - {""}  # the model said something


def test_cli_compressed_bag_with_labels_report_plots_and_output_bag(tmp_path, capsys):
    bag = tmp_path / "jpeg"
    bag_io.video_to_bag(assets.sample_video(), bag, "/cam/image/compressed", "sqlite3", compressed=True, limit=N)
    stamps = bag_io.image_stamps(bag, "/cam/image/compressed")
    labels = tmp_path / "labels.csv"
    labels.write_text("stamp,expression,valence,arousal\n" +
                      "".join(f"{s:.6f},neutral,0.0,{0.01 * i:.2f}\n" for i, s in enumerate(stamps)))
    out, out_bag, report, plots = tmp_path / "p.jsonl", tmp_path / "out_bag", tmp_path / "r.json", tmp_path / "plots"
    code = eval_cli.bag_main([str(bag), "--out", str(out), "--out-bag", str(out_bag), "--labels-csv",
                          str(labels), "--report", str(report), "--plots", str(plots), "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "| expression | WAR |" in text and f"labels: {N}" in text
    records = list(read_predictions(out))
    rep = json.loads(report.read_text())
    assert rep["mode"] == "offline" and rep["image_topic"] == "/cam/image/compressed"
    assert rep["matched"] == len({r["stamp"] for r in records}) > 0
    assert 0.0 <= rep["expression"]["war"] <= 1.0
    info = bag_io.bag_info(out_bag)
    assert info.topics["/faces/affect"][1] == N  # one output per image, with or without faces
    affect = [m for _, _, _, m in bag_io.read_messages(out_bag, ["/faces/affect"])]
    assert [round(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9, 6) for m in affect] == \
        pytest.approx(stamps, abs=1e-6)
    assert sum(len(m.faces) for m in affect) == len(records)
    for name in ("va_trajectory", "expression_timeline", "latency_histogram", "confusion_matrix"):
        png = plots / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_cli_errors_are_clear(tmp_path, capsys):
    bag = tmp_path / "bag"
    bag_io.video_to_bag(assets.sample_video(), bag, limit=3)
    assert eval_cli.bag_main([str(bag), "--image-topic", "/nope", "--no-progress"]) == 2
    assert "no topic '/nope' in the bag" in capsys.readouterr().err
    assert eval_cli.bag_main([str(tmp_path / "missing"), "--no-progress"]) == 2
    assert "no such bag" in capsys.readouterr().err
    late = tmp_path / "late.csv"
    late.write_text("stamp,expression\n5000.0,neutral\n")
    assert eval_cli.bag_main([str(bag), "--labels-csv", str(late), "--no-progress"]) == 2
    assert "the labels cover no predicted frame" in capsys.readouterr().err
    assert eval_cli.bag_main([str(bag), "--labels-csv", str(late), "--labels-va", str(late)]) == 2
    assert "either as --labels-csv or as Aff-Wild2 files" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        eval_cli.bag_main([str(bag), "--video", str(assets.sample_video())])


def test_cli_video_with_affwild2_labels(tmp_path, capsys):
    """The label/metric options also work on a video: Aff-Wild2 line i+1 = video frame i."""
    expr = tmp_path / "expr.txt"
    expr.write_text("Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n" + "0\n" * 8 + "-1\n" * 2)
    report = tmp_path / "r.json"
    code = eval_cli.video_main([str(assets.sample_video()), "--max-frames", "10", "--labels-expr", str(expr),
                          "--report", str(report), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    rep = json.loads(report.read_text())
    assert rep["video"] == str(assets.sample_video()) and rep["labels"] == 8
    # frames 0..7 are labelled neutral; the face is confirmed from the second frame on
    assert 0 < rep["matched"] <= 8 and rep["expression"]["frames"] <= rep["matched"]
    assert "| expression | WAR |" in capsys.readouterr().out


def _bag_with_a_bad_image(path, bad_at: int, damage: str, count: int = 8) -> None:
    """``count`` real face frames; message ``bad_at`` truncated, in an unsupported encoding, or undecodable JPEG."""
    import numpy as np

    compressed = damage == "jpeg"
    with bag_io.BagWriter(path, "mcap") as w:
        for i, (stamp, image) in enumerate(bag_io.video_frames(assets.sample_video(), limit=count, start_stamp=100.0)):
            msg = bag_io.image_message(w.store, image, stamp, "cam", compressed)
            if i == bad_at:
                if damage == "truncated":
                    msg.data = msg.data[: len(msg.data) // 2]
                elif damage == "encoding":
                    msg.encoding = "yuv422"
                else:
                    msg.data = np.frombuffer(b"not a jpeg", np.uint8).copy()
            w.write("/cam/image/compressed" if compressed else "/cam/image_raw",
                    bag_io.COMPRESSED if compressed else bag_io.IMAGE, int(stamp * 1e9), msg)


@pytest.mark.parametrize("damage", ["truncated", "encoding", "jpeg"])
@pytest.mark.parametrize("bad_at", [0, 4], ids=["first", "mid-bag"])
def test_a_bad_image_first_or_mid_bag_is_skipped_and_counted(tmp_path, capsys, damage, bad_at):
    bag = tmp_path / "bag"
    _bag_with_a_bad_image(bag, bad_at, damage)
    run = evaluate_bag(bag, fresh_pipeline(), progress=False)
    assert run.summary.frames == 7 and run.summary.skipped_frames == 1
    assert eval_cli.bag_main([str(bag), "--out", str(tmp_path / "p.jsonl"), "--no-progress"]) == 0
    assert "7 frames (1 skipped" in capsys.readouterr().out


def test_a_bag_of_only_bad_images_is_an_error_with_the_reason(tmp_path, capsys):
    bag = tmp_path / "bag"
    _bag_with_a_bad_image(bag, 0, "encoding", count=1)
    assert eval_cli.bag_main([str(bag), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "no frame of /cam/image_raw could be decoded" in err and "yuv422" in err


def test_expression_timeline_outlines_each_episode_where_it_happened(tmp_path):
    """The plot with events differs from the plot without them only inside the episode's time span."""
    import cv2
    import numpy as np

    from dfer_ros.evaluation.affect_plots import plot_expression_timeline

    records = [{"face_id": "f1", "stamp": 100.0 + 0.04 * i, "expression": "neutral" if not 50 <= i < 80 else "happy",
                "expression_probs": {"neutral": 0.8 if not 50 <= i < 80 else 0.2,
                                     "happy": 0.2 if not 50 <= i < 80 else 0.8}} for i in range(125)]
    events = [{"kind": "onset", "face_id": "f1", "label": "happy", "episode": 1, "onset": 102.0, "apex": 102.6,
               "offset": None, "peak_probability": 0.8},
              {"kind": "offset", "face_id": "f1", "label": "happy", "episode": 1, "onset": 102.0, "apex": 102.6,
               "offset": 103.2, "peak_probability": 0.8}]
    plain = cv2.imread(str(plot_expression_timeline(records, tmp_path / "plain.png")))
    drawn = cv2.imread(str(plot_expression_timeline(records, tmp_path / "events.png", events=events)))
    assert plain.shape == drawn.shape
    columns = np.nonzero(np.abs(plain.astype(int) - drawn.astype(int)).sum(axis=(0, 2)))[0]
    assert columns.size
    # the axes span 0..4.96 s over the plot's width: the changes lie between the onset (2.0 s) and offset (3.2 s)
    width = plain.shape[1]
    assert 0.2 * width < columns.min() and columns.max() < 0.8 * width
