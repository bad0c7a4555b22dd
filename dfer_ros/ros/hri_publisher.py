"""REP-155 (ROS4HRI) output: the node's per-face results as ``hri_msgs`` topics under ``/humans/faces``.

Existing HRI stacks (libhri / pyhri consumers, PAL robots) read faces from:

* ``/humans/faces/tracked`` (``hri_msgs/IdsList``): the ids of the faces tracked in the newest image;
* ``/humans/faces/<id>/expression`` (``hri_msgs/Expression``): expression label, valence, arousal, confidence;
* ``/humans/faces/<id>/facs`` (``hri_msgs/FacialActionUnits``): one intensity and one confidence per FACS code;
* ``/humans/persons/tracked`` (``hri_msgs/IdsList``): the person ids (re-identification, ``p1``, ...) of the faces
  in the newest image;
* ``/humans/persons/<id>/face_id`` (``std_msgs/String``, latched: transient local, depth 1): the face id of that
  person now, published when it changes;
* ``/humans/persons/known`` (``hri_msgs/IdsList``): every person the re-identification gallery knows, in view
  or not (forgotten or expired persons leave it).

The per-face publishers are created when a face id first appears and destroyed when it leaves the tracked
list, so the per-face topics come and go with the faces, as REP-155 describes. The names are absolute (REP-155
puts every human under ``/humans``), so the node's namespace does not apply to them. REP-155 names no QoS;
the publishers use the ROS 2 default profile (reliable, volatile, keep last 10), which every subscriber QoS
matches, including libhri's ``SystemDefaultsQoS``.

Everything is derived from the ``FaceAffectArray`` the node publishes on ``faces/affect`` for the same image
(same header, same values), so the two outputs cannot disagree. ``hri_msgs`` is optional: this module imports
it only when the ``hri.enabled`` parameter asks for the topics.
"""
from __future__ import annotations

import importlib
import math
import re
import threading
from typing import Any, Optional

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


def facs_arrays(names, probabilities) -> tuple[list[float], list[float]]:
    """(intensity[99], confidence[99]) from our per-AU probabilities.

    intensity[code] is our probability that the AU is active (0..1; not a FACS A-E intensity);
    confidence[code] is how decided that probability is, |2p - 1|; both are 0 for codes the model does not
    estimate, so a consumer tells "not estimated" (confidence 0, intensity 0) from an estimate.
    """
    intensity = [0.0] * AU_CODES
    confidence = [0.0] * AU_CODES
    for name, p in zip(names, probabilities):
        code = au_code(name)
        if code is None or not math.isfinite(float(p)):
            continue
        p = min(1.0, max(0.0, float(p)))
        intensity[code] = p
        confidence[code] = abs(2.0 * p - 1.0)
    return intensity, confidence


