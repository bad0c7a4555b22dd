"""``dfer eval stills``: labelled still images through the pipeline, scored (WAR, UAR, recall, valence per class).

    dfer eval stills DIR [--model default] [--model-option KEY=VALUE] [--aggregation] [--json out.json]

DIR holds one folder of images per class (``DIR/happy/*.jpg``, ``DIR/neutral/*.png``, ...). Each image runs
through the pipeline as ``dfer eval video IMAGE`` runs it (one frame, a face confirmed by its only detection,
aggregation off unless ``--aggregation``); see ``dfer_ros.evaluation.stills``. ``--model`` follows the spec rule of
``dfer_ros.estimators.loader``.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Sequence

from dfer_ros.user_files import parse_user_yaml

from dfer_ros.deprecation import add_deprecated_flag


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dfer eval stills", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="folder with one sub-folder of images per class")
    parser.add_argument("--model", default="default", help="model spec (default: %(default)s)")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                        help="model builder option, value parsed as YAML (repeatable)")
    parser.add_argument("--aggregation", action="store_true", help="keep the temporal smoothing on")
    parser.add_argument("--json", type=Path, help="write the per-image results and the summary here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_deprecated_flag(parser, "--quiet", "--no-progress", "no_progress", store_true=True)
    args = parser.parse_args(argv)
    options = {}
    for item in args.model_option:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            parser.error(f"model option {item!r} must look like KEY=VALUE")
        options[key.strip()] = parse_user_yaml(value, f"model option {key.strip()!r}") if value.strip() else ""
    from dfer_ros.estimators.loader import build_pipeline
    from dfer_ros.evaluation.stills import evaluate_stills, labelled_images, still_pipeline_config

    try:
        items = labelled_images(args.root)
        pipeline = build_pipeline(still_pipeline_config(aggregation=args.aggregation), args.model, args.backend,
                                  **options)
    except (FileNotFoundError, ValueError) as exc:
        print(f"dfer eval stills: error: {exc}", file=sys.stderr)
        return 2
    results, summary = evaluate_stills(items, pipeline, progress=not args.no_progress)
    print(f"model {pipeline.model.name}")
    print(summary.text())
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": asdict(summary), "results": [asdict(r) for r in results]},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
