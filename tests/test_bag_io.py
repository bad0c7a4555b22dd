"""Bag reading and writing with rosbags: real face-video frames in mcap and sqlite3 bags, raw and
compressed; custom dfer_ros types written and read back (and understood by rclpy); bad bags give
clear messages naming the bag, topic or encoding."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

import pytest

from dfer_ros import assets
from dfer_ros import bag_io
from dfer_ros.bag_io import BagError
from dfer_ros.bag_types import custom_type_names, typestore

N = 30
START = 1000.0


@pytest.fixture(scope="module")
def frames():
    return list(bag_io.video_frames(assets.sample_video(), N, START))


@pytest.fixture(scope="module")
def bags(tmp_path_factory, frames):
    root = tmp_path_factory.mktemp("bags")
    out = {}
    for name, storage, compressed in (("mcap_raw", "mcap", False), ("sqlite_raw", "sqlite3", False),
                                      ("mcap_jpeg", "mcap", True), ("sqlite_jpeg", "sqlite3", True)):
        topic = "/camera/image_raw/compressed" if compressed else "/camera/image_raw"
        assert bag_io.write_image_bag(root / name, frames, topic, storage, compressed) == N
        out[name] = root / name
    return out


def test_custom_types_registered_from_msg_files():
    names = custom_type_names()
    msg_files = sorted((Path(__file__).resolve().parents[1] / "msg").glob("*.msg"))
    assert sorted(names) == [f"dfer_ros/msg/{f.stem}" for f in msg_files]
    assert "dfer_ros/msg/FaceAffectArray" in names
    store = typestore()
    assert "sensor_msgs/msg/Image" in store.fielddefs
    fields = [f[0] for f in store.fielddefs["dfer_ros/msg/FaceAffect"][1]]
    declared = [line.split()[1] for line in (msg_files[0].parent / "FaceAffect.msg").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#") and "=" not in line.split("#")[0]]
    assert fields == declared and fields[:2] == ["header", "face_id"]


@pytest.mark.parametrize("name", ["mcap_raw", "sqlite_raw"])
def test_raw_bag_round_trip_is_exact(bags, frames, name):
    info = bag_io.bag_info(bags[name])
    assert info.storage == ("mcap" if name.startswith("mcap") else "sqlite3")
    assert info.image_topics == ["/camera/image_raw"]
    images = list(bag_io.read_images(bags[name]))
    assert len(images) == N
    for got, (stamp, frame) in zip(images, frames):
        assert got.stamp == pytest.approx(stamp, abs=1e-9)
        assert got.encoding == "bgr8" and got.frame_id == "camera"
        np.testing.assert_array_equal(got.image, frame)
    assert images[5].bag_time_ns == round((START + 5 / 25.0) * 1e9)


@pytest.mark.parametrize("name", ["mcap_jpeg", "sqlite_jpeg"])
def test_compressed_bag_decodes_close_to_the_source(bags, frames, name):
    images = list(bag_io.read_images(bags[name]))
    assert [i.index for i in images] == list(range(N))
    for got, (_, frame) in zip(images[::10], frames[::10]):
        assert got.image.shape == frame.shape
        assert np.abs(got.image.astype(int) - frame).mean() < 3.0  # JPEG quality 95


def test_image_stamps_without_decoding(bags, frames):
    assert bag_io.image_stamps(bags["mcap_jpeg"], "/camera/image_raw/compressed") == \
        pytest.approx([s for s, _ in frames], abs=1e-9)


def test_other_encodings_are_converted(tmp_path, frames):
    """rgb8 and mono8 with row padding (step > width * channels) decode to the right pixels."""
    store = typestore()
    bgr = frames[0][1]
    rgb = bgr[:, :, ::-1]
    gray = bgr[:, :, 1]
    with bag_io.BagWriter(tmp_path / "enc", "mcap") as w:
        for i, (enc, arr, ch) in enumerate((("rgb8", rgb, 3), ("mono8", gray, 1))):
            h, width = arr.shape[:2]
            step = width * ch + 8
            padded = np.zeros((h, step), np.uint8)
            padded[:, : width * ch] = arr.reshape(h, -1)
            msg = bag_io.image_message(store, bgr, START + i)
            msg.encoding, msg.step, msg.data = enc, step, padded.reshape(-1)
            w.write("/cam", bag_io.IMAGE, int((START + i) * 1e9), msg)
    got = list(bag_io.read_images(tmp_path / "enc"))
    assert got[0].encoding == "rgb8"
    np.testing.assert_array_equal(got[0].image, rgb)
    assert got[1].encoding == "mono8"
    np.testing.assert_array_equal(got[1].image, gray)


def test_topic_choice_errors(tmp_path, bags, frames):
    with pytest.raises(BagError, match=r"no topic '/nope' in the bag; topics: /camera/image_raw"):
        list(bag_io.read_images(bags["mcap_raw"], "/nope"))
    two = tmp_path / "two"
    with bag_io.BagWriter(two, "mcap") as w:
        for topic in ("/a/image", "/b/image"):
            w.write(topic, bag_io.IMAGE, int(START * 1e9), bag_io.image_message(w.store, frames[0][1], START))
        w.write("/chatter", "std_msgs/msg/String", int(START * 1e9), w.store.types["std_msgs/msg/String"](data="hi"))
    with pytest.raises(BagError, match="several image topics .*/a/image, /b/image.*--image-topic"):
        list(bag_io.read_images(two))
    with pytest.raises(BagError, match="topic '/chatter' has type std_msgs/msg/String, not"):
        list(bag_io.read_images(two, "/chatter"))
    assert len(list(bag_io.read_images(two, "/b/image"))) == 1


def test_unsupported_encoding_names_topic_and_encoding(tmp_path, frames):
    with bag_io.BagWriter(tmp_path / "yuv", "sqlite3") as w:
        msg = bag_io.image_message(w.store, frames[0][1], START)
        msg.encoding = "yuv422"
        w.write("/cam", bag_io.IMAGE, int(START * 1e9), msg)
    with pytest.raises(BagError, match=r"topic /cam message 0: unsupported image encoding 'yuv422'; supported: .*bgr8"):
        list(bag_io.read_images(tmp_path / "yuv"))


def test_not_a_bag_and_missing_bag(tmp_path):
    with pytest.raises(BagError, match="no such bag"):
        bag_io.bag_info(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="not a rosbag2 bag \\(no metadata.yaml"):
        bag_io.bag_info(tmp_path / "empty")


@pytest.mark.parametrize("name,suffix", [("mcap_raw", ".mcap"), ("sqlite_raw", ".db3")])
def test_truncated_bag_gives_a_clear_error(tmp_path, bags, name, suffix):
    broken = tmp_path / f"{name}_truncated"
    shutil.copytree(bags[name], broken)
    data = next(broken.glob(f"*{suffix}"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 3])
    with pytest.raises(BagError) as err:
        list(bag_io.read_images(broken))
    assert str(broken) in str(err.value)
    assert "cannot open bag" in str(err.value) or "damaged" in str(err.value)


def test_writer_refuses_existing_path_and_unknown_storage(tmp_path):
    (tmp_path / "exists").mkdir()
    with pytest.raises(BagError, match="exists already"):
        bag_io.BagWriter(tmp_path / "exists")
    with pytest.raises(BagError, match="unknown bag storage 'rosbag1'"):
        bag_io.BagWriter(tmp_path / "new", "rosbag1")
