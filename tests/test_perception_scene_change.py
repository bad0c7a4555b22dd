"""When a scan for new faces may wait (perception/scene_change.py): only while nothing changed, region by region."""
from __future__ import annotations

import numpy as np

from dfer_ros.perception.detection_plan import Region, whole_frame
from dfer_ros.perception.scene_change import CHANGE_LEVEL, SceneWatch

WIDTH, HEIGHT = 640, 480
FACE = np.array([100, 80, 80, 100], np.float32)  # a tracked face (x, y, w, h)


def _scene(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(40, 200, (HEIGHT, WIDTH, 3)).astype(np.uint8)


def _watch_after_scan(frame: np.ndarray, region: Region) -> SceneWatch:
    watch = SceneWatch()
    watch.new_frame(frame, [FACE])
    watch.scanned(region, 0.0)
    return watch


def test_sensor_noise_is_no_change_and_a_face_is():
    base = _scene()
    whole = whole_frame(WIDTH, HEIGHT, 320)
    watch = _watch_after_scan(base, whole)
    noisy = np.clip(base + np.random.default_rng(1).normal(0, 4, base.shape), 0, 255).astype(np.uint8)
    watch.new_frame(noisy, [FACE])
    assert not watch.changed(whole)
    entered = base.copy()
    entered[300:380, 450:520] = 235  # a face-sized bright patch away from the tracked face
    watch.new_frame(entered, [FACE])
    assert watch.changed(whole)


def test_the_tracked_face_is_no_change_and_a_new_face_just_below_it_is():
    base = _scene()
    whole = whole_frame(WIDTH, HEIGHT, 320)
    watch = _watch_after_scan(base, whole)
    moved = base.copy()
    moved[80:180, 100:180] = 255 - moved[80:180, 100:180]  # the face itself turns
    watch.new_frame(moved, [FACE])
    assert not watch.changed(whole)
    below = moved.copy()
    below[240:340, 100:180] = 235  # a face in the row below (a class, an audience): not hidden as its body
    watch.new_frame(below, [FACE])
    assert watch.changed(whole)


def test_a_change_counts_for_each_region_until_that_region_is_scanned():
    base = _scene()
    whole = whole_frame(WIDTH, HEIGHT, 320)
    tile = Region("tile", 320.0, 240.0, 320.0, 240.0, 320, 240)
    watch = SceneWatch()
    watch.new_frame(base, [FACE])
    watch.scanned(whole, 0.0)
    watch.scanned(tile, 0.0)
    entered = base.copy()
    entered[380:420, 560:600] = 235  # a small face in the tile
    watch.new_frame(entered, [FACE])
    assert watch.changed(whole) and watch.changed(tile)
    watch.scanned(whole, 0.3)  # the whole frame looked first (and could not find a face that small)
    watch.new_frame(entered, [FACE])
    assert not watch.changed(whole) and watch.changed(tile)
    other = Region("tile", 0.0, 0.0, 320.0, 240.0, 320, 240)
    watch.scanned(other, 0.0)
    assert not watch.changed(other)  # the change is not in that tile


def test_scans_wait_only_within_the_idle_period_and_every_region_starts_changed():
    watch = SceneWatch()
    assert not watch.idle_for(1.0, 2.0)  # nothing scanned yet
    base = _scene()
    watch.new_frame(base, [FACE])
    assert watch.changed(whole_frame(WIDTH, HEIGHT, 320))  # never scanned
    watch.scanned(whole_frame(WIDTH, HEIGHT, 320), 1.0)
    assert watch.idle_for(2.9, 2.0) and not watch.idle_for(3.0, 2.0) and not watch.idle_for(0.5, 2.0)
    assert not watch.idle_for(1.5, 0.0)
    assert CHANGE_LEVEL > 4.0  # above the webcam video's background noise between scans (module docstring)
