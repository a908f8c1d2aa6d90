"""VADER's compound score for English text, the same answer at a third of the cost.

VADER (vaderSentiment 3.3.2, its lexicon and rules; unchanged since 2020) scores a
sentence word by word: each word of its lexicon gets the word's valence, adjusted by
the words before it (boosters such as "very", negations, "no", "least", capitals,
idioms), then "but" reweighs the two halves, and exclamation and question marks
amplify the sum. Its implementation spends most of its time outside those rules: for
every sentiment-bearing word it lowercases the whole sentence again up to four times,
formats five idiom strings whether or not any idiom could start there, and rebuilds
the text one character at a time to replace emojis. That was ~30 µs of the text
worker's ~50 per event.

``EnglishSentiment`` applies the same rules, in the same order and with the same
floating-point operations, to words lowercased once, and skips work only where VADER's
own checks cannot match (a text without emojis, an idiom no key starts with, a word
that is not a booster). Lexicon, emoji descriptions, boosters, negations, idioms,
constants and the helpers that cost nothing extra are VADER's own.
``tests/test_english_sentiment.py`` holds every answer equal to VADER's own, over its
lexicon, its labelled examples and tens of thousands of generated sentences built to
reach each rule; run it after any upgrade of vaderSentiment.
"""

from __future__ import annotations

from vaderSentiment import vaderSentiment as vader  # noqa: N813 (the module, not a class)

_BOOSTERS: dict[str, float] = vader.BOOSTER_DICT
_IDIOMS: dict[str, float] = vader.SPECIAL_CASES
_NEGATIONS = frozenset(vader.NEGATE)
_SCALAR_NEGATION: float = vader.N_SCALAR
_CAPITALS_INCREMENT: float = vader.C_INCR
# First words of the multi-word idioms and boosters: an n-gram starting with another word
# cannot be one of them (words never contain spaces: they come from str.split).
_NGRAM_FIRST_WORDS = frozenset(key.split(" ", 1)[0] for key in (*_IDIOMS, *_BOOSTERS) if " " in key)
_SO_OR_THIS = ("so", "this")
_AT_OR_VERY = ("at", "very")
_OR_NOR = ("or", "nor")
# VADER's own helpers where they cost nothing extra: a token that is (nearly) all
# punctuation is an emoticon such as ":)" and kept whole; "!" and "?" amplify the sum.
_strip_punctuation = vader.SentiText._strip_punc_if_word


def _negates(lowered_word: str) -> bool:
    # VADER's negated([word]): it lowercases its input once more, so do we.
    word = lowered_word.lower()
    return word in _NEGATIONS or "n't" in word


def _negation_check(valence: float, lowered: list[str], start_i: int, i: int) -> float:
    """The word ``start_i + 1`` places before word ``i`` may negate it (VADER's rule)."""
    if start_i == 0:
        if _negates(lowered[i - 1]):
            valence = valence * _SCALAR_NEGATION
    elif start_i == 1:
        if lowered[i - 2] == "never" and lowered[i - 1] in _SO_OR_THIS:
            valence = valence * 1.25
        elif lowered[i - 2] == "without" and lowered[i - 1] == "doubt":
            pass
        elif _negates(lowered[i - 2]):
            valence = valence * _SCALAR_NEGATION
    else:
        if (lowered[i - 3] == "never" and lowered[i - 2] in _SO_OR_THIS) or lowered[
            i - 1
        ] in _SO_OR_THIS:
            valence = valence * 1.25
        elif lowered[i - 3] == "without" and "doubt" in (lowered[i - 2], lowered[i - 1]):
            pass
        elif _negates(lowered[i - 3]):
            valence = valence * _SCALAR_NEGATION
    return valence


def _idioms_check(valence: float, lowered: list[str], i: int) -> float:
    """Idioms and multi-word boosters around word ``i`` (``i > 2``; VADER's rule)."""
    if _NGRAM_FIRST_WORDS.isdisjoint(lowered[i - 3 : i + 1]):
        return valence  # no n-gram VADER looks at here starts like any key
    three, two, one, zero = lowered[i - 3], lowered[i - 2], lowered[i - 1], lowered[i]
    one_zero = f"{one} {zero}"
    two_one_zero = f"{two} {one} {zero}"
    two_one = f"{two} {one}"
    three_two_one = f"{three} {two} {one}"
    three_two = f"{three} {two}"
    for sequence in (one_zero, two_one_zero, two_one, three_two_one, three_two):
        if sequence in _IDIOMS:
            valence = _IDIOMS[sequence]
            break
    if len(lowered) - 1 > i:
        zero_one = f"{zero} {lowered[i + 1]}"
        if zero_one in _IDIOMS:
            valence = _IDIOMS[zero_one]
    if len(lowered) - 1 > i + 1:
        zero_one_two = f"{zero} {lowered[i + 1]} {lowered[i + 2]}"
        if zero_one_two in _IDIOMS:
            valence = _IDIOMS[zero_one_two]
    for n_gram in (three_two_one, three_two, two_one):
        if n_gram in _BOOSTERS:
            valence = valence + _BOOSTERS[n_gram]
    return valence


