"""ClipAdapterModel: frozen CLIP image tower + per-frame adapters + temporal head.

The split matches the runtime interface (``dfer_ros.perception.model_interface``): ``encode_frames`` is the
per-frame encoder (run once per face crop and cached), ``forward_head`` runs over cached embeddings.
``forward`` on whole clips is the same two calls, so training and streaming compute one function.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from dfer_ros.clip_adapter.adapters import attach_bottleneck_adapters, inject_lora
from dfer_ros.clip_adapter.config import ClipAdapterConfig
from dfer_ros.clip_adapter.freezing import freeze_for_adaptation
from dfer_ros.clip_adapter.temporal_head import TemporalHead, masked_mean


def vision_config(cfg: ClipAdapterConfig) -> CLIPVisionConfig:
    v = cfg.vision
    return CLIPVisionConfig(hidden_size=v.hidden_size, intermediate_size=v.intermediate_size,
                            num_hidden_layers=v.num_hidden_layers, num_attention_heads=v.num_attention_heads,
                            patch_size=v.patch_size, image_size=cfg.image_size, projection_dim=v.projection_dim,
                            hidden_act=v.hidden_act, layer_norm_eps=v.layer_norm_eps)


class ClipAdapterModel(nn.Module):
    """Built from a config alone: random init reproducible from ``cfg.init_seed``; real CLIP weights
    loaded from ``cfg.clip_weights`` (HF ``openai/clip-vit-*`` layout) when set and ``load_weights``."""

    def __init__(self, cfg: ClipAdapterConfig, load_weights: bool = True):
        super().__init__()
        self.cfg = cfg
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.init_seed)
            self.vision = CLIPVisionModelWithProjection(vision_config(cfg))
            if cfg.clip_weights and load_weights:
                from dfer_ros.clip_adapter.checkpoint import load_clip_weights

                load_clip_weights(self.vision, cfg.clip_weights, part="vision")
            layers = self.vision.vision_model.encoder.layers
            kind = cfg.adapter.kind
            self.adapters = (attach_bottleneck_adapters(layers, cfg.vision.hidden_size, cfg.adapter)
                             if kind in ("bottleneck", "both") else nn.ModuleDict())
            if kind in ("lora", "both"):
                inject_lora(self.vision, cfg.adapter)
            self.head = TemporalHead(cfg.embedding_dim, cfg.window, len(cfg.expression_labels), len(cfg.au_names), cfg.head)
        self.num_trainable, self.num_parameters = freeze_for_adaptation(self, cfg.adapter.train_projection)
        self.vision.eval()

    def train(self, mode: bool = True) -> "ClipAdapterModel":
        """The frozen tower always stays in eval mode (no dropout noise in the features)."""
        super().train(mode)
        self.vision.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def encode_frames(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) CLIP-normalized -> (N, D) unit-length embeddings, each frame on its own."""
        if pixel_values.shape[0] == 0:
            return pixel_values.new_zeros((0, self.cfg.embedding_dim))
        emb = self.vision(pixel_values=pixel_values).image_embeds
        return nn.functional.normalize(emb, dim=-1)

    def forward_head(self, embeddings: torch.Tensor, mask: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """(B, T, D) embeddings (T <= window), mask (B, T) bool (True = real) -> dict of
        ``expression_logits`` (B, C), ``valence_arousal`` (B, 2) in [-1, 1], ``au_logits`` (B, A), and
        ``clip_embedding`` (B, D): the unit-length mean of the real frames, for zero-shot text scores."""
        out = self.head(embeddings, mask)
        keep = (torch.ones(embeddings.shape[:2], device=embeddings.device) if mask is None
                else mask.to(embeddings.dtype)).unsqueeze(-1)
        out["clip_embedding"] = nn.functional.normalize(masked_mean(embeddings, keep), dim=-1)
        return out

    def forward(self, clips: torch.Tensor, mask: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """(B, T, 3, S, S) clips -> the ``forward_head`` dict; frames are encoded independently."""
        b, t = clips.shape[:2]
        emb = self.encode_frames(clips.reshape(b * t, *clips.shape[2:])).reshape(b, t, -1)
        return self.forward_head(emb, mask)
