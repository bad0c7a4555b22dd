"""Read camera images from rosbag2 bags and write bags, with ``rosbags`` (pure Python, no ROS install).

Both storage plugins (mcap and sqlite3) are handled; the image topic can be raw
(``sensor_msgs/msg/Image``) or compressed (``sensor_msgs/msg/CompressedImage``, JPEG/PNG). Every
problem a user can cause (a path that is not a bag, a truncated file, an unknown topic, an encoding
the pipeline cannot read) becomes a ``BagError`` whose message names the bag, topic and message.
A single undecodable compressed frame inside an otherwise good bag is skipped with a logged reason,
so a long evaluation is not lost to one bad message.

A ground-floor module: evaluation (reading bags), the ROS tools (recording, replaying) and the demo all
use it, and it imports nothing above ``bag_types``.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from dfer_ros.bag_types import typestore as dfer_typestore

log = logging.getLogger(__name__)

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE, COMPRESSED)
STORAGES = ("mcap", "sqlite3")

# raw encodings read here: name -> (numpy dtype, channels, encoding handed to the pipeline)
RAW_ENCODINGS = {
    "bgr8": (np.uint8, 3, "bgr8"), "rgb8": (np.uint8, 3, "rgb8"), "bgra8": (np.uint8, 4, "bgra8"),
    "rgba8": (np.uint8, 4, "rgba8"), "mono8": (np.uint8, 1, "mono8"), "8UC1": (np.uint8, 1, "mono8"),
    "8UC3": (np.uint8, 3, "bgr8"), "8UC4": (np.uint8, 4, "bgra8"), "mono16": (np.uint16, 1, "mono16"),
    "16UC1": (np.uint16, 1, "mono16"),
}

PathLike = Union[str, Path]


class BagError(ValueError):
    """A bag cannot be used as asked; the message names the bag (and topic/message) and the reason."""


@dataclass
class BagImage:
    """One decoded image message."""

    index: int  # position among the chosen topic's messages (0-based)
    bag_time_ns: int  # when the recorder received it
    stamp: float  # header stamp in seconds (the bag time when the header stamp is zero)
    frame_id: str
    image: np.ndarray  # (H, W, C) or (H, W) as stored; see ``encoding``
    encoding: str  # how the pipeline must read ``image`` (bgr8, rgb8, mono8, ...)


@dataclass
class BagInfo:
    path: Path
    storage: str
    topics: dict[str, tuple[str, int]]  # topic -> (type, message count)
    start_ns: int
    end_ns: int

    @property
    def image_topics(self) -> list[str]:
        return sorted(t for t, (typ, _) in self.topics.items() if typ in IMAGE_TYPES)


def bag_dir(path: PathLike) -> Path:
    """The bag folder for ``path`` (a bag folder, or a .mcap/.db3/metadata.yaml file inside one)."""
    p = Path(path)
    if not p.exists():
        raise BagError(f"{p}: no such bag (expected a rosbag2 folder with metadata.yaml)")
    if p.is_file():
        if (p.parent / "metadata.yaml").is_file():
            return p.parent
        raise BagError(f"{p}: is a file without a metadata.yaml beside it; pass the rosbag2 bag folder")
    if not (p / "metadata.yaml").is_file():
        raise BagError(f"{p}: not a rosbag2 bag (no metadata.yaml in the folder)")
    return p


@contextmanager
def open_reader(path: PathLike):
    """An open ``rosbags.highlevel.AnyReader`` on the bag; errors become ``BagError`` naming the bag."""
    from rosbags.highlevel import AnyReader

    folder = bag_dir(path)
    reader = AnyReader([folder], default_typestore=dfer_typestore())
    try:
        reader.open()
    except Exception as exc:  # rosbags raises several error classes (reader, storage, sqlite, yaml)
        raise BagError(f"{folder}: cannot open bag: {type(exc).__name__}: {exc}") from exc
    try:
        yield reader
    finally:
        try:
            reader.close()
        except Exception:  # closing a half-broken bag must not hide the first error
            pass


def bag_info(path: PathLike) -> BagInfo:
    """Topics, types, counts and time range of a bag."""
    with open_reader(path) as reader:
        topics: dict[str, tuple[str, int]] = {}
        for conn in reader.connections:
            typ, count = topics.get(conn.topic, (conn.msgtype, 0))
            topics[conn.topic] = (typ, count + conn.msgcount)
        storage = _storage_of(bag_dir(path))
        return BagInfo(bag_dir(path), storage, topics, reader.start_time, reader.end_time)


def _storage_of(folder: Path) -> str:
    from dfer_ros.user_files import read_user_yaml

    try:
        meta = read_user_yaml(folder / "metadata.yaml")
        return str(meta["rosbag2_bagfile_information"]["storage_identifier"])
    except Exception:  # only informational
        return "unknown"


def choose_image_topic(info: BagInfo, requested: Optional[str] = None) -> str:
    """``requested`` if it is an image topic of the bag; by default the bag's only image topic."""
    if requested:
        if requested not in info.topics:
            raise BagError(f"{info.path}: no topic {requested!r} in the bag; topics: "
                           + ", ".join(f"{t} ({typ})" for t, (typ, _) in sorted(info.topics.items())))
        typ = info.topics[requested][0]
        if typ not in IMAGE_TYPES:
            raise BagError(f"{info.path}: topic {requested!r} has type {typ}, not {IMAGE} or {COMPRESSED}")
        return requested
    images = info.image_topics
    if not images:
        raise BagError(f"{info.path}: the bag has no image topic ({IMAGE} or {COMPRESSED}); topics: "
                       + ", ".join(sorted(info.topics)))
    if len(images) > 1:
        raise BagError(f"{info.path}: several image topics ({', '.join(images)}); choose one with --image-topic")
    return images[0]