class HriPublisher:
    """Publishes one image's faces on the REP-155 topics; owns the per-face publishers of ``node``."""

    def __init__(self, node, qos_depth: int = 10):
        from rclpy.qos import DurabilityPolicy, QoSProfile
        from std_msgs.msg import String

        msgs = importlib.import_module("hri_msgs.msg")
        self._String = String
        self._latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._IdsList, self._Expression, self._Facs = msgs.IdsList, msgs.Expression, msgs.FacialActionUnits
        self._node = node
        self._qos = QoSProfile(depth=qos_depth)
        self._tracked_pub = node.create_publisher(self._IdsList, f"{HUMANS_FACES}/tracked", self._qos)
        self._persons_pub = node.create_publisher(self._IdsList, f"{HUMANS_PERSONS}/tracked", self._qos)
        self._known_pub = node.create_publisher(self._IdsList, f"{HUMANS_PERSONS}/known", self._qos)
        self._persons: dict[str, tuple[Any, str]] = {}  # person id -> (face_id publisher, face id last published)
        self._faces: dict[str, tuple[Any, Any]] = {}  # face id -> (expression publisher, facs publisher)
        self._lock = threading.Lock()  # the worker publishes while a lifecycle transition may end all faces

    @property
    def face_ids(self) -> list[str]:
        return list(self._faces)

    def publish(self, affect, known_people=()) -> None:
        """Publish the faces of one ``dfer_ros/FaceAffectArray`` (one processed image), and the persons known
        then (``known_people``, sorted)."""
        with self._lock:
            if self._tracked_pub is not None:
                self._publish(affect)
                self._known_pub.publish(self._IdsList(header=affect.header, ids=list(known_people)))

    def _publish(self, affect) -> None:
        ids = [face.face_id for face in affect.faces]
        for gone in [i for i in self._faces if i not in ids]:
            self._end_face(gone)
        for face in affect.faces:
            pubs = self._faces.get(face.face_id)
            if pubs is None:
                pubs = self._faces[face.face_id] = self._start_face(face.face_id)
            expression_pub, facs_pub = pubs
            expression_pub.publish(self._expression(affect.header, face))
            if len(face.action_units.names):
                facs_pub.publish(self._facs(affect.header, face))
        self._tracked_pub.publish(self._IdsList(header=affect.header, ids=ids))
        self._publish_persons(affect)

    def _publish_persons(self, affect) -> None:
        face_of = {face.person_id: face.face_id for face in affect.faces if getattr(face, "person_id", "")}
        for gone in [p for p in self._persons if p not in face_of]:
            self._node.destroy_publisher(self._persons.pop(gone)[0])
        for person_id, face_id in face_of.items():
            pub, last = self._persons.get(person_id, (None, ""))
            if pub is None:
                pub = self._node.create_publisher(self._String, f"{HUMANS_PERSONS}/{person_id}/face_id", self._latched)
            if face_id != last:
                pub.publish(self._String(data=face_id))
            self._persons[person_id] = (pub, face_id)
        self._persons_pub.publish(self._IdsList(header=affect.header, ids=sorted(face_of, key=person_order)))

    def end_all(self, header=None) -> None:
        """No face any more (deactivate): an empty tracked list, and every per-face topic withdrawn."""
        with self._lock:
            for face_id in list(self._faces):
                self._end_face(face_id)
            for person_id in list(self._persons):
                self._node.destroy_publisher(self._persons.pop(person_id)[0])
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

    # ------------------------------------------------------------------ per face
    def _start_face(self, face_id: str):
        root = f"{HUMANS_FACES}/{face_id}"
        return (self._node.create_publisher(self._Expression, f"{root}/expression", self._qos),
                self._node.create_publisher(self._Facs, f"{root}/facs", self._qos))

    def _end_face(self, face_id: str) -> None:
        for pub in self._faces.pop(face_id):
            self._node.destroy_publisher(pub)

    def _expression(self, header, face):
        return self._Expression(header=header, expression=rep155_expression(face.expression.expression),
                                valence=float(face.valence_arousal.valence),
                                arousal=float(face.valence_arousal.arousal),
                                confidence=float(face.expression.confidence))

    def _facs(self, header, face):
        intensity, confidence = facs_arrays(face.action_units.names, face.action_units.probabilities)
        return self._Facs(header=header, intensity=intensity, confidence=confidence)


UNAVAILABLE = "REP-155 topics (hri.enabled): the hri_msgs package is not importable (install ros-jazzy-hri-msgs)"


def create_if_enabled(node, enabled: bool) -> Optional[HriPublisher]:
    """The REP-155 publisher when ``enabled`` and ``hri_msgs`` is importable, else None (see ``missing_parts``)."""
    if not enabled or not hri_msgs_available():
        return None
    return HriPublisher(node)


def missing_parts(enabled: bool, publisher: Optional[HriPublisher]) -> tuple[str, ...]:
    """What the node reports as missing (logged and in /diagnostics) when the topics were asked for but cannot be."""
    return (UNAVAILABLE,) if enabled and publisher is None else ()
