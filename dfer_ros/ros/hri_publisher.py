"""REP-155 (ROS4HRI) output: the node's per-face results as ``hri_msgs`` topics under ``/humans`` (docs/rep155.md).

Both modes (``hri.mode``) publish:

* ``/humans/faces/tracked`` (``hri_msgs/IdsList``): the ids of the faces tracked in the newest image;
* ``/humans/faces/<id>/expression`` (``hri_msgs/Expression``): expression label, valence, arousal, confidence;
* ``/humans/faces/<id>/facs`` (``hri_msgs/FacialActionUnits``): one intensity and one confidence per FACS code;
* ``/humans/persons/tracked`` (``hri_msgs/IdsList``): the person ids (re-identification, ``p1``, ...) of the faces
  in the newest image;
* ``/humans/persons/<id>/face_id`` (``std_msgs/String``, latched: transient local, depth 1): the face id of that
  person now, published when it changes;
* ``/humans/persons/known`` (``hri_msgs/IdsList``): every person the re-identification gallery knows, in view
  or not (forgotten or expired persons leave it).

"producer" (the stack's only face producer) adds per face ``roi`` (``NormalizedRegionOfInterest2D``),
``landmarks`` (``FacialLandmarks``: our five points in the message's slots, the rest c = 0; only for the images
the face was detected in with landmarks), ``cropped`` and ``aligned`` (``sensor_msgs/Image``, 128 x 128 bgr8,
cut only for subscribers; ``aligned`` of a coasting face uses its last detected landmarks, carried with its box),
and per person ``anonymous`` (latched ``std_msgs/Bool``) and ``engagement_status`` (``EngagementLevel`` from
``perception.engagement``).

The per-face and per-person publishers are created when a face id (person id) first appears and destroyed when
it leaves, so their topics come and go with the faces, as REP-155 describes. A volatile per-face or per-person
topic nobody subscribes to gets no message built. The names are absolute (REP-155 puts every human under
``/humans``), so the node's namespace does not apply to them. REP-155 names no QoS; the publishers use the ROS 2
default profile (reliable, volatile, keep last 10), which every subscriber QoS matches, including libhri's
``SystemDefaultsQoS``.

Everything is derived from the ``FaceAffectArray`` the node publishes on ``faces/affect`` for the same image
(same header, same values), so the two outputs cannot disagree. ``hri_msgs`` is optional: this module imports
it only when the ``hri.enabled`` parameter asks for the topics.
"""
from __future__ import annotations

import array
import functools
import importlib
import math
import re
import threading
from typing import Any, Callable, Optional

import cv2
import numpy as np

from dfer_ros.perception.engagement import off_axis_degrees
from dfer_ros.perception.reid import person_order
from dfer_ros.vocabulary import canonical_expression

HUMANS_FACES = "/humans/faces"
HUMANS_PERSONS = "/humans/persons"
AU_CODES = 99  # hri_msgs/FacialActionUnits: intensity[99] and confidence[99], indexed by FACS code

# Canonical expression names (dfer_ros.vocabulary) whose hri_msgs/Expression constant is spelled differently;
# the others (happy, sad, angry, neutral) are the same word, and a label with no constant (contempt, anxiety,
# other, ...) is published in its canonical lowercase form.
REP155_EXPRESSIONS = {"surprise": "surprised", "disgust": "disgusted", "fear": "scared",
                      "disappointment": "disappointed"}


def hri_msgs_available() -> bool:
    """Whether ``hri_msgs.msg`` (the ROS4HRI interface package) can be imported here."""
    try:
        importlib.import_module("hri_msgs.msg")
        return True
    except ImportError:
        return False


def rep155_expression(label: str) -> str:
    """The ``hri_msgs/Expression.expression`` string for one of our labels ('' stays '')."""
    canonical = canonical_expression(label)
    return REP155_EXPRESSIONS.get(canonical, canonical)


def au_code(name: str) -> Optional[int]:
    """The FACS code of an action unit name such as 'AU12' (None when it has none in 0..98)."""
    match = re.fullmatch(r"\s*AU\s*0*(\d+)\s*", name, flags=re.IGNORECASE)
    if not match:
        return None
    code = int(match.group(1))
    return code if code < AU_CODES else None


