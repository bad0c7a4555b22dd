"""The person gallery: who has been seen, as face descriptors, for re-identification.

Why: a face id (``f7``) lives as long as one track; a person who turns away or leaves the view for a moment
comes back as a new track. The gallery keeps a few descriptors per person (``p1``, ``p2``, ...) so that a new
track whose descriptor lies within ``max_distance`` (Euclidean) of a person's nearest stored descriptor gets
that person's id back.

Privacy, by construction:
  * only descriptors (128 numbers per view) and times are kept, never images;
  * at most ``max_people`` people with at most ``views_per_person`` descriptors each; the person seen least
    recently is dropped first when full;
  * a person unseen for ``memory_seconds`` (on the caller's clock) is forgotten; ``forget(pid)`` / ``forget_all()`` drop
    one / everyone at once;
  * ``save(path)`` writes the descriptors (no images) to a file created with mode 0600, atomically;
    ``load(path)`` refuses a file that is not exactly this format with ``GalleryFileError`` naming the reason.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np

from dfer_ros.atomic_files import atomic_write
from dfer_ros.user_files import UserFileError, read_user_json

FILE_FORMAT = "dfer_ros.person_gallery"
FILE_VERSION = 1
FILE_MODE = 0o600
MAX_FILE_BYTES = 64 * 1024 * 1024  # a gallery of max_people x views_per_person x 128 floats is far smaller
MAX_FILE_DEPTH = 5  # {"people": [{"descriptors": [[...]]}]}


class GalleryFileError(ValueError):
    """A gallery file cannot be used: the message says which file and why."""


@dataclass
class Person:
    person_id: str
    descriptors: list[np.ndarray] = field(default_factory=list)  # oldest first
    last_seen: float = 0.0  # seconds on the caller's clock (``reid.RetentionClock``: never runs backwards)

    def distance(self, descriptor: np.ndarray) -> float:
        """Distance to this person's nearest stored view."""
        stack = np.stack(self.descriptors)
        return float(np.sqrt(((stack - descriptor[None]) ** 2).sum(1)).min())


