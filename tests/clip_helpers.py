"""Shared helpers for the CLIP-adapter and backend tests: the tiny config, a tiny tokenizer, an export."""
from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "models" / "tiny_test.yaml"


def tiny_cfg(**changes):
    from dfer_ros.clip_adapter.config import load_config

    cfg = load_config(TINY)
    for key, value in changes.items():
        obj = cfg
        *path, last = key.split("__")
        for part in path:
            obj = getattr(obj, part)
        setattr(obj, last, value)
    return cfg.validate()


def tiny_tokenizer_dir(tmp: Path) -> Path:
    from dfer_ros.clip_adapter.text_prompts import write_char_vocab

    return write_char_vocab(tmp / "tokenizer", vocab_size=128)


def random_crops(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def export_tiny(out: Path, tokenizer: Path, extra_args=()) -> int:
    from dfer_ros.cli.export import main

    return main(["--model", str(TINY), "--random-init", "--out", str(out), "--tokenizer", str(tokenizer), *extra_args])


def hf_clip(cfg, hidden=None, seed=7):
    """A tiny CLIPModel with the config's sizes (real HF class, so real key names)."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    v, t = cfg.vision, cfg.text
    torch.manual_seed(seed)
    conf = CLIPConfig(
        vision_config=dict(hidden_size=hidden or v.hidden_size, intermediate_size=v.intermediate_size,
                           num_hidden_layers=v.num_hidden_layers, num_attention_heads=v.num_attention_heads,
                           patch_size=v.patch_size, image_size=cfg.image_size),
        text_config=dict(vocab_size=t.vocab_size, hidden_size=t.hidden_size, intermediate_size=t.intermediate_size,
                         num_hidden_layers=t.num_hidden_layers, num_attention_heads=t.num_attention_heads,
                         max_position_embeddings=t.max_position_embeddings, bos_token_id=t.vocab_size - 2,
                         eos_token_id=t.vocab_size - 1, pad_token_id=t.vocab_size - 1),
        projection_dim=v.projection_dim)
    return CLIPModel(conf).eval()
