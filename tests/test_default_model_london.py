"""Both embedded expression nets on real labelled faces, through the pipeline the way ``dfer eval video`` reads a
still image (detector, tracker, aligner, model, aggregation off).

Data: /work/shared/datasets/london_faces (Face Research Lab London Set, DeBruine & Jones 2017, CC BY 4.0,
doi:10.6084/m9.figshare.5047666.v5; 102 adults, neutral and smiling, front view).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import pytest

from dfer_ros.cli import eval as eval_cli
from dfer_ros.cli import eval_stills
from dfer_ros.estimators.loader import build_pipeline
from dfer_ros.evaluation.stills import evaluate_stills, labelled_images, still_pipeline_config

# the shared data folder sits beside the repository clone
LONDON = Path(os.environ.get("DFER_LONDON_FACES", Path(__file__).resolve().parents[2] / "shared" / "datasets"
                             / "london_faces"))
pytestmark = pytest.mark.skipif(not (LONDON / "happy").is_dir(), reason=f"London face set not found at {LONDON}")


@pytest.fixture(scope="module")
def summaries():
    items = labelled_images(LONDON)
    assert len(items) == 204
    out = {}
    for name in ("default", "fer2013"):
        _, summary = evaluate_stills(items, build_pipeline(still_pipeline_config(), name), progress=False)
        print(f"\n{name}: {summary.text()}")
        out[name] = summary
    return out


def test_default_is_more_accurate_and_keeps_valence_meaning(summaries):
    new, old = summaries["default"], summaries["fer2013"]
    assert new.images == old.images == 204
    assert new.found == 204 and old.found == 204  # a face on every image
    assert new.war >= 0.77 and new.war > old.war + 0.05  # measured 0.799 vs 0.716
    assert new.recall["neutral"] >= 0.95
    # valence: a neutral face near 0, a smiling one clearly positive (docs/default_model.md)
    assert abs(new.mean_valence["neutral"]) <= 0.1
    assert new.mean_valence["happy"] >= 0.5
    # calibrated: confidences are not saturated (the uncalibrated net averages 0.970 here)
    assert 0.6 < new.mean_top_probability < 0.9


def _noagg(tmp_path: Path) -> Path:
    config = tmp_path / "noagg.yaml"
    config.write_text("aggregation:\n  enabled: false\n")
    return config


@pytest.mark.parametrize("model", ["default", "fer2013"])
def test_dfer_eval_on_one_still_image(tmp_path, model, capsys):
    """A jpg and a small grey png, each a one-frame 'video', aggregation off: one labelled face each."""
    grey = cv2.cvtColor(cv2.imread(str(LONDON / "happy" / "010.jpg")), cv2.COLOR_BGR2GRAY)
    small = tmp_path / "small_grey.png"
    cv2.imwrite(str(small), cv2.resize(grey, (150, 150), interpolation=cv2.INTER_AREA))
    for image, label in ((LONDON / "neutral" / "010.jpg", "neutral"), (small, None)):
        out = tmp_path / f"{image.stem}.jsonl"
        assert eval_cli.video_main([str(image), "--model", model, "--pipeline-config", str(_noagg(tmp_path)),
                              "--out", str(out), "--no-progress"]) == 0
        records = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(records) == 1, capsys.readouterr().out
        record = records[0]
        assert record["expression"] == record["frame_expression"]  # aggregation off: the frame's own label
        assert abs(sum(record["expression_probs"].values()) - 1.0) < 1e-3
        if label is not None:
            assert record["expression"] == label


def test_dfer_eval_stills_command(tmp_path, capsys):
    """The command over a small labelled folder (4 London photos), with its JSON output."""
    for label in ("happy", "neutral"):
        (tmp_path / "set" / label).mkdir(parents=True)
        for stem in ("010", "020"):
            (tmp_path / "set" / label / f"{stem}.jpg").write_bytes((LONDON / label / f"{stem}.jpg").read_bytes())
    out = tmp_path / "stills.json"
    assert eval_stills.main([str(tmp_path / "set"), "--json", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "4 images, faces found on 4" in text and "WAR" in text
    data = json.loads(out.read_text())
    assert data["summary"]["images"] == 4 and len(data["results"]) == 4
    assert eval_stills.main([str(tmp_path / "empty")]) == 2
