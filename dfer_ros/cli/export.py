"""``dfer export``: turn a CLIP-adapter model (trained checkpoint or random init) into the runtime folder.

    dfer export --model models/clip_vitb16_abaw.yaml --checkpoint runs/abaw/best.safetensors --out exported/vitb16
    dfer export --model models/tiny_test.yaml --random-init --out /tmp/tiny --tokenizer /path/to/vocab
    dfer export --model models/clip_vitb16_abaw.yaml --pretrained-only --prompts my_classes.yaml --out exported/zs

Writes image_tower.onnx, temporal_head.onnx, text_embeddings.npy + text_labels.json, config.yaml,
torch_weights.safetensors and manifest.json; prints the ONNX Runtime vs PyTorch max abs difference
per output. Exit codes: 0 ok, 1 parity beyond the tolerance, 2 bad input (config, checkpoint, paths).
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from dfer_ros.deprecation import add_deprecated_flag


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dfer export", description=__doc__.split("\n")[0])
    p.add_argument("--model", help="model config YAML (models/*.yaml); required")
    add_deprecated_flag(p, "--config", "--model", "model")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="trained checkpoint (.safetensors written by training)")
    src.add_argument("--random-init", action="store_true",
                     help="random weights everywhere (clip_weights ignored): tests, benchmarks, pipeline checks")
    src.add_argument("--pretrained-only", action="store_true",
                     help="the config's CLIP weights with untrained adapters/head: for zero-shot use (--text-mode zero_shot)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tokenizer", help="folder with vocab.json + merges.txt (default: config text.tokenizer / clip_weights)")
    p.add_argument("--prompts", help="YAML prompt file for the zero-shot classes (default: config / built-in)")
    p.add_argument("--no-text", action="store_true", help="skip the text embeddings")
    p.add_argument("--tolerance", type=float, default=None, help="max abs ONNX-vs-PyTorch difference (default 1e-3)")
    p.add_argument("--opset", type=int, default=17)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.model:
        parser.error("the following arguments are required: --model")
    from dfer_ros.clip_adapter.checkpoint import CheckpointError, load_checkpoint
    from dfer_ros.clip_adapter.config import ConfigError, load_config
    from dfer_ros.clip_adapter.export import DEFAULT_TOLERANCE, export_model
    from dfer_ros.clip_adapter.model import ClipAdapterModel

    try:
        cfg = load_config(args.model)
        tokenizer = args.tokenizer or cfg.text.tokenizer or cfg.clip_weights  # the HF folder still has the vocab
        if args.random_init:
            cfg.clip_weights = None
        model = ClipAdapterModel(cfg)
        if args.checkpoint:
            load_checkpoint(args.checkpoint, model)
        manifest = export_model(cfg, model, args.out, tokenizer_dir=tokenizer, prompts=args.prompts,
                                with_text=not args.no_text,
                                tolerance=DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance,
                                opset=args.opset)
    except (ConfigError, CheckpointError, FileNotFoundError, ValueError) as exc:
        print(f"dfer export: error: {exc}", file=sys.stderr)
        return 2
    if not manifest["parity"]["ok"]:
        print(f"dfer export: ONNX Runtime and PyTorch differ by more than {manifest['parity']['tolerance']:.0e}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
