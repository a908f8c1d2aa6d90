"""Language detection and sentiment at ingest (SPEC sections 3-4): accuracy on the
labelled review sentences of tests/data, honest nulls, and the pipeline storing what
the analysers found (and rules acting on it)."""

from __future__ import annotations

import httpx
import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from app.models.enums import SentimentLabel
from app.services.enrichment import (
    SUPPORTED_SENTIMENT_LANGUAGES,
    analyse_text,
    analyse_texts,
    detect_language,
)
from bench.text_analysis import LanguageResult, load_samples, measure
from tests.conftest import auth, make_event

# Floors a little below what was measured (README "Language and sentiment"), so a
# broken analyser, a lost lexicon or a changed threshold fails here.
DETECTION_FLOOR = 0.95
SENTIMENT_FLOORS = {"en": 0.82, "fr": 0.65}


@pytest.fixture(scope="module")
def results() -> dict[str, LanguageResult]:
    return {result.language: result for result in measure(load_samples())}


def test_the_data_set_is_balanced_enough_to_mean_something() -> None:
    samples = load_samples()
    for language in SUPPORTED_SENTIMENT_LANGUAGES:
        labels = [s["label"] for s in samples if s["language"] == language]
        assert len(labels) >= 40
        for label in SentimentLabel:
            assert labels.count(label.value) >= 10, (language, label)
    assert len({s["language"] for s in samples} - SUPPORTED_SENTIMENT_LANGUAGES) >= 6


def test_language_detection_accuracy(results: dict[str, LanguageResult]) -> None:
    detected = sum(r.detected for r in results.values())
    sentences = sum(r.sentences for r in results.values())
    assert detected / sentences >= DETECTION_FLOOR
    for language in SUPPORTED_SENTIMENT_LANGUAGES:
        assert results[language].detection_accuracy >= DETECTION_FLOOR


@pytest.mark.parametrize("language", sorted(SENTIMENT_FLOORS))
def test_sentiment_accuracy(results: dict[str, LanguageResult], language: str) -> None:
    accuracy = results[language].sentiment_accuracy
    assert accuracy is not None
    assert accuracy >= SENTIMENT_FLOORS[language]


def test_languages_without_an_analyser_get_no_sentiment() -> None:
    for sample in load_samples():
        if sample["language"] in SUPPORTED_SENTIMENT_LANGUAGES:
            continue
        insight = analyse_text(sample["text"], None)
        assert insight.language == sample["language"]
        assert (insight.sentiment_label, insight.sentiment_score) == (None, None)


def test_too_short_or_uncertain_text_gets_no_language() -> None:
    for text in ("ok", "👍", "Super!", "10/10", "merci", "   !!!   "):
        assert detect_language(text) is None, text
        assert analyse_text(text, None).language is None


def test_a_given_language_is_kept_and_picks_the_analyser() -> None:
    complaint = "Terrible service, nobody helped me and I left angry."
    british = analyse_text(complaint, "en-GB")
    assert british.language == "en-GB"
    assert british.sentiment_label is SentimentLabel.NEGATIVE
    # Given as German: kept, and no English analyser is applied to it.
    german = analyse_text(complaint, "de-AT")
    assert (german.language, german.sentiment_label, german.sentiment_score) == (
        "de-AT",
        None,
        None,
    )
    assert analyse_text(None, "fr").language == "fr"
    assert analyse_text(None, None).language is None


def test_scores_are_in_range_and_labels_follow_them() -> None:
    for sample in load_samples():
        insight = analyse_text(sample["text"], sample["language"])
        if insight.sentiment_score is None:
            continue
        assert -1.0 <= insight.sentiment_score <= 1.0
        if insight.sentiment_score >= 0.05:
            assert insight.sentiment_label is SentimentLabel.POSITIVE
        elif insight.sentiment_score <= -0.05:
            assert insight.sentiment_label is SentimentLabel.NEGATIVE
        else:
            assert insight.sentiment_label is SentimentLabel.NEUTRAL


def test_batches_keep_their_order() -> None:
    items = [
        ("Great service, very friendly staff!", None),
        (None, None),
        ("Le colis est arrivé cassé, je suis très déçu.", None),
        ("Die Lieferung war pünktlich.", "de"),
    ]
    insights = analyse_texts(items)
    assert [i.language for i in insights] == ["en", None, "fr", "de"]
    assert [i.sentiment_label for i in insights] == [
        SentimentLabel.POSITIVE,
        None,
        SentimentLabel.NEGATIVE,
        None,
    ]
    assert analyse_texts([]) == []


