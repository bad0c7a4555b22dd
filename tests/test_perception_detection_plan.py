"""Where the detector looks on each frame (``perception.detection_plan``): deterministic plans from frame
sizes and tracked boxes, exact mapping of regions back to the frame, and real re-detection of real faces."""
import cv2
import numpy as np
import pytest
import skimage.data

from dfer_ros.perception import detection_plan as dp
from dfer_ros.perception.config import TrackingConfig
from dfer_ros.perception.detection import CenterFaceDetector
from dfer_ros.perception.tracking import FaceTracker, iou_matrix
from dfer_ros.perception.types import Detection


def box(x, y, s):
    return np.array([x, y, s, s], np.float32)


def kinds(regions):
    return [r.kind for r in regions]


def test_without_tracked_faces_every_frame_is_a_whole_frame_scan():
    planner = dp.DetectionPlanner(max_side=320, scan_every=4)
    for _ in range(6):
        (region,) = planner.plan(400, 300, []).regions
        assert region == dp.whole_frame(400, 300, 320) and (region.out_w, region.out_h) == (320, 240)


def test_tracked_faces_are_redetected_in_regions_between_scans():
    planner = dp.DetectionPlanner(max_side=320, scan_every=4)
    tracked = [(1, box(50, 50, 120)), (2, box(220, 60, 110))]  # findable at the scan's 1.25x downscale
    plans = [planner.plan(400, 300, tracked).regions for _ in range(8)]
    assert [kinds(p) for p in plans] == [["scan"], ["roi", "roi"], ["roi", "roi"], ["roi", "roi"]] * 2
    first_roi = plans[1][0]
    assert first_roi.key == 1 and (first_roi.out_w, first_roi.out_h) == (dp.ROI_SIDE, dp.ROI_SIDE)
    assert first_roi.w == pytest.approx(dp.ROI_CONTEXT * 120)  # the face and half a face all round
    cx, cy = first_roi.x + first_roi.w / 2, first_roi.y + first_roi.h / 2
    assert (cx, cy) == pytest.approx((110, 110))


def test_scan_every_one_scans_the_whole_frame_every_frame_and_nothing_else():
    planner = dp.DetectionPlanner(max_side=320, scan_every=1, fine_scan=False)
    for _ in range(5):
        assert planner.plan(640, 480, [(1, box(100, 100, 150))]).regions == [dp.whole_frame(640, 480, 320)]


def test_a_face_too_small_for_the_scan_raises_the_scans_resolution_or_gets_its_own_region():
    planner = dp.DetectionPlanner(max_side=320, scan_every=4, fine_scan=False)
    big, small = (1, box(100, 100, 150)), (2, box(400, 100, 40))  # 20 px high in the 2x downscaled scan
    (scan,) = planner.plan(640, 480, [big, small]).regions  # a scan frame looks as finely as the small face needs
    assert scan.kind == "scan" and scan.covers(small[1]) and 40 / scan.scale < 40 and scan.out_w > 320
    assert [(r.kind, r.key) for r in planner.plan(640, 480, [big, small]).regions] == [("roi", 1), ("roi", 2)]
    tiny = (3, box(300, 300, 20))  # too small even at full resolution: its region upscales it
    planner.reset()
    scan, region = planner.plan(640, 480, [big, tiny]).regions
    assert (scan.out_w, scan.out_h) == (640, 480) and (region.kind, region.key) == ("roi", 3)
    assert 20 / region.scale == pytest.approx(dp.ROI_SIDE / dp.ROI_CONTEXT)


def test_large_frames_alternate_whole_frame_scans_with_fine_tiles_that_cover_it():
    planner = dp.DetectionPlanner(max_side=320, scan_every=1)
    tiles = dp.fine_tiles(1280, 720, 320)
    scans = [planner.plan(1280, 720, []).regions[0] for _ in range(2 * len(tiles))]
    assert scans[0::2] == [dp.whole_frame(1280, 720, 320)] * len(tiles)
    assert scans[1::2] == tiles
    covered = np.zeros((720, 1280), bool)
    for t in tiles:
        assert max(t.out_w, t.out_h) <= 320 and t.scale == pytest.approx(2.0, rel=0.01)  # twice the scan's 4x
        covered[int(t.y):int(round(t.y + t.h)), int(t.x):int(round(t.x + t.w))] = True
    assert covered.all()
    # any face up to two findable sizes (at tile scale) lies wholly inside some tile, away from inner edges
    for x in range(0, 1280 - 128, 16):
        for y in range(0, 720 - 128, 16):
            assert any(t.covers(box(x, y, 128)) for t in tiles), (x, y)
    assert dp.fine_tiles(400, 300, 320) == []  # not much larger than max_side: no tiles