def decode_image(msg, msgtype: str, where: str) -> tuple[np.ndarray, str]:
    """(array, encoding for the pipeline) of a deserialized Image/CompressedImage message.

    Raises BagError for an encoding the pipeline cannot read (the whole topic is then unusable) and
    ValueError for one undecodable compressed payload (the caller skips that frame).
    """
    if msgtype == COMPRESSED:
        import cv2

        data = np.frombuffer(bytes(msg.data), np.uint8) if not isinstance(msg.data, np.ndarray) else msg.data
        fmt = str(msg.format).lower()
        if "compresseddepth" in fmt:
            raise BagError(f"{where}: compressed depth images ({msg.format!r}) are not camera images")
        if fmt and not any(k in fmt for k in ("jpeg", "jpg", "png", "bgr8", "rgb8", "mono8")):
            raise BagError(f"{where}: unsupported compressed format {msg.format!r} (JPEG or PNG expected)")
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if image is None:
            raise ValueError(f"{where}: compressed payload of {data.size} bytes could not be decoded")
        return image, "bgr8"
    encoding = str(msg.encoding)
    if encoding not in RAW_ENCODINGS:
        raise BagError(f"{where}: unsupported image encoding {encoding!r}; supported: "
                       + ", ".join(sorted(RAW_ENCODINGS)))
    dtype, channels, out_encoding = RAW_ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    itemsize = np.dtype(dtype).itemsize
    row = width * channels * itemsize
    data = msg.data if isinstance(msg.data, np.ndarray) else np.frombuffer(bytes(msg.data), np.uint8)
    if height <= 0 or width <= 0 or step < row or data.size < step * (height - 1) + row:
        raise ValueError(f"{where}: {width}x{height} {encoding} with step {step} needs "
                         f"{step * (height - 1) + row} bytes, message has {data.size}")
    rows = data[: step * height].reshape(height, step) if data.size >= step * height else \
        np.pad(data, (0, step * height - data.size)).reshape(height, step)
    pixels = np.ascontiguousarray(rows[:, :row]).view(np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<"))
    image = pixels.astype(dtype, copy=False).reshape(height, width, channels)
    if channels == 1:
        image = image[:, :, 0]
    return image, out_encoding


def read_images(path: PathLike, image_topic: Optional[str] = None, limit: Optional[int] = None,
                start: int = 0, on_skip: Optional[Callable[[int, str], None]] = None) -> Iterator[BagImage]:
    """Decoded images of one topic in bag-time order (``start``/``limit`` count messages of that topic).

    A message that cannot be used is logged and skipped. With ``on_skip`` every such message, whatever
    the reason (also an unsupported encoding, which otherwise raises BagError), is reported to it as
    (message index, reason) and skipped, so a bad FIRST image is handled like a bad image mid-bag."""
    info = bag_info(path)
    topic = choose_image_topic(info, image_topic)
    msgtype = info.topics[topic][0]
    with open_reader(path) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        index = -1
        try:
            for conn, bag_time, raw in reader.messages(connections=conns):
                index += 1
                if index < start:
                    continue
                if limit is not None and index >= start + limit:
                    break
                where = f"{info.path} topic {topic} message {index}"
                try:
                    msg = reader.deserialize(raw, conn.msgtype)
                except Exception as exc:
                    log.warning("%s: skipped, cannot deserialize: %s", where, exc)
                    if on_skip is not None:
                        on_skip(index, f"{where}: cannot deserialize: {exc}")
                    continue
                try:
                    image, encoding = decode_image(msg, msgtype, where)
                except BagError as exc:
                    if on_skip is None:
                        raise
                    log.warning("skipped: %s", exc)
                    on_skip(index, str(exc))
                    continue
                except ValueError as exc:
                    log.warning("skipped: %s", exc)
                    if on_skip is not None:
                        on_skip(index, str(exc))
                    continue
                stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
                if stamp == 0.0:
                    stamp = bag_time * 1e-9
                yield BagImage(index, int(bag_time), float(stamp), str(msg.header.frame_id), image, encoding)
        except BagError:
            raise
        except Exception as exc:  # truncated or corrupt storage file found while iterating
            raise BagError(f"{info.path}: bag is damaged after message {index} of {topic}: "
                           f"{type(exc).__name__}: {exc}") from exc


def image_stamps(path: PathLike, topic: str) -> list[float]:
    """Header stamps (bag time when zero) of every message of an image topic, without decoding pixels."""
    out: list[float] = []
    for _, _, bag_time, msg in read_messages(path, [topic]):
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        out.append(float(stamp if stamp != 0.0 else bag_time * 1e-9))
    return out


# ---------------------------------------------------------------------------------------- writing
def _storage_plugin(storage: str):
    from rosbags.rosbag2 import StoragePlugin

    if storage not in STORAGES:
        raise BagError(f"unknown bag storage {storage!r}; use one of {', '.join(STORAGES)}")
    return StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3


class BagWriter:
    """Write a new rosbag2 bag (mcap or sqlite3) with standard and dfer_ros message types.

    ``write_raw`` takes CDR bytes (from ``rclpy.serialization.serialize_message`` or a raw
    subscription) as they are; ``write`` serializes a rosbags message object.
    """

    def __init__(self, path: PathLike, storage: str = "mcap"):
        from rosbags.rosbag2 import Writer

        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"{self.path}: exists already; rosbag2 writers only create new bags")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.store = dfer_typestore()
        self._writer = Writer(self.path, version=Writer.VERSION_LATEST, storage_plugin=_storage_plugin(storage))
        self._conns: dict[str, object] = {}
        self.counts: dict[str, int] = {}

    def __enter__(self) -> "BagWriter":
        self._writer.open()
        return self

    def __exit__(self, *exc) -> None:
        self._writer.close()

    def add_topic(self, topic: str, msgtype: str) -> None:
        if topic in self._conns:
            return
        if msgtype not in self.store.fielddefs:
            raise BagError(f"{self.path}: unknown message type {msgtype!r} for topic {topic}")
        self._conns[topic] = self._writer.add_connection(topic, msgtype, typestore=self.store)
        self.counts[topic] = 0

    def write_raw(self, topic: str, msgtype: str, time_ns: int, data: Union[bytes, memoryview]) -> None:
        self.add_topic(topic, msgtype)
        self._writer.write(self._conns[topic], int(time_ns), data)
        self.counts[topic] += 1

    def write(self, topic: str, msgtype: str, time_ns: int, msg) -> None:
        self.write_raw(topic, msgtype, time_ns, self.store.serialize_cdr(msg, msgtype))


