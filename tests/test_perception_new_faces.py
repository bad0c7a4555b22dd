"""Faces are found whatever the detection plan: a new face is confirmed by the pass that found it, and a still face
keeps its id across a long stamp gap.

The detectors here see a face only in some kinds of pass, as real ones do: CenterFace scores a face that fills a
64 px re-detection region lower than the same face in a scan, and a small face may be findable only in a tile at
twice the scan's resolution. Driven frame by frame, with scripted stamps: nothing depends on timing.
"""
from __future__ import annotations

import numpy as np
import pytest
from perception_fakes import BrightnessEncoder, SoftmaxHead, face

from dfer_ros.perception.config import PipelineConfig
from dfer_ros.perception.detection import FaceDetector
from dfer_ros.perception.model_interface import AffectModel
from dfer_ros.perception.pipeline import PerceptionPipeline

FRAME_DT = 1.0 / 30.0


class PassDetector(FaceDetector):
    """Finds each face of ``faces`` (name -> Detection) in the passes ``seen_in[name]`` allows: "scan" (a whole-frame
    scan: the detector's own ``detect``, or a finer whole frame), "tile" or "roi"; and only where its centre lies
    inside the region and it is at least ``min_px`` high in the region's detection image."""

    concurrent = True  # the default plan runs scans for new faces on the scan thread

    def __init__(self, min_px: float = 16.0):
        super().__init__(min_score=0.0, min_face_size=1, max_side=320)
        self.faces: dict = {}
        self.seen_in: dict[str, set[str]] = {}
        self.min_px = min_px

    def _visible(self, kind: str) -> list:
        return [d for name, d in self.faces.items() if kind in self.seen_in.get(name, {"scan", "tile", "roi"})]

    def _detect_small(self, image):
        raise AssertionError("detect() is overridden")

    def detect(self, frame_bgr):
        return list(self._visible("scan"))

    def detect_regions(self, frame_bgr, regions):
        out = []
        for region in regions:
            scale = region.w / region.out_w
            out.append([d for d in self._visible(region.kind)
                        if region.x <= d.box[0] + d.box[2] / 2 < region.x + region.w
                        and region.y <= d.box[1] + d.box[3] / 2 < region.y + region.h
                        and d.box[3] / scale >= self.min_px])
        return out


def make_pipeline(detector: PassDetector, config: PipelineConfig = None) -> PerceptionPipeline:
    config = config or PipelineConfig()
    config.quality.abstain = False  # flat test frames have no sharpness
    config.reid.enabled = False
    return PerceptionPipeline(config, AffectModel(BrightnessEncoder(), SoftmaxHead(), "fake", "numpy"),
                              detector=detector)


def tracking_one_face(width: int, height: int, known) -> tuple[PassDetector, PerceptionPipeline]:
    """A pipeline that has tracked the face ``known`` ("a") on a flat frame for 10 frames."""
    detector = PassDetector()
    pipe = make_pipeline(detector)
    frame = np.full((height, width, 3), 90, np.uint8)
    detector.faces = {"a": known}
    for i in range(10):
        pipe.process(frame, i * FRAME_DT)
    return detector, pipe


def frames_until_reported(pipe, detector, width, height, name, start, limit=40, painted=True) -> int:
    """Frames from the new face's first frame to its first report (the known face "a" stays in view). ``painted``:
    the new face is in the pixels too, as a real one is (scans wait while the image does not change)."""
    frame = np.full((height, width, 3), 90, np.uint8)
    if painted:
        x, y, w, h = (int(v) for v in detector.faces[name].box)
        frame[max(0, y):y + h, max(0, x):x + w] = 200
    known = {f.face_id for f in pipe.process(frame, start * FRAME_DT).faces}
    for i in range(1, limit):
        result = pipe.process(frame, (start + i) * FRAME_DT)
        new = [f for f in result.faces if f.face_id not in known]
        if new:
            assert len(new) == 1 and abs(new[0].box[0] - detector.faces[name].box[0]) < 1
            return i
    return -1


@pytest.mark.parametrize("width,height,slots", [(320, 240, 1), (640, 480, 2)])
@pytest.mark.parametrize("phase", range(4))
def test_a_face_found_only_by_whole_frame_scans_is_reported_within_one_scan_cycle(width, height, slots, phase):
    """Default scan settings (scans every 4th frame while faces are tracked, on the scan thread; at 640x480 the scan
    slots alternate with tiles): the new face is found by a scan and confirmed by the next one, never by its region."""
    detector = PassDetector()
    pipe = make_pipeline(detector)
    frame = np.full((height, width, 3), 90, np.uint8)
    detector.faces = {"a": face(20, 20, 48)}
    for i in range(10 + phase):
        assert len(pipe.process(frame, i * FRAME_DT).faces) == (1 if i else 0)
    detector.faces["b"] = face(width - 120, height - 120, 80)
    detector.seen_in["b"] = {"scan"}
    cycle = slots * pipe.config.detection.scan_every
    waited = frames_until_reported(pipe, detector, width, height, "b", 10 + phase)
    assert 0 < waited <= cycle + 2, f"reported after {waited} frames, scan cycle {cycle}"


def test_a_small_face_found_only_in_a_tile_is_confirmed_by_that_tile():
    detector, pipe = tracking_one_face(1280, 960, face(40, 40, 120))
    detector.faces["b"] = face(900, 700, 40)  # 20 px in a tile, 10 in the scan
    detector.seen_in["b"] = {"tile"}
    tiles = len(pipe.front_end.planner._tiles)
    cycle = 2 * tiles * pipe.config.detection.scan_every  # every scan slot once: the whole frame, then each tile
    waited = frames_until_reported(pipe, detector, 1280, 960, "b", 10, limit=cycle + 10)
    assert 0 < waited <= cycle + 2