def test_a_crowd_of_small_faces_gets_one_finer_whole_frame_scan_instead_of_fifty_regions():
    planner = dp.DetectionPlanner(max_side=320, scan_every=4, fine_scan=False)
    crowd = [(k, box(20 + 120 * (k % 10), 20 + 130 * (k // 10), 70)) for k in range(50)]
    planner.plan(1280, 720, crowd).regions  # scan frame
    (region,) = planner.plan(1280, 720, crowd).regions
    assert region.kind == "scan" and 70 / region.scale == pytest.approx(dp.FINE_SCAN_FACE_PX, rel=0.02)
    assert all(region.covers(b) for _, b in crowd)
    few = crowd[:3]
    assert kinds(planner.plan(1280, 720, few).regions) == ["roi"] * 3  # three regions cost less than that scan


def test_the_whole_frame_scan_downscales_large_frames_and_leaves_small_ones_as_they_are():
    big = np.zeros((1080, 1920, 3), np.uint8)
    image, shown = dp.cut_region(big, dp.whole_frame(1920, 1080, 320))
    assert max(image.shape[:2]) == 320 and shown.scale == pytest.approx(6.0)
    small = np.zeros((100, 200, 3), np.uint8)
    assert dp.cut_region(small, dp.whole_frame(200, 100, 320))[0] is small


def test_cut_region_fills_outside_the_frame_and_maps_back_exactly():
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[40:60, 10:30] = 255  # a white square at x 10..30, y 40..60
    region = dp.Region("roi", -30.0, 20.0, 64.0, 64.0, 64, 64, key=1)
    image, shown = dp.cut_region(frame, region)
    assert image.shape == (64, 64, 3) and (image[:, :30] == dp.GREY).all()
    ys, xs = np.nonzero(image[:, :, 0] == 255)
    found = Detection(np.array([xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()], np.float32), 1.0,
                      np.array([[xs.min(), ys.min()]], np.float32))
    (back,) = dp.to_frame([found], shown)
    assert back.box == pytest.approx([10, 40, 20, 20], abs=0.01) and back.landmarks[0] == pytest.approx([10, 40])
    half = dp.Region("roi", 50.0, 0.0, 100.0, 100.0, 32, 32)  # downscaled by 3.125
    image, shown = dp.cut_region(frame, half)
    assert image.shape == (32, 32, 3) and shown.scale == pytest.approx(100 / 32, rel=0.02)


def test_cut_region_upscaling_a_region_that_starts_between_pixels_and_crosses_the_frame_edge():
    """A small face's region is magnified; its origin rounds to a pixel up to half a pixel before it, which once gave
    a negative canvas offset and a crash (the whole frame skipped) for faces under 32 px near the frame's edge."""
    frame = np.full((480, 640, 3), 90, np.uint8)
    region = dp.Region("roi", 416.318, 420.206, 73.129, 73.129, 128, 128, key=1)  # 13 px past the bottom edge
    image, shown = dp.cut_region(frame, region)
    assert image.shape == (128, 128, 3) and (image[:90] == 90).all() and (image[-18:] == dp.GREY).all()
    assert shown.x == pytest.approx(region.x, abs=1.0) and shown.scale == pytest.approx(region.scale, rel=0.02)


def test_tiles_drop_faces_cut_by_their_inner_edges_and_regions_keep_only_their_face():
    tile = dp.Region("tile", 0.0, 0.0, 100.0, 100.0, 100, 100, inner=(False, False, True, False))
    cut, whole = Detection(box(70, 10, 30), 0.9), Detection(box(20, 10, 30), 0.9)
    assert dp.keep_for_region([cut, whole], tile) == [whole]
    roi = dp.roi(7, box(100, 100, 50))
    mine, neighbour = Detection(box(104, 98, 50), 0.8), Detection(box(160, 100, 50), 0.9)
    assert dp.keep_for_region([neighbour, mine], roi, box(100, 100, 50)) == [mine]
    assert dp.keep_for_region([neighbour], roi, box(100, 100, 50)) == []


def test_a_redetection_belongs_to_its_track_and_the_track_keeps_its_whole_frame_score():
    tracker = FaceTracker(TrackingConfig(min_hits=2), high_score=0.6)
    a, b = box(100, 100, 60), box(300, 100, 60)
    tracker.update([Detection(a, 0.9), Detection(b, 0.85)], 0.0)
    keys = {round(float(t.box[0])): t.key for t in tracker.tracks}
    # the regions' scores are lower (the face fills the region): both tracks still take their own detection
    tracks = tracker.update([], 0.033, {keys[100]: Detection(a + 1, 0.62), keys[300]: Detection(b - 1, 0.4)})
    assert len(tracks) == 2 and all(t.detected_now for t in tracks)
    scores = sorted(t.detection.score for t in tracks)
    assert scores == pytest.approx([0.85, 0.9])
    # a scan that finds a re-detected face again does not start a second track for it
    tracks = tracker.update([Detection(a + 2, 0.95)], 0.066, {keys[100]: Detection(a + 2, 0.7)})
    assert len(tracker.tracks) == 2


@pytest.fixture(scope="module")
def astronaut_in_a_room():
    astro = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    frame = np.full((480, 640, 3), 70, np.uint8)
    frame[100:356, 300:556] = cv2.resize(astro, (256, 256), interpolation=cv2.INTER_AREA)
    return frame


def test_a_real_face_redetected_in_its_region_matches_the_whole_frame_detection(astronaut_in_a_room):
    detector = CenterFaceDetector(min_score=0.3, max_side=320)
    (scan,) = detector.detect(astronaut_in_a_room)
    region = dp.roi(1, scan.box + np.array([6, -4, 0, 0], np.float32))  # a slightly wrong prediction
    (found,) = dp.keep_for_region(detector.detect_regions(astronaut_in_a_room, [region])[0], region, scan.box)
    assert iou_matrix(found.box[None], scan.box[None])[0, 0] > 0.75
    eye_distance = np.linalg.norm(scan.landmarks[0] - scan.landmarks[1])
    assert np.abs(found.landmarks - scan.landmarks).max() < 0.2 * eye_distance
    # batched: several regions in one call give each region's own result
    twice = detector.detect_regions(astronaut_in_a_room, [region, dp.roi(2, box(20, 20, 60)), region])
    assert len(twice[0]) == len(twice[2]) == 1 and twice[1] == []
    assert twice[0][0].box == pytest.approx(twice[2][0].box)


def test_in_the_background_mode_scans_for_new_faces_leave_the_frame_and_every_tracked_face_gets_a_region():
    planner = dp.DetectionPlanner(max_side=320, scan_every=4, background=True)
    first = planner.plan(400, 300, [])  # nothing tracked yet: the first scan is the frame's own
    assert kinds(first.regions) == ["scan"] and first.background is None
    tracked = [(1, box(50, 50, 120)), (2, box(220, 60, 110))]
    plans = [planner.plan(400, 300, tracked) for _ in range(7)]
    assert [kinds(p.regions) for p in plans] == [["roi", "roi"]] * 7
    assert [p.background for p in plans] == [None, None, None, dp.whole_frame(400, 300, 320), None, None, None]
    # a crowd of small faces: the finer whole-frame scan localises them and finds new ones, now
    crowd = [(k, box(20 + 120 * (k % 10), 20 + 130 * (k // 10), 70)) for k in range(50)]
    planner.reset()
    plan = planner.plan(1280, 720, crowd)
    assert kinds(plan.regions) == ["scan"] and plan.background is None and plan.regions[0].scale < 4


def two_faces(astro, k, second):
    """A 640x480 frame with the astronaut's face drifting right, and a second face from frame ``second`` on."""
    frame = np.full((480, 640, 3), 70, np.uint8)
    face = cv2.resize(astro[20:220, 150:330], (144, 160), interpolation=cv2.INTER_AREA)
    frame[80:240, 40 + 2 * k:184 + 2 * k] = face
    if k >= second:
        frame[260:420, 420:564] = face
    return frame


@pytest.mark.parametrize("redetect_period", [0.0, 0.1])
@pytest.mark.parametrize("background", [False, True])
def test_a_new_face_joins_within_a_scan_cycle_and_runs_are_reproducible(background, redetect_period):
    from dfer_ros.perception.config import PipelineConfig
    from dfer_ros.perception.front_end import FaceFrontEnd

    astro = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    cfg = PipelineConfig()
    cfg.detection.redetect_period = redetect_period
    runs = []
    for _ in range(2):
        front = FaceFrontEnd(cfg, background_scan=background)
        detected = []  # per frame: the face ids detected on it
        try:
            steps = []
            for k in range(20):
                steps.append(front.step(two_faces(astro, k, 5), k / 30, may_coast=set))  # every face may coast
                detected.append({t.face_id for t in steps[-1].tracks if t.detected_now})
        finally:
            front.close()
        runs.append([[(t.face_id, t.box.round(3).tolist()) for t in s.tracks] for s in steps])
        counts = [len(s.tracks) for s in steps]
        # one face tracked from frame 1; the second appears at frame 5 and is found by the scan at frame 8
        # (whole-frame scans every 4th frame, alternating with tiles at 640x480 ... ), confirmed one run later;
        # frames where the tracked face coasts count in the scan cycle, so it joins as soon
        joined = counts.index(2)
        assert counts[1:5] == [1] * 4 and 5 < joined <= 5 + 2 * cfg.detection.scan_every + 2
        assert all(c == 2 for c in counts[joined:])
        for s in steps[joined + 1:]:
            scans = s.regions.get("scan", 0) + s.regions.get("tile", 0)
            if redetect_period == 0:  # both faces re-detected on every frame: in regions, or by a scan
                assert s.regions.get("roi", 0) == 2 or (not background and scans)
        if redetect_period > 0:  # each face detected at least every period (3 frames at 30 Hz), and not always
            for fid in {fid for frame in runs[-1][joined:] for fid, _ in frame}:
                seen = [k for k in range(joined, 20) if fid in detected[k]]
                assert max(b - a for a, b in zip(seen, seen[1:])) <= 3 and len(seen) < 20 - joined
    ids = [[fid for fid, _ in frame] for frame in runs[0]]
    assert len({fid for frame in ids for fid in frame}) == 2  # no id churn
    first, second = ([[box for _, box in frame] for frame in run] for run in runs)
    assert first == second
