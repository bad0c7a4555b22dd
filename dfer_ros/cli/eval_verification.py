"""``dfer eval verification``: face verification accuracy of the re-identification descriptor on labelled stills.

    dfer eval verification DIR [--plot roc.png] [--json out.json] [--face-scale 1.1 ...]

DIR holds ``DIR/<condition>/<person>.jpg`` (the London set: neutral/ and happy/ of the same 102 people).
Prints genuine/impostor distance statistics and TAR at FAR 1 % and 0.1 %; ``--plot`` writes the ROC and the
distance histograms. Several ``--face-scale`` values compare crop framings in one run.
This module only parses arguments and calls ``dfer_ros.evaluation.verification``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dfer eval verification", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="DIR/<condition>/<person>.jpg")
    parser.add_argument("--face-scale", type=float, nargs="+", help="crop framings to compare "
                        "(default: the descriptor's own)")
    parser.add_argument("--plot", type=Path, help="ROC + histogram PNG (of the first framing)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from dfer_ros.estimators.faceapi_descriptor import FaceApiDescriptor
    from dfer_ros.evaluation import verification as ver
    from dfer_ros.perception.config import PipelineConfig, ReidConfig
    from dfer_ros.perception.detection import create_detector

    threshold = ReidConfig().max_distance  # the default reid.max_distance

    items = ver.labelled_identities(args.root)
    descriptor = FaceApiDescriptor()
    detector = create_detector(PipelineConfig().detection.detector)  # the pipeline's default detector
    scales = args.face_scale or [descriptor.crop_spec.face_scale]
    report = {"root": str(args.root), "images": len(items), "framings": []}
    for k, scale in enumerate(scales):
        crop = replace(descriptor.crop_spec, face_scale=scale)
        start = time.perf_counter()
        vectors = ver.describe_images([p for p, _ in items], detector, descriptor.describe, crop,
                                      progress=not args.no_progress)
        seconds = time.perf_counter() - start
        result = ver.verification([person for _, person in items], vectors)
        far, frr = result.far_frr(threshold)
        print(f"face_scale {scale:g}:\n{result.text()}\n"
              f"at the default threshold {threshold:.2f}: FAR {far:.4f}, FRR {frr:.4f}\n"
              f"({seconds:.1f} s for {len(items)} images, detection included)")
        entry = {"face_scale": scale, "faces_found": result.faces_found, "genuine_pairs": len(result.genuine),
                 "impostor_pairs": len(result.impostor), "default_threshold": threshold,
                 "far_at_default": far, "frr_at_default": frr}
        for rate in (0.01, 0.001):
            tar, at_far = result.tar_at_far(rate)
            entry[f"tar_at_far_{rate:g}"], entry[f"threshold_at_far_{rate:g}"] = tar, at_far
        report["framings"].append(entry)
        if args.plot and k == 0:
            ver.roc_plot(result, args.plot, f"{descriptor.name}, {args.root.name}, face_scale {scale:g} "
                                            f"(London set: DeBruine & Jones 2017, CC BY 4.0)", threshold)
            print(f"wrote {args.plot}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
