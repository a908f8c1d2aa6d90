"""``EnglishSentiment`` answers as VADER itself, text for text (no database needed).

The reference is a fresh copy of VADER's module (``_pristine_vader``): ours shares the
dictionaries and helpers of the imported one, so a change to them could not make the
two disagree. The texts: VADER's lexicon word by
word, the labelled review set, sentences built around each of VADER's rules, and
generated sentences mixing all of its special words with capitals, punctuation,
emoticons, emojis and odd whitespace.
"""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Iterator
from functools import cache
from types import ModuleType
from typing import Any

import pytest

from app.services.english_sentiment import EnglishSentiment
from bench.text_analysis import load_samples


@cache
def _pristine_vader() -> ModuleType:
    spec = importlib.util.find_spec("vaderSentiment.vaderSentiment")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def _reference() -> Any:
    return _pristine_vader().SentimentIntensityAnalyzer()


@cache
def _ours() -> EnglishSentiment:
    return EnglishSentiment()


def _mismatches(texts: list[str]) -> list[tuple[str, float, float]]:
    reference, ours = _reference(), _ours()
    found = []
    for text in texts:
        expected = reference.polarity_scores(text)["compound"]
        got = ours.compound(text)
        if got != expected or type(got) is not type(expected):
            found.append((text, expected, got))
    return found


def _single_words() -> list[str]:
    lexicon = [word for word in _reference().lexicon if " " not in word]
    return lexicon + [word.upper() for word in lexicon[::7]]


def test_every_lexicon_word_alone_scores_as_vader() -> None:
    assert _mismatches(_single_words()) == []


def test_the_labelled_review_sentences_score_as_vader() -> None:
    texts = [sample["text"] for sample in load_samples()]  # every language: VADER scores any
    assert _mismatches(texts) == []


# Words that trigger VADER's rules, and sentiment words for them to act on.
_RULE_WORDS = [
    "no", "or", "nor", "but", "BUT", "But", "least", "at", "very", "never", "so", "this",
    "without", "doubt", "kind", "of", "sort", "just", "enough", "the", "bad", "ass", "bus",
    "stop", "yeah", "right", "kiss", "death", "to", "die", "for", "beating", "heart", "shit",
    "bomb", "badass", "not", "isn't", "NEVER", "Not",
]  # fmt: skip
_SENTIMENT_WORDS = [
    "good", "bad", "great", "awful", "love", "hate", "terrible", "nice", "happy", "sad",
    "GOOD", "Awful",
]  # fmt: skip
_FILLERS = ["the", "service", "was", "and", "we", "I", "it", "staff", "queue", "a", "is"]
_EMOTICONS = [":)", ":(", ":D", "<3", ":-)", ";)", ":/", ":-("]


def _rule_sentences() -> Iterator[str]:
    vader = _pristine_vader()
    multi_word_keys = [
        key
        for key in (*vader.SPECIAL_CASES, *vader.BOOSTER_DICT, *vader.SENTIMENT_LADEN_IDIOMS)
        if " " in key
    ]
    modifiers = list(vader.BOOSTER_DICT) + list(vader.NEGATE) + multi_word_keys
    for modifier in modifiers:
        for sentiment in ("good", "awful", "LOVE"):
            yield f"{modifier} {sentiment}"
            yield f"it was {modifier} {sentiment}!"
            yield f"{modifier} it {sentiment}"
            yield f"{modifier} the very {sentiment} but {sentiment}??"
            yield f"Staff {modifier.upper()} {sentiment} and nice"
            yield f"the queue {modifier} {sentiment} food"
    for key in multi_word_keys:
        yield f"the food was {key}"
        yield f"we think {key} really"
        yield f"x y z {key} good bad"
    yield from (
        "no good",
        "no no good",
        "no problems or issues",
        "not bad at all",
        "at least good",
        "very least good",
        "the least good",
        "least good",
        "never so good",
        "never this good",
        "never good",
        "without doubt good",
        "without a doubt good",
        "kind of good",
        "Kind Of good",
        "good but bad",
        "bad but bad but good",
        "good good but good",
        "but",
        "BUT good",
        "GOOD and bad",
        "GOOD BAD",
        "Good!!!!!!",
        "Good??",
        "Good????",
        "bad?!?!",
        "  good  ",
        "\tgood\nbad\r\n",
        ":) :(",
        "'good'",
        "...good...",
        "g!",
        "go",
        "",
        "   ",
        "💘",
        "good💘",
        "💘good 💋",
        "☺️ fine",
        "😁😁 bad",
        "I can't stand it",
        "fed up",
        "The bomb!",
        "to die for",
        "kiss of death",
        "bus stop good",
        "yeah right good",
    )


def test_sentences_built_around_each_rule_score_as_vader() -> None:
    texts = list(_rule_sentences())
    assert len(texts) > 3_000
    assert _mismatches(texts) == []


def _generated_sentences(count: int, seed: int) -> Iterator[str]:
    vader = _pristine_vader()
    chance = random.Random(seed)
    lexicon = sorted(word for word in _reference().lexicon if " " not in word)
    boosters = [word for key in vader.BOOSTER_DICT for word in key.split()]
    emojis = sorted(_reference().emojis)
    phrases = [key for key in (*vader.SPECIAL_CASES, *vader.BOOSTER_DICT) if " " in key]
    phrases += ["at least", "very least", "without doubt", "never so", "never this", "no or"]
    pools: list[list[str]] = [
        lexicon,
        _SENTIMENT_WORDS,
        _RULE_WORDS,
        phrases,
        boosters,
        list(vader.NEGATE),
        _FILLERS,
        _EMOTICONS,
        emojis,
    ]
    weights = [4, 4, 6, 2, 2, 2, 4, 1, 1]
    separators = [" "] * 12 + ["  ", "\t", "\n", ""]
    for _ in range(count):
        tokens = []
        for _ in range(chance.randint(1, 14)):
            word = chance.choice(chance.choices(pools, weights)[0])
            shape = chance.random()
            if shape < 0.1:
                word = word.upper()
            elif shape < 0.15:
                word = word.title()
            mark = chance.random()
            if mark < 0.15:
                word += chance.choice(["!", "?", ",", ".", "...", "!!", "??", "?!", "'"])
            elif mark < 0.2:
                word = chance.choice(["'", '"', "(", "*"]) + word
            tokens.append(word + chance.choice(separators))
        yield "".join(tokens)


@pytest.mark.parametrize("seed", range(4))
def test_generated_sentences_score_as_vader(seed: int) -> None:
    texts = list(_generated_sentences(6_000, seed))
    # The sentences reach VADER's rules, not only its lexicon.
    lowered = [text.lower() for text in texts]
    for marker in (" but ", "least", "never", "kind of", "without", "no ", "!", "?"):
        assert sum(marker in text for text in lowered) > 50, marker
    assert _mismatches(texts) == []