def image_message(store, image: np.ndarray, stamp: float, frame_id: str = "camera", compressed: bool = False,
                  jpeg_quality: int = 95):
    """A rosbags ``sensor_msgs/msg/Image`` (bgr8) or ``CompressedImage`` (jpeg) for a BGR uint8 image."""
    Header = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    sec = int(np.floor(stamp))
    header = Header(stamp=Time(sec=sec, nanosec=int(round((stamp - sec) * 1e9)) % 1_000_000_000), frame_id=frame_id)
    if compressed:
        import cv2

        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        return store.types[COMPRESSED](header=header, format="jpeg", data=buf.reshape(-1).astype(np.uint8))
    h, w = image.shape[:2]
    return store.types[IMAGE](header=header, height=h, width=w, encoding="bgr8", is_bigendian=0, step=w * 3,
                              data=np.ascontiguousarray(image, np.uint8).reshape(-1))


def write_image_bag(path: PathLike, frames: Iterable[tuple[float, np.ndarray]], topic: str = "/camera/image_raw",
                    storage: str = "mcap", compressed: bool = False, frame_id: str = "camera") -> int:
    """Write (stamp seconds, BGR image) pairs as one image topic; bag time = header stamp. Returns the count."""
    n = 0
    with BagWriter(path, storage) as writer:
        msgtype = COMPRESSED if compressed else IMAGE
        for stamp, image in frames:
            msg = image_message(writer.store, image, stamp, frame_id, compressed)
            writer.write(topic, msgtype, int(round(stamp * 1e9)), msg)
            n += 1
    return n


