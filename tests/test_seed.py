"""``feedback-service seed``: realistic demo data, stored through the real ingest
pipeline (rules, tickets, routing), reproducible for a given random seed."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.cli import main
from app.dependencies import AppState
from app.errors import Conflict
from app.models.enums import Channel, Scope, ScoreMetric
from app.repositories import locations as locations_repo
from app.repositories.demo_history import DemoTicketHistory, OpenedDemoTicket
from app.schemas.feedback import FeedbackEventIn
from app.services.demo_data import (
    DEMO_LOCATIONS,
    WORST_LOCATION_ID,
    DemoRun,
    current_window_end,
    demo_event_id,
    generate_demo_events,
    ticket_history,
)
from app.services.demo_phrases import PHRASES, Tone
from app.services.seeding import seed_demo_data
from tests.conftest import KeyFactory, auth
from tests.fixtures.server import service_executable

# One window for the module: every run below is reproducible within it.
WINDOW_END = current_window_end()
LANGUAGES = {"en", "de", "fr", "es", "nl", "it", "pt"}
JOURNEY_STAGES = {"awareness", "purchase", "delivery", "support", "renewal"}
# Events the default rules call poor (SPEC section 3, "bottom box"), and those of them
# without a ticket.
POOR_AND_UNTICKETED_SQL = """
    SELECT count(*) FILTER (WHERE poor), count(*) FILTER (WHERE poor AND ticket_id IS NULL)
    FROM (SELECT ticket_id,
                 nps <= 6
                 OR (csat_scale = 5 AND csat <= 2) OR (csat_scale = 7 AND csat <= 3)
                 OR (ces_scale = 7 AND ces <= 3) OR (ces_scale = 5 AND ces <= 2)
                 OR (rating_scale = 5 AND rating <= 2) OR (rating_scale = 10 AND rating <= 4)
                 AS poor
          FROM feedback) AS judged
"""


def nps_score(answers: Iterable[int]) -> float:
    values = list(answers)
    promoters = sum(value >= 9 for value in values)
    detractors = sum(value <= 6 for value in values)
    return 100 * (promoters - detractors) / len(values)


def validated(run: DemoRun) -> list[FeedbackEventIn]:
    return [FeedbackEventIn.model_validate(document) for document in generate_demo_events(run)]


async def scalar(state: AppState, sql: str) -> Any:
    async with state.sessionmaker() as session:
        return (await session.execute(text(sql))).scalar_one()


async def rows(state: AppState, sql: str) -> Sequence[Any]:
    async with state.sessionmaker() as session:
        return (await session.execute(text(sql))).all()


# Every ticket with its timeline, keyed by the event that opened it (ids differ between
# databases; the detail of created/attached entries names feedback ids).
TICKET_HISTORIES_SQL = """
    SELECT o.event_id, t.status, t.created_at, t.updated_at, t.sla_due_at, t.resolved_at,
           (SELECT array_agg(e.kind || ' ' || e.at::text || ' '
                             || CASE WHEN e.kind = 'status_changed' THEN e.detail ELSE '' END
                             ORDER BY e.id)
            FROM ticket_timeline e WHERE e.ticket_id = t.id) AS timeline
    FROM tickets t
    CROSS JOIN LATERAL (
        SELECT event_id FROM feedback WHERE ticket_id = t.id ORDER BY id LIMIT 1
    ) o
