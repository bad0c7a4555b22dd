"""Labelled still images through the pipeline, the way ``dfer eval video IMAGE`` reads each of them.

The command is ``dfer eval stills`` (``dfer_ros.cli.eval_stills``); this module holds the library part.

Each image is a one-frame source (``video_eval.video_frames``) run by ``video_eval.run_source`` through one
pipeline that is reset between images, with the settings ``dfer eval`` uses for a still
(``still_image_config``: a face gets its id from its only detection). The face scored is the largest one found.
So what is measured here is what a user of ``dfer eval video`` gets, detector included, without starting a
process per image.

    dfer eval stills DIR [--model default] [--aggregation] [--json out.json]

DIR holds one folder per class (``DIR/happy/*.jpg``, ``DIR/neutral/*.jpg``, ...), folder names being labels
of the model's label set. Prints accuracy (WAR), UAR, per-class recall, the share of images with a face, and
mean valence / arousal / top probability per true class.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from dfer_ros.evaluation.video_eval import STILL_IMAGE_SUFFIXES, run_source, still_image_config, video_frames
from dfer_ros.perception.config import PipelineConfig


@dataclass
class StillResult:
    path: str
    label: str
    found: bool
    predicted: Optional[str] = None  # the published label (aggregation off: the frame's own top label)
    probs: dict[str, float] = field(default_factory=dict)
    valence: Optional[float] = None
    arousal: Optional[float] = None


@dataclass
class StillsSummary:
    images: int
    found: int
    war: float  # accuracy over all images (an image without a face counts as wrong)
    uar: float  # mean per-class recall over the classes present
    recall: dict[str, float]
    mean_valence: dict[str, float]  # over images with a face, per true class
    mean_arousal: dict[str, float]
    mean_top_probability: float
    confusion: dict[str, dict[str, int]]  # true -> predicted ("none": no face) -> count

    def text(self) -> str:
        share = 100.0 * self.found / max(self.images, 1)
        lines = [f"{self.images} images, faces found on {self.found} ({share:.1f} %)",
                 f"WAR {self.war:.3f}  UAR {self.uar:.3f}  mean top probability {self.mean_top_probability:.3f}"]
        nan = float("nan")
        for label in sorted(self.recall):
            lines.append(f"  {label:9s} recall {self.recall[label]:.3f}  "
                         f"valence {self.mean_valence.get(label, nan):+.3f}"
                         f"  arousal {self.mean_arousal.get(label, nan):+.3f}  predicted {dict(self.confusion[label])}")
        return "\n".join(lines)


def labelled_images(root: Path) -> list[tuple[Path, str]]:
    """(image, class) for every image in ``root/<class>/``, sorted."""
    root = Path(root)
    items = [(p, folder.name) for folder in sorted(root.iterdir()) if folder.is_dir()
             for p in sorted(folder.iterdir()) if p.suffix.lower() in STILL_IMAGE_SUFFIXES]
    if not items:
        raise FileNotFoundError(f"no labelled images under {root} (expected {root}/<class>/<image>)")
    return items


class _Collect:
    def __init__(self):
        self.records: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)


def score_still(pipeline, path: Path, label: str) -> StillResult:
    """One image through the (reset) pipeline; the largest face's record."""
    pipeline.reset()
    sink = _Collect()
    run_source(video_frames(path), pipeline, sink, str(path), 1, progress=False)
    if not sink.records:
        return StillResult(str(path), label, False)
    best = max(sink.records, key=lambda r: r["bbox"][2] * r["bbox"][3])
    return StillResult(str(path), label, True, best["expression"], best["expression_probs"],
                       best.get("valence"), best.get("arousal"))


def summarise(results: Sequence[StillResult]) -> StillsSummary:
    by_class: dict[str, list[StillResult]] = defaultdict(list)
    confusion: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in results:
        by_class[r.label].append(r)
        confusion[r.label][r.predicted if r.found else "none"] += 1
    recall = {c: float(np.mean([r.predicted == c for r in rs])) for c, rs in by_class.items()}
    found = [r for r in results if r.found]

    def mean_of(key: str) -> dict[str, float]:
        out = {}
        for c, rs in by_class.items():
            values = [getattr(r, key) for r in rs if r.found and getattr(r, key) is not None]
            if values:
                out[c] = float(np.mean(values))
        return out

    return StillsSummary(
        images=len(results), found=len(found),
        war=float(np.mean([r.predicted == r.label for r in results])) if results else 0.0,
        uar=float(np.mean(list(recall.values()))) if recall else 0.0,
        recall=recall, mean_valence=mean_of("valence"), mean_arousal=mean_of("arousal"),
        mean_top_probability=float(np.mean([max(r.probs.values()) for r in found if r.probs])) if found else 0.0,
        confusion={c: dict(v) for c, v in confusion.items()},
    )


def evaluate_stills(items: Sequence[tuple[Path, str]], pipeline,
                    progress: bool = True) -> tuple[list[StillResult], StillsSummary]:
    """Every image through ``score_still``; the per-image results and their summary."""
    from tqdm import tqdm

    results = [score_still(pipeline, path, label) for path, label in tqdm(items, desc="stills", unit="image",
                                                                           disable=not progress)]
    return results, summarise(results)


def still_pipeline_config(config: Optional[PipelineConfig] = None, aggregation: bool = False) -> PipelineConfig:
    """The settings ``dfer eval video IMAGE`` uses for a still (``still_image_config``), aggregation off
    unless asked for."""
    import copy

    config = copy.deepcopy(still_image_config(config or PipelineConfig().validate()))
    config.aggregation.enabled = aggregation
    return config.validate()
