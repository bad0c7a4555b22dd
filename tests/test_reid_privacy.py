"""The privacy promises of re-identification in the core (``perception.reid``, ``perception.gallery``):

* hostile gallery files (nested 200,000 deep, ``next_id`` Infinity or 1e400, not UTF-8) are refused with the
  reason, re-identification still runs, and the refused file is kept aside, never overwritten;
* a gallery file or folder that other users can write is refused;
* forgetting counts as done only once the file is rewritten: with a folder that cannot be written (a real
  read-only mount in a private mount namespace) the forget stays pending with the reason, and a later save
  that succeeds clears it;
* retention (``memory_seconds``) does not grow when image stamps jump back, and a jump forward forgets.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dfer_ros.perception.config import ReidConfig
from dfer_ros.perception.gallery import FILE_FORMAT
from dfer_ros.perception.reid import Reidentifier, RetentionClock
from read_only_mount import PRELUDE
from test_person_gallery import TableDescriptor, run

REPO = Path(__file__).resolve().parents[1]


def _valid_file(path: Path, people: int = 1) -> dict:
    data = {"format": FILE_FORMAT, "version": 1, "descriptor": "test_descriptor", "descriptor_size": 128,
            "next_id": people + 1, "people": [{"person_id": f"p{i + 1}", "last_seen": 0.0,
                                              "descriptors": [[0.01 * i] * 128]} for i in range(people)]}
    path.write_text(json.dumps(data))
    path.chmod(0o600)
    return data


HOSTILE = {
    "deep": "[" * 200_000 + "]" * 200_000,
    "next_id_infinity": '{"format": "%s", "version": 1, "descriptor": "test_descriptor", "descriptor_size": 128, '
                        '"next_id": Infinity, "people": []}' % FILE_FORMAT,
    "next_id_1e400": '{"format": "%s", "version": 1, "descriptor": "test_descriptor", "descriptor_size": 128, '
                     '"next_id": 1e400, "people": []}' % FILE_FORMAT,
    "not_utf8": "\udcff",
    "newer_version": json.dumps({"format": FILE_FORMAT, "version": 2, "people": []}),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_gallery_file_is_refused_kept_aside_and_never_overwritten(tmp_path, name):
    folder = tmp_path / "g"
    folder.mkdir(mode=0o700)
    path = folder / "people.json"
    path.write_bytes(HOSTILE[name].encode("utf-8", "surrogateescape"))
    path.chmod(0o600)
    original = path.read_bytes()
    reid = Reidentifier(ReidConfig(gallery_file=str(path)), TableDescriptor())
    status = reid.status()
    assert status.enabled and status.reason == ""  # re-identification runs, with an empty gallery
    assert "not a readable gallery file" in status.gallery_file_error or "version 2" in status.gallery_file_error
    aside = [p for p in folder.iterdir() if p.name.startswith("people.json.refused-")]
    assert len(aside) == 1 and aside[0].read_bytes() == original
    assert f"kept as {aside[0]}" in status.gallery_file_error
    out = run(reid, [(t * 0.1, [("f1", 100.0)]) for t in range(3)], {"f1": 0})
    assert out[-1] == {"f1": "p1"}
    reid.close()
    assert aside[0].read_bytes() == original  # the refused file is untouched
    assert [p["person_id"] for p in json.loads(path.read_text())["people"]] == ["p1"]  # a new file beside it


def test_a_file_others_can_write_is_refused(tmp_path):
    path = tmp_path / "people.json"
    _valid_file(path)
    path.chmod(0o666)
    reid = Reidentifier(ReidConfig(gallery_file=str(path)), TableDescriptor())
    assert len(reid.gallery) == 0 and "other users can write it (mode 0666" in reid.status().gallery_file_error
    assert not path.exists() and len(list(tmp_path.glob("people.json.refused-*"))) == 1


def test_a_folder_others_can_write_is_refused_and_nothing_is_written_there(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    path = folder / "people.json"
    _valid_file(path)
    folder.chmod(0o777)
    reid = Reidentifier(ReidConfig(gallery_file=str(path)), TableDescriptor())
    assert len(reid.gallery) == 0 and "writable by other users (mode 0777)" in reid.status().gallery_file_error
    run(reid, [(t * 0.1, [("f1", 100.0)]) for t in range(3)], {"f1": 0})
    assert reid.forget("p1")
    status = reid.status()
    assert status.forget_pending and "is not written" in status.gallery_write_error
    before = path.read_bytes()
    reid.close()
    assert path.read_bytes() == before  # nothing written into a folder others control


READ_ONLY_SCRIPT = PRELUDE + r"""
import json
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from dfer_ros.perception.config import ReidConfig
from dfer_ros.perception.reid import Reidentifier
from test_person_gallery import TableDescriptor
path = Path(sys.argv[1]) / "people.json"
reid = Reidentifier(ReidConfig(gallery_file=str(path)), TableDescriptor())
at_start = reid.status()
found = reid.forget("p2")
after = reid.status()
reid.close()
print(json.dumps({"found": found, "start_write_error": at_start.gallery_write_error, "pending": after.forget_pending,
                  "write_error": after.gallery_write_error,
                  "file_people": [p["person_id"] for p in json.loads(path.read_text())["people"]]}))
