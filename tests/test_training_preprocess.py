"""Preprocessing real face video with the node's detector/tracker/aligner: crops, marker, resume."""
import json
import shutil

import cv2
import numpy as np
import pytest

from dfer_ros.perception.model_interface import CropSpec
from dfer_ros.datasets import read_split
from dfer_ros.training.preprocess import MARKER, preprocess_video, preprocess_videos


@pytest.fixture(scope="module")
def short_video(tmp_path_factory):
    from dfer_ros.assets import AssetError, sample_video

    try:
        src = sample_video()
    except AssetError as exc:
        pytest.skip(f"sample face video not available: {exc}")
    out = tmp_path_factory.mktemp("video") / "cap12_short.avi"
    cap = cv2.VideoCapture(str(src))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (400, 300))
    for _ in range(20):
        ok, frame = cap.read()
        assert ok
        writer.write(frame)
    writer.release()
    cap.release()
    return out


def test_crops_marker_and_resume(short_video, tmp_path):
    spec = CropSpec(size=64, face_scale=1.25, color="rgb")
    res = preprocess_video(short_video, tmp_path / "crops", spec)
    assert res.status == "done" and res.frames == 20 and res.main_track
    folder = tmp_path / "crops" / "cap12_short"
    crops = sorted(folder.glob("*.jpg"))
    # the tracker confirms the face at its second detection; from then on every frame has a crop
    assert res.main_frames == len(crops) >= 18 and crops[-1].name == "00020.jpg"
    img = cv2.imread(str(crops[-1]))
    assert img.shape == (64, 64, 3) and img.std() > 10
    marker = json.loads((folder / MARKER).read_text())
    assert marker["frames"] == 20 and marker["settings"]["crop_size"] == 64
    assert not (tmp_path / "crops" / "cap12_short.partial").exists()
    mtime = crops[-1].stat().st_mtime_ns
    again = preprocess_videos([short_video], tmp_path / "crops", spec, progress=False)
    assert again[0].status == "skipped" and crops[-1].stat().st_mtime_ns == mtime
    # other settings -> redone
    assert preprocess_video(short_video, tmp_path / "crops", CropSpec(size=32, face_scale=1.25)).status == "done"
    assert cv2.imread(str(folder / "00020.jpg")).shape == (32, 32, 3)
    # the crop folder is a valid manifest clip
    (tmp_path / "m.csv").write_text("path,expression\ncrops/cap12_short,surprise\n")
    d = read_split("manifest", tmp_path / "m.csv", None, expression_labels=["neutral", "surprise"])
    assert d.records[0].num_frames == len(list(folder.glob("*.jpg")))


def test_bad_and_faceless_videos_are_reported_not_raised(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    spec = CropSpec(size=32)
    res = preprocess_video(bad, tmp_path / "out", spec)
    assert res.status == "failed" and res.reason
    blank = tmp_path / "blank.avi"
    writer = cv2.VideoWriter(str(blank), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (96, 96))
    for _ in range(3):
        writer.write(np.full((96, 96, 3), 128, np.uint8))
    writer.release()
    res = preprocess_video(blank, tmp_path / "out", spec)
    assert res.status == "done" and res.reason == "no face found" and res.frames == 3
    assert (tmp_path / "out" / "blank" / MARKER).is_file()


def _cut(src, out, start, count):
    cap = cv2.VideoCapture(str(src))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (400, 300))
    for i in range(start + count):
        ok, frame = cap.read()
        assert ok
        if i >= start:
            writer.write(frame)
    writer.release()
    cap.release()
    return out


def _tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_workers_equal_one_and_a_rerun_skips_finished_videos(short_video, tmp_path):
    videos = [_cut(short_video, tmp_path / f"clip{k}.avi", 4 * k, 12) for k in range(3)]
    (tmp_path / "broken.avi").write_bytes(b"not a video")
    videos.append(tmp_path / "broken.avi")
    spec = CropSpec(size=48, face_scale=1.25, color="rgb")
    one = preprocess_videos(videos, tmp_path / "one", spec, progress=False, workers=1)
    two = preprocess_videos(videos, tmp_path / "two", spec, progress=False, workers=2)
    assert [r.status for r in one] == [r.status for r in two] == ["done", "done", "done", "failed"]
    assert [r.video for r in two] == videos  # results in input order
    assert all(r.main_frames >= 10 for r in two[:3])
    a, b = _tree(tmp_path / "one"), _tree(tmp_path / "two")
    assert a.keys() == b.keys() and len([k for k in a if k.endswith(".jpg")]) >= 30
    assert a == b  # the same crops and markers, byte for byte
    # an interrupted run: clip1 was being written (its half-done .partial is all there is of it)
    shutil.rmtree(tmp_path / "two" / "clip1")
    (tmp_path / "two" / "clip1.partial").mkdir()
    (tmp_path / "two" / "clip1.partial" / "00001.jpg").write_bytes(b"half")
    kept = (tmp_path / "two" / "clip0" / "00012.jpg").stat().st_mtime_ns
    again = preprocess_videos(videos, tmp_path / "two", spec, progress=False, workers=2)
    assert [r.status for r in again] == ["skipped", "done", "skipped", "failed"]
    assert (tmp_path / "two" / "clip0" / "00012.jpg").stat().st_mtime_ns == kept
    assert not (tmp_path / "two" / "clip1.partial").exists()
    assert _tree(tmp_path / "two" / "clip1") == _tree(tmp_path / "one" / "clip1")


def test_preprocess_cli_workers_and_duplicate_names(short_video, tmp_path, capsys):
    from dfer_ros.cli.preprocess import main

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _cut(short_video, tmp_path / "a" / "same.avi", 0, 6)
    _cut(short_video, tmp_path / "b" / "same.avi", 6, 6)
    assert main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "out"), "--workers", "2",
                 "--no-progress"]) == 2
    assert "would both write" in capsys.readouterr().err
    assert main([str(tmp_path / "a"), "--out", str(tmp_path / "out"), "--workers", "2", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"done": 1, "skipped": 0, "failed": 0}
