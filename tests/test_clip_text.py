"""Text side (prompts with positive/negative descriptions, zero-shot, fusion) and compound expressions."""
from __future__ import annotations

import numpy as np
import pytest

from clip_helpers import tiny_cfg, tiny_tokenizer_dir
from dfer_ros.clip_adapter.compound import COMPOUND_LABELS, CompoundAggregator
from dfer_ros.clip_adapter.config import ABAW_EXPRESSIONS, DFEW_EXPRESSIONS
from dfer_ros.clip_adapter.text_prompts import (PromptSet, default_prompt_sets, fuse_probabilities, load_prompt_sets,
                                                softmax, text_embeddings_for, zero_shot_logits)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return tiny_tokenizer_dir(tmp_path_factory.mktemp("tok"))


def test_default_prompts_have_positive_and_negative_sets():
    sets = default_prompt_sets(ABAW_EXPRESSIONS + ["curious"])
    assert [s.label for s in sets] == ABAW_EXPRESSIONS + ["curious"]
    assert all(s.positive and s.negative for s in sets)
    assert any("smil" in p for p in sets[4].positive)  # Happiness
    assert "curious" in sets[-1].positive[0]


def test_zero_shot_scores_change_when_prompts_change(tokenizer):
    cfg = tiny_cfg()
    base = [PromptSet("happy", ["a photo of a smiling face."], ["a photo of a frowning face."]),
            PromptSet("sad", ["a photo of a crying face."], ["a photo of a laughing face."])]
    changed = [base[0], PromptSet("sad", ["a photo of a gloomy person at night."], base[1].negative)]
    _, a = text_embeddings_for(cfg, tokenizer, base)
    _, b = text_embeddings_for(cfg, tokenizer, changed)
    v = np.random.default_rng(0).standard_normal((4, cfg.embedding_dim)).astype(np.float32)
    za, zb = zero_shot_logits(v, a["weights"], 100.0), zero_shot_logits(v, b["weights"], 100.0)
    assert np.allclose(za[:, 0], zb[:, 0], atol=1e-4)  # unchanged class keeps its score
    assert np.abs(za[:, 1] - zb[:, 1]).max() > 1e-3  # edited class scores differently
    # the negative descriptions enter with weight lambda: W = P - lambda N
    np.testing.assert_allclose(a["weights"], a["positive"] - cfg.text.negative_weight * a["negative"], atol=1e-6)


def test_zero_shot_picks_the_class_whose_text_matches(tokenizer):
    cfg = tiny_cfg()
    sets, emb = text_embeddings_for(cfg, tokenizer, default_prompt_sets(["happy", "sad", "surprise"]))
    # an image embedding equal to a class's positive text embedding must be classified as that class
    logits = zero_shot_logits(emb["positive"], emb["weights"], 100.0)
    assert list(logits.argmax(1)) == [0, 1, 2]


def test_prompt_file_with_user_classes(tmp_path):
    f = tmp_path / "prompts.yaml"
    f.write_text("classes:\n  bored:\n    positive: [a photo of a bored face]\n    negative: [an excited face]\n"
                 "  happy: {}\n")
    sets = load_prompt_sets(f)
    assert [s.label for s in sets] == ["bored", "happy"]
    assert sets[0].negative == ["an excited face"] and sets[1].positive  # built-in prompts fill in
    with pytest.raises(ValueError, match="differ from"):
        load_prompt_sets(f, labels=["happy", "bored"])
    f.write_text("classes: [a, b]\n")
    with pytest.raises(ValueError, match="prompts.yaml"):
        load_prompt_sets(f)


def test_fusion_mixes_probabilities():
    head = np.array([[5.0, 0.0]], np.float32)
    zs = np.array([[0.0, 5.0]], np.float32)
    np.testing.assert_allclose(fuse_probabilities(head, zs, 0.0), softmax(head), atol=1e-6)
    np.testing.assert_allclose(fuse_probabilities(head, zs, 0.5), [[0.5, 0.5]], atol=1e-6)
    with pytest.raises(ValueError):
        fuse_probabilities(head, np.zeros((1, 3), np.float32), 0.5)


def test_compound_from_hand_made_probabilities():
    agg = CompoundAggregator(ABAW_EXPRESSIONS)
    p = np.zeros(8, np.float32)
    p[ABAW_EXPRESSIONS.index("Surprise")], p[ABAW_EXPRESSIONS.index("Fear")] = 0.5, 0.3
    p[ABAW_EXPRESSIONS.index("Happiness")] = 0.2
    out = agg(p)
    assert out.shape == (7,) and abs(out.sum() - 1) < 1e-6
    assert COMPOUND_LABELS[int(out.argmax())] == "fearfully surprised"
    # sum: (0.3 + 0.5) / total where total = 0.8 + 0.7 + 0.5 + 0.5 + 0.5 + 0.3 + 0.0
    assert abs(out[0] - 0.8 / 3.3) < 1e-6
    # DFEW names, product method: sad + angry both strong -> "sadly angry"
    q = np.array([0.05, 0.45, 0.0, 0.45, 0.05, 0.0, 0.0], np.float32)  # happy sad neutral angry surprise disgust fear
    assert COMPOUND_LABELS[int(CompoundAggregator(DFEW_EXPRESSIONS, "product")(q).argmax())] == "sadly angry"
    # batched input
    assert agg(np.stack([p, p])).shape == (2, 7)


def test_compound_needs_the_basic_classes():
    assert not CompoundAggregator.supports(["happy", "sad"])
    with pytest.raises(ValueError, match="lacks"):
        CompoundAggregator(["happy", "sad"])
