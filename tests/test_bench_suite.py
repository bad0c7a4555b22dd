"""Smoke test of dfer bench's plumbing with tiny settings (the numbers themselves are not asserted:
speed belongs in the benchmark output, not in tests)."""
from __future__ import annotations

import json

import numpy as np

from dfer_ros.bench.suite import MODELS, SuiteConfig, grid_frames, markdown, run_suite
from dfer_ros.cli import bench as bench_cli


def test_grid_frames_place_one_copy_per_cell():
    frame = np.full((300, 400, 3), 200, np.uint8)
    for faces, cells in ((1, 1), (2, 2), (4, 4), (8, 8)):
        (out,) = grid_frames([frame], faces, 1280, 720)
        assert out.shape == (720, 1280, 3)
        rows, cols = {1: (1, 1), 2: (1, 2), 4: (2, 2), 8: (2, 4)}[faces]
        # the centre of every cell is video, the corners between cells are black letterbox
        for r in range(rows):
            for c in range(cols):
                cy, cx = int((r + 0.5) * 720 / rows), int((c + 0.5) * 1280 / cols)
                assert out[cy, cx, 0] == 200
        assert rows * cols == cells


def test_suite_runs_every_section_and_reports(tmp_path):
    cfg = SuiteConfig(frames=2, faces=(1, 2), resolutions=((320, 240),), streaming_config=MODELS / "tiny_test.yaml",
                      streaming_steps=1, reencode_steps=1, latency_seconds=0.0, crowd_faces=(1, 4),
                      crowd_seconds=0.5, crowd_video_frames=3, behaviour_frames=3, behaviour_repeats=1)
    lines: list[str] = []
    result = run_suite(cfg, progress=lines.append)
    assert result.errors == {}
    rows = result.sections["throughput"]["scenarios"]
    assert [(r["size"], r["faces"], r["frames"]) for r in rows] == [("320x240", 1, 2), ("320x240", 2, 2)]
    assert set(rows[0]["stage_ms"]) >= {"detect", "track", "align", "model", "aggregate"}
    crowd = result.sections["crowd"]
    assert [(r["faces"], r["mode"]) for r in crowd["scenes"]] == [(1, "scheduled"), (1, "budget off"),
                                                                    (4, "scheduled"), (4, "budget off")]
    for row in crowd["scenes"]:
        assert row["frames_processed"] > 0 and row["output_hz"] > 0 and row["latency_ms"]["p99"] > 0
        assert row["faces_reported"] > 0 and row["cpu_cores"] > 0
    assert [v["scene"] for v in crowd["video"]] == ["cap12 400x300 1 face", "640x480 2x2 4 faces", "1280x720 1 face"]
    from dfer_ros.bench.crowd_bench import LONDON_FACES

    if LONDON_FACES.is_dir():  # the London faces' attribution travels with the numbers
        assert "CC BY 4.0" in crowd["source"]
    behaviour = result.sections["behaviour"]["scenes"]
    assert [r["faces"] for r in behaviour] == [1, 4] and all(r["fps_on"] > 0 and r["fps_off"] > 0 for r in behaviour)
    assert result.sections["streaming"]["cpu"]["streaming_ms_per_step"] > 0
    expr = result.sections["expression"]  # old vs new default expression net, one run
    assert set(expr["net_ms"]) == {"fer2013", "default"} and expr["net_ms"]["default"]["batch4"]["best_ms_per_face"] > 0
    assert expr["pipeline"]["default"][4]["fps"] > 0 and expr["ratios"]["pipeline_fps_1faces_new_over_old"] > 0
    assert "skipped" in result.sections["latency"]
    gpu = result.sections["gpu"]
    assert "skipped" in gpu or "device" in gpu
    assert result.sections["memory"]["peak_rss_mb"]["self"] > 0
    text = markdown(result)
    assert "| 320x240 | 2 |" in text and "| tiny_test | 8 |" in text and "Peak memory" in text
    assert "| 320x240 | 4 | budget off |" in text and "scheduled / budget off" in text
    assert "quality + expression events) on vs off" in text


def test_cli_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench_cli.main(["--out", str(out), "--quick", "--sections", "throughput", "--frames", "2",
                           "--faces", "1"]) == 0
    data = json.loads(out.read_text())
    assert data["config"]["frames"] == 2 and data["errors"] == {}
    assert len(data["sections"]["throughput"]["scenarios"]) == 1
    assert "| 640x480 | 1 |" in capsys.readouterr().out


def test_cli_model_spec_reaches_the_throughput_section(tmp_path, capsys):
    """``dfer bench --model`` takes any model spec: an exported folder (onnxruntime) and a model config YAML
    (torch backend) both run the throughput section with that model; a missing path is refused up front."""
    import pytest
    from clip_helpers import TINY, export_tiny, tiny_tokenizer_dir

    exported = tmp_path / "tiny"
    assert export_tiny(exported, tiny_tokenizer_dir(tmp_path), ["--no-text"]) == 0
    base = ["--quick", "--sections", "throughput", "--frames", "2", "--faces", "1"]
    for name, extra in (("export", ["--model", str(exported)]),
                        ("config", ["--model", str(TINY), "--backend", "torch"])):
        out = tmp_path / f"{name}.json"
        assert bench_cli.main(["--out", str(out), *base, *extra]) == 0, name
        data = json.loads(out.read_text())
        assert data["errors"] == {}, name
        throughput = data["sections"]["throughput"]
        assert throughput["model"] == "clip:tiny_test", name
        assert throughput["backend"] == ("torch" if name == "config" else "onnxruntime"), name
    with pytest.raises(SystemExit):
        bench_cli.main(["--out", str(tmp_path / "x.json"), *base, "--model", str(tmp_path / "missing")])
    assert "does not exist" in capsys.readouterr().err


def test_crowd_grids_fit_every_face_and_alternate_expressions():
    from dfer_ros.bench.crowd_bench import LOOP_FRAMES, crowd_frames, grid_shape

    for faces, (w, h) in [(1, (640, 480)), (25, (640, 480)), (50, (640, 480)), (50, (1280, 720))]:
        rows, cols, side = grid_shape(faces, w, h)
        assert rows * cols >= faces and cols * side <= w and rows * side <= h
    assert grid_shape(50, 640, 480)[2] >= 64  # faces stay large enough for the detector at 640x480
    frames = crowd_frames(4, 320, 240)
    assert len(frames) == LOOP_FRAMES and frames[0].shape == (240, 320, 3)
    assert not np.array_equal(frames[0], frames[LOOP_FRAMES // 2])  # faces change expression and sway
