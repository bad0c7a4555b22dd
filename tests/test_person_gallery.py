"""The person gallery and re-identification in the core: matching, memory time, caps, forgetting, the
persistence file (mode 0600, descriptors only, corrupt files refused with the reason), and person ids per
track through ``Reidentifier`` with a stand-in descriptor (time and frames driven by the test)."""
from __future__ import annotations

import json
import math
import stat

import numpy as np
import pytest

from dfer_ros.perception.config import ConfigError, PipelineConfig, ReidConfig
from dfer_ros.perception.gallery import FILE_FORMAT, GalleryFileError, PersonGallery
from dfer_ros.perception.model_interface import CropSpec, FaceDescriptor
from dfer_ros.perception.reid import Candidate, Reidentifier

RNG = np.random.default_rng(7)
PEOPLE = RNG.normal(0, 0.09, (4, 128)).astype(np.float32)  # pairwise distances ~1.4: clearly different people


def near(k: int, jitter: float = 0.01) -> np.ndarray:
    """A view of person k: within ~0.1 of their base descriptor (well inside max_distance 0.35)."""
    return (PEOPLE[k] + RNG.normal(0, jitter, 128)).astype(np.float32)


def gallery(**kw) -> PersonGallery:
    args = dict(max_distance=0.35, memory_seconds=60.0, max_people=10, views_per_person=3)
    args.update(kw)
    return PersonGallery(**args)


def test_match_enroll_and_views():
    g = gallery()
    assert g.match(near(0)) == (None, math.inf)
    p1 = g.enroll(near(0), now=0.0)
    p2 = g.enroll(near(1), now=0.0)
    assert (p1, p2) == ("p1", "p2")
    pid, d = g.match(near(0))
    assert pid == "p1" and d < 0.35
    assert g.match(near(0), exclude=["p1"])[0] is None  # p1 is in view elsewhere: not this face
    assert g.match(near(2))[0] is None
    for t in range(5):
        g.add_view("p1", near(0), now=t)
    assert len(g.people["p1"].descriptors) == 3  # views_per_person
    with pytest.raises(ValueError, match="128 finite"):
        g.match(np.full(128, np.nan))
    with pytest.raises(ValueError, match="128 finite"):
        g.enroll(np.zeros(64), now=0.0)


def test_memory_time_and_cap_and_forget():
    g = gallery(max_people=2, memory_seconds=10.0)
    g.enroll(near(0), now=0.0)
    g.enroll(near(1), now=5.0)
    g.enroll(near(2), now=6.0)  # full: p1 (seen least recently) makes room
    assert sorted(g.people) == ["p2", "p3"]
    assert g.expire(now=15.5) == ["p2"]  # unseen for 10.5 s > 10 s
    assert g.expire(now=100.0, keep=["p3"]) == []  # in view: kept
    g.enroll(near(3), now=100.0)
    assert g.forget("p3") and not g.forget("p3")
    assert g.forget_all() == 1 and len(g) == 0
    assert g.enroll(near(0), now=101.0) == "p5"  # ids are never reused


def test_file_is_0600_descriptors_only_and_round_trips(tmp_path):
    g = gallery()
    g.enroll(near(0), now=1.0)
    g.enroll(near(1), now=2.0)
    g.add_view("p2", near(1), now=3.0)
    path = g.save(tmp_path / "sub" / "people.json", "test_descriptor")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["format"] == FILE_FORMAT and set(data) == {"format", "version", "descriptor", "descriptor_size",
                                                           "next_id", "people"}
    assert all(set(p) == {"person_id", "last_seen", "descriptors"} for p in data["people"])
    other = gallery()
    assert other.load(path, "test_descriptor") == 2
    assert other.match(near(1))[0] == "p2" and len(other.people["p2"].descriptors) == 2
    assert other.enroll(near(2), now=4.0) == "p3"  # numbering continues after the file's people
    assert gallery().load(tmp_path / "missing.json", "test_descriptor") == 0  # first start: no file yet


@pytest.mark.parametrize("content, reason", [
    (b"{not json", "not a readable gallery file"),
    (b'{"format": "something else"}', "not a person gallery"),
    (json.dumps({"format": FILE_FORMAT, "version": 99}).encode(), "version 99"),
    (json.dumps({"format": FILE_FORMAT, "version": 1, "descriptor": "other", "descriptor_size": 128,
                 "people": []}).encode(), "not comparable"),
    (json.dumps({"format": FILE_FORMAT, "version": 1, "descriptor": "test_descriptor", "descriptor_size": 128,
                 "people": [{"person_id": "p1", "last_seen": 0, "descriptors": [[0.1] * 12]}]}).encode(),
     "entry 0 is malformed.*128 finite"),
    (json.dumps({"format": FILE_FORMAT, "version": 1, "descriptor": "test_descriptor", "descriptor_size": 128,
                 "people": [{"person_id": "x", "last_seen": 0, "descriptors": [[0.1] * 128]}]}).encode(),
     "person id 'x'"),
])
def test_corrupt_file_is_refused_with_the_reason(tmp_path, content, reason):
    path = tmp_path / "people.json"
    path.write_bytes(content)
    g = gallery()
    g.enroll(near(0), now=0.0)
    with pytest.raises(GalleryFileError, match=reason):
        g.load(path, "test_descriptor")
    assert len(g) == 0  # left empty, never half-loaded


# ------------------------------------------------------------------------------------------ Reidentifier

