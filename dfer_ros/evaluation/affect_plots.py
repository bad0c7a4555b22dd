"""Figures of one evaluation run (PNG, matplotlib Agg): what the model said over time, per face.

  * ``plot_va_trajectory``     each face's valence-arousal path on Russell's circumplex
  * ``plot_expression_timeline`` per face: smoothed class probabilities (stacked) over time, the
                               published label on top, and the ground-truth label when there is one
  * ``plot_latency_histogram`` per-frame processing (offline) or end-to-end (live) latency
The confusion matrix is ``plots.plot_confusion_matrix``. Inputs are the JSONL prediction records.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from dfer_ros.scoring.plots import _pyplot, _save

CIRCUMPLEX_WORDS = [(0, 1, "excited"), (0.75, 0.75, "happy"), (1, 0, "pleased"), (0.75, -0.75, "relaxed"),
                    (0, -1, "calm"), (-0.75, -0.75, "bored"), (-1, 0, "sad"), (-0.75, 0.75, "angry / afraid")]


def _by_face(records: Sequence[dict]) -> dict[str, list[dict]]:
    faces: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        faces[str(r["face_id"])].append(r)
    for rows in faces.values():
        rows.sort(key=lambda r: float(r["stamp"]))
    return dict(sorted(faces.items(), key=lambda kv: -len(kv[1])))


def plot_va_trajectory(records: Sequence[dict], path, max_faces: int = 6, title: Optional[str] = None) -> Path:
    """Valence (x) / arousal (y) of each face over time on the unit circumplex; faces without VA are left out."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 6.4), dpi=100)
    theta = np.linspace(0, 2 * np.pi, 200)
    ax.plot(np.cos(theta), np.sin(theta), color="0.6", lw=1)
    ax.axhline(0, color="0.8", lw=0.8)
    ax.axvline(0, color="0.8", lw=0.8)
    for x, y, word in CIRCUMPLEX_WORDS:
        ax.text(1.08 * x, 1.08 * y, word, ha="center", va="center", fontsize=8, color="0.4")
    cmaps = ["Blues", "Oranges", "Greens", "Purples", "Reds", "Greys"]
    shown = 0
    for face, rows in _by_face(records).items():
        pts = np.array([(r["valence"], r["arousal"]) for r in rows
                        if r.get("valence") is not None and r.get("arousal") is not None], np.float64)
        if len(pts) == 0 or shown >= max_faces:
            continue
        cmap = plt.get_cmap(cmaps[shown % len(cmaps)])
        t = np.linspace(0.35, 1.0, len(pts))
        ax.plot(pts[:, 0], pts[:, 1], color=cmap(0.8), lw=1, alpha=0.6)
        ax.scatter(pts[:, 0], pts[:, 1], c=[cmap(v) for v in t], s=10, label=f"{face} ({len(pts)} frames)")
        ax.scatter(*pts[0], marker="o", s=60, facecolors="none", edgecolors=cmap(0.9))
        ax.scatter(*pts[-1], marker="X", s=70, color=cmap(0.95))
        shown += 1
    ax.set_xlim(-1.25, 1.25)
    ax.set_ylim(-1.25, 1.25)
    ax.set_aspect("equal")
    ax.set_xlabel("valence")
    ax.set_ylabel("arousal")
    ax.set_title(title or "valence-arousal trajectory (o start, x end; darker = later)")
    if shown:
        ax.legend(loc="lower right", fontsize=8)
    else:
        ax.text(0, 0.3, "no valence-arousal output", ha="center")
    return _save(fig, plt, path)


