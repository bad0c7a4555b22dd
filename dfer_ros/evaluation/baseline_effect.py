"""The effect of per-person baselines on the London set: each person's neutral photo as their resting face.

Each person is one short stream through the pipeline (``baseline.enabled``): their neutral photo for
``neutral_seconds`` at 10 images per second (calm images: the baseline forms), then their smiling photo for
``happy_seconds``. Read at the end of each part: the published (absolute) label and the relative label. So it
shows what the baseline does to people whose resting face does not read neutral, and whether a smile still
reads as a smile relative to the person's own neutral.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

RATE = 10.0


@dataclass
class BaselineEffect:
    people: int = 0
    neutral_absolute: Counter = field(default_factory=Counter)  # label of the neutral photo, absolute
    neutral_relative: Counter = field(default_factory=Counter)
    happy_absolute: Counter = field(default_factory=Counter)
    happy_relative: Counter = field(default_factory=Counter)
    resting_not_neutral: list = field(default_factory=list)  # (person, absolute, relative) on the neutral photo

    def text(self) -> str:
        def share(counter: Counter, label: str) -> str:
            return f"{counter[label]}/{sum(counter.values())}"

        lines = [f"{self.people} people (neutral photo {share(self.neutral_absolute, 'neutral')} read neutral "
                 f"absolute, {share(self.neutral_relative, 'neutral')} relative; smiling photo "
                 f"{share(self.happy_absolute, 'happy')} read happy absolute, "
                 f"{share(self.happy_relative, 'happy')} relative)",
                 f"  neutral photo, absolute: {dict(self.neutral_absolute.most_common())}",
                 f"  neutral photo, relative: {dict(self.neutral_relative.most_common())}",
                 f"  smiling photo, absolute: {dict(self.happy_absolute.most_common())}",
                 f"  smiling photo, relative: {dict(self.happy_relative.most_common())}",
                 "  resting faces that do not read neutral (person: absolute -> relative): "
                 + (", ".join(f"{p}: {a} -> {r}" for p, a, r in self.resting_not_neutral) or "none")]
        return "\n".join(lines)


def run(root: Path, pipeline, people: Optional[int] = None, neutral_seconds: float = 3.0,
        happy_seconds: float = 1.0) -> BaselineEffect:
    import cv2

    root = Path(root)
    names = sorted(p.stem for p in (root / "neutral").glob("*.jpg"))[:people]
    out = BaselineEffect()
    for name in names:
        neutral, happy = cv2.imread(str(root / "neutral" / f"{name}.jpg")), cv2.imread(str(root / "happy" / f"{name}.jpg"))
        if neutral is None or happy is None:
            continue
        pipeline.reset()
        stamp = 0.0
        last = {}
        for part, image, seconds in (("neutral", neutral, neutral_seconds), ("happy", happy, happy_seconds)):
            face = None
            for _ in range(int(round(seconds * RATE))):
                stamp += 1.0 / RATE
                result = pipeline.process(image, stamp)
                if result.faces:
                    face = max(result.faces, key=lambda f: float(f.box[2] * f.box[3]))
            last[part] = face
        if last["neutral"] is None or last["happy"] is None:
            continue
        out.people += 1
        n, h = last["neutral"], last["happy"]
        out.neutral_absolute[n.expression] += 1
        out.neutral_relative[n.relative_expression or "-"] += 1
        out.happy_absolute[h.expression] += 1
        out.happy_relative[h.relative_expression or "-"] += 1
        if n.expression != "neutral":
            out.resting_not_neutral.append((name, n.expression, n.relative_expression or "-"))
    return out