class TableDescriptor(FaceDescriptor):
    """Stand-in descriptor: each crop's first pixel names the person (k -> a view of PEOPLE[k])."""

    crop_spec = CropSpec(8, 1.0, "rgb")
    size = 128
    name = "test_descriptor"

    def __init__(self):
        self.calls: list[int] = []

    def describe(self, crops):
        self.calls.append(len(crops))
        return np.stack([near(int(c[0, 0, 0])) for c in crops]) if len(crops) else np.zeros((0, 128), np.float32)


def crops_for(person_of_face: dict):
    return lambda ids: np.stack([np.full((8, 8, 3), person_of_face[f], np.uint8) for f in ids])


def run(reid: Reidentifier, frames, person_of_face):
    """frames: list of (stamp, [(face_id, area), ...]); tracks that disappear end."""
    seen = set()
    out = []
    for stamp, faces in frames:
        ids = [f for f, _ in faces]
        reid.end_tracks(sorted(seen - set(ids)), stamp)
        seen = set(ids)
        reid.step([Candidate(f, a, 0.0) for f, a in faces], ids, stamp, crops_for(person_of_face))
        out.append({f: reid.person_of(f) for f in ids})
    return out


def test_returning_person_gets_their_id_back_and_a_stranger_a_new_one():
    desc = TableDescriptor()
    reid = Reidentifier(ReidConfig(), desc)
    faces = {"f1": 0, "f2": 0, "f3": 1}
    frames = [(t * 0.1, [("f1", 100.0)]) for t in range(10)]  # person 0 as f1
    frames += [(1.0 + t * 0.1, []) for t in range(50)]  # gone for 5 s
    frames += [(6.0 + t * 0.1, [("f2", 100.0), ("f3", 100.0)]) for t in range(10)]  # back as f2, with a stranger
    out = run(reid, frames, faces)
    assert out[0] == {"f1": ""}  # described on frame 0, merged on frame 1
    assert out[1] == {"f1": "p1"}
    assert out[-1] == {"f2": "p1", "f3": "p2"}
    assert reid.people_in_view(["f2", "f3"]) == ["p1", "p2"]
    assert reid.people_in_view(["f3"]) == ["p2"] and reid.people_known() == ["p1", "p2"]  # known, in view or not
    # never on every frame: f1 once, f2 and f3 once each (max_per_frame 1: one per frame), nothing in steady state
    assert sum(desc.calls) == 3 and max(desc.calls) == 1
    reid.close()


def test_refresh_only_for_clearly_better_views():
    desc = TableDescriptor()
    reid = Reidentifier(ReidConfig(refresh_seconds=1.0, refresh_size_gain=1.5), desc)
    frames = [(t * 0.1, [("f1", 100.0 + t)]) for t in range(30)]  # slowly larger: 100 -> 129, never 1.5x
    frames += [(3.0 + t * 0.1, [("f1", 200.0)]) for t in range(30)]  # 2x larger: one refresh, then none
    run(reid, frames, {"f1": 0})
    assert sum(desc.calls) == 2
    assert len(reid.gallery.people["p1"].descriptors) == 2
    reid.close()


def test_forget_one_and_all_and_the_switch():
    desc = TableDescriptor()
    reid = Reidentifier(ReidConfig(), desc)
    out = run(reid, [(t * 0.1, [("f1", 100.0), ("f2", 100.0)]) for t in range(4)], {"f1": 0, "f2": 1})
    assert out[-1] == {"f1": "p1", "f2": "p2"}
    assert reid.forget("p1") and "p1" not in reid.gallery and reid.person_of("f1") == ""
    assert reid.people_known() == ["p2"]  # a forgotten person is no longer known
    out = run(reid, [(1.0 + t * 0.1, [("f1", 100.0), ("f2", 100.0)]) for t in range(3)], {"f1": 0, "f2": 1})
    assert out[-1] == {"f1": "p3", "f2": "p2"}  # described afresh: a new person id, p1 is gone for good
    assert reid.forget_all() == 2 and len(reid.gallery) == 0
    off = Reidentifier(ReidConfig(enabled=False), TableDescriptor())
    out = run(off, [(t * 0.1, [("f1", 100.0)]) for t in range(5)], {"f1": 0})
    assert out[-1] == {"f1": ""} and off.descriptor.calls == [] and not off.status().enabled
    assert "switched off" in off.status().reason
    missing = Reidentifier(ReidConfig(), None, "descriptor model: weights not found")
    assert not missing.active and missing.status().reason == "descriptor model: weights not found"


def test_gallery_file_persists_across_restarts_and_corrupt_file_starts_empty(tmp_path):
    path = tmp_path / "people.json"
    config = ReidConfig(gallery_file=str(path))
    first = Reidentifier(config, TableDescriptor())
    run(first, [(t * 0.1, [("f1", 100.0)]) for t in range(3)], {"f1": 0})
    first.close()  # saves
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = Reidentifier(config, TableDescriptor())
    out = run(second, [(50.0 + t * 0.1, [("f9", 100.0)]) for t in range(3)], {"f9": 0})
    assert out[-1] == {"f9": "p1"}  # the same person after a restart
    second.close()
    path.write_text("garbage")
    third = Reidentifier(config, TableDescriptor())
    assert len(third.gallery) == 0 and "not a readable gallery file" in third.status().gallery_file_error


def test_config_ranges():
    with pytest.raises(ConfigError, match="reid.max_distance"):
        PipelineConfig.from_dict({"reid": {"max_distance": -1}})
    assert PipelineConfig().reid.enabled and PipelineConfig().reid.gallery_file == ""