@functools.lru_cache(maxsize=64)
def _au_codes(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(positions in ``names`` of the AUs with a FACS code, their codes): the model's AU names are the same on every
    image, so the names are parsed once."""
    pairs = [(i, au_code(name)) for i, name in enumerate(names)]
    pairs = [(i, code) for i, code in pairs if code is not None]
    return np.array([i for i, _ in pairs], np.intp), np.array([code for _, code in pairs], np.intp)


def facs_arrays(names, probabilities) -> tuple[np.ndarray, np.ndarray]:
    """(intensity[99], confidence[99]) from our per-AU probabilities, as float32 arrays (the message's own type,
    so setting them copies nothing).

    intensity[code] is our probability that the AU is active (0..1; not a FACS A-E intensity);
    confidence[code] is how decided that probability is, |2p - 1|; both are 0 for codes the model does not
    estimate, so a consumer tells "not estimated" (confidence 0, intensity 0) from an estimate.
    """
    intensity = np.zeros(AU_CODES, np.float32)
    confidence = np.zeros(AU_CODES, np.float32)
    names = tuple(names)
    probs = np.asarray(probabilities, np.float64).reshape(-1)
    if len(names) != probs.size:
        n = min(len(names), probs.size)
        names, probs = names[:n], probs[:n]
    where, codes = _au_codes(names)
    if where.size:
        p = probs[where]
        usable = np.isfinite(p)
        p = np.clip(p[usable], 0.0, 1.0)
        intensity[codes[usable]] = p
        confidence[codes[usable]] = np.abs(2.0 * p - 1.0)
    return intensity, confidence


# FacialLandmarks slots of our five landmarks (right eye, left eye, nose tip, right mouth corner, left mouth corner;
# the subject's right/left, as the message's OpenPose/dlib layout): the detector's eye points are eye centres.
LANDMARK_SLOTS = ("RIGHT_PUPIL", "LEFT_PUPIL", "NOSE", "MOUTH_OUTER_RIGHT", "MOUTH_OUTER_LEFT")
LANDMARKS = 70  # hri_msgs/FacialLandmarks: NormalizedPointOfInterest2D[70]
FACE_IMAGE_SIDE = 128  # REP-155's /humans/faces/width and /height default: the side of cropped and aligned
MODES = ("beside", "producer")


def normalized_box(x: float, y: float, w: float, h: float, width: int, height: int) -> tuple[float, ...]:
    """(xmin, ymin, xmax, ymax) of a pixel box, normalised to the image and clipped to [0, 1]."""
    clip = lambda v: min(1.0, max(0.0, float(v)))  # noqa: E731
    return clip(x / width), clip(y / height), clip((x + w) / width), clip((y + h) / height)


def landmark_points(flat, score: float, width: int, height: int) -> list[tuple[float, float, float]]:
    """(x, y, c) for each of ``LANDMARK_SLOTS`` from our flattened five points (pixels): normalised to the image,
    with the detection score as c. (0, 0, 0) where we have no point (no landmarks from the detector, a
    non-finite value): c = 0, no confidence at all, is how a not-estimated landmark reads; the other 65 slots of
    the message stay so too."""
    missing = [(0.0, 0.0, 0.0)] * len(LANDMARK_SLOTS)
    values = [float(v) for v in flat]
    if len(values) != 2 * len(LANDMARK_SLOTS):
        return missing
    c = min(1.0, max(0.0, float(score)))
    out = []
    for i in range(len(LANDMARK_SLOTS)):
        x, y = values[2 * i], values[2 * i + 1]
        out.append((min(1.0, max(0.0, x / width)), min(1.0, max(0.0, y / height)), c)
                   if math.isfinite(x) and math.isfinite(y) else (0.0, 0.0, 0.0))
    return out


def cropped_face(frame_bgr: np.ndarray, box, side: int = FACE_IMAGE_SIDE) -> np.ndarray:
    """REP-155 ``cropped``: the face box scaled to fit ``side`` x ``side`` (aspect kept), centred, 0-padded."""
    height, width = frame_bgr.shape[:2]
    x0, y0 = max(0, int(round(box[0]))), max(0, int(round(box[1])))
    x1, y1 = min(width, int(round(box[0] + box[2]))), min(height, int(round(box[1] + box[3])))
    out = np.zeros((side, side, 3), np.uint8)
    if x1 <= x0 or y1 <= y0:
        return out
    region = frame_bgr[y0:y1, x0:x1]
    scale = side / max(x1 - x0, y1 - y0)
    w, h = max(1, min(side, int(round((x1 - x0) * scale)))), max(1, min(side, int(round((y1 - y0) * scale))))
    scaled = cv2.resize(region, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    ox, oy = (side - w) // 2, (side - h) // 2
    out[oy:oy + h, ox:ox + w] = scaled
    return out


def carried_landmarks(flat_landmarks, from_box, to_box) -> list[float]:
    """Landmarks found in ``from_box`` (pixels, x y w h) moved and scaled with the box to ``to_box``: where a face
    that was detected in ``from_box`` and is now predicted at ``to_box`` has them ([] without landmarks or with a
    degenerate box)."""
    values = np.asarray(list(flat_landmarks), np.float64)
    x0, y0, w0, h0 = (float(v) for v in from_box)
    x1, y1, w1, h1 = (float(v) for v in to_box)
    if values.size != 2 * len(LANDMARK_SLOTS) or w0 <= 0 or h0 <= 0 or not np.isfinite(values).all():
        return []
    points = values.reshape(-1, 2)
    moved = (points - (x0, y0)) * (w1 / w0, h1 / h0) + (x1, y1)
    return [float(v) for v in moved.reshape(-1)]


def aligned_face(frame_bgr: np.ndarray, box, flat_landmarks, side: int = FACE_IMAGE_SIDE) -> np.ndarray:
    """REP-155 ``aligned``: the face warped so its eyes are level (5-point similarity transform onto the template
    of ``perception.alignment``), same side as ``cropped``, 0-padded; a square box crop without landmarks."""
    from dfer_ros.perception.alignment import align_face
    from dfer_ros.perception.model_interface import CropSpec
    from dfer_ros.perception.types import Detection

    values = np.asarray(list(flat_landmarks), np.float32)
    landmarks = values.reshape(5, 2) if values.size == 10 else None
    face = Detection(box=np.asarray(box, np.float32), score=1.0, landmarks=landmarks)
    return align_face(frame_bgr, face, CropSpec(size=side, face_scale=1.0, color="bgr"), border="constant")


class HriPublisher:
    """Publishes one image's faces on the REP-155 topics; owns the per-face and per-person publishers of ``node``.

    ``mode`` "beside" (next to hri_face_detect): /humans/faces/tracked, expression and facs per face, the person
    lists and face_id. "producer" (this node is the stack's only face producer) adds per face ``roi``,
    ``landmarks``, ``cropped`` and ``aligned`` (the images made only while someone subscribes), and per person
    ``anonymous`` and ``engagement_status`` (``perception.engagement``)."""

    def __init__(self, node, qos_depth: int = 10, mode: str = "beside", engagement=None,
                 face_side: int = FACE_IMAGE_SIDE):
        from rclpy.event_handler import PublisherEventCallbacks
        from rclpy.qos import DurabilityPolicy, QoSProfile
        from sensor_msgs.msg import Image
        from std_msgs.msg import Bool, String

        from dfer_ros.perception.engagement import Engagement

        if mode not in MODES:
            raise ValueError(f"hri mode must be one of {', '.join(MODES)}, got {mode!r}")
        msgs = importlib.import_module("hri_msgs.msg")
        self._msgs = msgs
        self._String, self._Bool, self._Image = String, Bool, Image
        self._latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._IdsList, self._Expression, self._Facs = msgs.IdsList, msgs.Expression, msgs.FacialActionUnits
        self._slots = [getattr(msgs.FacialLandmarks, name) for name in LANDMARK_SLOTS]
        self.mode = mode
        self.producer = mode == "producer"
        self.engagement = Engagement(engagement)
        self.face_side = int(face_side)
        self.images_made = 0  # cropped/aligned images built (only for subscribed topics)
        self._node = node
        self._qos = QoSProfile(depth=qos_depth)
        # per-face and per-person publishers get no QoS event handlers: rclpy adds two waitables (incompatible QoS
        # and type warnings) per publisher to the node, and the executor walks every waitable on each wake-up, which
        # at 25 faces (225 publishers) cost the node's executor thread about 26 ms an image (docs/rep155.md, Cost)
        self._no_events = PublisherEventCallbacks(use_default_callbacks=False)
        self._tracked_pub = node.create_publisher(self._IdsList, f"{HUMANS_FACES}/tracked", self._qos)
        self._persons_pub = node.create_publisher(self._IdsList, f"{HUMANS_PERSONS}/tracked", self._qos)
        self._known_pub = node.create_publisher(self._IdsList, f"{HUMANS_PERSONS}/known", self._qos)
        self._persons: dict[str, dict[str, Any]] = {}  # person id -> {"face_id": pub, ..., "last": face id}
        self._faces: dict[str, dict[str, Any]] = {}  # face id -> {"expression": pub, "facs": pub, ...}
        # face id -> (landmarks, box) of the last image it was detected in with landmarks (producer mode): a
        # coasting face's aligned image is cut on them, moved with its box
        self._carried: dict[str, tuple[list[float], tuple[float, ...]]] = {}
        self._lock = threading.Lock()  # the worker publishes while a lifecycle transition may end all faces

    @property
    def face_ids(self) -> list[str]:
        return list(self._faces)

    def topic_publishers(self) -> list:
        """The per-face and per-person publishers now (for benchmarks that wait for their subscribers)."""
        with self._lock:
            return [pub for group in list(self._faces.values()) + list(self._persons.values())
                    for name, pub in group.items() if name != "last" and not name.endswith("_msg")]

    def set_engagement_config(self, config) -> None:
        """A run-time change of the engagement.* parameters (the states so far are kept)."""
        self.engagement.config = config

    def publish(self, affect, known_people=(), image_size: Optional[tuple[int, int]] = None,
                frame: Optional[Callable[[], np.ndarray]] = None, stamp: Optional[float] = None) -> None:
        """Publish the faces of one ``dfer_ros/FaceAffectArray`` (one processed image), and the persons known
        then (``known_people``, sorted). Producer mode also needs ``image_size`` (width, height) and ``frame``, a
        callable returning the image as bgr8, called only when a cropped or aligned topic has a subscriber;
        ``stamp`` (seconds) times engagement (default: the header's stamp)."""
        with self._lock:
            if self._tracked_pub is not None:
                self._publish(affect, image_size, frame, stamp)
                self._known_pub.publish(self._IdsList(header=affect.header, ids=list(known_people)))

    def _publish(self, affect, image_size, frame, stamp) -> None:
        ids = [face.face_id for face in affect.faces]
        for gone in [i for i in self._faces if i not in ids]:
            self._end_face(gone)
        images = _LazyFrame(frame)
        for face in affect.faces:
            pubs = self._faces.get(face.face_id)
            if pubs is None:
                pubs = self._faces[face.face_id] = self._start_face(face.face_id)
            if _wanted(pubs["expression"]):
                pubs["expression"].publish(self._expression(pubs, affect.header, face))
            if len(face.action_units.names) and _wanted(pubs["facs"]):
                pubs["facs"].publish(self._facs(pubs, affect.header, face))
            if self.producer and image_size is not None:
                self._publish_producer(pubs, affect.header, face, image_size, images)
        self._tracked_pub.publish(self._IdsList(header=affect.header, ids=ids))
        if self.producer:
            when = stamp if stamp is not None else affect.header.stamp.sec + affect.header.stamp.nanosec * 1e-9
            for face in affect.faces:
                q = face.quality
                angle = off_axis_degrees(float(q.yaw), float(q.pitch)) if q.head_pose_valid else None
                self.engagement.update(face.face_id, when, angle)
        self._publish_persons(affect)

    def _publish_producer(self, pubs, header, face, image_size, images) -> None:
        width, height = image_size
        r = face.roi
        if _wanted(pubs["roi"]):
            xmin, ymin, xmax, ymax = normalized_box(r.x_offset, r.y_offset, r.width, r.height, width, height)
            msg = _reused(pubs, "roi_msg", self._msgs.NormalizedRegionOfInterest2D)
            msg.header, msg.xmin, msg.ymin, msg.xmax, msg.ymax = header, xmin, ymin, xmax, ymax
            msg.c = min(1.0, max(0.0, float(face.detection_score)))
            pubs["roi"].publish(msg)
        box = (r.x_offset, r.y_offset, r.width, r.height)
        fresh = face.detected and len(face.landmarks) == 2 * len(LANDMARK_SLOTS)
        if fresh:
            self._carried[face.face_id] = (list(face.landmarks), box)
        elif face.detected:
            self._carried.pop(face.face_id, None)  # detected without landmarks: nothing to carry any more
        if fresh and _wanted(pubs["landmarks"]):
            # only points found in this image: a coasting face (its box predicted, no landmarks in faces/affect)
            # gets no message, so consumers keep the last detected points instead of an all-c = 0 message;
            # one message per face, reused: only our five slots change (the publish serialises it at once)
            msg = pubs.get("landmarks_msg")
            if msg is None:
                msg = pubs["landmarks_msg"] = self._msgs.FacialLandmarks(
                    landmarks=[self._msgs.NormalizedPointOfInterest2D() for _ in range(LANDMARKS)])
            msg.header, msg.width, msg.height = header, int(width), int(height)
            for slot, (x, y, c) in zip(self._slots, landmark_points(face.landmarks, face.detection_score, width,
                                                                    height)):
                point = msg.landmarks[slot]
                point.x, point.y, point.c = x, y, c
            pubs["landmarks"].publish(msg)
        for name, make in (("cropped", lambda img: cropped_face(img, box, self.face_side)),
                           ("aligned", lambda img: aligned_face(img, box, self.alignment_landmarks(face, box),
                                                                self.face_side))):
            pub = pubs[name]
            if not _wanted(pub) or images.get() is None:
                continue  # nobody asks: no image is cut
            crop = make(images.get())
            self.images_made += 1
            msg = _reused(pubs, f"{name}_msg", self._Image)
            msg.header, msg.height, msg.width, msg.encoding = header, crop.shape[0], crop.shape[1], "bgr8"
            msg.is_bigendian, msg.step = 0, crop.shape[1] * 3
            msg.data = array.array("B", crop.tobytes())
            pub.publish(msg)

    def alignment_landmarks(self, face, box) -> list[float]:
        """The landmarks ``aligned`` is cut on: this image's when the face was detected in it, else (coasting) the
        last detected ones moved from the box they were found in to ``box``; [] (a box crop) without either."""
        if face.detected:
            return list(face.landmarks)
        carried = self._carried.get(face.face_id)
        return carried_landmarks(carried[0], carried[1], box) if carried else []

    def _publish_persons(self, affect) -> None:
        face_of = {face.person_id: face.face_id for face in affect.faces if getattr(face, "person_id", "")}
        for gone in [p for p in self._persons if p not in face_of]:
            self._end_person(gone)
        for person_id, face_id in face_of.items():
            pubs = self._persons.get(person_id)
            if pubs is None:
                pubs = self._persons[person_id] = self._start_person(person_id)
            if face_id != pubs["last"]:
                pubs["face_id"].publish(self._String(data=face_id))
                pubs["last"] = face_id
            if self.producer and _wanted(pubs["engagement_status"]):
                level = int(self.engagement.level(face_id))
                pubs["engagement_status"].publish(self._msgs.EngagementLevel(header=affect.header, level=level))
        self._persons_pub.publish(self._IdsList(header=affect.header, ids=sorted(face_of, key=person_order)))

    def end_all(self, header=None) -> None:
        """No face any more (deactivate): an empty tracked list, and every per-face topic withdrawn."""
        with self._lock:
            for face_id in list(self._faces):
                self._end_face(face_id)
            for person_id in list(self._persons):
                self._end_person(person_id)
            if header is not None and self._tracked_pub is not None:
                self._tracked_pub.publish(self._IdsList(header=header, ids=[]))
                self._persons_pub.publish(self._IdsList(header=header, ids=[]))

    def close(self) -> None:
        """Destroy every publisher this object created (idempotent)."""
        self.end_all()
        with self._lock:
            if self._tracked_pub is not None:
                self._node.destroy_publisher(self._tracked_pub)
                self._node.destroy_publisher(self._persons_pub)
                self._node.destroy_publisher(self._known_pub)
                self._tracked_pub = self._persons_pub = self._known_pub = None

    # ------------------------------------------------------------------ per face and person
    def _start_face(self, face_id: str) -> dict[str, Any]:
        root = f"{HUMANS_FACES}/{face_id}"
        types = {"expression": self._Expression, "facs": self._Facs}
        if self.producer:
            types.update(roi=self._msgs.NormalizedRegionOfInterest2D, landmarks=self._msgs.FacialLandmarks,
                         cropped=self._Image, aligned=self._Image)
        return {name: self._publisher(kind, f"{root}/{name}", self._qos) for name, kind in types.items()}

    def _publisher(self, kind, topic: str, qos):
        """A per-face or per-person publisher (without QoS event handlers, see ``__init__``)."""
        return self._node.create_publisher(kind, topic, qos, event_callbacks=self._no_events)

    def _end_face(self, face_id: str) -> None:
        for name, pub in self._faces.pop(face_id).items():
            if not name.endswith("_msg"):
                self._node.destroy_publisher(pub)
        self._carried.pop(face_id, None)
        self.engagement.end(face_id)

    def _start_person(self, person_id: str) -> dict[str, Any]:
        root = f"{HUMANS_PERSONS}/{person_id}"
        pubs: dict[str, Any] = {"face_id": self._publisher(self._String, f"{root}/face_id", self._latched), "last": ""}
        if self.producer:
            # a re-identified person: its id is kept across tracks (and restarts with reid.gallery_file)
            pubs["anonymous"] = self._publisher(self._Bool, f"{root}/anonymous", self._latched)
            pubs["anonymous"].publish(self._Bool(data=False))
            pubs["engagement_status"] = self._publisher(self._msgs.EngagementLevel, f"{root}/engagement_status",
                                                        self._qos)
        return pubs

    def _end_person(self, person_id: str) -> None:
        for name, pub in self._persons.pop(person_id).items():
            if name != "last":
                self._node.destroy_publisher(pub)

    # The per-face messages are made once per face and reused (``_reused``): publish serialises a message at once,
    # and making a message also makes a default header and arrays that are replaced straight away.
    def _expression(self, pubs, header, face):
        msg = _reused(pubs, "expression_msg", self._Expression)
        msg.header, msg.expression = header, rep155_expression(face.expression.expression)
        msg.valence, msg.arousal = float(face.valence_arousal.valence), float(face.valence_arousal.arousal)
        msg.confidence = float(face.expression.confidence)
        return msg

    def _facs(self, pubs, header, face):
        msg = _reused(pubs, "facs_msg", self._Facs)
        msg.header = header
        msg.intensity, msg.confidence = facs_arrays(face.action_units.names, face.action_units.probabilities)
        return msg


def _reused(pubs: dict, key: str, kind):
    """The message of type ``kind`` kept in a face's ``pubs`` under ``key`` (made on first use)."""
    msg = pubs.get(key)
    if msg is None:
        msg = pubs[key] = kind()
    return msg


def _wanted(publisher) -> bool:
    """Whether a volatile topic has a subscriber: a message nobody receives is not built (REP-155 consumers such as
    libhri subscribe to the per-face topics they use)."""
    return publisher.get_subscription_count() > 0


class _LazyFrame:
    """The image as bgr8, converted on the first ``get`` of an image (none when no cropped/aligned is wanted)."""

    def __init__(self, make: Optional[Callable[[], np.ndarray]]):
        self._make, self._frame, self._done = make, None, False

    def get(self) -> Optional[np.ndarray]:
        if not self._done:
            self._frame, self._done = (self._make() if self._make is not None else None), True
        return self._frame


UNAVAILABLE = "REP-155 topics (hri.enabled): the hri_msgs package is not importable (install ros-jazzy-hri-msgs)"


def create_if_enabled(node, enabled: bool, mode: str = "beside", engagement=None) -> Optional[HriPublisher]:
    """The REP-155 publisher when ``enabled`` and ``hri_msgs`` is importable, else None (see ``missing_parts``)."""
    if not enabled or not hri_msgs_available():
        return None
    return HriPublisher(node, mode=mode, engagement=engagement)


def missing_parts(enabled: bool, publisher: Optional[HriPublisher]) -> tuple[str, ...]:
    """What the node reports as missing (logged and in /diagnostics) when the topics were asked for but cannot be."""
    return (UNAVAILABLE,) if enabled and publisher is None else ()
