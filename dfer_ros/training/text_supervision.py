"""Optional text-prompt supervision of the expression pathway (after FineCLIPER).

The frozen CLIP text tower turns each class's positive and negative descriptions into one scoring
vector W_c = P_c - lambda N_c (``clip_adapter.text_prompts``). During training the clip's unit
image embedding v is scored against them, s_c = logit_scale * v . W_c, and a cross-entropy on s
pulls the ADAPTED image features towards the right description and away from the wrong ones.
This is what makes the runtime's zero-shot scores and their fusion with the head meaningful after
adaptation; the head's own loss is unchanged.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from dfer_ros.datasets.common import label_mapping


class TextSupervision:
    def __init__(self, model_cfg, device: torch.device, tokenizer_dir: Optional[str] = None):
        from dfer_ros.clip_adapter.text_prompts import text_embeddings_for

        sets, emb = text_embeddings_for(model_cfg, tokenizer_dir)
        self.labels = [s.label for s in sets]
        # model class index -> prompt-set class index (by canonical name)
        self.mapping = torch.from_numpy(label_mapping(model_cfg.expression_labels, self.labels)).to(device)
        self.weights = torch.from_numpy(np.asarray(emb["weights"], np.float32)).to(device)
        self.logit_scale = float(model_cfg.text.logit_scale)

    def logits(self, clip_embedding: torch.Tensor) -> torch.Tensor:
        v = F.normalize(clip_embedding.float(), dim=-1)
        return self.logit_scale * v @ self.weights.T

    def loss(self, out: dict, target: torch.Tensor) -> torch.Tensor:
        emb = out["clip_embedding"]
        valid = target >= 0
        if not bool(valid.any()):
            return emb.sum() * 0.0
        return F.cross_entropy(self.logits(emb[valid]), self.mapping[target[valid]])