def plot_expression_timeline(records: Sequence[dict], path,
                             truth: Optional[tuple[np.ndarray, np.ndarray, list[str]]] = None,
                             max_faces: int = 4, title: Optional[str] = None, events: Sequence[dict] = ()) -> Path:
    """Per face: stacked smoothed probabilities over time, the published label strip, and the truth.

    ``truth``: (stamps, class index per stamp (-1 = none), class names) of the labels, drawn as a second strip.
    ``events``: expression event records (``predictions.event_record``): each episode is outlined from onset
    to offset (to the end when it never ended), named, its apex marked at its peak probability.
    """
    plt = _pyplot()
    faces = list(_by_face(records).items())[:max_faces] or [("no faces", [])]
    labels: list[str] = []
    for _, rows in faces:
        for r in rows:
            for k in (r.get("expression_probs") or {}):
                if k not in labels:
                    labels.append(k)
    from dfer_ros.vocabulary import canonical_expression

    colors = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(labels)}
    canonical = {canonical_expression(k): c for k, c in colors.items()}
    all_t = [float(r["stamp"]) for _, rows in faces for r in rows]
    if truth is not None and len(truth[0]) and all_t:  # labels before/after the predictions stay in view
        labelled = [float(t) for t, k in zip(truth[0], truth[1]) if k >= 0]
        all_t += [t for t in labelled if min(all_t) - 1.0 <= t <= max(all_t) + 1.0]
    t0 = min(all_t) if all_t else 0.0  # plot seconds from the first prediction (bag stamps are epoch-sized)
    fig, axes = plt.subplots(len(faces), 1, figsize=(10, 2.6 * len(faces) + 0.6), dpi=100, squeeze=False)
    for ax, (face, rows) in zip(axes[:, 0], faces):
        if not rows:
            ax.text(0.5, 0.5, "no face predictions", ha="center", transform=ax.transAxes)
            continue
        t = np.array([float(r["stamp"]) - t0 for r in rows])
        probs = np.array([[float((r.get("expression_probs") or {}).get(k, 0.0)) for k in labels] for r in rows])
        if probs.size:
            ax.stackplot(t, probs.T, colors=[colors[k] for k in labels], labels=labels, alpha=0.85)
        for i, r in enumerate(rows):  # published label strip above the probabilities
            name = r.get("expression") or ""
            if name in colors:
                t1 = t[i + 1] if i + 1 < len(t) else t[i] + (t[i] - t[i - 1] if i else 0.04)
                ax.axvspan(t[i], t1, ymin=1.02, ymax=1.10, color=colors[name], clip_on=False, lw=0)
        if truth is not None:
            stamps, idx, names = truth
            stamps = np.asarray(stamps, np.float64) - t0
            for k in range(len(stamps)):
                if idx[k] < 0:
                    continue
                name = names[idx[k]]
                col = canonical.get(canonical_expression(name), "0.3")
                t1 = stamps[k + 1] if k + 1 < len(stamps) else stamps[k] + 0.04
                ax.axvspan(stamps[k], t1, ymin=1.12, ymax=1.20, color=col, clip_on=False, lw=0)
        _draw_episodes(ax, [e for e in events if e.get("face_id") == face], t0, t[-1])
        ax.set_ylim(0, 1)
        t_end = max(all_t) - t0
        ax.set_xlim(0.0, t_end if t_end > 0 else 1.0)
        ax.set_ylabel(f"{face}\nprobability")
        ax.text(1.005, 1.06, "published", transform=ax.transAxes, fontsize=7, va="center")
        if truth is not None:
            ax.text(1.005, 1.16, "truth", transform=ax.transAxes, fontsize=7, va="center")
    axes[-1, 0].set_xlabel(f"time (s) since stamp {t0:.3f}")
    if labels:
        axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 0.95), fontsize=8)
    fig.suptitle(title or "expression over time (smoothed probabilities)", y=0.995)
    return _save(fig, plt, path)


def _draw_episodes(ax, events: Sequence[dict], t0: float, t_end: float) -> None:
    """Outline each episode of one face (its onset and offset records joined by episode number), dashed in
    black over the probabilities (the label's own colour would vanish into its band)."""
    episodes: dict[int, dict] = {}
    for e in events:
        episodes.setdefault(int(e["episode"]), {}).update({k: v for k, v in e.items() if v is not None})
    for number, e in sorted(episodes.items()):
        start = float(e["onset"]) - t0
        end = float(e["offset"]) - t0 if "offset" in e else t_end
        ax.axvspan(start, end, ymin=0.0, ymax=1.0, fill=False, edgecolor="k", lw=1.2, ls="--")
        ax.plot([float(e["apex"]) - t0], [float(e["peak_probability"])], marker="v", color="k", ms=6)
        ax.text(start, 0.98, f" {e.get('label', '')} #{number}", fontsize=7, va="top", color="k")


def plot_latency_histogram(latencies_ms: Sequence[float], path, title: Optional[str] = None, bins: int = 40) -> Path:
    """Histogram with mean / p50 / p95 / p99 marked."""
    plt = _pyplot()
    lat = np.asarray([v for v in latencies_ms if v is not None and np.isfinite(v)], np.float64)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if len(lat):
        ax.hist(lat, bins=bins, color="tab:blue", alpha=0.8)
        marks = [("mean", lat.mean(), "k"), ("p50", np.percentile(lat, 50), "tab:green"),
                 ("p95", np.percentile(lat, 95), "tab:orange"), ("p99", np.percentile(lat, 99), "tab:red")]
        for name, value, col in marks:
            ax.axvline(value, color=col, ls="--", lw=1, label=f"{name} {value:.1f} ms")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no latency samples", ha="center", transform=ax.transAxes)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("frames")
    ax.set_title(title or f"latency ({len(lat)} frames)")
    return _save(fig, plt, path)
