"""Re-identification: which person (``p1``, ``p2``, ...) each track (``f1``, ``f2``, ...) is.

Why: REP-155 separates faces (one per track) from persons (one per human, kept across tracks). A track gets a
person id from the gallery (``perception.gallery``) the first time a descriptor of its face is computed, and
keeps it for its life; the gallery gets better views of that person as the track goes on.

Keeping the descriptor off the hot path (it costs ~10x the expression net per face):
  * when: a face is described when its track starts, and again only when the face is clearly better than
    the best view so far (box area ``refresh_size_gain`` x larger, or ``refresh_yaw_gain_degrees`` more
    frontal), at most every ``refresh_seconds`` per track, never on every frame. Faces whose quality makes the
    pipeline abstain are not described. In steady state (nobody new, nobody coming closer) no descriptor runs.
  * how many: at most ``max_per_frame`` faces per frame (new tracks first, then the largest faces).
  * where: on a worker thread of its own (ONNX Runtime releases the GIL), submitted on frame n and merged
    on frame n+1 (waiting if it is still running), like the pipeline's background stages: the descriptor
    overlaps the rest of frame n and the next frame's decoding, detection and tracking, and results do not
    depend on thread timing. A new track therefore has its person id from its second processed frame on.
"""
from __future__ import annotations

import logging
import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from dfer_ros.perception.native_threads import name_native_thread
from dfer_ros.perception.gallery import GalleryFileError, PersonGallery
from dfer_ros.perception.model_interface import FaceDescriptor

log = logging.getLogger(__name__)


@dataclass
class _TrackIdentity:
    person_id: str = ""
    best_area: float = 0.0
    best_yaw: float = math.inf  # |yaw| of the best view described so far (inf: pose unknown)
    last_described: float = -math.inf
    pending: bool = False


@dataclass
class _Job:
    future: Future
    face_ids: list[str]
    areas: list[float]
    yaws: list[float]
    stamp: float
    generation: int


@dataclass
class ReidStatus:
    """For diagnostics: whether re-identification runs and why not."""

    enabled: bool
    reason: str = ""  # why it is off (no descriptor model, switched off) or what went wrong with the file
    people: int = 0
    descriptors_computed: int = 0
    gallery_file_error: str = ""


@dataclass
class Candidate:
    """A face the pipeline offers for description this frame."""

    face_id: str
    area: float  # box area, px^2
    yaw: Optional[float]  # |yaw| degrees from the quality stage, None when unknown


