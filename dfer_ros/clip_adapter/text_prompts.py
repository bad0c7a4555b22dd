"""Text side: class prompts with positive and negative descriptions (after FineCLIPER), class text
embeddings from the CLIP text tower, zero-shot scores and their fusion with the trained head.

Scoring (documented in docs/clip_adapter.md). With v the unit-length (window-mean) image embedding,
P_c the unit-length mean of class c's positive prompt embeddings and N_c that of its negatives:

    s_c = logit_scale * ( cos(v, P_c) - lambda * cos(v, N_c) ) = logit_scale * v . (P_c - lambda N_c)

so one (C, D) matrix W = P - lambda N holds a whole prompt set: the exported model stores W, and
the runtime needs only a matrix product (no torch). Classes are whatever the prompt file lists, so
users add classes without retraining; when the classes equal the head's label set the probabilities
are fused: p = (1 - w) softmax(head) + w softmax(s).

torch and transformers are imported inside the functions that need them, so the runtime can import
the numpy scoring helpers without torch.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from dfer_ros import vocabulary
from dfer_ros.user_files import read_user_yaml

TEMPLATES = ("a photo of a {} face.", "a close-up photo of a person with a {} facial expression.")


@dataclass
class PromptSet:
    label: str
    positive: list[str]
    negative: list[str]


# canonical class -> (adjective for templates, positive descriptions, negative descriptions)
_DEFAULTS: dict[str, tuple[str, list[str], list[str]]] = {
    "neutral": ("neutral", ["a relaxed face with no particular expression", "a calm face with closed lips and relaxed brows"],
                ["a face with a strong emotional expression", "a face with raised brows or an open mouth"]),
    "anger": ("angry", ["a face with lowered, drawn-together brows and tightened lips", "a glaring face with narrowed eyes"],
              ["a face with relaxed brows and soft eyes", "a smiling, friendly face"]),
    "disgust": ("disgusted", ["a face with a wrinkled nose and raised upper lip", "a face recoiling in disgust"],
                ["a face with a smooth nose and relaxed upper lip", "an attracted, pleased face"]),
    "fear": ("fearful", ["a face with raised, drawn-together brows, wide eyes and stretched lips",
                         "a frightened, tense face"], ["a confident, relaxed face", "a face with calm eyes"]),
    "happiness": ("happy", ["a smiling face with raised cheeks and pulled-up lip corners", "a laughing, joyful face"],
                  ["a face with turned-down lip corners", "a face without a smile"]),
    "sadness": ("sad", ["a face with raised inner brows and turned-down lip corners", "a gloomy, downcast face"],
                ["a cheerful face with raised lip corners", "a lively, bright face"]),
    "surprise": ("surprised", ["a face with raised brows, wide-open eyes and a dropped jaw", "an astonished face with an open mouth"],
                 ["a face with lowered brows and a closed mouth", "an unimpressed, bored face"]),
    "contempt": ("contemptuous", ["a face with one lip corner raised in a sneer", "a scornful, disdainful face"],
                 ["a symmetric, respectful face", "an admiring face"]),
    "anxiety": ("anxious", ["a worried, tense face with tight lips", "a nervous face with raised inner brows"],
                ["a relaxed, carefree face", "a calm, reassured face"]),
    "helplessness": ("helpless", ["a resigned face with drooping eyelids and raised inner brows", "a powerless, defeated face"],
                     ["a determined, confident face", "an energetic face"]),
    "disappointment": ("disappointed", ["a face with pressed lips and lowered gaze", "a let-down, dissatisfied face"],
                       ["a satisfied, pleased face", "a delighted face"]),
    "other": ("expressive", ["a face showing a mixed or unusual expression"], ["a plainly happy, sad or neutral face"]),
}


def canonical_class(label: str) -> str:
    """The key of ``_DEFAULTS`` for any spelling of a class (the noun form of ``dfer_ros.vocabulary``)."""
    return vocabulary.expression_noun(label)


def default_prompt_sets(labels: Sequence[str]) -> list[PromptSet]:
    """Built-in positive/negative prompts for known classes; generic template prompts for others."""
    sets = []
    for label in labels:
        key = canonical_class(label)
        adjective, pos, neg = _DEFAULTS.get(key, (label.lower(), [], []))
        positive = [t.format(adjective) for t in TEMPLATES] + [f"a photo of {p}." for p in pos]
        negative = [f"a photo of {n}." for n in neg] or [f"a photo of a face that is not {adjective}."]
        sets.append(PromptSet(label, positive, negative))
    return sets


def load_prompt_sets(path: Union[str, Path], labels: Optional[Sequence[str]] = None) -> list[PromptSet]:
    """Read ``{classes: {name: {positive: [...], negative: [...]}}}`` (YAML); a class without its own
    prompts gets the built-in ones. With ``labels`` the file must cover exactly those classes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompt file not found: {path}")
    data = read_user_yaml(path) or {}  # UserFileError (a ValueError) names the file and the reason
    classes = data.get("classes") if isinstance(data, dict) else None
    if not isinstance(classes, dict) or not classes:
        raise ValueError(f"{path}: expected a non-empty mapping under 'classes'")
    sets = []
    for name, spec in classes.items():
        spec = spec or {}
        if not isinstance(spec, dict) or set(spec) - {"positive", "negative"}:
            raise ValueError(f"{path}: class {name!r} must map to {{positive: [...], negative: [...]}}")
        default = default_prompt_sets([str(name)])[0]
        pos = [str(s) for s in spec.get("positive") or default.positive]
        neg = [str(s) for s in spec.get("negative") or default.negative]
        sets.append(PromptSet(str(name), pos, neg))
    if labels is not None and [s.label for s in sets] != list(labels):
        raise ValueError(f"{path}: classes {[s.label for s in sets]} differ from the expected {list(labels)}")
    return sets


