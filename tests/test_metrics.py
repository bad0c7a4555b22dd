"""Metric functions against values computed by hand, including the edge cases benchmarks hit."""
import math

import numpy as np
import pytest

from dfer_ros.scoring import metrics as m


def test_war_uar_confusion_by_hand():
    t = [0, 0, 0, 0, 1, 1, 2, -1]
    p = [0, 0, 0, 1, 1, 0, 2, 2]
    cm = m.confusion_matrix(t, p, 3)
    assert cm.tolist() == [[3, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert m.war(t, p) == pytest.approx(5 / 7)  # the -1 target is ignored
    assert m.uar(t, p, 3) == pytest.approx((3 / 4 + 1 / 2 + 1) / 3)


def test_uar_constant_prediction_and_absent_class():
    t = [0, 0, 0, 1]
    p = [0, 0, 0, 0]
    # class 2 is absent from the targets: left out of the mean, not counted as recall 0
    assert m.uar(t, p, 3) == pytest.approx(0.5)
    assert m.war(t, p) == pytest.approx(0.75)
    rec = m.per_class_recall(t, p, 3)
    assert rec[0] == 1.0 and rec[1] == 0.0 and math.isnan(rec[2])


def test_macro_f1_by_hand():
    t = [0, 0, 1, 1, 2]
    p = [0, 1, 1, 1, 0]
    # class0: tp1 fp1 fn1 -> 0.5; class1: tp2 fp1 fn0 -> 0.8; class2: tp0 fn1 -> 0
    assert m.macro_f1(t, p, 4) == pytest.approx((0.5 + 0.8 + 0.0) / 3)  # class 3 never seen: left out
    rows = m.per_class_table(t, p, ["a", "b", "c", "d"])
    assert rows[1]["f1"] == pytest.approx(0.8) and rows[1]["support"] == 2 and rows[1]["predicted"] == 3
    assert math.isnan(rows[3]["recall"])
    assert "| a |" in m.format_table(rows)


def test_ccc_by_hand_and_edge_cases():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([2.0, 2.0, 4.0, 4.0])
    # population moments: mx 2.5, my 3, var x 1.25, var y 1.0, cov 1.0 -> 2/(1.25+1+0.25)=0.8
    assert m.ccc(x, y) == pytest.approx(0.8)
    assert m.ccc(x, x) == pytest.approx(1.0)
    assert m.ccc(x, -x + 5) == pytest.approx(-1.0)
    # constant prediction: covariance 0 -> CCC 0
    assert m.ccc(x, np.full(4, 2.5)) == pytest.approx(0.0)
    assert m.ccc(np.full(3, 0.2), np.full(3, 0.2)) == 1.0
    assert m.ccc([1, np.nan, 3], [1, 5, 3]) == pytest.approx(1.0)  # the NaN pair is ignored
    va = m.va_ccc(np.stack([x, x], 1), np.stack([y, x], 1))
    assert va["ccc_valence"] == pytest.approx(0.8) and va["ccc_mean"] == pytest.approx(0.9)


def test_au_f1_and_threshold_tuning():
    t = np.array([[1, 0], [1, 0], [0, 1], [0, -1]], float)
    s = np.array([[0.9, 0.2], [0.4, 0.1], [0.1, 0.3], [0.6, 0.9]])
    # AU0 at 0.5: tp1 fp1 fn1 -> 0.5; AU1: tp0 fn1 -> 0 (row 4 ignored)
    assert m.au_f1(t, s) == pytest.approx(0.25)
    th = m.tune_au_thresholds(t, s)
    # AU0 best: threshold in (0.1, 0.4] -> tp2 fp1 -> 0.8; AU1: (0.2, 0.3] separates perfectly
    assert 0.1 < th[0] <= 0.4 and 0.2 < th[1] <= 0.3
    assert m.au_f1(t, s, th) == pytest.approx((0.8 + 1.0) / 2)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError):
        m.war([0, 1], [0])
