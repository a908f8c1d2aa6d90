"""Accuracy and cost of language detection and sentiment (``app.services.enrichment``)
on the labelled review sentences of ``tests/data/sentiment_reviews.jsonl``.

    .venv/bin/python -m bench.text_analysis

Prints one markdown row per language: sentences, language detection accuracy (the
language removed from the input), sentiment label accuracy where an analyser exists,
and the cost per text of each step (mean of several passes, after warm-up).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from app.services.enrichment import (
    SUPPORTED_SENTIMENT_LANGUAGES,
    analyse_text,
    detect_language,
    warm_up,
)

DATA_SET = Path(__file__).resolve().parent.parent / "tests" / "data" / "sentiment_reviews.jsonl"
TIMING_PASSES = 5


@dataclass(frozen=True)
class LanguageResult:
    language: str
    sentences: int
    detected: int  # language detected correctly
    undetected: int  # no language returned (too short or too uncertain)
    sentiment_checked: int  # sentences whose language has an analyser
    sentiment_correct: int
    detect_us: float  # per text
    sentiment_us: float  # per text, language given (0 without an analyser)

    @property
    def detection_accuracy(self) -> float:
        return self.detected / self.sentences

    @property
    def sentiment_accuracy(self) -> float | None:
        if not self.sentiment_checked:
            return None
        return self.sentiment_correct / self.sentiment_checked


def load_samples(path: Path = DATA_SET) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _mean_us(work: Sequence[tuple[str, str | None]], sentiment: bool) -> float:
    started = time.perf_counter()
    for _ in range(TIMING_PASSES):
        for text, language in work:
            if sentiment:
                analyse_text(text, language)
            else:
                detect_language(text)
    return (time.perf_counter() - started) / (TIMING_PASSES * len(work)) * 1e6


def measure(samples: Sequence[dict[str, Any]]) -> list[LanguageResult]:
    warm_up()
    by_language: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for sample in samples:
        by_language[sample["language"]].append(sample)
    results = []
    for language, rows in sorted(by_language.items(), key=lambda item: -len(item[1])):
        detections = [detect_language(row["text"]) for row in rows]
        has_analyser = language in SUPPORTED_SENTIMENT_LANGUAGES
        labels = [analyse_text(row["text"], language).sentiment_label for row in rows]
        results.append(
            LanguageResult(
                language=language,
                sentences=len(rows),
                detected=sum(found == language for found in detections),
                undetected=sum(found is None for found in detections),
                sentiment_checked=len(rows) if has_analyser else 0,
                sentiment_correct=sum(
                    label is not None and label.value == row["label"]
                    for label, row in zip(labels, rows, strict=True)
                )
                if has_analyser
                else 0,
                detect_us=_mean_us([(row["text"], None) for row in rows], sentiment=False),
                sentiment_us=_mean_us([(row["text"], language) for row in rows], sentiment=True)
                if has_analyser
                else 0.0,
            )
        )
    return results


def table(results: Sequence[LanguageResult]) -> str:
    lines = [
        "| language | sentences | language detected | sentiment label right | "
        "detection µs/text | sentiment µs/text |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        sentiment = (
            f"{r.sentiment_correct}/{r.sentiment_checked} ({r.sentiment_accuracy:.0%})"
            if r.sentiment_accuracy is not None
            else "— (no analyser: `null`)"
        )
        lines.append(
            f"| {r.language} | {r.sentences} | {r.detected}/{r.sentences} "
            f"({r.detection_accuracy:.0%}) | {sentiment} | {r.detect_us:.0f} | "
            + (f"{r.sentiment_us:.0f} |" if r.sentiment_us else "— |")
        )
    return "\n".join(lines)


def main() -> None:
    print(table(measure(load_samples())))


if __name__ == "__main__":
    main()
