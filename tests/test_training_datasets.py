"""Dataset readers on tiny synthetic datasets written in each public layout, and their errors."""
import numpy as np
import pytest

from dfer_ros.training import synthetic
from dfer_ros.datasets import DatasetError, read_split
from dfer_ros.datasets.common import ABAW_EXPR8, BASIC7, MAFW11, label_mapping


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("layouts")
    return {
        "dfew": synthetic.write_dfew(base / "DFEW", clips_per_class=2, frames=6, size=16),
        "ferv39k": synthetic.write_ferv39k(base / "FERV39k", clips_per_class=2, frames=6, size=16),
        "mafw": synthetic.write_mafw(base / "MAFW", clips_per_class=1, frames=6, size=16),
        "affwild2": synthetic.write_affwild2(base / "AffWild2", videos=2, frames=20, size=16),
        "manifest": synthetic.write_manifest(base / "manifest", clips_per_class=2, frames=6, size=16),
    }


def test_dfew_folds_partition_the_clips(roots):
    train = read_split("dfew", roots["dfew"], "train", fold=2)
    test = read_split("dfew", roots["dfew"], "test", fold=2)
    assert len(train.records) + len(test.records) == 14
    assert not {r.clip_id for r in train.records} & {r.clip_id for r in test.records}
    assert train.expression_labels == BASIC7
    rec = train.records[0]
    assert rec.num_frames == len(rec.frames) >= 6 and rec.frames[0].name == "00001.jpg"
    assert 0 <= rec.expression < 7


def test_ferv39k_and_mafw(roots):
    f = read_split("ferv39k", roots["ferv39k"], "test")
    assert len(f.records) == 4 and all("/" in r.clip_id for r in f.records)
    m = read_split("mafw", roots["mafw"], "train", fold=1)
    assert m.expression_labels == MAFW11 and len(m.records) == 8
    assert {r.expression for r in m.records} <= set(range(11))


def test_affwild2_ignore_values_are_masked(roots):
    d = read_split("affwild2", roots["affwild2"], "train")
    assert d.per_frame and d.au_names[0] == "AU1" and len(d.au_names) == 12
    rec = d.records[0]
    assert rec.num_frames == 20
    # every 7th frame was written as -1 / -5: ignored everywhere
    assert rec.frame_expression[6] == -1 and np.isnan(rec.frame_va[6]).all() and (rec.frame_aus[6] == -1).all()
    assert rec.frame_expression[5] >= 0 and np.isfinite(rec.frame_va[5]).all() and set(rec.frame_aus[5]) <= {0, 1}
    v = read_split("affwild2", roots["affwild2"], "validation", tasks=("VA",))
    assert v.records[0].frame_expression is None and v.has_va


def test_manifest(roots):
    d = read_split("manifest", roots["manifest"], "val")
    assert len(d.records) == 4 and d.has_va and len(d.au_names) == 12
    assert np.isfinite(d.records[0].valence) and d.records[0].aus.shape == (12,)


def test_label_mapping_across_datasets():
    m = label_mapping(BASIC7, ABAW_EXPR8)
    assert [ABAW_EXPR8[i] for i in m] == ["happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"]
    with pytest.raises(ValueError, match="contempt"):
        label_mapping(MAFW11, ABAW_EXPR8)


def _expect(match, fn):
    with pytest.raises(DatasetError, match=match) as info:
        fn()
    return info.value


def test_malformed_dfew(tmp_path):
    root = synthetic.write_dfew(tmp_path / "DFEW", clips_per_class=1, frames=4, size=16)
    split = root / "EmoLabel_DataSplit" / "train(single-labeled)" / "set_1.csv"
    split.with_name("set_3.csv").unlink()
    _expect("set_3.csv: DFEW split file not found", lambda: read_split("dfew", root, "train", fold=3))
    lines = split.read_text().splitlines()
    split.write_text("\n".join(lines[:2] + ["7,3,extra"]) + "\n")
    err = _expect(r"set_1.csv:3: expected 2 fields", lambda: read_split("dfew", root, "train", fold=1))
    assert err.line == 3
    split.write_text("\n".join(lines[:2] + ["7,9"]) + "\n")
    _expect(r"set_1.csv:3: unknown label '9'", lambda: read_split("dfew", root, "train", fold=1))
    split.write_text("\n".join(lines[:2] + ["999,1"]) + "\n")
    _expect(r"set_1.csv:3: clip folder of '999' does not exist", lambda: read_split("dfew", root, "train", fold=1))