def prompt_sets_for(cfg) -> list[PromptSet]:
    """The config's prompt file, or built-in prompts for its expression labels."""
    return load_prompt_sets(cfg.text.prompts) if cfg.text.prompts else default_prompt_sets(cfg.expression_labels)


def load_tokenizer(folder: Union[str, Path]):
    """CLIPTokenizer from a local folder (vocab.json + merges.txt, as in an HF openai/clip-vit-* download)."""
    from transformers import CLIPTokenizer

    folder = Path(folder)
    missing = [n for n in ("vocab.json", "merges.txt") if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: tokenizer files missing {missing} (they come with the HF CLIP checkpoint folder)")
    return CLIPTokenizer.from_pretrained(str(folder))


def write_char_vocab(folder: Union[str, Path], vocab_size: int = 128) -> Path:
    """Write a tiny character-level CLIP vocabulary (no merges) for tests and offline smoke runs.
    Specials sit at the end like CLIP's: bos = vocab_size - 2, eos = pad = vocab_size - 1."""
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,'-!")
    if vocab_size < 2 * len(chars) + 2:
        raise ValueError(f"vocab_size must be >= {2 * len(chars) + 2}")
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    while len(vocab) < vocab_size - 2:
        vocab[f"<|unused{len(vocab)}|>"] = len(vocab)
    vocab["<|startoftext|>"] = vocab_size - 2
    vocab["<|endoftext|>"] = vocab_size - 1
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return folder


def build_text_tower(cfg, load_weights: bool = True):
    """CLIPTextModelWithProjection sized by ``cfg.text`` (projection = the image embedding size),
    random init from ``cfg.init_seed + 1`` or real weights from ``cfg.clip_weights``; frozen, eval."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    t = cfg.text
    tc = CLIPTextConfig(vocab_size=t.vocab_size, hidden_size=t.hidden_size, intermediate_size=t.intermediate_size,
                        num_hidden_layers=t.num_hidden_layers, num_attention_heads=t.num_attention_heads,
                        max_position_embeddings=t.max_position_embeddings, hidden_act=t.hidden_act,
                        layer_norm_eps=t.layer_norm_eps, projection_dim=cfg.vision.projection_dim,
                        bos_token_id=t.vocab_size - 2 if t.bos_token_id is None else t.bos_token_id,
                        eos_token_id=t.vocab_size - 1 if t.eos_token_id is None else t.eos_token_id,
                        pad_token_id=t.vocab_size - 1 if t.eos_token_id is None else t.eos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.init_seed + 1)
        model = CLIPTextModelWithProjection(tc)
    if cfg.clip_weights and load_weights:
        from dfer_ros.clip_adapter.checkpoint import load_clip_weights

        load_clip_weights(model, cfg.clip_weights, part="text")
    model.requires_grad_(False)
    return model.eval()


def encode_texts(text_model, tokenizer, texts: Sequence[str], max_length: int):
    """Unit-length text embeddings (N, D) as a torch tensor."""
    import torch

    batch = tokenizer(list(texts), padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    with torch.no_grad():
        emb = text_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).text_embeds
    return torch.nn.functional.normalize(emb, dim=-1)


def class_text_embeddings(text_model, tokenizer, prompt_sets: Sequence[PromptSet], negative_weight: float,
                          max_length: int) -> dict[str, np.ndarray]:
    """Per class: unit mean of positive prompts P (C, D), of negative prompts N (C, D), and the scoring
    matrix W = P - lambda N (C, D), all float32 numpy."""
    import torch

    def unit_mean(texts):
        return torch.nn.functional.normalize(encode_texts(text_model, tokenizer, texts, max_length).mean(0), dim=-1)

    pos = torch.stack([unit_mean(s.positive) for s in prompt_sets])
    neg = torch.stack([unit_mean(s.negative) for s in prompt_sets])
    return {"positive": pos.numpy().astype(np.float32), "negative": neg.numpy().astype(np.float32),
            "weights": (pos - negative_weight * neg).numpy().astype(np.float32)}


def text_embeddings_for(cfg, tokenizer_dir=None, prompt_sets: Optional[Sequence[PromptSet]] = None):
    """Convenience: build the text tower and tokenizer of ``cfg`` and return (prompt_sets, embeddings dict)."""
    folder = tokenizer_dir or cfg.text.tokenizer or cfg.clip_weights
    if not folder:
        raise FileNotFoundError("no tokenizer folder: set text.tokenizer or clip_weights in the config, or pass one")
    tokenizer = load_tokenizer(Path(folder) if Path(folder).is_dir() else Path(folder).parent)
    sets = list(prompt_sets) if prompt_sets is not None else prompt_sets_for(cfg)
    tower = build_text_tower(cfg)
    return sets, class_text_embeddings(tower, tokenizer, sets, cfg.text.negative_weight, cfg.text.max_position_embeddings)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def zero_shot_logits(image_embedding: np.ndarray, weights: np.ndarray, logit_scale: float) -> np.ndarray:
    """(B, D) image embeddings (re-normalised here) and the (C, D) scoring matrix -> (B, C) logits."""
    v = image_embedding / np.maximum(np.linalg.norm(image_embedding, axis=-1, keepdims=True), 1e-12)
    return (logit_scale * v @ weights.T).astype(np.float32)


def fuse_probabilities(head_logits: np.ndarray, zero_shot: np.ndarray, weight: float) -> np.ndarray:
    """p = (1 - w) softmax(head) + w softmax(zero-shot); both over the same classes in the same order."""
    if head_logits.shape != zero_shot.shape:
        raise ValueError(f"cannot fuse head logits {head_logits.shape} with zero-shot logits {zero_shot.shape}")
    return ((1.0 - weight) * softmax(head_logits) + weight * softmax(zero_shot)).astype(np.float32)
