"""The model's label set, and the words corpora use for its emotions.

``EMOTIONS`` is the default label set of a model of this tool: the eight emotions of
RAVDESS, the corpus it started on. A corpus that names an emotion otherwise ("anger",
"joy", "pleasant surprise") is mapped onto it by ``to_emotion``; words for emotions the
model does not have ("boredom", "contempt") are left out, never guessed.
"""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = (
    "neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised",
)

# Other words for the model's emotions, lower case (English; the corpora's own codes are
# mapped by their recipes, pipeline.corpus.recipes).
SYNONYMS: dict[str, str] = {
    "neutrality": "neutral", "calmness": "calm", "happiness": "happy", "joy": "happy",
    "sadness": "sad", "anger": "angry", "fear": "fearful", "disgusted": "disgust",
    "surprise": "surprised", "pleasant surprise": "surprised", "pleasant_surprise": "surprised",
    "pleasant-surprise": "surprised",
}

# Emotions some corpora have and the model does not: their clips are left out.
NOT_MODELLED: frozenset[str] = frozenset({
    "boredom", "bored", "contempt", "frustration", "frustrated", "excited", "excitement",
    "other", "unknown",
})


def to_emotion(word: str) -> str | None:
    """The model emotion a label word names (``"Anger"`` -> ``"angry"``), or None for an
    emotion the model does not have (``NOT_MODELLED``). Case and surrounding spaces are
    ignored. Raises ``KeyError`` for a word that is neither."""
    key = word.strip().lower()
    if key in EMOTIONS:
        return key
    if key in SYNONYMS:
        return SYNONYMS[key]
    if key in NOT_MODELLED:
        return None
    raise KeyError(word)