"""


async def ticket_histories(state: AppState) -> dict[str, tuple[Any, ...]]:
    return {row[0]: tuple(row[1:]) for row in await rows(state, TICKET_HISTORIES_SQL)}


# -- the generator (no database) -------------------------------------------------------------


def test_events_validate_and_cover_channels_places_languages_and_scales() -> None:
    run = DemoRun(random_seed=2026, events=4000, days=90, window_end=WINDOW_END)
    events = validated(run)

    assert [event.event_id for event in events] == [run.event_id(n) for n in range(1, 4001)]
    assert {event.channel for event in events} == set(Channel)
    assert len({event.source for event in events}) >= 15
    assert {event.location_id for event in events} == {
        *(location.location_id for location in DEMO_LOCATIONS),
        None,  # online touchpoints
    }
    assert len({event.touchpoint for event in events}) >= 8
    assert {event.journey_stage for event in events} == JOURNEY_STAGES
    assert {(score.metric, score.scale) for event in events for score in event.scores} == {
        (ScoreMetric.NPS, None),
        (ScoreMetric.CSAT, 5),
        (ScoreMetric.CSAT, 7),
        (ScoreMetric.CES, 7),
        (ScoreMetric.CES, 5),
        (ScoreMetric.RATING, 5),
        (ScoreMetric.RATING, 10),
    }
    assert any(not event.scores for event in events)  # social media: comments only

    with_text = [event for event in events if event.text is not None]
    assert 0.5 < len(with_text) / len(events) < 0.7
    given = [event.language for event in with_text if event.language is not None]
    assert 0.35 < len(given) / len(with_text) < 0.65  # the rest is left to detection
    assert {language.split("-")[0] for language in given} == LANGUAGES
    assert all(event.language is None for event in events if event.text is None)
    assert all(event.tags for event in with_text)


def test_events_lie_in_the_window_oldest_first_denser_lately() -> None:
    run = DemoRun(random_seed=2026, events=3000, days=90, window_end=WINDOW_END)
    documents = list(generate_demo_events(run))
    times = [FeedbackEventIn.model_validate(d).occurred_at for d in documents]

    assert times == sorted(times)
    assert run.window_start <= times[0]
    assert times[-1] < run.window_end <= datetime.now(UTC)
    third = timedelta(days=30)
    oldest = sum(time < run.window_start + third for time in times)
    newest = sum(time >= run.window_end - third for time in times)
    assert newest > 1.2 * oldest
    # Sent with the local offset; shops give feedback only while open (9-20 local time).
    shop_hours = Counter(
        datetime.fromisoformat(d["occurred_at"]).hour
        for d in documents
        if d["channel"] == Channel.IN_STORE
    )
    assert min(shop_hours) >= 9
    assert max(shop_hours) <= 19


def test_customers_repeat_with_synthetic_contacts_and_some_are_anonymous() -> None:
    events = validated(DemoRun(random_seed=2026, events=4000, days=90, window_end=WINDOW_END))
    customers = [event.customer for event in events if event.customer is not None]

    assert 0.1 < 1 - len(customers) / len(events) < 0.4  # anonymous feedback
    per_customer = Counter(customer.id for customer in customers)
    assert len(per_customer) <= 4000 // 4
    assert max(per_customer.values()) >= 5
    assert all(re.fullmatch(r"C-\d{5}", str(customer_id)) for customer_id in per_customer)
    emails = {str(customer.email) for customer in customers if customer.email}
    assert emails
    assert {email.rsplit("@", 1)[1] for email in emails} <= {"example.com", "example.org"}
    phones = {customer.phone for customer in customers if customer.phone}
    assert phones
    assert all(re.fullmatch(r"\+[1-9]\d{9,14}", str(phone)) for phone in phones)
    # One customer across channels: a journey worth looking at.
    channels_of: defaultdict[str | None, set[Channel]] = defaultdict(set)
    for event in events:
        if event.customer is not None:
            channels_of[event.customer.id].add(event.channel)
    assert max(len(channels) for channels in channels_of.values()) >= 4


def test_comments_match_the_scores() -> None:
    negative = {
        sentence
        for book in PHRASES.values()
        for tones in book.values()
        for sentence, _ in tones[Tone.NEGATIVE]
    }
    positive = {
        sentence
        for book in PHRASES.values()
        for tones in book.values()
        for sentence, _ in tones[Tone.POSITIVE]
    }
    events = validated(DemoRun(random_seed=3, events=3000, days=90, window_end=WINDOW_END))
    checked = 0
    for event in events:
        nps = event.score(ScoreMetric.NPS)
        if nps is None or event.text is None:
            continue
        first_sentence = next(
            (sentence for sentence in negative | positive if event.text.startswith(sentence)),
            None,
        )
        if nps.value <= 4:
            assert first_sentence in negative, event.text
        if nps.value >= 9:
            assert first_sentence in positive, event.text
        checked += 1
    assert checked > 500


def test_same_seed_same_events_other_seed_other_events() -> None:
    run = DemoRun(random_seed=7, events=800, days=30, window_end=WINDOW_END)
    first = list(generate_demo_events(run))
    assert list(generate_demo_events(run)) == first

    other = list(generate_demo_events(DemoRun(7 + 1, 800, 30, WINDOW_END)))
    assert [d["event_id"] for d in other] != [d["event_id"] for d in first]
    assert [d["occurred_at"] for d in other] != [d["occurred_at"] for d in first]


def test_one_week_of_disruption_shows_as_a_dip() -> None:
    run = DemoRun(random_seed=2026, events=5000, days=90, window_end=WINDOW_END)
    disruption = run.disruption
    assert disruption is not None
    inside: list[int] = []
    outside: list[int] = []
    for event in validated(run):
        nps = event.score(ScoreMetric.NPS)
        if nps is not None:
            in_week = disruption[0] <= event.occurred_at < disruption[1]
            (inside if in_week else outside).append(nps.value)
    assert 20 <= nps_score(outside) <= 40  # a believable retailer overall
    assert nps_score(inside) < nps_score(outside) - 15


# -- the tickets' history (no database) -------------------------------------------------------


def demo_ticket(
    number: int,
    *,
    last_feedback_days_ago: float,
    days_with_feedback: int = 0,  # first to last feedback
    location_id: str = "store-berlin-01",
    assignee: str | None = "owner@example.com",
    sla_hours: int | None = 48,
) -> OpenedDemoTicket:
    last = WINDOW_END - timedelta(days=last_feedback_days_ago)
    return OpenedDemoTicket(
        id=number,
        opening_event_id=demo_event_id(11, number),
        location_id=location_id,
        assignee=assignee,
        sla_hours=sla_hours,
        first_feedback_at=last - timedelta(days=days_with_feedback),
        last_feedback_at=last,
    )


def histories_of(tickets: Iterable[OpenedDemoTicket]) -> list[DemoTicketHistory]:
    return [ticket_history(ticket, as_of=WINDOW_END) for ticket in tickets]


def median(values: Iterable[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def test_older_tickets_are_mostly_resolved_recent_ones_mostly_not() -> None:
    old = histories_of(demo_ticket(n, last_feedback_days_ago=20) for n in range(1, 2001))
    statuses = Counter(h.status for h in old)
    resolved = statuses["resolved"] + statuses["closed"]
    assert 0.68 < resolved / len(old) < 0.82
    assert statuses["closed"] > 0.2 * resolved
    assert 0.06 < (statuses["in_progress"] + statuses["waiting"]) / len(old) < 0.16
    assert statuses["waiting"] > 0
    assert 0.08 < statuses["open"] / len(old) < 0.2

    recent = histories_of(demo_ticket(n, last_feedback_days_ago=0.25) for n in range(1, 501))
    statuses = Counter(h.status for h in recent)
    assert statuses["open"] + statuses["in_progress"] + statuses["waiting"] > 0.8 * len(recent)
    assert statuses["closed"] == 0  # closing takes days


def test_ticket_history_is_coherent_and_reproducible() -> None:
    tickets = [
        demo_ticket(
            n,
            last_feedback_days_ago=n % 10 + 0.1,
            days_with_feedback=n % 3,
            assignee=None if n % 5 == 0 else "owner@example.com",
            sla_hours=(24, 48, 72, None)[n % 4],
        )
        for n in range(1, 1001)
    ]
    histories = histories_of(tickets)
    assert histories_of(tickets) == histories
    assert len({h.status for h in histories}) == 5
    for ticket, history in zip(tickets, histories, strict=True):
        lag = timedelta(seconds=history.lag_seconds)
        assert timedelta(minutes=1) <= lag <= timedelta(minutes=30)
        assert history.created_at == ticket.first_feedback_at + lag
        sla = ticket.sla_hours
        assert history.sla_due_at == (
            None if sla is None else history.created_at + timedelta(hours=sla)
        )
        # Worked on after the last feedback (the ticket was open to receive it).
        times = [change.at for change in history.changes]
        assert times == sorted(times)
        assert all(ticket.last_feedback_at + lag < at <= WINDOW_END for at in times)
        assert history.updated_at == max([ticket.last_feedback_at + lag, *times])
        by = f" by {ticket.assignee or 'demo'}"
        details = [change.detail for change in history.changes]
        if history.status in {"resolved", "closed"}:
            assert history.resolved_at is not None
            assert history.resolved_at > history.created_at
            assert history.changes[0].at == history.resolved_at
            closing = [f"resolved → closed{by}"] if history.status == "closed" else []
            assert details == [f"open → resolved{by}", *closing]
        else:
            assert history.resolved_at is None
            expected = {
                "open": [],
                "in_progress": [f"open → in_progress{by}"],
                "waiting": [f"open → in_progress{by}", f"in_progress → waiting{by}"],
            }
            assert details == expected[history.status]
    # Nothing after the end of the history, not even the latest feedback's arrival.
    just_in = ticket_history(demo_ticket(1, last_feedback_days_ago=1 / 1440), as_of=WINDOW_END)
    assert just_in.created_at == just_in.updated_at == WINDOW_END
    assert (just_in.status, just_in.changes) == ("open", ())


def hours_to_resolve(history: DemoTicketHistory) -> float:
    assert history.resolved_at is not None
    return (history.resolved_at - history.created_at) / timedelta(hours=1)


def test_resolution_takes_about_a_day_some_late_and_longer_at_the_worst_store() -> None:
    def resolved_old_tickets(location_id: str) -> list[DemoTicketHistory]:
        histories = histories_of(
            demo_ticket(n, last_feedback_days_ago=30, location_id=location_id)
            for n in range(1, 1001)
        )
        return [h for h in histories if h.resolved_at is not None]

    usual = resolved_old_tickets("store-berlin-01")
    usual_hours = median(hours_to_resolve(h) for h in usual)
    assert 12 < usual_hours < 24
    late = [
        h
        for h in usual
        if h.resolved_at is not None and h.sla_due_at is not None and h.resolved_at > h.sla_due_at
    ]
    assert 0.03 < len(late) / len(usual) < 0.25
    slow = resolved_old_tickets(WORST_LOCATION_ID)
    assert median(hours_to_resolve(h) for h in slow) > 2 * usual_hours


# -- seeding the database ---------------------------------------------------------------------


async def test_seed_stores_events_opens_tickets_and_routes_them(state: AppState) -> None:
    async with state.sessionmaker() as session, session.begin():
        await locations_repo.upsert(
            session,
            "store-berlin-01",
            name="Berlin (set up by hand)",
            owner="someone.else@example.com",
            team="berlin-ops",
            region=None,
        )

    summary = await seed_demo_data(
        state.database, random_seed=2026, events=2500, days=90, window_end=WINDOW_END
    )

    assert (summary.accepted, summary.duplicates, summary.conflicts) == (2500, 0, 0)
    assert summary.locations_kept == ["store-berlin-01"]
    assert len(summary.locations_created) == len(DEMO_LOCATIONS) - 1
    berlin = await rows(
        state, "SELECT owner, team FROM locations WHERE location_id = 'store-berlin-01'"
    )
    assert tuple(berlin[0]) == ("someone.else@example.com", "berlin-ops")  # left unchanged

    assert await scalar(state, "SELECT count(*) FROM feedback") == 2500
    assert await scalar(state, "SELECT count(DISTINCT channel) FROM feedback") == len(Channel)
    assert await scalar(state, "SELECT count(DISTINCT location_id) FROM feedback") == len(
        DEMO_LOCATIONS
    )
    languages = await rows(
        state,
        "SELECT DISTINCT split_part(language, '-', 1) FROM feedback WHERE language IS NOT NULL",
    )
    # (<=: once detection fills in the rest, a short comment may be taken for another one)
    assert {language for (language,) in languages} >= LANGUAGES
    assert await scalar(state, "SELECT count(*) FROM feedback WHERE ingested_via <> 'rest'") == 0
    earliest, latest = (
        await rows(state, "SELECT min(occurred_at), max(occurred_at) FROM feedback")
    )[0]
    assert WINDOW_END - timedelta(days=90) <= earliest
    assert latest < WINDOW_END <= datetime.now(UTC)
    assert (summary.first_occurred_at, summary.last_occurred_at) == (earliest, latest)

    # The default rules: every poor event has a ticket (its own or its customer's open one).
    assert summary.tickets_opened > 100
    assert await scalar(state, "SELECT count(*) FROM tickets") == summary.tickets_opened
    poor, unticketed = (await rows(state, POOR_AND_UNTICKETED_SQL))[0]
    assert poor > 0
    assert unticketed == 0
    # A repeat customer's later poor feedback joins their open ticket.
    shared = await scalar(
        state,
        "SELECT count(*) FROM tickets WHERE id IN "
        "(SELECT ticket_id FROM feedback GROUP BY ticket_id HAVING count(*) > 1)",
    )
    assert shared > 0
    # Routed to the locations' owners and teams.
    routing = await rows(
        state,
        "SELECT DISTINCT location_id, assignee, team FROM tickets "
        "WHERE location_id IN ('store-paris-02', 'store-berlin-01')",
    )
    assert {tuple(row) for row in routing} == {
        ("store-paris-02", "julien.moreau@example.com", "paris-store"),
        ("store-berlin-01", "someone.else@example.com", "berlin-ops"),
    }
    assert await scalar(state, "SELECT count(*) FROM customers") > 300

    # The store a manager should spot: its NPS below every other location's.
    answers: defaultdict[str, list[int]] = defaultdict(list)
    for location_id, nps in await rows(
        state,
        "SELECT location_id, nps FROM feedback WHERE nps IS NOT NULL AND location_id IS NOT NULL",
    ):
        answers[location_id].append(nps)
    worst = nps_score(answers.pop(WORST_LOCATION_ID))
    # Compared with the places with enough answers to judge by (the contact centre
    # mostly asks CSAT and CES instead).
    others = [nps_score(values) for values in answers.values() if len(values) >= 30]
    assert len(others) >= 6
    assert worst < min(others) - 15


async def test_seeding_again_stores_nothing_new(state: AppState) -> None:
    first = await seed_demo_data(
        state.database,
        random_seed=5,
        events=700,
        days=30,
        window_end=WINDOW_END - timedelta(hours=3),
    )
    tickets = await scalar(state, "SELECT count(*) FROM tickets")
    histories = await ticket_histories(state)
    assert {status for status, *_ in histories.values()} >= {"open", "resolved"}

    # No window given: the stored events' window is reused (as on a later day).
    again = await seed_demo_data(state.database, random_seed=5, events=700, days=30, batch_size=128)

    assert again.run == first.run
    assert (again.accepted, again.duplicates, again.conflicts) == (0, 700, 0)
    assert again.tickets_opened == 0
    assert again.locations_created == []
    assert await scalar(state, "SELECT count(*) FROM feedback") == 700
    assert await scalar(state, "SELECT count(*) FROM tickets") == tickets
    assert again.tickets_resolved == 0
    assert await ticket_histories(state) == histories  # their history is not made again

    # Other options with the same seed would mix two data sets: refused.
    with pytest.raises(Conflict, match="--events 700 --days 30"):
        await seed_demo_data(state.database, random_seed=5, events=900, days=30)
    # Another seed adds a different set beside it.
    other = await seed_demo_data(
        state.database, random_seed=6, events=300, days=30, window_end=WINDOW_END
    )
    assert other.accepted == 300
    assert await scalar(state, "SELECT count(*) FROM feedback") == 1000


# Each ticket of a seeded database with the figures its history is judged by.
SEEDED_TICKETS_SQL = """
    SELECT t.id, t.status, t.location_id, t.created_at, t.updated_at, t.sla_due_at,
           t.resolved_at, (r.action->>'sla_hours')::int AS sla_hours,
           f.first_at, f.last_at, f.feedback,
           e.created_entry_at, e.last_entry_at, e.resolved_entry_at, e.in_order
    FROM tickets t
    JOIN rules r ON r.id = t.rule_id
    CROSS JOIN LATERAL (
        SELECT min(occurred_at) AS first_at, max(occurred_at) AS last_at, count(*) AS feedback
        FROM feedback WHERE ticket_id = t.id
    ) f
    CROSS JOIN LATERAL (
        SELECT min(at) FILTER (WHERE kind = 'created') AS created_entry_at,
               max(at) AS last_entry_at,
               min(at) FILTER (WHERE detail LIKE 'open → resolved by %') AS resolved_entry_at,
               -- the timeline is shown in id order: that is time order
               array_agg(at ORDER BY id) = array_agg(at ORDER BY at, id) AS in_order
        FROM ticket_timeline WHERE ticket_id = t.id
    ) e