class Reidentifier:
    """Per-track person ids from a gallery and a descriptor model (see the module docstring)."""

    def __init__(self, config, descriptor: Optional[FaceDescriptor], unavailable_reason: str = ""):
        self.config = config
        self.descriptor = descriptor
        self.unavailable_reason = unavailable_reason or ("" if descriptor is not None else "no descriptor model")
        size = descriptor.size if descriptor is not None else 128
        self.gallery = PersonGallery(config.max_distance, config.memory_seconds, config.max_people,
                                     config.views_per_person, size)
        self._tracks: dict[str, _TrackIdentity] = {}
        self._worker: Optional[ThreadPoolExecutor] = None
        self._job: Optional[_Job] = None
        self._generation = 0
        self.descriptors_computed = 0
        self.gallery_file_error = ""
        if self.active and config.gallery_file:
            self.load()

    # ------------------------------------------------------------------ state
    @property
    def active(self) -> bool:
        return bool(self.config.enabled) and self.descriptor is not None

    def status(self) -> ReidStatus:
        reason = ("switched off (reid.enabled false)" if not self.config.enabled
                  else self.unavailable_reason if self.descriptor is None else "")
        return ReidStatus(self.active, reason, len(self.gallery), self.descriptors_computed, self.gallery_file_error)

    def person_of(self, face_id: str) -> str:
        if not self.active:  # switched off at run time: no person ids from then on
            return ""
        t = self._tracks.get(face_id)
        return t.person_id if t is not None else ""

    def people_in_view(self, face_ids: Sequence[str]) -> list[str]:
        return sorted({self.person_of(fid) for fid in face_ids} - {""}, key=person_order)

    def people_known(self) -> list[str]:
        """Every person in the gallery (seen within ``memory_seconds`` and not forgotten), in view or not."""
        return sorted(self.gallery.people, key=person_order) if self.active else []

    def sync_config(self) -> None:
        g, c = self.gallery, self.config
        g.max_distance, g.memory_seconds = c.max_distance, c.memory_seconds
        g.max_people, g.views_per_person = c.max_people, c.views_per_person

    def reset(self) -> None:
        """Forget the tracks (a new stream); the gallery of people stays."""
        self._tracks.clear()
        self._job = None
        self._generation += 1

    def close(self) -> None:
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None
        self._job = None
        if self.active and self.config.gallery_file:
            self.save()

    # ------------------------------------------------------------------ privacy
    def forget(self, person_id: str) -> bool:
        """Drop one person: their descriptors, and the id on tracks in view (they are described afresh)."""
        found = self.gallery.forget(person_id)
        for t in self._tracks.values():
            if t.person_id == person_id:
                t.person_id, t.best_area, t.best_yaw, t.last_described = "", 0.0, math.inf, -math.inf
        self._generation += 1  # a descriptor in flight may belong to them
        if self.config.gallery_file:
            self.save()
        return found

    def forget_all(self) -> int:
        count = self.gallery.forget_all()
        for t in self._tracks.values():
            t.person_id, t.best_area, t.best_yaw, t.last_described = "", 0.0, math.inf, -math.inf
        self._generation += 1
        if self.config.gallery_file:
            self.save()
        return count

    def load(self) -> None:
        name = self.descriptor.name if self.descriptor is not None else ""
        try:
            loaded = self.gallery.load(self.config.gallery_file, name)
            self.gallery_file_error = ""
            log.info("person gallery: %d people loaded from %s", loaded, self.config.gallery_file)
        except GalleryFileError as exc:
            self.gallery_file_error = str(exc)
            log.warning("person gallery file refused, starting with an empty gallery: %s", exc)

    def save(self) -> None:
        if not self.config.gallery_file or self.descriptor is None:
            return
        try:
            self.gallery.save(self.config.gallery_file, self.descriptor.name)
        except OSError as exc:
            self.gallery_file_error = f"cannot write {self.config.gallery_file}: {exc}"
            log.warning("person gallery: %s", self.gallery_file_error)

    # ------------------------------------------------------------------ per frame
    def end_tracks(self, face_ids: Sequence[str], now: float) -> None:
        for fid in face_ids:
            t = self._tracks.pop(fid, None)
            if t is not None and t.person_id:
                self.gallery.seen([t.person_id], now)

    def step(self, candidates: Sequence[Candidate], visible_ids: Sequence[str], now: float,
             crops: Callable[[list[str]], np.ndarray]) -> None:
        """Merge the descriptors of the previous frame, then start this frame's (``crops(face_ids)`` aligns
        the chosen faces at the descriptor's ``CropSpec``)."""
        if not self.active:
            return
        self.sync_config()
        self._collect()
        for fid in visible_ids:
            self._tracks.setdefault(fid, _TrackIdentity())
        in_view = [t.person_id for fid, t in self._tracks.items() if t.person_id and fid in set(visible_ids)]
        self.gallery.seen(in_view, now)
        self.gallery.expire(now, keep=in_view)
        chosen = self._choose(candidates, now)
        if not chosen:
            return
        ids = [c.face_id for c in chosen]
        batch = crops(ids)
        for fid in ids:
            self._tracks[fid].pending = True
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dfer-reid",
                                              initializer=name_native_thread, initargs=("dfer-reid",))
        future = self._worker.submit(self.descriptor.describe, batch)
        self._job = _Job(future, ids, [c.area for c in chosen],
                         [c.yaw if c.yaw is not None else math.inf for c in chosen], now, self._generation)

    def flush(self) -> None:
        """Merge a descriptor batch in flight now (end of a video: its person ids still count)."""
        if self.active:
            self._collect()

    def _choose(self, candidates: Sequence[Candidate], now: float) -> list[Candidate]:
        c = self.config
        new, better = [], []
        for cand in candidates:
            t = self._tracks.get(cand.face_id)
            if t is None or t.pending:
                continue
            if not t.person_id:
                new.append(cand)
                continue
            if now - t.last_described < c.refresh_seconds:
                continue
            yaw = cand.yaw if cand.yaw is not None else math.inf
            if cand.area >= t.best_area * c.refresh_size_gain or yaw <= t.best_yaw - c.refresh_yaw_gain_degrees:
                better.append(cand)
        new.sort(key=lambda x: -x.area)
        better.sort(key=lambda x: -x.area)
        return (new + better)[: c.max_per_frame]

    def _collect(self) -> None:
        job, self._job = self._job, None
        if job is None:
            return
        error = job.future.exception()  # waits
        for fid in job.face_ids:
            if fid in self._tracks:
                self._tracks[fid].pending = False
        if job.generation != self._generation:
            return
        if error is not None:
            log.warning("face descriptor failed (%s: %s); no person ids from it", type(error).__name__, error)
            return
        values = np.asarray(job.future.result(), np.float32)
        if values.shape != (len(job.face_ids), self.gallery.descriptor_size):
            log.warning("face descriptor returned shape %s for %d faces; dropped", values.shape, len(job.face_ids))
            return
        self.descriptors_computed += len(job.face_ids)
        for fid, vector, area, yaw in zip(job.face_ids, values, job.areas, job.yaws):
            t = self._tracks.get(fid)
            if t is None or not np.all(np.isfinite(vector)):
                continue  # the track ended meanwhile, or a broken output
            self._assign(fid, t, vector, area, yaw, job.stamp)

    def _assign(self, fid: str, t: _TrackIdentity, vector: np.ndarray, area: float, yaw: float, now: float) -> None:
        t.last_described = now
        t.best_area, t.best_yaw = max(t.best_area, area), min(t.best_yaw, yaw)
        if t.person_id:
            person = self.gallery.people.get(t.person_id)
            if person is not None and person.distance(vector) < self.config.max_distance:
                self.gallery.add_view(t.person_id, vector, now)  # a better view of the same person
            return
        others = {o.person_id for f, o in self._tracks.items() if f != fid and o.person_id}
        person, distance = self.gallery.match(vector, exclude=others)
        if person is None:
            person = self.gallery.enroll(vector, now, protect=others)
            log.info("face %s: new person %s (nearest known at distance %.3f)", fid, person, distance)
        else:
            self.gallery.add_view(person, vector, now)
            log.info("face %s: person %s again (distance %.3f)", fid, person, distance)
        t.person_id = person



def person_order(person_id: str) -> tuple[int, str]:
    """Sort key of person ids: p2 before p10."""
    return len(person_id), person_id