@pytest.mark.parametrize("gap", [2.0, 6.6, 30.0])
def test_a_still_face_keeps_its_id_across_a_long_stamp_gap(gap):
    """The face drifted 30 px/s before the gap (a velocity the filter learned) and is where it was after it: a
    prediction carried across the gap would look for it seconds of motion away."""
    detector = PassDetector()
    pipe = make_pipeline(detector)
    frame = np.full((300, 400, 3), 90, np.uint8)
    stamp = 0.0
    for i in range(30):
        detector.faces = {"a": face(100 + i, 100, 60)}
        stamp = i * FRAME_DT
        result = pipe.process(frame, stamp)
    (before,) = result.faces
    for k in range(8):  # every phase of the scan cycle after the gap
        result = pipe.process(frame, stamp + gap + k * FRAME_DT)
        assert [f.face_id for f in result.faces] == [before.face_id], f"frame {k} after a {gap} s gap"


def test_a_new_face_that_changes_no_pixel_waits_for_the_idle_scan():
    """Scans wait while the image outside the tracked faces is as at the last one (perception/scene_change.py), but
    never longer than detection.idle_scan_period: a face found only by the whole-frame scan, on a frame that does not
    change, is reported after that period (two, at 640x480, where the whole frame's turn alternates with the
    tiles'), not within a scan cycle."""
    detector, pipe = tracking_one_face(640, 480, face(20, 20, 48))
    detector.faces["b"] = face(500, 340, 80)
    detector.seen_in["b"] = {"scan"}
    period_frames = int(round(pipe.config.detection.idle_scan_period / FRAME_DT))
    cycle = 2 * pipe.config.detection.scan_every
    waited = frames_until_reported(pipe, detector, 640, 480, "b", 10, limit=2 * period_frames + 2 * cycle,
                                   painted=False)
    assert cycle + 2 < waited <= 2 * period_frames + cycle + 2, (waited, period_frames, cycle)


def test_scans_wait_while_the_image_stays_the_same_and_go_on_when_it_changes():
    def scans(period: float, changing: bool) -> int:
        detector = PassDetector()
        config = PipelineConfig()
        config.detection.idle_scan_period = period
        pipe = make_pipeline(detector, config)
        detector.faces = {"a": face(20, 20, 48)}
        count = 0
        for i in range(120):  # 4 s at 30 Hz
            frame = np.full((240, 320, 3), 90, np.uint8)
            if changing:  # something moves far from the face (a bar 7 px further on every frame)
                x = 120 + (7 * i) % 180
                frame[150:230, x:x + 20] = 250
            count += pipe.front_end.step(frame, i * FRAME_DT, may_coast=lambda boxes: set()).regions.get("scan", 0)
        return count

    cycle_scans = scans(0.0, changing=False)  # every scan_every-th frame, as before idle_scan_period
    assert cycle_scans >= 120 // PipelineConfig().detection.scan_every - 1
    assert scans(2.0, changing=False) <= 4  # the first, then one every 2 s
    assert scans(2.0, changing=True) == cycle_scans


def test_an_empty_room_is_scanned_when_its_image_changes_and_a_face_walking_in_is_reported_as_fast():
    """With no face in view the whole-image scans wait for a change too (they were 0.58 of a core at 640x480 and
    30 Hz): once each scan slot (the whole image, each fine tile) has looked at the flat room, it costs one scan per
    idle period, and a face that appears (its pixels change) is reported no later than with a scan on every image
    (sooner here: the slot that sees the change is scanned first, not the next in turn)."""
    def run(period: float) -> tuple[int, int]:
        detector = PassDetector()
        config = PipelineConfig()
        config.detection.idle_scan_period = period
        pipe = make_pipeline(detector, config)
        scans, reported = 0, -1
        for i in range(120):  # 4 s at 30 Hz; a face walks in at 2.5 s
            frame = np.full((480, 640, 3), 90, np.uint8)
            if i >= 75:
                detector.faces = {"a": face(300, 200, 80)}
                frame[200:280, 300:380] = 200
            result = pipe.process(frame, i * FRAME_DT)
            scans += result.work["regions"] if 30 <= i < 75 else 0  # after the slots' first looks
            if result.faces and reported < 0:
                reported = i - 75
        pipe.close()
        return scans, reported

    every_image, waiting = run(0.0), run(2.0)
    assert every_image[0] == 45 and waiting[0] <= 2, (every_image, waiting)  # one per 2 s
    assert 1 <= waiting[1] <= every_image[1], (every_image, waiting)  # confirmed by a second scan, as before


def test_a_face_the_old_settings_could_not_find_is_looked_for_at_once_after_a_reconfigure():
    """A face in view that no scan found (here: the detector does not see it, as with a too large min_face_size) does
    not change the image, so the scans wait; a changed detection setting makes the next scan look at once."""
    import copy

    detector = PassDetector()
    pipe = make_pipeline(detector)
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[200:280, 300:380] = 200  # the face, in view from the start
    detector.faces, detector.seen_in = {"a": face(300, 200, 80)}, {"a": set()}
    for i in range(30):
        assert not pipe.process(frame, i * FRAME_DT).faces
    detector.seen_in["a"] = {"scan", "tile", "roi"}  # findable with the new settings
    new = copy.deepcopy(pipe.config)
    new.detection.min_face_size = 12
    assert pipe.reconfigure(new) == ["detection.min_face_size"]
    reported = [i for i in range(30, 40) if pipe.process(frame, i * FRAME_DT).faces]
    pipe.close()
    assert reported and reported[0] <= 32, reported  # found, then confirmed by a second scan: not after 2 s
