"""Typed configuration of a CLIP-adapter temporal model, read from ``models/*.yaml``.

One YAML file describes everything needed to rebuild the network (tower sizes, adapters, head,
label sets, prompts), so an exported model directory, a training run and the runtime all agree on
the architecture by carrying the same file. Unknown keys are an error (a typo would otherwise
silently fall back to a default).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from dfer_ros import vocabulary
from dfer_ros.typed_config import build_dataclass, read_yaml_mapping, resolve_near

# Label sets come from dfer_ros.vocabulary; lists here because configs extend and compare them as lists.
ABAW_EXPRESSIONS = list(vocabulary.ABAW_EXPRESSIONS)
DFEW_EXPRESSIONS = list(vocabulary.DFEW_EXPRESSIONS)
MAFW_EXPRESSIONS = list(vocabulary.MAFW_EXPRESSIONS)
ABAW_AUS = list(vocabulary.ABAW_AU12)
LABEL_SETS = {name: list(labels) for name, labels in vocabulary.LABEL_SETS.items()}

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ConfigError(ValueError):
    """A model config file is missing, malformed or inconsistent; the message names the file and key."""


@dataclass
class VisionTowerConfig:
    """CLIP image tower sizes (the fields of transformers' CLIPVisionConfig we set)."""

    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    patch_size: int = 16
    projection_dim: int = 512
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5


@dataclass
class TextTowerConfig:
    """CLIP text tower sizes and the zero-shot settings (prompts, fusion with the trained head)."""

    enabled: bool = True
    vocab_size: int = 49408
    hidden_size: int = 512
    intermediate_size: int = 2048
    num_hidden_layers: int = 12
    num_attention_heads: int = 8
    max_position_embeddings: int = 77
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    bos_token_id: Optional[int] = None  # None: vocab_size - 2 (CLIP's <|startoftext|>)
    eos_token_id: Optional[int] = None  # None: vocab_size - 1 (CLIP's <|endoftext|>)
    tokenizer: Optional[str] = None  # folder with vocab.json + merges.txt (None: the clip_weights folder)
    prompts: Optional[str] = None  # YAML file of {class: {positive: [...], negative: [...]}}; None: built-in sets
    negative_weight: float = 0.5  # lambda in  s_c = cos(v, pos_c) - lambda * cos(v, neg_c)
    logit_scale: float = 100.0
    fusion_weight: float = 0.0  # 0: trained head only; 1: zero-shot only; between: mix of probabilities


@dataclass
class AdapterConfig:
    """Per-frame parameter-efficient adaptation of the frozen tower.

    kind: "bottleneck" (residual down-up MLP after each chosen layer's MLP), "lora" (peft LoRA on the
    attention projections), "both", or "none" (linear probe on frozen features).
    """

    kind: str = "bottleneck"
    bottleneck_dim: int = 64
    layers: Optional[list[int]] = None  # tower layers that get adapters; None: all
    init_scale: float = 1e-3  # std of the up-projection init: near-identity at start
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    train_projection: bool = False  # also train CLIP's visual projection


@dataclass
class TemporalHeadConfig:
    """TCN then a short pre-norm Transformer over a window, optional lifting split, three heads."""

    d_model: int = 256
    tcn_kernel: int = 3
    tcn_dilations: list[int] = field(default_factory=lambda: [1, 2, 4])
    tcn_causal: bool = False
    transformer_layers: int = 2
    transformer_heads: int = 4
    ff_mult: int = 2
    dropout: float = 0.1
    lifting: bool = True  # learnable lifting scheme: static (update) + dynamic (detail) parts


@dataclass
class CompoundConfig:
    enabled: bool = True
    method: str = "sum"  # "sum" or "product" of the two basic-class probabilities


@dataclass
class ClipAdapterConfig:
    """Whole-model configuration. ``image_size``, ``window``, ``expression_labels`` and ``au_names`` are
    the contract fields trainers and the runtime rely on."""

    name: str = "clip_adapter"
    image_size: int = 224
    window: int = 16
    expression_labels: list[str] = field(default_factory=lambda: list(ABAW_EXPRESSIONS))
    au_names: list[str] = field(default_factory=lambda: list(ABAW_AUS))
    clip_weights: Optional[str] = None  # HF openai/clip-vit-* folder or weights file; None: random init
    init_seed: int = 0  # random init is reproducible from the config alone
    face_scale: float = 1.25  # aligner context around the 5-point template
    # outputs the training data supervises; the runtime publishes only these (DFEW/FERV39k/MAFW have
    # no valence-arousal or AU labels, so their heads stay unpublished rather than untrained noise)
    outputs: list[str] = field(default_factory=lambda: ["expression", "va", "au"])
    vision: VisionTowerConfig = field(default_factory=VisionTowerConfig)
    text: TextTowerConfig = field(default_factory=TextTowerConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    head: TemporalHeadConfig = field(default_factory=TemporalHeadConfig)
    compound: CompoundConfig = field(default_factory=CompoundConfig)
    source: Optional[str] = field(default=None, metadata={"internal": True})  # file it was read from

    @property
    def embedding_dim(self) -> int:
        """Per-frame embedding size D (CLIP's projected image embedding)."""
        return self.vision.projection_dim

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("source", None)
        return data

    def dump(self, path: Union[str, Path]) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    def validate(self) -> "ClipAdapterConfig":
        where = self.source or "<config>"
        problems = []
        if self.image_size % self.vision.patch_size:
            problems.append(f"image_size {self.image_size} is not a multiple of vision.patch_size {self.vision.patch_size}")
        if self.vision.hidden_size % self.vision.num_attention_heads:
            problems.append("vision.hidden_size must be divisible by vision.num_attention_heads")
        if self.head.d_model % self.head.transformer_heads:
            problems.append("head.d_model must be divisible by head.transformer_heads")
        if self.window < 1:
            problems.append("window must be >= 1")
        if not self.expression_labels:
            problems.append("expression_labels is empty")
        if len(set(self.expression_labels)) != len(self.expression_labels):
            problems.append("expression_labels has duplicates")
        if self.adapter.kind not in ("bottleneck", "lora", "both", "none"):
            problems.append(f"adapter.kind {self.adapter.kind!r} is not one of bottleneck, lora, both, none")
        if self.adapter.layers is not None:
            bad = [i for i in self.adapter.layers if not 0 <= i < self.vision.num_hidden_layers]
            if bad:
                problems.append(f"adapter.layers {bad} outside 0..{self.vision.num_hidden_layers - 1}")
        if set(self.outputs) - {"expression", "va", "au"} or "expression" not in self.outputs:
            problems.append(f"outputs {self.outputs} must include 'expression' and may add 'va', 'au'")
        if self.compound.method not in ("sum", "product"):
            problems.append("compound.method must be 'sum' or 'product'")
        if not 0.0 <= self.text.fusion_weight <= 1.0:
            problems.append("text.fusion_weight must be in [0, 1]")
        if problems:
            raise ConfigError(f"{where}: " + "; ".join(problems))
        return self


def config_from_dict(data: dict[str, Any], source: Optional[str] = None) -> ClipAdapterConfig:
    where = source or "<dict>"
    data = dict(data)
    label_set = data.pop("label_set", None)  # shorthand: abaw / dfew / ferv39k / mafw
    if label_set is not None:
        if label_set not in LABEL_SETS:
            raise ConfigError(f"{where}: label_set {label_set!r} not one of {sorted(LABEL_SETS)}")
        data.setdefault("expression_labels", list(LABEL_SETS[label_set]))
    cfg = build_dataclass(ClipAdapterConfig, data, where, ConfigError)
    cfg.source = source
    return cfg.validate()


def load_config(path: Union[str, Path]) -> ClipAdapterConfig:
    """Read a model config YAML (e.g. ``models/clip_vitb16_abaw.yaml``) into a validated dataclass.

    Relative paths inside the file (clip_weights, text.tokenizer, text.prompts) are resolved against
    the file's folder when they exist there, so configs can sit next to their assets.
    """
    path = Path(path)
    cfg = config_from_dict(read_yaml_mapping(path, "model config", ConfigError), source=str(path))
    for obj, attr in ((cfg, "clip_weights"), (cfg.text, "tokenizer"), (cfg.text, "prompts")):
        setattr(obj, attr, resolve_near(getattr(obj, attr), path.parent))
    return cfg
