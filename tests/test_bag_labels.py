"""Labels (CSV and Aff-Wild2 layout) matched to prediction records by time, and the metrics on them
equal values computed by hand; unusable labels give messages naming the file, line or time ranges."""
from __future__ import annotations

import json

import pytest

from dfer_ros.evaluation.labels import LabelError, match_predictions, read_affwild2_labels, read_csv_labels
from dfer_ros.evaluation.report import compute_report, format_report, save_report

FER = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def record(stamp, face_id, expression, valence=None, arousal=None, aus=None, box=(0, 0, 100, 100)):
    probs = {k: (0.9 if k == expression else 0.1 / 6) for k in FER}
    return {"frame": int(round(stamp * 10)), "stamp": stamp, "face_id": face_id, "bbox": list(box),
            "detection_score": 0.9, "expression": expression, "expression_probs": probs, "valence": valence,
            "arousal": arousal, "action_units": aus or {}, "window_frames": 1, "warmed_up": True}


def predictions():
    expr = ["neutral", "happy", "happy", "happy", "neutral", "neutral"]
    val = [0.1, 0.2, 0.5, 0.4, 0.0, 0.0]
    aro = [0.5, 0.5, -0.5, -0.5, 0.0, 0.0]
    au12 = [0.9, 0.3, 0.6, 0.1, 0.9, 0.0]
    au25 = [0.1, 0.1, 0.1, 0.1, 0.8, 0.0]
    out = []
    for i in range(6):
        t = round(0.1 * i, 6)
        out.append(record(t, "f1", expr[i], val[i], aro[i], {"AU12": au12[i], "AU25": au25[i]}, (0, 0, 100, 100)))
        out.append(record(t, "f2", "sad", -0.9, 0.9, {"AU12": 0.0, "AU25": 0.0}, (200, 0, 40, 40)))  # smaller face
    return out


CSV = """stamp,face,expression,valence,arousal,AU12,AU25
0.0,,neutral,0.0,0.5,1,0
0.101,,happiness,0.2,0.5,1,0
0.2,,happiness,0.4,-0.5,0,0
0.3,,happiness,0.6,-0.5,0,0
0.4,,surprise,-5,-5,-1,1
0.5,,-1,,,,
9.0,,neutral,0.1,0.1,0,0
0.0,f2,sadness,,,,
"""


