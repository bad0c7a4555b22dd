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

Retention (``memory_seconds``) runs on ``RetentionClock``: stream time that only moves forward. Image stamps
that jump back (a bag replayed in a loop, a camera clock reset) add nothing to it, so "last seen" can never
lie in the future and retention never grows by the size of a jump; a jump forward counts in full (people are
forgotten sooner, never later). The gallery file stores "last seen" as wall-clock time (``time.time``), so a
restart counts the time the node was down.

The gallery file (``reid.gallery_file``), what the node promises about it (docs/privacy.md):
  * a file that is refused (any reason of ``PersonGallery.load``, or writable by other users) is renamed
    aside to ``<name>.refused-<UTC time>`` and never overwritten; when it cannot be moved, nothing is written;
  * a folder other users can write (or that is not ours) is refused: the gallery then lives in memory only;
  * every write is synced (file and folder) before it counts; ``durable`` says whether the file on disk
    matches the gallery in memory after the last forget. While it does not, ``status().forget_pending``
    is true and every later forget or shutdown tries again.
"""
from __future__ import annotations

import logging
import math
import os
import stat
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
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
    retention_now: float
    generation: int


@dataclass
class ReidStatus:
    """For diagnostics: whether re-identification runs and why not."""

    enabled: bool
    reason: str = ""  # why it is off (no descriptor model, switched off) or what went wrong with the file
    people: int = 0
    descriptors_computed: int = 0
    gallery_file_error: str = ""  # the file was refused at start (re-identification runs without it)
    gallery_write_error: str = ""  # the file cannot be written (folder read-only, disk full, ...)
    forget_pending: bool = False  # a forget has not reached the file yet: the file still holds that person


class RetentionClock:
    """Seconds of stream time that never run backwards (see the module docstring).

    ``at(stamp)`` advances by the step from the previous stamp when it is positive and by nothing when the
    stamps went back; the next stamps then advance it from the new, lower value."""

    def __init__(self):
        self.elapsed = 0.0
        self._last: Optional[float] = None

    def at(self, stamp: float) -> float:
        stamp = float(stamp)
        if self._last is not None and stamp > self._last and math.isfinite(stamp):
            self.elapsed += stamp - self._last
        if math.isfinite(stamp):
            self._last = stamp
        return self.elapsed


@dataclass
class Candidate:
    """A face the pipeline offers for description this frame."""

    face_id: str
    area: float  # box area, px^2
    yaw: Optional[float]  # |yaw| degrees from the quality stage, None when unknown


class Reidentifier:
    """Per-track person ids from a gallery and a descriptor model (see the module docstring)."""

    def __init__(self, config, descriptor: Optional[FaceDescriptor], unavailable_reason: str = "",
                 wall_clock: Callable[[], float] = time.time):
        self.config = config
        self.wall_clock = wall_clock  # for "last seen" in the gallery file only
        self.clock = RetentionClock()
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
        self.gallery_write_error = ""
        self.forget_pending = False
        self._may_write = True  # False: a refused file could not be moved aside, or the folder is unsafe
        if self.active and config.gallery_file:
            self.load()

    # ------------------------------------------------------------------ state
    @property
    def active(self) -> bool:
        return bool(self.config.enabled) and self.descriptor is not None

    def status(self) -> ReidStatus:
        reason = ("switched off (reid.enabled false)" if not self.config.enabled
                  else self.unavailable_reason if self.descriptor is None else "")
        return ReidStatus(self.active, reason, len(self.gallery), self.descriptors_computed, self.gallery_file_error,
                          self.gallery_write_error, self.forget_pending)

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
        self._save_after_forget()
        return found

    def forget_all(self) -> int:
        count = self.gallery.forget_all()
        for t in self._tracks.values():
            t.person_id, t.best_area, t.best_yaw, t.last_described = "", 0.0, math.inf, -math.inf
        self._generation += 1
        self._save_after_forget()
        return count

    def save_if_forget_pending(self) -> bool:
        """Retry writing the file after a forget that did not reach it; True when nothing is pending."""
        if self.forget_pending and self.save():
            self.forget_pending = False
        return not self.forget_pending

    def _save_after_forget(self) -> None:
        """Make a forget durable: the file rewritten and synced; ``forget_pending`` stays true until it is."""
        if not (self.config.gallery_file and self.descriptor is not None):
            return
        self.forget_pending = True
        if self.save():
            self.forget_pending = False

    def load(self) -> None:
        """Load the gallery file, or refuse it (kept aside, see the module docstring) with the reason."""
        name = self.descriptor.name if self.descriptor is not None else ""
        path = Path(self.config.gallery_file)
        unsafe = _unsafe_folder(path.parent)
        if unsafe:
            self._may_write = False
            self.gallery_file_error = f"{path}: not used: {unsafe}; the gallery lives in memory only"
            log.warning("person gallery: %s", self.gallery_file_error)
            return
        if not os.access(_existing(path.parent), os.W_OK):
            self.gallery_write_error = (f"folder {path.parent} is not writable: forgetting cannot reach {path} "
                                        f"and the gallery is not saved")
            log.warning("person gallery: %s", self.gallery_write_error)
        try:
            if path.exists() and _others_can_write(path):
                raise GalleryFileError(f"{path}: other users can write it "
                                       f"(mode {stat.S_IMODE(path.stat().st_mode):04o}, owner uid {path.stat().st_uid})")
            offset = self.wall_clock() - self.clock.elapsed  # file times are wall-clock seconds
            loaded = self.gallery.load(path, name, time_offset=offset, latest=self.clock.elapsed)
            self.gallery_file_error = ""
            log.info("person gallery: %d people loaded from %s", loaded, path)
        except GalleryFileError as exc:
            self.gallery_file_error = f"{exc}; {self._set_aside(path)}"
            log.warning("person gallery file refused, starting with an empty gallery: %s", self.gallery_file_error)

    def _set_aside(self, path: Path) -> str:
        """Rename a refused file to ``<name>.refused-<UTC time>`` so that saving never overwrites it."""
        aside = path.with_name(f"{path.name}.refused-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(self.wall_clock()))}")
        try:
            os.rename(path, aside)
        except OSError as exc:
            self._may_write = False
            return (f"it could not be moved aside ({exc.strerror or exc}), so the gallery is not saved "
                    f"over it (memory only)")
        return f"kept as {aside}"

    def save(self) -> bool:
        """Write the gallery file and sync it; False (reason in ``gallery_write_error``) when it cannot be."""
        if not self.config.gallery_file or self.descriptor is None:
            return True
        if not self._may_write:
            self.gallery_write_error = self.gallery_write_error or (
                f"{self.config.gallery_file} is not written: {self.gallery_file_error}")
            return False
        try:
            offset = self.wall_clock() - self.clock.elapsed
            self.gallery.save(self.config.gallery_file, self.descriptor.name, time_offset=offset)
        except OSError as exc:
            self.gallery_write_error = f"cannot write {self.config.gallery_file}: {exc.strerror or exc}"
            log.warning("person gallery: %s", self.gallery_write_error)
            return False
        self.gallery_write_error = ""
        return True

    # ------------------------------------------------------------------ per frame
    def end_tracks(self, face_ids: Sequence[str], now: float) -> None:
        retention_now = self.clock.at(now)
        for fid in face_ids:
            t = self._tracks.pop(fid, None)
            if t is not None and t.person_id:
                self.gallery.seen([t.person_id], retention_now)

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
        retention_now = self.clock.at(now)
        self.gallery.seen(in_view, retention_now)
        self.gallery.expire(retention_now, keep=in_view)
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
                         [c.yaw if c.yaw is not None else math.inf for c in chosen], now, retention_now,
                         self._generation)

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
            self._assign(fid, t, vector, area, yaw, job.stamp, job.retention_now)

    def _assign(self, fid: str, t: _TrackIdentity, vector: np.ndarray, area: float, yaw: float, now: float,
                retention_now: float) -> None:
        t.last_described = now
        t.best_area, t.best_yaw = max(t.best_area, area), min(t.best_yaw, yaw)
        if t.person_id:
            person = self.gallery.people.get(t.person_id)
            if person is not None and person.distance(vector) < self.config.max_distance:
                self.gallery.add_view(t.person_id, vector, retention_now)  # a better view of the same person
            return
        others = {o.person_id for f, o in self._tracks.items() if f != fid and o.person_id}
        person, distance = self.gallery.match(vector, exclude=others)
        if person is None:
            person = self.gallery.enroll(vector, retention_now, protect=others)
            log.info("face %s: new person %s (nearest known at distance %.3f)", fid, person, distance)
        else:
            self.gallery.add_view(person, vector, retention_now)
            log.info("face %s: person %s again (distance %.3f)", fid, person, distance)
        t.person_id = person


def _others_can_write(path: Path) -> bool:
    """The file is writable by group or others, or owned by another user."""
    st = path.stat()
    return bool(st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)) or st.st_uid != os.geteuid()


def _existing(folder: Path) -> Path:
    """``folder`` or its nearest ancestor that exists (the first save creates the rest)."""
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _unsafe_folder(folder: Path) -> str:
    """Why other users could replace a file in ``folder`` (group/other-writable, or not ours); '' when safe.
    A folder that does not exist yet is created by the first save (mode from the umask)."""
    folder = _existing(folder)
    st = folder.stat()
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"folder {folder} is writable by other users (mode {stat.S_IMODE(st.st_mode):04o})"
    if st.st_uid not in (os.geteuid(), 0):
        return f"folder {folder} belongs to another user (uid {st.st_uid})"
    return ""


def person_order(person_id: str) -> tuple[int, str]:
    """Sort key of person ids: p2 before p10."""
    return len(person_id), person_id