def video_frames(video: PathLike, limit: Optional[int] = None, start_stamp: float = 0.0,
                 fps: Optional[float] = None) -> Iterator[tuple[float, np.ndarray]]:
    """(stamp, BGR frame) of a video file; stamps = start_stamp + index / fps (the file's rate by default)."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise BagError(f"{video}: cannot open video")
    rate = fps or cap.get(cv2.CAP_PROP_FPS) or 25.0
    i = 0
    try:
        while limit is None or i < limit:
            ok, frame = cap.read()
            if not ok:
                break
            yield start_stamp + i / rate, frame
            i += 1
    finally:
        cap.release()


def video_to_bag(video: PathLike, out: PathLike, topic: str = "/camera/image_raw", storage: str = "mcap",
                 compressed: bool = False, limit: Optional[int] = None, start_stamp: float = 1000.0) -> int:
    """Turn a video file into an image bag (test data, demos); returns the number of frames written."""
    return write_image_bag(out, video_frames(video, limit, start_stamp), topic, storage, compressed)


def read_messages(path: PathLike, topics: Optional[Sequence[str]] = None) -> Iterator[tuple[str, str, int, object]]:
    """(topic, type, bag time ns, deserialized message) of every message (optionally only ``topics``)."""
    with open_reader(path) as reader:
        conns = [c for c in reader.connections if topics is None or c.topic in topics]
        if topics is not None:
            missing = set(topics) - {c.topic for c in conns}
            if missing:
                raise BagError(f"{bag_dir(path)}: no topic(s) {', '.join(sorted(missing))} in the bag")
        try:
            for conn, bag_time, raw in reader.messages(connections=conns):
                yield conn.topic, conn.msgtype, int(bag_time), reader.deserialize(raw, conn.msgtype)
        except BagError:
            raise
        except Exception as exc:
            raise BagError(f"{bag_dir(path)}: bag is damaged: {type(exc).__name__}: {exc}") from exc


def read_raw(path: PathLike, topics: Optional[Sequence[str]] = None) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, type, bag time ns, CDR bytes) of every message, for replay."""
    with open_reader(path) as reader:
        conns = [c for c in reader.connections if topics is None or c.topic in topics]
        try:
            for conn, bag_time, raw in reader.messages(connections=conns):
                yield conn.topic, conn.msgtype, int(bag_time), bytes(raw)
        except Exception as exc:
            raise BagError(f"{bag_dir(path)}: bag is damaged: {type(exc).__name__}: {exc}") from exc
