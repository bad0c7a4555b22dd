"""The node soak benchmark, short: a real node subprocess over real DDS, real faces entering and leaving;
every frame answered, RSS sampled at the start, every ``sample_every`` frames and at the end. (The figure
itself comes from the full run, ``dfer bench soak --frames 30000``; a test only checks the machinery.)"""
from __future__ import annotations

import json

import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")

from dfer_ros.bench import soak_bench  # noqa: E402


def test_short_soak_answers_every_frame_and_samples_node_rss(ros_env, tmp_path):
    report = soak_bench.run(frames=120, warmup=0, sample_every=40, people=4, env=ros_env,
                            log_dir=tmp_path, progress=lambda line: None, progress_bar=False)
    assert report.processed == 120 and report.missed == 0
    assert [frame for frame, _ in report.rss_mb] == [0, 40, 80, 120]
    assert all(100 < mb < 10_000 for _, mb in report.rss_mb), report.rss_mb  # a loaded model, not a stub
    # each sample split into anonymous, file-backed and shared memory, and the least RSS read since the last
    assert [part[0] for part in report.rss_parts_mb] == [0, 40, 80, 120]
    assert all(0 < anon < mb and anon + files + shm <= mb + 1 for (_, mb), (_, anon, files, shm)
               in zip(report.rss_mb, report.rss_parts_mb))
    assert [f for f, _ in report.rss_floor_mb] == [0, 40, 80, 120]
    assert all(floor <= mb for (_, floor), (_, mb) in zip(report.rss_floor_mb, report.rss_mb))
    assert report.anon_slope_mb_per_1000 is not None and report.floor_slope_mb_per_1000 is not None
    # the node's own count of what its heap holds, from /diagnostics (read once the node has trimmed)
    assert report.heap_in_use and all(10.0 < mb < anon < 10_000.0 and blocks > 0
                                      for _, mb, blocks, anon in report.heap_in_use)
    assert report.faces_shown >= 2 and report.face_ids >= 1 and report.mean_faces_per_frame > 0.3
    assert report.slope_mb_per_1000 is not None and report.growth_mb_after_warmup is not None
    lines = soak_bench.summary_lines(report)
    assert "MB per 1,000 frames" in lines[1] and "120/120 frames" in lines[0]


def test_churn_scenes_bring_faces_in_and_out():
    import numpy as np

    tile = np.full((soak_bench.SIDE, soak_bench.SIDE, 3), 200, np.uint8)
    scenes = soak_bench.ChurnScenes([(tile, tile)], seed=1)
    occupied = [int((frame == 200).all(axis=2).sum() // soak_bench.SIDE ** 2) for frame in scenes.frames(600)]
    assert min(occupied) < max(occupied) and max(occupied) <= len(soak_bench.SLOTS)
    assert scenes.faces_shown >= 6  # slots refill: faces keep arriving


def test_slope_is_least_squares_after_warmup():
    samples = [(0, 500.0), (1000, 400.0), (2000, 401.0), (3000, 402.0)]
    slope, growth = soak_bench.slope_per_1000(samples, warmup=1000)
    assert slope == pytest.approx(1.0) and growth == pytest.approx(2.0)


def test_dfer_bench_soak_section(ros_env, tmp_path, monkeypatch):
    from dfer_ros.bench import suite

    real_run = soak_bench.run
    monkeypatch.setattr(soak_bench, "run", lambda frames, **kw: real_run(
        frames, **{**kw, "people": 3, "env": ros_env, "log_dir": tmp_path, "sample_every": 20}))
    cfg = suite.SuiteConfig.quick()
    cfg.sections, cfg.soak_frames = ("soak",), 40
    result = suite.run_suite(cfg, progress=lambda line: None)
    assert not result.errors, result.errors
    assert result.sections["soak"]["processed"] == 40
    assert "node RSS" in suite.markdown(result)
    json.dumps(result.sections["soak"])


@pytest.mark.parametrize("args", [["--trim-every", "5"], ["--offline", "--trim-every", "-1"],
                                  ["--offline", "--competitors", "2"]])
def test_soak_command_refuses_flags_that_do_not_fit(args, capsys):
    from dfer_ros.cli import bench_soak

    with pytest.raises(SystemExit) as stop:
        bench_soak.main(["--frames", "10", *args])
    assert stop.value.code == 2 and "--" in capsys.readouterr().err