def _but_check(lowered: list[str], sentiments: list[float]) -> None:
    """Halve what comes before the first "but", add half to what comes after.

    VADER finds each value's position with ``list.index`` (the first equal value), so a
    value repeated on both sides is weighed at its first position each time; kept as is.
    """
    if "but" not in lowered:
        return
    but_index = lowered.index("but")
    for k in range(len(sentiments)):
        sentiment = sentiments[k]
        position = sentiments.index(sentiment)
        if position < but_index:
            sentiments[position] = sentiment * 0.5
        elif position > but_index:
            sentiments[position] = sentiment * 1.5


class EnglishSentiment:
    """``compound(text)`` equals ``SentimentIntensityAnalyzer().polarity_scores(text)
    ["compound"]`` for every text."""

    def __init__(self) -> None:
        analyzer = vader.SentimentIntensityAnalyzer()  # reads the lexicon files once
        self._punctuation_emphasis = analyzer._punctuation_emphasis
        self._lexicon: dict[str, float] = analyzer.lexicon
        self._emojis: dict[str, str] = analyzer.emojis
        # VADER looks emojis up one character at a time: only one-character keys match.
        self._emoji_characters = frozenset(key for key in self._emojis if len(key) == 1)

    def _without_emojis(self, text: str) -> str:
        """Each emoji replaced by its description, spaced from a word before it."""
        if self._emoji_characters.isdisjoint(text):
            return text.strip()
        pieces: list[str] = []
        after_space = True
        for character in text:
            description = self._emojis.get(character)
            if description is not None:
                if not after_space:
                    pieces.append(" ")
                pieces.append(description)
                after_space = False
            else:
                pieces.append(character)
                after_space = character == " "
        return "".join(pieces).strip()

    def _lexicon_word_valence(
        self, words: list[str], lowered: list[str], i: int, some_capitals: bool
    ) -> float:
        lexicon = self._lexicon
        word = lowered[i]
        valence = lexicon[word]
        if word == "no" and i != len(words) - 1 and lowered[i + 1] in lexicon:
            valence = 0.0  # "no" before a sentiment word only negates it
        if (
            (i > 0 and lowered[i - 1] == "no")
            or (i > 1 and lowered[i - 2] == "no")
            or (i > 2 and lowered[i - 3] == "no" and lowered[i - 1] in _OR_NOR)
        ):
            valence = lexicon[word] * _SCALAR_NEGATION
        if some_capitals and words[i].isupper():
            if valence > 0:
                valence += _CAPITALS_INCREMENT
            else:
                valence -= _CAPITALS_INCREMENT
        for start_i in range(3):
            if i <= start_i:
                break
            before = i - (start_i + 1)
            if lowered[before] in lexicon:
                continue
            scalar = (
                vader.scalar_inc_dec(words[before], valence, some_capitals)
                if lowered[before] in _BOOSTERS
                else 0.0  # what scalar_inc_dec answers for any other word
            )
            if start_i == 1 and scalar != 0:
                scalar = scalar * 0.95
            if start_i == 2 and scalar != 0:
                scalar = scalar * 0.9
            valence = valence + scalar
            valence = _negation_check(valence, lowered, start_i, i)
            if start_i == 2:
                valence = _idioms_check(valence, lowered, i)
        if (
            i > 0
            and lowered[i - 1] == "least"
            and "least" not in lexicon
            and not (i > 1 and lowered[i - 2] in _AT_OR_VERY)  # "at least" is no negation
        ):
            valence = valence * _SCALAR_NEGATION
        return valence

    def compound(self, text: str) -> float:
        text = self._without_emojis(text)
        words = [_strip_punctuation(token) for token in text.split()]
        if not words:
            return 0.0
        lowered = [word.lower() for word in words]
        some_capitals = vader.allcap_differential(words)
        lexicon = self._lexicon
        last = len(words) - 1
        sentiments: list[float] = []
        for i, word in enumerate(lowered):
            if (
                word in _BOOSTERS
                or word not in lexicon
                or (word == "kind" and i < last and lowered[i + 1] == "of")
            ):
                sentiments.append(0)  # no valence of its own (boosters act on the next word)
            else:
                sentiments.append(self._lexicon_word_valence(words, lowered, i, some_capitals))
        _but_check(lowered, sentiments)
        total = float(sum(sentiments))
        emphasis = self._punctuation_emphasis(text)
        if total > 0:
            total += emphasis
        elif total < 0:
            total -= emphasis
        return float(round(vader.normalize(total), 4))
