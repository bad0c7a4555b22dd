"""Temporal head over a track's per-frame embeddings: TCN, short pre-norm Transformer, optional
learnable lifting split (static + dynamic parts, after IFDD), expression / valence-arousal / AU heads.

Windows shorter than the configured length are padded at the END and described by a mask
(True = real frame). Every stage keeps padded positions out of the result: convolution inputs are
zeroed there (so a padded window sees exactly the zero border a short window would see), attention
ignores padded keys, and pooling averages real frames only. A padded window therefore gives the same
outputs as the unpadded short window. Attention masking uses a finite -1e4 rather than -inf so the
exported graph stays finite in fp16 (TensorRT).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from dfer_ros.clip_adapter.config import TemporalHeadConfig

_MASK_VALUE = -1e4


class TemporalConvBlock(nn.Module):
    """Residual dilated temporal conv (same-padded, or causal with left padding only)."""

    def __init__(self, dim: int, kernel: int, dilation: int, causal: bool, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.conv = nn.Conv1d(dim, dim, kernel, dilation=dilation)
        total = (kernel - 1) * dilation
        self.pad = (total, 0) if causal else (total // 2, total - total // 2)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        # x (B, T, C), keep (B, T, 1) float
        y = self.norm(x) * keep
        y = nn.functional.pad(y.transpose(1, 2), self.pad)
        y = nn.functional.gelu(self.conv(y)).transpose(1, 2)
        return (x + self.drop(y)) * keep


class PreNormBlock(nn.Module):
    """x + MHA(LN(x)); x + FF(LN(x)). Written out (no fused kernels) so ONNX/TensorRT export is plain."""

    def __init__(self, dim: int, heads: int, ff_mult: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_mult * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_mult * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        # key_bias (B, 1, 1, T): 0 for real frames, -1e4 for padding
        b, t, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(c // self.heads) + key_bias
        attn = self.drop(scores.softmax(dim=-1))
        y = (attn @ v).transpose(1, 2).reshape(b, t, c)
        x = x + self.drop(self.proj(y))
        return x + self.drop(self.ff(self.norm2(x)))


class LiftingSplit(nn.Module):
    """One learnable lifting step: split into even/odd frames, detail d = odd - P(even) (the dynamic
    part), approximation s = even + U(d) (the static part). P and U are small temporal convs."""

    def __init__(self, dim: int):
        super().__init__()
        self.predict = nn.Conv1d(dim, dim, 3, padding=1)
        self.update = nn.Conv1d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor, keep: torch.Tensor):
        # x (B, T, C) with T even, keep (B, T, 1)
        even, odd = x[:, 0::2], x[:, 1::2]
        keep_e, keep_o = keep[:, 0::2], keep[:, 1::2]
        pred = torch.tanh(self.predict((even * keep_e).transpose(1, 2))).transpose(1, 2)
        detail = (odd - pred) * keep_o
        upd = torch.tanh(self.update(detail.transpose(1, 2))).transpose(1, 2)
        static = (even + upd) * keep_e
        return static, keep_e, detail, keep_o


def masked_mean(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    return (x * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)


class TemporalHead(nn.Module):
    def __init__(self, in_dim: int, window: int, num_expressions: int, num_aus: int, cfg: TemporalHeadConfig):
        super().__init__()
        self.cfg = cfg
        self.window = window
        d = cfg.d_model
        self.inp = nn.Linear(in_dim, d)
        self.pos = nn.Parameter(torch.zeros(1, window + (window % 2), d))
        nn.init.normal_(self.pos, std=0.02)
        self.tcn = nn.ModuleList(TemporalConvBlock(d, cfg.tcn_kernel, dil, cfg.tcn_causal, cfg.dropout)
                                 for dil in cfg.tcn_dilations)
        self.blocks = nn.ModuleList(PreNormBlock(d, cfg.transformer_heads, cfg.ff_mult, cfg.dropout)
                                    for _ in range(cfg.transformer_layers))
        self.norm = nn.LayerNorm(d)
        self.lifting = LiftingSplit(d) if cfg.lifting else None
        pooled = 2 * d if cfg.lifting else d
        self.expression = nn.Linear(pooled, num_expressions)
        self.va = nn.Linear(pooled, 2)
        self.au = nn.Linear(pooled, num_aus)

    def forward(self, embeddings: torch.Tensor, mask: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """embeddings (B, T, D) with T <= window, mask (B, T) bool (True = real frame) or None (all real)."""
        b, t, _ = embeddings.shape
        if t > self.window:
            raise ValueError(f"window of {t} frames is longer than the configured {self.window}")
        if mask is None:
            mask = torch.ones(b, t, dtype=torch.bool, device=embeddings.device)
        if t % 2 and self.lifting is not None:  # lifting needs an even length: pad one masked frame
            embeddings = nn.functional.pad(embeddings, (0, 0, 0, 1))
            mask = nn.functional.pad(mask, (0, 1), value=False)
            t += 1
        keep = mask.to(embeddings.dtype).unsqueeze(-1)
        x = (self.inp(embeddings) + self.pos[:, :t]) * keep
        for block in self.tcn:
            x = block(x, keep)
        key_bias = ((1.0 - keep.squeeze(-1)) * _MASK_VALUE)[:, None, None, :]
        for block in self.blocks:
            x = block(x, key_bias)
        x = self.norm(x) * keep
        if self.lifting is not None:
            static, keep_s, dynamic, keep_d = self.lifting(x, keep)
            pooled = torch.cat([masked_mean(static, keep_s), masked_mean(dynamic, keep_d)], dim=-1)
        else:
            pooled = masked_mean(x, keep)
        return {
            "expression_logits": self.expression(pooled),
            "valence_arousal": torch.tanh(self.va(pooled)),
            "au_logits": self.au(pooled),
        }