"""


def test_forget_on_a_read_only_folder_stays_pending_with_the_reason(tmp_path):
    """A real read-only bind mount (private mount namespace, child process): the forget cannot reach the file."""
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o700)
    _valid_file(folder / "people.json", people=3)
    proc = subprocess.run([sys.executable, "-c", READ_ONLY_SCRIPT, str(folder), str(REPO / "tests")],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    if "NO_READ_ONLY_MOUNT" in proc.stdout:
        pytest.skip(proc.stdout)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "not writable" in result["start_write_error"] or "Read-only" in result["start_write_error"]
    assert result["found"] and result["pending"], result
    assert "Read-only file system" in result["write_error"], result
    assert result["file_people"] == ["p1", "p2", "p3"]  # still on disk: hence pending, never reported done


def test_forget_is_synced_and_a_later_successful_save_clears_pending(tmp_path):
    path = tmp_path / "people.json"
    _valid_file(path, people=2)
    reid = Reidentifier(ReidConfig(gallery_file=str(path)), TableDescriptor())
    assert sorted(reid.gallery.people) == ["p1", "p2"]
    assert reid.forget("p1") and not reid.status().forget_pending
    assert [p["person_id"] for p in json.loads(path.read_text())["people"]] == ["p2"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.unlink()
    path.mkdir()  # the file's name is now a folder: the next write fails
    assert reid.forget("p2") and reid.status().forget_pending
    assert reid.status().gallery_write_error.startswith(f"cannot write {path}")
    path.rmdir()
    assert reid.save_if_forget_pending() and not reid.status().forget_pending
    assert json.loads(path.read_text())["people"] == []


def test_retention_clock_never_runs_backwards():
    clock = RetentionClock()
    assert [clock.at(s) for s in (100.0, 101.0, 50.0, 52.0, 52.0, 7300.0)] == [0.0, 1.0, 1.0, 3.0, 3.0, 7251.0]


@pytest.mark.parametrize("jump", [-7200.0, 0.0], ids=["stamps-jump-back-2h", "no-jump"])
def test_retention_does_not_grow_when_stamps_jump_back(jump):
    """memory_seconds 30: a person away for 60 s is forgotten, whether or not the stamps jumped back 2 h
    while they were away (before, "last seen" stayed in the future and they came back as p1)."""
    reid = Reidentifier(ReidConfig(memory_seconds=30.0), TableDescriptor())
    frames = [(7200.0 + t * 0.1, [("f1", 100.0)]) for t in range(5)]  # person 0 at stamps 7200 s
    start = 7200.5 + jump
    frames += [(start + t, []) for t in range(61)]  # away for 60 s (after the jump, if any)
    frames += [(start + 61 + t * 0.1, [("f2", 100.0)]) for t in range(5)]  # back
    out = run(reid, frames, {"f1": 0, "f2": 0})
    assert out[4] == {"f1": "p1"}
    assert out[-1] == {"f2": "p2"}, out[-1]  # a new person: p1 was forgotten after 30 s away
    reid.close()


def test_stamps_jumping_forward_forget_at_once_and_file_times_are_wall_clock(tmp_path):
    path = tmp_path / "people.json"
    wall = [1_000_000.0]
    reid = Reidentifier(ReidConfig(memory_seconds=30.0, gallery_file=str(path)), TableDescriptor(),
                        wall_clock=lambda: wall[0])
    run(reid, [(5.0 + t * 0.1, [("f1", 100.0)]) for t in range(5)], {"f1": 0})
    reid.close()
    saved = json.loads(path.read_text())["people"][0]["last_seen"]
    assert abs(saved - wall[0]) < 1.0  # "last seen" on disk is wall-clock time, not a stamp
    wall[0] += 20.0  # restarted 20 s later: still remembered
    again = Reidentifier(ReidConfig(memory_seconds=30.0, gallery_file=str(path)), TableDescriptor(),
                         wall_clock=lambda: wall[0])
    assert run(again, [(0.0 + t * 0.1, [("f9", 100.0)]) for t in range(3)], {"f9": 0})[-1] == {"f9": "p1"}
    out = run(again, [(3600.0 + t * 0.1, [("f7", 100.0)]) for t in range(3)], {"f7": 0})  # stamps +1 h, f9 gone
    assert out[-1] == {"f7": "p2"}  # an hour passed by the stamps: p1 forgotten, never kept longer
    again.close()
    wall[0] += 3600.0
    later = Reidentifier(ReidConfig(memory_seconds=30.0, gallery_file=str(path)), TableDescriptor(),
                         wall_clock=lambda: wall[0])
    assert run(later, [(0.0, []), (0.1, [])], {})[-1] == {} and len(later.gallery) == 0  # down for an hour
    assert os.path.exists(path)
    later.close()