def test_malformed_mafw_label(tmp_path):
    root = synthetic.write_mafw(tmp_path / "MAFW", clips_per_class=1, frames=4, size=16)
    path = root / "Train & Test Set" / "single" / "no_caption" / "set_1" / "train.txt"
    path.write_text(path.read_text().splitlines()[0] + "\n00002.mp4 boredom\n")
    _expect(r"train.txt:2: unknown label 'boredom'", lambda: read_split("mafw", root, "train", fold=1))


def test_malformed_affwild2(tmp_path):
    root = synthetic.write_affwild2(tmp_path / "AW", videos=1, frames=12, size=16)
    ann = root / "annotations"
    va = next((ann / "VA_Estimation_Challenge" / "Train_Set").glob("*.txt"))
    good = va.read_text()
    lines = good.splitlines()
    va.write_text("\n".join(lines[:3] + ["0.1"] + lines[4:]) + "\n")
    err = _expect(r"\.txt:4: expected 2 field\(s\), got 1", lambda: read_split("affwild2", root, "train"))
    assert err.path == va
    va.write_text("\n".join(lines[:3] + ["0.1,1.7"] + lines[4:]) + "\n")
    _expect(r":4: value 1.7 outside", lambda: read_split("affwild2", root, "train"))
    va.write_text(good)
    expr = next((ann / "EXPR_Recognition_Challenge" / "Train_Set").glob("*.txt"))
    e_lines = expr.read_text().splitlines()
    expr.write_text("\n".join(e_lines[:2] + ["8"] + e_lines[3:]) + "\n")
    _expect(r":3: unknown label 8", lambda: read_split("affwild2", root, "train", tasks=("EXPR",)))
    expr.write_text("\n".join(e_lines) + "\n")
    au = next((ann / "AU_Detection_Challenge" / "Train_Set").glob("*.txt"))
    a_lines = au.read_text().splitlines()
    au.write_text("\n".join(a_lines[:5] + [a_lines[5].rsplit(",", 1)[0]] + a_lines[6:]) + "\n")
    _expect(r":6: expected 12 field\(s\), got 11", lambda: read_split("affwild2", root, "train", tasks=("AU",)))
    au.write_text("\n".join(a_lines) + "\n")
    # frame folder shorter than its annotations: error by default, masked on request
    folder = next((root / "cropped_aligned").iterdir())
    (folder / "00012.jpg").unlink()
    (folder / "00003.jpg").unlink()
    err = _expect(r"shorter than its annotations: no image 00003.jpg", lambda: read_split("affwild2", root, "train"))
    assert err.line == 4
    d = read_split("affwild2", root, "train", missing_frames="mask")
    rec = d.records[0]
    assert not rec.frame_present[2] and rec.frame_expression[2] == -1 and np.isnan(rec.frame_va[2]).all()
    # a missing annotation folder names what was tried
    import shutil
    shutil.rmtree(ann / "AU_Detection_Challenge")
    _expect("annotation folder for AU missing", lambda: read_split("affwild2", root, "train", missing_frames="mask"))


def test_malformed_manifest(tmp_path):
    path = synthetic.write_manifest(tmp_path / "m", clips_per_class=1, frames=4, size=16)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + [lines[2] + ",7"]) + "\n")
    _expect(r"manifest.csv:3: expected 17 fields, got 18", lambda: read_split("manifest", path, None))
    bad = lines[2].split(",")
    bad[2] = "bored"
    path.write_text("\n".join(lines[:2] + [",".join(bad)]) + "\n")
    _expect(r"manifest.csv:3: unknown label 'bored'", lambda: read_split("manifest", path, None,
                                                                         expression_labels=BASIC7))
    path.write_text("path,num_frames\nclips/0000,99\n")
    _expect(r"manifest.csv:2: .* has 4 frames, fewer than its num_frames 99",
            lambda: read_split("manifest", path, None))
    _expect("manifest not found", lambda: read_split("manifest", tmp_path / "none.csv", None))


def test_affwild2_single_task_dataset_trains_only_that_task(roots):
    from dfer_ros.training.clip_dataset import ClipDataset
    from dfer_ros.datasets.common import ABAW_AU12

    d = read_split("affwild2", roots["affwild2"], "train", tasks=("VA",))
    assert d.expression_labels == [] and d.au_names == [] and d.has_va
    ds = ClipDataset(d, ABAW_EXPR8, ABAW_AU12, 16, frames=3, stride=1, window_step=5)
    assert not ds.has_expression and not ds.has_aus and ds.has_va
    item = ds[0]
    assert item["frames"].shape == (3, 16, 16, 3) and item["expression"] == -1 and (item["aus"] == -1).all()
    assert np.isfinite(item["va"]).all()  # windows end at labelled frames
