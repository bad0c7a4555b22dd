"""Per-frame parameter-efficient adapters for the frozen CLIP image tower.

Bottleneck adapters (Houlsby-style, one residual down-GELU-up MLP after a layer's MLP) are attached
with forward hooks, so the tower's own parameter names stay exactly those of the Hugging Face
checkpoint and real CLIP weights load without renaming. LoRA goes through ``peft``. Both act on one
image at a time: a frame's embedding never depends on other frames.
"""
from __future__ import annotations

import torch
from torch import nn

from dfer_ros.clip_adapter.config import AdapterConfig


class BottleneckAdapter(nn.Module):
    """x + up(gelu(down(x))); ``up`` starts near zero so the adapted tower starts as the frozen one."""

    def __init__(self, dim: int, bottleneck: int, init_scale: float):
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.up = nn.Linear(bottleneck, dim)
        nn.init.normal_(self.up.weight, std=init_scale)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(nn.functional.gelu(self.down(x)))


def attach_bottleneck_adapters(encoder_layers: nn.ModuleList, hidden: int, cfg: AdapterConfig) -> nn.ModuleDict:
    """Create one adapter per chosen layer and hook it onto that layer's MLP output.

    Returns the adapters (keyed by layer index as a string) so the caller owns them as submodules.
    """
    chosen = range(len(encoder_layers)) if cfg.layers is None else cfg.layers
    adapters = nn.ModuleDict()
    for index in chosen:
        adapter = BottleneckAdapter(hidden, cfg.bottleneck_dim, cfg.init_scale)
        adapters[str(index)] = adapter
        mlp = encoder_layers[index].mlp
        # a plain attribute, not a registered submodule: the tower's parameter names stay HF's, and
        # deepcopy (EMA models) maps the reference to the copy's own adapter through its memo
        object.__setattr__(mlp, "_dfer_adapter", adapter)
        mlp.register_forward_hook(_adapter_hook)
    return adapters


def _adapter_hook(module: nn.Module, args, output: torch.Tensor) -> torch.Tensor:
    return module._dfer_adapter(output)


def inject_lora(vision_model: nn.Module, cfg: AdapterConfig) -> None:
    """Add peft LoRA matrices to the attention projections of the tower (in place)."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError as exc:  # peft is in the venv; say so clearly if a deployment lacks it
        raise ImportError("adapter.kind 'lora' needs the 'peft' package") from exc
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.lora_targets), bias="none")
    inject_adapter_in_model(lora, vision_model)
