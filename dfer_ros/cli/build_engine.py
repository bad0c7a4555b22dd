"""``dfer build-engine ONNX_DIR --fp16 --max-faces N``: TensorRT engines for an exported CLIP-adapter folder.

Builds (or finds in the cache) one engine per ONNX file listed in ONNX_DIR/manifest.json, with an
optimization profile over batch 1..N. Engines go to ONNX_DIR/engines (or --cache-dir), named by the
sha256 of ONNX file + TensorRT version + GPU name + options, so the node later loads exactly these
and rebuilds when any of them changes. Refuses with a clear message (exit 3) where TensorRT or a GPU
is missing; exit 2 on a bad folder.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence
from dfer_ros.user_files import read_user_json


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dfer build-engine", description=__doc__.split("\n")[0])
    p.add_argument("onnx_dir", help="folder written by dfer export (with manifest.json)")
    p.add_argument("--fp16", action="store_true", help="allow FP16 kernels (recommended on Jetson / RTX)")
    p.add_argument("--max-faces", type=int, default=8, help="largest batch (faces per frame) of the profile")
    p.add_argument("--cache-dir", help="engine cache folder (default ONNX_DIR/engines)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    onnx_dir = Path(args.onnx_dir)
    manifest_path = onnx_dir / "manifest.json"
    if not manifest_path.is_file():
        print(f"dfer build-engine: error: {manifest_path} not found (export the model with dfer export first)",
              file=sys.stderr)
        return 2
    if args.max_faces < 1:
        print("dfer build-engine: error: --max-faces must be >= 1", file=sys.stderr)
        return 2
    from dfer_ros.backends.tensorrt_backend import engine_for, tensorrt_status

    usable, reason = tensorrt_status()
    if not usable:
        print(f"dfer build-engine: cannot build TensorRT engines here: {reason}. Run this on the target machine "
              f"(e.g. the robot's Jetson) where TensorRT 10 and a CUDA GPU are present.", file=sys.stderr)
        return 3
    print(f"dfer build-engine: {reason}")
    manifest = read_user_json(manifest_path)
    from tqdm import tqdm

    for part in tqdm(("image_tower", "temporal_head"), desc="engines", unit="engine"):
        onnx_path = onnx_dir / manifest[part]["file"]
        engine = engine_for(onnx_path, args.cache_dir, fp16=args.fp16, max_batch=args.max_faces)
        print(f"{part}: {engine}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