class PersonGallery:
    """Descriptors per person, matched by the nearest stored view (see the module docstring)."""

    def __init__(self, max_distance: float, memory_seconds: float, max_people: int, views_per_person: int,
                 descriptor_size: int = 128):
        self.max_distance = float(max_distance)
        self.memory_seconds = float(memory_seconds)
        self.max_people = int(max_people)
        self.views_per_person = int(views_per_person)
        self.descriptor_size = int(descriptor_size)
        self.people: dict[str, Person] = {}
        self._next = 1

    def __len__(self) -> int:
        return len(self.people)

    def __contains__(self, person_id: str) -> bool:
        return person_id in self.people

    # ------------------------------------------------------------------ matching
    def match(self, descriptor: np.ndarray, exclude: Iterable[str] = ()) -> tuple[Optional[str], float]:
        """(nearest person within max_distance or None, that distance; inf when the gallery is empty).

        ``exclude``: people who cannot be this face (e.g. already in view on another track).
        """
        descriptor = self._checked(descriptor)
        skip = set(exclude)
        best, best_distance = None, math.inf
        for person in self.people.values():
            if person.person_id in skip:
                continue
            d = person.distance(descriptor)
            if d < best_distance:
                best, best_distance = person.person_id, d
        return (best if best_distance < self.max_distance else None), best_distance

    def enroll(self, descriptor: np.ndarray, now: float, protect: Iterable[str] = ()) -> str:
        """A new person with this first view; the least recently seen person not in ``protect`` makes room."""
        descriptor = self._checked(descriptor)
        keep = set(protect)
        while len(self.people) >= self.max_people:
            candidates = [p for p in self.people.values() if p.person_id not in keep] or list(self.people.values())
            del self.people[min(candidates, key=lambda p: p.last_seen).person_id]
        person_id = f"p{self._next}"
        self._next += 1
        self.people[person_id] = Person(person_id, [descriptor], float(now))
        return person_id

    def add_view(self, person_id: str, descriptor: np.ndarray, now: float) -> None:
        """Another view of a known person (a better-framed face); the oldest view goes when full."""
        person = self.people[person_id]
        person.descriptors.append(self._checked(descriptor))
        del person.descriptors[:-self.views_per_person]
        person.last_seen = max(person.last_seen, float(now))

    def seen(self, person_ids: Iterable[str], now: float) -> None:
        for pid in person_ids:
            if pid in self.people:
                self.people[pid].last_seen = max(self.people[pid].last_seen, float(now))

    def expire(self, now: float, keep: Iterable[str] = ()) -> list[str]:
        """Forget people unseen for more than memory_seconds (except ``keep``, e.g. those in view)."""
        keep = set(keep)
        gone = [pid for pid, p in self.people.items()
                if pid not in keep and now - p.last_seen > self.memory_seconds]
        for pid in gone:
            del self.people[pid]
        return gone

    def forget(self, person_id: str) -> bool:
        return self.people.pop(person_id, None) is not None

    def forget_all(self) -> int:
        count = len(self.people)
        self.people.clear()
        return count

    def _checked(self, descriptor: np.ndarray) -> np.ndarray:
        d = np.asarray(descriptor, np.float32).reshape(-1)
        if d.shape != (self.descriptor_size,) or not np.all(np.isfinite(d)):
            raise ValueError(f"a descriptor must be {self.descriptor_size} finite numbers, got shape {d.shape}")
        return d.copy()

    # ------------------------------------------------------------------ persistence
    def to_dict(self, descriptor_name: str, time_offset: float = 0.0) -> dict:
        """The file's content; ``last_seen`` is written as ``last_seen + time_offset`` (the caller's clock to
        wall-clock seconds)."""
        return {"format": FILE_FORMAT, "version": FILE_VERSION, "descriptor": descriptor_name,
                "descriptor_size": self.descriptor_size, "next_id": self._next,
                "people": [{"person_id": p.person_id, "last_seen": p.last_seen + time_offset,
                            "descriptors": [[round(float(v), 7) for v in d] for d in p.descriptors]}
                           for p in self.people.values()]}

    def save(self, path: Union[str, Path], descriptor_name: str, time_offset: float = 0.0) -> Path:
        """Write descriptors and last-seen times (never images) to ``path``, mode 0600, replacing it atomically
        and synced to disk (file and folder) before returning."""
        return atomic_write(path, json.dumps(self.to_dict(descriptor_name, time_offset)).encode(), mode=FILE_MODE,
                            durable=True)

    def load(self, path: Union[str, Path], descriptor_name: str, time_offset: float = 0.0,
             latest: float = math.inf) -> int:
        """Replace the gallery by the file's people; the number loaded. ``GalleryFileError`` with the reason
        (the gallery is then left empty) when the file is unreadable, not this format, from another descriptor,
        holds malformed descriptors, or is out of the bounds of ``user_files`` (not UTF-8, nested too deep, too
        large, non-finite numbers). A missing file is not an error (0: a first start). A stored time ``t`` becomes
        ``min(t - time_offset, latest)``: a "last seen" from the future (the wall clock was set back) counts as
        now, never later."""
        path = Path(path)
        self.forget_all()
        if not path.exists():
            return 0
        try:
            data = read_user_json(path, max_bytes=MAX_FILE_BYTES, max_depth=MAX_FILE_DEPTH)
        except UserFileError as exc:
            raise GalleryFileError(f"not a readable gallery file: {exc}") from exc
        people, next_id = self._parse(data, path, descriptor_name)
        for person in people.values():
            person.last_seen = min(person.last_seen - time_offset, latest)
        self.people = people
        self._next = next_id
        return len(people)

    def _parse(self, data, path: Path, descriptor_name: str) -> tuple[dict[str, Person], int]:
        def bad(reason: str) -> GalleryFileError:
            return GalleryFileError(f"{path}: {reason}")

        if not isinstance(data, dict) or data.get("format") != FILE_FORMAT:
            raise bad(f"not a person gallery (expected \"format\": \"{FILE_FORMAT}\")")
        if data.get("version") != FILE_VERSION:
            raise bad(f"gallery file version {data.get('version')!r}, this build reads {FILE_VERSION}")
        if data.get("descriptor") != descriptor_name or data.get("descriptor_size") != self.descriptor_size:
            raise bad(f"made with descriptor {data.get('descriptor')!r} ({data.get('descriptor_size')!r}-D); "
                      f"this node uses {descriptor_name!r} ({self.descriptor_size}-D): descriptors are not comparable")
        entries = data.get("people")
        if not isinstance(entries, list):
            raise bad("\"people\" must be a list")
        people: dict[str, Person] = {}
        highest = 0
        for i, entry in enumerate(entries[: self.max_people]):
            try:
                pid = str(entry["person_id"])
                number = int(pid[1:]) if pid.startswith("p") else -1
                if number < 1 or pid in people:
                    raise ValueError(f"person id {pid!r} (expected p1, p2, ... each once)")
                views = [self._checked(v) for v in entry["descriptors"]][-self.views_per_person:]
                if not views:
                    raise ValueError("no descriptors")
                last_seen = float(entry["last_seen"])
                if not math.isfinite(last_seen):
                    raise ValueError(f"last_seen {last_seen}")
            except (KeyError, TypeError, ValueError, OverflowError) as exc:
                raise bad(f"person entry {i} is malformed ({type(exc).__name__}: {exc})") from exc
            people[pid] = Person(pid, views, last_seen)
            highest = max(highest, number)
        try:
            next_id = max(int(data.get("next_id", 1)), highest + 1)
        except (TypeError, ValueError, OverflowError) as exc:
            raise bad(f"next_id {data.get('next_id')!r} is not a number") from exc
        return people, next_id