"""


async def test_seeded_tickets_have_a_past(
    state: AppState, client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    summary = await seed_demo_data(
        state.database, random_seed=2027, events=3000, days=90, window_end=WINDOW_END
    )
    tickets = await rows(state, SEEDED_TICKETS_SQL)

    assert len(tickets) == summary.tickets_opened > 200
    assert summary.tickets_resolved == sum(t.resolved_at is not None for t in tickets)
    for t in tickets:
        # Opened minutes after its first feedback (by the end of the window at the latest).
        assert timedelta(0) < t.created_at - t.first_at <= timedelta(minutes=30)
        assert t.created_at - t.first_at >= timedelta(minutes=1) or t.created_at == WINDOW_END
        assert t.sla_due_at == t.created_at + timedelta(hours=t.sla_hours)
        assert t.created_entry_at == t.created_at
        assert t.in_order
        assert t.updated_at == t.last_entry_at <= WINDOW_END
        if t.status in {"resolved", "closed"}:
            assert t.resolved_at > t.created_at
            assert t.resolved_at > t.last_at  # open while its feedback came in
            assert t.resolved_entry_at == t.resolved_at
        else:
            assert t.resolved_at is None
            assert t.resolved_entry_at is None
    # Spread over the window, as the feedback is, rather than all opened today.
    assert len({t.created_at.date() for t in tickets}) > 60

    # The older ones are mostly dealt with; the open ones are few, or recent.
    older = [t for t in tickets if t.last_at < WINDOW_END - timedelta(days=2)]
    statuses = Counter(t.status for t in older)
    assert 0.6 < (statuses["resolved"] + statuses["closed"]) / len(older) < 0.9
    assert statuses["open"] / len(older) < 0.2
    assert sum(t.status == "open" for t in tickets) < 0.25 * len(tickets)
    # Some missed their SLA; the store with the worst scores also resolves slowest.
    resolved = [t for t in tickets if t.resolved_at is not None]
    late = [t for t in resolved if t.resolved_at > t.sla_due_at]
    assert 0 < len(late) < 0.5 * len(resolved)

    # Judged by tickets of one feedback: the weeks a repeat customer's ticket stays open
    # would blur the comparison.
    def resolved_in(location_ids: set[str]) -> list[Any]:
        return [t for t in resolved if t.location_id in location_ids and t.feedback == 1]

    worst = resolved_in({WORST_LOCATION_ID})
    others = resolved_in(
        {location.location_id for location in DEMO_LOCATIONS} - {WORST_LOCATION_ID}
    )
    usual_hours = median((t.resolved_at - t.created_at) / timedelta(hours=1) for t in others)
    assert 8 < usual_hours < 30
    # (Not by its full factor: more of its tickets are high priority, with a 24 h SLA.)
    assert median((t.resolved_at - t.created_at) / timedelta(hours=1) for t in worst) > (
        1.3 * usual_hours
    )
    late_share = [
        sum(t.resolved_at > t.sla_due_at for t in group) / len(group) for group in (worst, others)
    ]
    assert late_share[0] > 2 * late_share[1]

    # GET /v1/tickets/{id} tells the same story.
    key = await make_key(Scope.TICKETS_READ)
    shown = max(resolved, key=lambda t: (t.feedback, t.id))
    response = await client.get(f"/v1/tickets/{shown.id}", headers=auth(key))
    assert response.status_code == 200
    ticket = response.json()
    timeline = ticket["timeline"]
    assert [entry["at"] for entry in timeline] == sorted(entry["at"] for entry in timeline)
    assert timeline[0]["kind"] == "created"
    assert timeline[0]["at"] == ticket["created_at"]
    assert len(timeline) == shown.feedback + (2 if ticket["status"] == "closed" else 1)
    resolution = timeline[shown.feedback]
    assert resolution["kind"] == "status_changed"
    assert resolution["detail"] == f"open → resolved by {ticket['assignee'] or 'demo'}"
    assert resolution["at"] == ticket["resolved_at"]
    assert ticket["updated_at"] == timeline[-1]["at"]


async def test_ticket_history_is_the_same_for_the_same_seed(state: AppState) -> None:
    await seed_demo_data(state.database, random_seed=8, events=600, days=30, window_end=WINDOW_END)
    first = await ticket_histories(state)
    async with state.sessionmaker() as session, session.begin():
        await session.execute(text("TRUNCATE feedback, feedback_daily_rollup, tickets CASCADE"))

    await seed_demo_data(
        state.database, random_seed=8, events=600, days=30, window_end=WINDOW_END, batch_size=97
    )

    assert await ticket_histories(state) == first
    assert len({status for status, *_ in first.values()}) >= 3


# -- the command -----------------------------------------------------------------------------


def _run_cli(args: Sequence[str], database_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_")}
    env["FEEDBACK_DATABASE_URL"] = database_url
    return subprocess.run(
        [str(service_executable()), *args],
        env=env,
        cwd=cwd,  # no .env of the repository
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
async def test_seed_command(state: AppState, database_url: str, tmp_path: Path) -> None:
    args = ["seed", "--events", "400", "--days", "14", "--random-seed", "99"]
    done = await asyncio.to_thread(_run_cli, args, database_url, tmp_path)

    assert done.returncode == 0, done.stderr
    assert "400 accepted, 0 duplicates" in done.stdout
    assert re.search(r"tickets\s+\d+ opened", done.stdout)
    assert f"{len(DEMO_LOCATIONS)} created with owners and teams" in done.stdout
    assert "/docs" in done.stdout
    assert "/v1/metrics?group_by=location_id" in done.stdout
    assert await scalar(state, "SELECT count(*) FROM feedback") == 400
    assert (
        await scalar(state, "SELECT count(*) FROM feedback WHERE event_id LIKE 'demo-99-%'") == 400
    )


@pytest.mark.parametrize(
    "args",
    [["--events", "0"], ["--events", "many"], ["--days", "0"], ["--random-seed", "-1"]],
)
def test_seed_command_refuses_bad_options(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["seed", *args])
    assert exited.value.code == 2
    assert "error: argument" in capsys.readouterr().err