def test_csv_labels_give_hand_computed_metrics(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text(CSV)
    labels = read_csv_labels(path)
    assert len(labels) == 8 and labels.faces[7] == "f2"
    m = match_predictions(labels, predictions(), tolerance=0.02)
    assert m.n_labels == 7 and m.n_matched == 6  # 0.5 s labels nothing (-1), 9.0 s has no prediction
    rep = compute_report(m)
    e = rep["expression"]
    # rows without a face take the largest face (f1); the last row names f2 (sad = sadness, correct)
    # rows: 0 N->N, 1 H->H, 2 H->H, 3 H->H, 4 S->N, 7 Sad->Sad  (row 5 is ignored: -1)
    assert e["frames"] == 6
    assert e["war"] == pytest.approx(5 / 6)
    # recalls: neutral 1/1, happiness 3/3, surprise 0/1, sadness 1/1 -> UAR 3/4
    assert e["uar"] == pytest.approx(0.75)
    # F1: neutral tp1 fp1 fn0 -> 2/3; happiness 1; surprise 0; sadness 1 -> mean 2.6667/4
    assert e["macro_f1"] == pytest.approx((2 / 3 + 1 + 0 + 1) / 4)
    per = {r["class"]: r for r in e["per_class"]}
    assert per["happiness"]["support"] == 3 and per["surprise"]["recall"] == 0.0
    assert e["classes"][:8] == ["neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise", "other"]
    va = rep["valence_arousal"]
    # valence pairs (0,.1) (.2,.2) (.4,.5) (.6,.4): means .3/.3, cov .03, var .05/.025 -> CCC 0.8
    assert va["ccc_valence"] == pytest.approx(0.8)
    # arousal pairs (.5,.5) (.5,.5) (-.5,-.5) (-.5,-.5) -> 1; the f2 row has no VA label
    assert va["ccc_arousal"] == pytest.approx(1.0)
    assert va["ccc_mean"] == pytest.approx(0.9)
    au = rep["action_units"]
    # AU12 true 1,1,0,0 (row 4 ignored) vs p>=.5: 1,0,1,0 -> F1 .5; AU25 true 0,0,0,0,1 vs 0,0,0,0,1 -> 1
    assert au["per_au"] == {"AU12": pytest.approx(0.5), "AU25": pytest.approx(1.0)}
    assert au["f1_mean"] == pytest.approx(0.75)
    text = format_report(rep)
    assert "| expression | WAR | 0.8333 | 6 |" in text and "| action units | mean F1 (th 0.5) | 0.7500 |" in text
    saved = json.loads(save_report(rep, tmp_path / "r.json", {"bag": "x"}).read_text())
    assert saved["bag"] == "x" and saved["expression"]["war"] == pytest.approx(5 / 6)
    assert saved["expression"]["per_class"][1]["recall"] is None  # NaN (class absent) -> null


def test_affwild2_labels_align_to_frame_stamps(tmp_path):
    expr = tmp_path / "expr.txt"
    expr.write_text("Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n0\n4\n4\n-1\n6\n0\n0\n")
    va = tmp_path / "va.txt"
    va.write_text("valence,arousal\n0.0,0.5\n0.2,0.5\n0.4,-0.5\n0.6,-0.5\n-5,-5\n")
    stamps = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]  # 7 EXPR lines for 6 frames: the last is dropped; VA has 5
    labels = read_affwild2_labels(stamps, va=va, expr=expr)
    assert list(labels.expr) == [0, 4, 4, -1, 6, 0]
    m = match_predictions(labels, predictions(), tolerance=0.02)
    rep = compute_report(m)
    # N/N, H/H, H/H, S/N, N/N -> WAR 4/5
    assert rep["expression"]["war"] == pytest.approx(0.8)
    assert rep["valence_arousal"]["frames"] == 4
    assert rep["action_units"] is None  # no AU file
    assert m.n_labels == 6  # every frame has a label: frame 3 only VA, frames 4 and 5 only EXPR


def test_labels_that_cover_no_prediction(tmp_path):
    path = tmp_path / "late.csv"
    path.write_text("stamp,expression\n100.0,neutral\n100.1,happiness\n")
    with pytest.raises(LabelError, match=r"late.csv: the labels cover no predicted frame \(label stamps "
                                          r"100.000..100.100 s, predicted faces at 0.000..0.500 s"):
        match_predictions(read_csv_labels(path), predictions(), tolerance=0.02)


def test_bad_label_files_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("stamp,expression\n0.0,neutral\nabc,happiness\n")
    with pytest.raises(LabelError, match=r"bad.csv:3: stamp 'abc' is not a number"):
        read_csv_labels(bad)
    bad.write_text("stamp,expression\n0.0,joyful\n")
    with pytest.raises(LabelError, match=r"bad.csv:2: unknown expression 'joyful'"):
        read_csv_labels(bad)
    bad.write_text("time,expression\n0.0,neutral\n")
    with pytest.raises(LabelError, match=r"bad.csv:1: no 'stamp' column"):
        read_csv_labels(bad)
    va = tmp_path / "va.txt"
    va.write_text("valence,arousal\n0.1,0.2\n3.0,0.1\n")
    with pytest.raises(LabelError, match=r"va.txt:3: value 3.0 outside \[-1, 1\]"):
        read_affwild2_labels([0.0, 0.1], va=va)


def test_labels_that_are_all_ignore(tmp_path):
    path = tmp_path / "ignore.csv"
    path.write_text("stamp,expression,valence,arousal\n0.0,-1,-5,-5\n0.1,,,\n")
    with pytest.raises(LabelError, match="every label row says 'ignore'"):
        match_predictions(read_csv_labels(path), predictions())