def test_a_group_gets_the_same_answers_as_its_texts_one_by_one() -> None:
    # analyse_texts detects the whole group's languages before scoring any sentiment.
    samples = load_samples()
    items: list[tuple[str | None, str | None]] = [(s["text"], None) for s in samples]
    items += [(None, "de"), (None, None), ("ok", None), (samples[0]["text"], "fr-CA")]
    assert analyse_texts(items) == [analyse_text(text, given) for text, given in items]


def test_english_scores_are_vaders_own() -> None:
    # The service's English scorer is VADER's own answer (tests/test_english_sentiment.py
    # compares the two over many more texts), rounded to three decimals.
    pristine = SentimentIntensityAnalyzer()
    english = [s["text"] for s in load_samples() if s["language"] == "en"]
    english += ["It isn't good.", "Not bad at all", "never so happy", "I don't like it :("]
    for text in english:
        insight = analyse_text(text, "en")
        expected = round(pristine.polarity_scores(text)["compound"], 3)
        assert insight.sentiment_score == expected, text


# --- through the pipeline ---------------------------------------------------------------


async def test_ingest_stores_the_detected_language_and_sentiment(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    events = [
        make_event(
            "en-1",
            language=...,
            text="The staff were rude and the store was dirty.",
            scores=[{"metric": "csat", "value": 3}],
        ),
        make_event(
            "de-1",
            language=...,
            text="Die Schlange war 20 Minuten lang und niemand hat geholfen.",
            scores=[{"metric": "csat", "value": 3}],
        ),
        make_event(
            "fr-given",
            language="fr-CA",
            text="Service excellent, le personnel est très aimable.",
            scores=[{"metric": "csat", "value": 5}],
        ),
        make_event("no-text", language=..., text=..., scores=[{"metric": "nps", "value": 8}]),
    ]
    response = await client.post(
        "/v1/feedback/batch", json={"events": events}, headers=auth(admin_key)
    )
    assert response.status_code == 200
    ids = {r["event_id"]: r["id"] for r in response.json()["results"]}
    stored = {}
    for event_id, feedback_id in ids.items():
        got = await client.get(f"/v1/feedback/{feedback_id}", headers=auth(admin_key))
        stored[event_id] = got.json()
    assert stored["en-1"]["language"] == "en"
    assert stored["en-1"]["sentiment"]["label"] == "negative"
    assert -1 <= stored["en-1"]["sentiment"]["score"] <= -0.05
    assert stored["de-1"]["language"] == "de"
    assert stored["de-1"]["sentiment"] is None
    assert stored["fr-given"]["language"] == "fr-CA"
    assert stored["fr-given"]["sentiment"]["label"] == "positive"
    assert stored["no-text"]["language"] is None
    assert stored["no-text"]["sentiment"] is None

    listed = await client.get(
        "/v1/feedback", params={"sentiment": "negative"}, headers=auth(admin_key)
    )
    assert [item["event_id"] for item in listed.json()["items"]] == ["en-1"]
    metrics = await client.get("/v1/metrics", headers=auth(admin_key))
    assert metrics.json()["total"]["sentiment"] == {"negative": 1, "neutral": 0, "positive": 1}


async def test_a_negative_comment_opens_a_ticket_by_the_default_rule(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    # Text only, no score: only the "Negative comments" rule (sentiment <= -0.5) applies.
    angry = make_event(
        "angry",
        language=...,
        scores=...,
        customer={"id": "C-angry"},
        text="Horrible experience, the staff were rude and I will never shop here again.",
    )
    mild = make_event(
        "mild",
        language=...,
        scores=...,
        customer={"id": "C-mild"},
        text="The parcel was delivered on Tuesday afternoon.",
    )
    for event in (angry, mild):
        response = await client.post("/v1/feedback", json=event, headers=auth(admin_key))
        assert response.status_code == 202, response.text
        body = response.json()
        if event is angry:
            assert body["ticket_id"] is not None
            ticket = await client.get(f"/v1/tickets/{body['ticket_id']}", headers=auth(admin_key))
            assert ticket.json()["reason"] == "Negative comments"
            assert ticket.json()["priority"] == "low"
        else:
            assert body["ticket_id"] is None
