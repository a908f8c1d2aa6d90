"""Realistic demo feedback for ``feedback-service seed`` (SPEC section 8).

Pure: builds event documents from a ``random.Random`` and touches no database. One
``DemoRun`` (random seed, number of events, days, end of the window) always gives the
same events, so seeding twice stores nothing new: the second run is all duplicates.

What the data is shaped to show a newcomer:

- a European retailer with a web shop, an app and seven stores (one per market) plus a
  contact centre; all ten channels, each with the sources, touchpoints and survey
  instruments it would have (NPS on surveys, CSAT on 5 and 7 points, CES on 7 and 5,
  star ratings on 5 and 10 points on review sites, text only on social media);
- NPS around +30 overall, but ``store-paris-02`` clearly worse than the other stores;
- one week of carrier disruption (about six weeks back in a 90-day window) when
  deliveries, and with them the scores, go bad;
- short comments in English, German, French, Spanish, Dutch, Italian and Portuguese
  whose tone follows the scores; ``language`` sent with about half of them, so that
  detection has work to do;
- a pool of repeat customers (a quarter as many as events) with synthetic names,
  example.com/example.org addresses and phone numbers from fiction-reserved ranges,
  plus anonymous feedback; more feedback on recent days and in opening hours;
- tickets with a past (``ticket_history``): opened minutes after their feedback, most
  of the older ones resolved within about a day, some late for their SLA, and
  ``store-paris-02`` slower than the rest.
"""

from __future__ import annotations

import itertools
import math
import random
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from functools import cache
from typing import Any, Generic, TypeVar

from app.models.enums import Channel, ScoreMetric, TicketStatus
from app.repositories.demo_history import DemoTicketHistory, OpenedDemoTicket, StatusChange
from app.schemas.feedback import FeedbackEventIn
from app.services.demo_phrases import CLOSERS, PHRASES, Tone, Topic

T = TypeVar("T")

EVENT_ID_PREFIX = "demo"
MARKER_KEY = "demo"  # metadata key naming the run that made an event
FIRST_CUSTOMER_NUMBER = 10001
EVENTS_PER_CUSTOMER = 4


class Weighted(Generic[T]):
    """A fixed weighted choice; the cumulative weights are summed once, not per pick."""

    __slots__ = ("_cumulative", "items")

    def __init__(self, *choices: tuple[T, float]) -> None:
        self.items: tuple[T, ...] = tuple(item for item, _ in choices)
        self._cumulative = list(itertools.accumulate(weight for _, weight in choices))

    def pick(self, rng: random.Random) -> T:
        return rng.choices(self.items, cum_weights=self._cumulative)[0]


# -- markets, locations, customers -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Market:
    country: str  # ISO 3166-1 alpha-2
    language: str  # the language its customers write in (ISO 639-1)
    utc_offset_hours: int  # standard time; EU summer time adds an hour
    ivr_line: str  # its phone line's IVR survey: source "ivr-<line>"
    phone_prefix: str  # E.164 start of numbers that look reserved for fiction or tests
    phone_digits: int  # digits after the prefix
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]

    @property
    def locale(self) -> str:
        return f"{self.language}-{self.country}"


GERMANY = Market(
    "DE", "de", 1, "de", "+4915550", 5,
    ("Anna", "Lukas", "Mia", "Jonas", "Lea", "Felix", "Sophie", "Paul", "Hannah", "Jürgen"),
    ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Becker", "Wagner", "Hoffmann"),
)  # fmt: skip
FRANCE = Market(
    "FR", "fr", 1, "fr", "+3363998", 4,
    ("Camille", "Louis", "Léa", "Hugo", "Chloé", "Gabriel", "Manon", "Jules", "Inès", "Théo"),
    ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Petit", "Durand", "Lefèvre"),
)  # fmt: skip
SPAIN = Market(
    "ES", "es", 1, "es", "+3460000", 4,
    ("Lucía", "Pablo", "Martina", "Alejandro", "Sofía", "Carmen", "Javier", "Elena", "Diego"),
    ("García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez", "Ruiz"),
)  # fmt: skip
BRITAIN = Market(
    "GB", "en", 0, "uk", "+447700900", 3,  # Ofcom's range for drama
    ("Olivia", "Jack", "Amelia", "Harry", "Isla", "George", "Emily", "Oliver", "Grace"),
    ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Davies", "Evans", "Walker"),
)  # fmt: skip
NETHERLANDS = Market(
    "NL", "nl", 1, "nl", "+3161234", 4,
    ("Emma", "Daan", "Julia", "Sem", "Tess", "Lucas", "Sanne", "Bram", "Fleur", "Thijs"),
    ("de Jong", "Jansen", "de Vries", "van den Berg", "Bakker", "Visser", "Smit", "Meijer"),
)  # fmt: skip
ITALY = Market(
    "IT", "it", 1, "it", "+39333000", 4,
    ("Giulia", "Francesco", "Sofia", "Alessandro", "Aurora", "Lorenzo", "Chiara", "Matteo"),
    ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci"),
)  # fmt: skip
PORTUGAL = Market(
    "PT", "pt", 0, "pt", "+35191000", 4,
    ("Maria", "João", "Beatriz", "Francisco", "Inês", "Tomás", "Carolina", "Rodrigo"),
    ("Silva", "Santos", "Ferreira", "Pereira", "Oliveira", "Costa", "Rodrigues", "Martins"),
)  # fmt: skip

# Where the customers live: the shares of the customer pool.
MARKETS: Weighted[Market] = Weighted(
    (GERMANY, 24), (BRITAIN, 18), (FRANCE, 16), (SPAIN, 12), (ITALY, 12),
    (NETHERLANDS, 10), (PORTUGAL, 8),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class DemoLocation:
    """A location and its owner (``PUT /v1/locations/{id}``), so tickets get routed."""

    location_id: str
    name: str
    owner: str
    team: str
    region: str
    market: Market | None  # a store serves one market; the contact centre all of them
    utc_offset_hours: int  # standard time
    mood_tilt: float  # how its customers' answers lean: < 0 worse, > 0 better


def _store(
    location_id: str, name: str, owner: str, region: str, market: Market, mood_tilt: float
) -> DemoLocation:
    team = location_id.removeprefix("store-").rsplit("-", 1)[0] + "-store"
    return DemoLocation(
        location_id, name, owner, team, region, market, market.utc_offset_hours, mood_tilt
    )


STORES: tuple[DemoLocation, ...] = (
    _store("store-berlin-01", "Berlin Alexanderplatz", "maria.schmidt@example.com",
           "eu-central", GERMANY, 0.06),
    # The store a manager should spot: long queues and empty shelves all quarter.
    _store("store-paris-02", "Paris Rivoli", "julien.moreau@example.com",
           "eu-west", FRANCE, -0.24),
    _store("store-madrid-01", "Madrid Gran Vía", "lucia.garcia@example.com",
           "eu-south", SPAIN, 0.08),
    _store("store-london-03", "London Oxford Street", "james.walker@example.com",
           "uk", BRITAIN, -0.03),
    _store("store-amsterdam-01", "Amsterdam Kalverstraat", "sanne.deboer@example.com",
           "eu-west", NETHERLANDS, 0.05),
    _store("store-milan-01", "Milano Corso Vittorio Emanuele", "giulia.ricci@example.com",
           "eu-south", ITALY, 0.03),
    _store("store-lisbon-01", "Lisboa Chiado", "joao.ferreira@example.com",
           "eu-south", PORTUGAL, 0.1),
)  # fmt: skip
CONTACT_CENTRE = DemoLocation(
    "contact-centre-porto", "Customer care centre Porto", "ana.costa@example.com",
    "customer-care", "eu-south", None, 0, -0.06,
)  # fmt: skip
DEMO_LOCATIONS: tuple[DemoLocation, ...] = (*STORES, CONTACT_CENTRE)
WORST_LOCATION_ID = "store-paris-02"

_STORE_OF_MARKET = {store.market: store for store in STORES}
# Anonymous shoppers, spread by footfall.
_FOOTFALL: Weighted[DemoLocation] = Weighted(
    *zip(STORES, (20, 16, 12, 18, 10, 14, 10), strict=True)
)
HOME_STORE_SHARE = 0.85  # known customers shop mostly at their market's store
TOURIST_SHARE = 0.15  # anonymous in-store comments written in English


@dataclass(frozen=True, slots=True)
class DemoCustomer:
    number: int
    name: str
    email: str
    phone: str
    market: Market
    loyalty_member: bool

    @property
    def customer_id(self) -> str:
        return f"C-{self.number}"


_GERMAN_LETTERS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


def _email_part(name: str) -> str:
    """``Jürgen`` -> ``juergen``, ``de Jong`` -> ``dejong``, ``Lefèvre`` -> ``lefevre``."""
    decomposed = unicodedata.normalize("NFKD", name.lower().translate(_GERMAN_LETTERS))
    return "".join(c for c in decomposed if c.isascii() and c.isalnum())


def demo_customer(number: int) -> DemoCustomer:
    """Customer ``C-<number>``, the same person in every run: runs with other seeds add
    feedback from the same people rather than giving one id to several."""
    rng = random.Random(f"demo-customer-{number}")  # noqa: S311 - synthetic people, not secrets
    market = MARKETS.pick(rng)
    first, last = rng.choice(market.first_names), rng.choice(market.last_names)
    domain = "example.com" if rng.random() < 0.6 else "example.org"
    suffix = number - FIRST_CUSTOMER_NUMBER + 1  # unique, so no two customers share an address
    return DemoCustomer(
        number=number,
        name=f"{first} {last}",
        email=f"{_email_part(first)}.{_email_part(last)}{suffix}@{domain}",
        phone=market.phone_prefix
        + str(number % 10**market.phone_digits).zfill(market.phone_digits),
        market=market,
        loyalty_member=rng.random() < 0.3,
    )


# -- when: opening hours, recency, summer time -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Activity:
    """How feedback spreads over local hours (0-23) and weekdays (Monday first)."""

    hourly: tuple[float, ...]
    daily: tuple[float, ...]

    @property
    def peak(self) -> float:
        return max(self.hourly) * max(self.daily)


STORE_HOURS = Activity(
    hourly=(0,) * 9 + (0.5, 0.8, 0.9, 1.0, 1.0, 0.9, 0.9, 1.0, 1.0, 0.9, 0.7) + (0,) * 4,
    daily=(1.0, 1.0, 1.0, 1.1, 1.3, 1.5, 0.15),  # Saturday rush; most stores shut on Sunday
)
CONTACT_CENTRE_HOURS = Activity(
    hourly=(0,) * 8 + (0.6, 0.9, 1.0, 1.0, 0.9, 0.8, 0.9, 0.9, 0.8, 0.6, 0.4, 0.3, 0.2) + (0,) * 3,
    daily=(1.2, 1.1, 1.0, 1.0, 1.0, 0.5, 0.2),
)
ONLINE_HOURS = Activity(
    hourly=(0.15, 0.08, 0.05, 0.04, 0.04, 0.08, 0.2, 0.45, 0.7, 0.85, 0.9, 0.95,
            1.0, 0.95, 0.9, 0.9, 0.9, 0.95, 1.0, 1.0, 0.95, 0.8, 0.55, 0.3),
    daily=(1.0, 1.0, 1.0, 1.0, 0.95, 0.9, 1.1),
)  # fmt: skip
RECENCY_BOOST = 0.6  # the newest day gets 1.6 times the feedback of the oldest


@cache
def _summer_time(year: int) -> tuple[datetime, datetime]:
    """EU summer time: from the last Sunday of March to the last Sunday of October, 01:00
    UTC both. Computed here rather than from the tz database, which slim container
    images lack."""

    def last_sunday_1am(month: int) -> datetime:
        day = date(year, month, 31)  # March and October both have 31 days
        day -= timedelta(days=(day.weekday() + 1) % 7)
        return datetime(day.year, day.month, day.day, 1, tzinfo=UTC)

    return last_sunday_1am(3), last_sunday_1am(10)


def local_offset(standard_offset_hours: int, instant: datetime) -> timedelta:
    begins, ends = _summer_time(instant.year)
    return timedelta(hours=standard_offset_hours + (1 if begins <= instant < ends else 0))


# -- the run ---------------------------------------------------------------------------------

DISRUPTION_DAYS = 7
DISRUPTION_ENDS_AT_FRACTION = 0.4  # of the window, counted back from its end
MIN_DAYS_FOR_DISRUPTION = 21


@dataclass(frozen=True, slots=True)
class DemoRun:
    """What determines the events: same run, same events."""

    random_seed: int
    events: int
    days: int
    window_end: datetime  # UTC; every event lies in [window_end - days, window_end)

    @property
    def window_start(self) -> datetime:
        return self.window_end - timedelta(days=self.days)

    @property
    def disruption(self) -> tuple[datetime, datetime] | None:
        """The week of carrier disruption, or None in a window too short to show one."""
        if self.days < MIN_DAYS_FOR_DISRUPTION:
            return None
        ends = self.window_end - timedelta(days=round(self.days * DISRUPTION_ENDS_AT_FRACTION))
        return ends - timedelta(days=DISRUPTION_DAYS), ends

    def event_id(self, number: int) -> str:
        return demo_event_id(self.random_seed, number)

    @property
    def event_id_prefix(self) -> str:
        return demo_event_id_prefix(self.random_seed)

    def marker(self) -> dict[str, Any]:
        """Written into every event's metadata: a later run with this seed reads it from
        the stored events and regenerates exactly them (its duplicates)."""
        return {
            "seed": self.random_seed,
            "events": self.events,
            "days": self.days,
            "window_end": self.window_end.isoformat(),
        }

    @classmethod
    def from_marker(cls, metadata: Mapping[str, Any] | None) -> DemoRun | None:
        marker = (metadata or {}).get(MARKER_KEY)
        if not isinstance(marker, dict):
            return None
        try:
            return cls(
                random_seed=int(marker["seed"]),
                events=int(marker["events"]),
                days=int(marker["days"]),
                window_end=datetime.fromisoformat(marker["window_end"]).astimezone(UTC),
            )
        except (KeyError, TypeError, ValueError):
            return None


def demo_event_id(random_seed: int, number: int) -> str:
    """``demo-2026-000001`` is the oldest event of seed 2026. Zero-padded: ingest takes a
    batch in event_id order, and so opens a customer's ticket for their earliest poor
    feedback in it."""
    return f"{demo_event_id_prefix(random_seed)}{number:06d}"


def demo_event_id_prefix(random_seed: int) -> str:
    """What every event_id of the seed starts with."""
    return f"{EVENT_ID_PREFIX}-{random_seed}-"


def current_window_end(now: datetime | None = None) -> datetime:
    """The last full hour: never in the future, and the same for runs within the hour."""
    return (now or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)


# -- channels --------------------------------------------------------------------------------

Instrument = tuple[tuple[ScoreMetric, int | None], ...]  # (metric, scale) asked together

NPS: Instrument = ((ScoreMetric.NPS, None),)
NPS_CSAT5: Instrument = ((ScoreMetric.NPS, None), (ScoreMetric.CSAT, 5))
NPS_CSAT7: Instrument = ((ScoreMetric.NPS, None), (ScoreMetric.CSAT, 7))
CSAT5: Instrument = ((ScoreMetric.CSAT, 5),)
CSAT7: Instrument = ((ScoreMetric.CSAT, 7),)
CES7: Instrument = ((ScoreMetric.CES, 7),)
CES5: Instrument = ((ScoreMetric.CES, 5),)
CSAT5_CES5: Instrument = ((ScoreMetric.CSAT, 5), (ScoreMetric.CES, 5))
CSAT5_CES7: Instrument = ((ScoreMetric.CSAT, 5), (ScoreMetric.CES, 7))
STARS5: Instrument = ((ScoreMetric.RATING, 5),)
STARS10: Instrument = ((ScoreMetric.RATING, 10),)
TEXT_ONLY: Instrument = ()

DEFAULT_SCALES = {ScoreMetric.CSAT: 5, ScoreMetric.CES: 7, ScoreMetric.RATING: 5}

JOURNEY_STAGE = {
    "product_search": "awareness",
    "store_visit": "awareness",
    "onboarding": "purchase",
    "checkout": "purchase",
    "delivery": "delivery",
    "returns": "support",
    "support": "support",
    "billing": "renewal",
    "app_login": "renewal",
    "loyalty_program": "renewal",
}
# None: a store topic at a store, a digital one elsewhere.
TOUCHPOINT_TOPIC: dict[str, Topic | None] = {
    "product_search": Topic.DIGITAL,
    "store_visit": Topic.STORE,
    "onboarding": Topic.DIGITAL,
    "checkout": None,
    "delivery": Topic.DELIVERY,
    "returns": Topic.DELIVERY,
    "support": Topic.SERVICE,
    "billing": Topic.SERVICE,
    "app_login": Topic.DIGITAL,
    "loyalty_program": None,
}


@dataclass(frozen=True, slots=True)
class ChannelProfile:
    """One kind of producing system: its channel, sources, what it asks and knows."""

    channel: Channel
    weight: float  # share of all feedback
    sources: Weighted[str]  # "{ivr}" stands for the customer's market's IVR line
    touchpoints: Weighted[str]
    instruments: Weighted[Instrument]
    activity: Activity
    text_share: float  # how often a comment comes with the scores
    anonymous_share: float
    contact: frozenset[str] = frozenset()  # customer details it knows beyond the id
    store_share: float = 0.0  # how often the feedback is about one of the stores
    contact_centre_share: float = 0.0
    market: Market | None = None  # a source serving one market only
    mood_tilt: float = 0.0


PROFILES: Weighted[ChannelProfile] = Weighted(
    *(
        (profile, profile.weight)
        for profile in (
            ChannelProfile(
                Channel.IN_STORE, 14, Weighted(("pos-eu", 1)),
                Weighted(("checkout", 50), ("store_visit", 20), ("returns", 15),
                         ("support", 8), ("loyalty_program", 7)),
                Weighted((NPS_CSAT5, 5), (NPS, 3), (CSAT5, 2)),
                STORE_HOURS, text_share=0.5, anonymous_share=0.35,
                contact=frozenset({"name"}), store_share=1.0,
            ),
            ChannelProfile(
                Channel.IN_STORE, 6, Weighted(("kiosk-eu", 1)),
                Weighted(("store_visit", 50), ("checkout", 30), ("loyalty_program", 20)),
                Weighted((CSAT5, 5), (NPS, 3), (CES5, 2)),
                STORE_HOURS, text_share=0.5, anonymous_share=0.6, store_share=1.0,
            ),
            ChannelProfile(
                Channel.WEB, 18, Weighted(("qualtrics-web", 6), ("medallia-web", 4)),
                Weighted(("checkout", 30), ("product_search", 20), ("delivery", 15),
                         ("returns", 10), ("onboarding", 10), ("billing", 10), ("support", 5)),
                Weighted((NPS, 40), (NPS_CSAT5, 30), (CSAT7, 15), (CES7, 15)),
                ONLINE_HOURS, text_share=0.6, anonymous_share=0.15,
                contact=frozenset({"email"}),
            ),
            ChannelProfile(
                Channel.MOBILE_APP, 12,
                Weighted(("app-survey-ios", 5), ("app-survey-android", 5)),
                Weighted(("app_login", 25), ("checkout", 25), ("product_search", 15),
                         ("delivery", 15), ("loyalty_program", 10), ("onboarding", 10)),
                Weighted((NPS, 35), (CES7, 25), (CSAT5, 25), (STARS5, 15)),
                ONLINE_HOURS, text_share=0.5, anonymous_share=0.05,
                contact=frozenset({"email", "name"}),
            ),
            ChannelProfile(
                Channel.EMAIL, 14, Weighted(("qualtrics-email", 6), ("email-survey-eu", 4)),
                Weighted(("delivery", 35), ("checkout", 20), ("returns", 15), ("support", 15),
                         ("billing", 15)),
                Weighted((NPS_CSAT7, 45), (NPS, 35), (CSAT7, 20)),
                ONLINE_HOURS, text_share=0.65, anonymous_share=0.0,
                contact=frozenset({"email", "name"}), store_share=0.3,
            ),
            ChannelProfile(
                Channel.SMS, 5, Weighted(("twilio-sms", 7), ("messagebird-sms", 3)),
                Weighted(("delivery", 50), ("checkout", 30), ("support", 20)),
                Weighted((NPS, 6), (CSAT5, 4)),
                ONLINE_HOURS, text_share=0.35, anonymous_share=0.0,
                contact=frozenset({"phone"}), store_share=0.5,
            ),
            ChannelProfile(
                Channel.VOICE, 7, Weighted(("ivr-{ivr}", 7), ("callcentre-porto", 3)),
                Weighted(("support", 50), ("billing", 25), ("returns", 15), ("delivery", 10)),
                Weighted((CSAT5_CES5, 5), (CSAT5, 3), (NPS, 2)),
                CONTACT_CENTRE_HOURS, text_share=0.45, anonymous_share=0.2,
                contact=frozenset({"phone", "name"}), contact_centre_share=0.8,
            ),
            ChannelProfile(
                Channel.CHAT, 8,
                Weighted(("zendesk-chat", 5), ("intercom", 3), ("chatbot-web", 2)),
                Weighted(("support", 45), ("delivery", 20), ("returns", 15), ("billing", 10),
                         ("checkout", 10)),
                Weighted((CSAT5, 50), (CES7, 25), (CSAT5_CES7, 25)),
                CONTACT_CENTRE_HOURS, text_share=0.6, anonymous_share=0.3,
                contact=frozenset({"email", "name"}), contact_centre_share=0.6,
            ),
            ChannelProfile(
                Channel.SOCIAL, 4,
                Weighted(("brandwatch", 4), ("facebook-pages", 3), ("instagram", 3)),
                Weighted(("delivery", 30), ("support", 25), ("product_search", 15),
                         ("checkout", 15), ("app_login", 15)),
                Weighted((TEXT_ONLY, 1)),
                ONLINE_HOURS, text_share=1.0, anonymous_share=0.8,
                store_share=0.2, mood_tilt=-0.15,  # people go there to complain
            ),
            ChannelProfile(
                Channel.REVIEW, 4, Weighted(("google-reviews", 1)),
                Weighted(("store_visit", 55), ("checkout", 30), ("returns", 15)),
                Weighted((STARS5, 1)),
                ONLINE_HOURS, text_share=0.85, anonymous_share=0.6,
                contact=frozenset({"name"}), store_share=1.0,
            ),
            ChannelProfile(
                Channel.REVIEW, 3, Weighted(("trustpilot", 1)),
                Weighted(("delivery", 40), ("checkout", 30), ("returns", 20), ("support", 10)),
                Weighted((STARS5, 1)),
                ONLINE_HOURS, text_share=0.9, anonymous_share=0.5,
                contact=frozenset({"name"}),
            ),
            ChannelProfile(
                Channel.REVIEW, 2, Weighted(("app-store", 6), ("google-play", 4)),
                Weighted(("app_login", 45), ("checkout", 35), ("onboarding", 20)),
                Weighted((STARS5, 1)),
                ONLINE_HOURS, text_share=0.8, anonymous_share=0.8, mood_tilt=-0.05,
            ),
            ChannelProfile(
                # A Dutch review site rating 1-10; its reviews come without customer data.
                Channel.REVIEW, 1, Weighted(("kiyoh", 1)),
                Weighted(("delivery", 45), ("checkout", 35), ("returns", 20)),
                Weighted((STARS10, 1)),
                ONLINE_HOURS, text_share=0.85, anonymous_share=1.0, market=NETHERLANDS,
            ),
            ChannelProfile(
                Channel.OTHER, 2, Weighted(("partner-portal", 1), ("csv-import", 1)),
                Weighted(("billing", 40), ("onboarding", 30), ("support", 30)),
                Weighted((CES5, 1), (CSAT7, 1)),
                ONLINE_HOURS, text_share=0.4, anonymous_share=0.3,
                contact=frozenset({"email"}),
            ),
        )
    )
)  # fmt: skip

# -- how customers answer --------------------------------------------------------------------

# Answers to "how likely are you to recommend us" (0-10) of a typical retailer: NPS about
# +35. Worse places and weeks tilt it (see _answers).
NPS_ANSWER_WEIGHTS = (3.0, 1.0, 1.5, 2.0, 2.0, 4.0, 5.0, 10.0, 18.0, 22.0, 31.0)
DISRUPTION_TILT = -0.15
DISRUPTED_DELIVERY_TILT = -0.3
DISRUPTION_DELIVERY_SHARE = 0.35  # of feedback in that week, where the channel has deliveries
SCORE_NOISE = 0.45  # on a 5-point scale; other scales in proportion
CLOSER_SHARE = 0.4
LANGUAGE_GIVEN_SHARE = 0.5


@cache
def _answers(tilt: float) -> Weighted[int]:
    """The answer distribution leaned by ``tilt``: each answer's weight times
    e^(tilt * (answer - 7)), so < 0 moves answers down, > 0 up."""
    return Weighted(
        *(
            (answer, weight * math.exp(tilt * (answer - 7)))
            for answer, weight in enumerate(NPS_ANSWER_WEIGHTS)
        )
    )


def _on_scale(rng: random.Random, answer: int, scale: int) -> int:
    """The same customer's answer (0-10) on a 1..scale question, a little noisy."""
    raw = 1 + answer / 10 * (scale - 1) + rng.gauss(0, SCORE_NOISE * (scale - 1) / 4)
    return min(scale, max(1, round(raw)))


def _tone(rng: random.Random, answer: int) -> Tone:
    if answer >= 9:
        return Tone.POSITIVE
    if answer >= 7:
        return Tone.POSITIVE if rng.random() < 0.55 else Tone.NEUTRAL
    if answer >= 5:
        return Tone.NEUTRAL if rng.random() < 0.55 else Tone.NEGATIVE
    return Tone.NEGATIVE


# -- generation ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Sketch:
    """Who, where and when; drawn for all events first, so that they can be numbered in
    time order before the rest of each event is drawn."""

    occurred_at: datetime  # UTC
    profile: ChannelProfile
    customer: DemoCustomer | None
    location: DemoLocation | None
    market: Market  # the writer's: language, IVR line, time zone when online


def _sketch(rng: random.Random, run: DemoRun, customers: list[DemoCustomer]) -> _Sketch:
    profile = PROFILES.pick(rng)
    customer = None
    if rng.random() >= profile.anonymous_share:
        # Skewed towards the low numbers: some customers give feedback much more often.
        customer = customers[int(len(customers) * rng.random() ** 1.6)]
    location = None
    if rng.random() < profile.store_share:
        if customer is not None and rng.random() < HOME_STORE_SHARE:
            location = _STORE_OF_MARKET[customer.market]
        else:
            location = _FOOTFALL.pick(rng)
    elif rng.random() < profile.contact_centre_share:
        location = CONTACT_CENTRE
    if customer is not None:
        market = customer.market
    elif profile.market is not None:
        market = profile.market
    elif location is not None and location.market is not None:
        market = BRITAIN if rng.random() < TOURIST_SHARE else location.market
    else:
        market = MARKETS.pick(rng)
    standard_offset = location.utc_offset_hours if location else market.utc_offset_hours
    occurred_at = _draw_instant(rng, run, profile.activity, standard_offset)
    return _Sketch(occurred_at, profile, customer, location, market)


def _draw_instant(
    rng: random.Random, run: DemoRun, activity: Activity, standard_offset: int
) -> datetime:
    """A whole second in the window, denser on recent days and in busy local hours
    (rejection sampling: a uniform draw is kept in proportion to its weight)."""
    span = run.days * 86_400
    ceiling = (1 + RECENCY_BOOST) * activity.peak
    while True:
        second = rng.randrange(span)
        instant = run.window_start + timedelta(seconds=second)
        local = instant + local_offset(standard_offset, instant)
        weight = (
            (1 + RECENCY_BOOST * second / span)
            * activity.hourly[local.hour]
            * activity.daily[local.weekday()]
        )
        if rng.random() * ceiling < weight:
            return instant


def _metadata(
    rng: random.Random, run: DemoRun, channel: Channel, source: str, touchpoint: str, answer: int
) -> dict[str, Any]:
    details: dict[str, Any]
    match channel:
        case Channel.IN_STORE if source == "kiosk-eu":
            details = {"kiosk": f"K-{rng.randint(1, 3)}"}
        case Channel.IN_STORE:
            details = {
                "receipt": f"R-{rng.randrange(100_000, 1_000_000)}",
                "terminal": f"POS-{rng.randint(1, 6)}",
            }
        case Channel.WEB:
            details = {
                "survey": f"{touchpoint}-survey",
                "device": rng.choice(("desktop", "mobile", "tablet")),
            }
        case Channel.MOBILE_APP:
            details = {
                "app_version": rng.choice(("5.11.2", "5.12.0", "5.12.1")),
                "os": "iOS" if source.endswith("ios") else "Android",
            }
        case Channel.EMAIL | Channel.SMS:
            details = {"survey": f"post-{touchpoint}", "order": f"O-{rng.randrange(10**6, 10**7)}"}
        case Channel.VOICE:
            waited = rng.expovariate(1 / 90) * (4 if answer <= 4 else 1)  # unhappy ones waited
            details = {"call_seconds": rng.randint(90, 900), "queue_seconds": round(waited)}
        case Channel.CHAT:
            details = {
                "conversation": f"conv-{rng.randrange(10**6, 10**7)}",
                "handled_by": "bot" if source == "chatbot-web" else "agent",
            }
        case Channel.SOCIAL:
            details = {"post": f"{rng.randrange(10**9, 10**10)}"}
        case Channel.REVIEW:
            details = {"review": f"{source}-{rng.randrange(10**5, 10**6)}"}
        case Channel.OTHER:
            details = {"import": f"{source}-{run.window_end:%Y-%m}"}
    details[MARKER_KEY] = run.marker()
    return details


def _event(rng: random.Random, run: DemoRun, number: int, sketch: _Sketch) -> dict[str, Any]:
    profile, customer, location, market = (
        sketch.profile,
        sketch.customer,
        sketch.location,
        sketch.market,
    )
    tilt = profile.mood_tilt + (location.mood_tilt if location else 0.0)
    touchpoint = profile.touchpoints.pick(rng)
    disruption = run.disruption
    if disruption is not None and disruption[0] <= sketch.occurred_at < disruption[1]:
        tilt += DISRUPTION_TILT
        if "delivery" in profile.touchpoints.items and rng.random() < DISRUPTION_DELIVERY_SHARE:
            touchpoint = "delivery"
        if touchpoint == "delivery":
            tilt += DISRUPTED_DELIVERY_TILT
    answer = _answers(round(tilt, 4)).pick(rng)

    scores: list[dict[str, Any]] = []
    for metric, scale in profile.instruments.pick(rng):
        if scale is None:
            scores.append({"metric": metric.value, "value": answer})
            continue
        score: dict[str, Any] = {"metric": metric.value, "value": _on_scale(rng, answer, scale)}
        if scale != DEFAULT_SCALES[metric] or rng.random() < 0.5:  # some omit the default
            score["scale"] = scale
        scores.append(score)

    source = profile.sources.pick(rng).replace("{ivr}", market.ivr_line)
    offset = location.utc_offset_hours if location else market.utc_offset_hours
    occurred_at = sketch.occurred_at.astimezone(timezone(local_offset(offset, sketch.occurred_at)))
    event: dict[str, Any] = {
        "event_id": run.event_id(number),
        "occurred_at": occurred_at.isoformat(timespec="seconds"),
        "channel": profile.channel.value,
        "source": source,
    }
    if customer is not None:
        known: dict[str, str] = {"id": customer.customer_id}
        if "email" in profile.contact:
            known["email"] = customer.email
        if "phone" in profile.contact:
            known["phone"] = customer.phone
        if "name" in profile.contact and rng.random() < 0.7:
            known["name"] = customer.name
        if rng.random() < 0.8:
            known["locale"] = customer.market.locale
        event["customer"] = known
    if location is not None:
        event["location_id"] = location.location_id
    event["touchpoint"] = touchpoint
    event["journey_stage"] = JOURNEY_STAGE[touchpoint]
    if scores:
        event["scores"] = scores

    tags: list[str] = []
    if not scores or rng.random() < profile.text_share:
        topic = TOUCHPOINT_TOPIC[touchpoint] or (
            Topic.STORE if location is not None and location.market is not None else Topic.DIGITAL
        )
        tone = _tone(rng, answer)
        language = market.language
        sentence, tag = rng.choice(PHRASES[language][topic][tone])
        if rng.random() < CLOSER_SHARE:
            sentence += " " + rng.choice(CLOSERS[language][tone])
        event["text"] = sentence
        if rng.random() < LANGUAGE_GIVEN_SHARE:
            event["language"] = language if rng.random() < 0.75 else market.locale
        tags.append(tag)
    if customer is not None and customer.loyalty_member:
        tags.append("loyalty-member")
    if tags:
        event["tags"] = tags
    event["metadata"] = _metadata(rng, run, profile.channel, source, touchpoint, answer)
    return event


def generate_demo_events(run: DemoRun) -> Iterator[dict[str, Any]]:
    """The run's events as JSON-like documents (as a channel system would send them),
    oldest first, numbered in that order."""
    rng = random.Random(run.random_seed)  # noqa: S311 - reproducible demo data, not secrets
    customers = [
        demo_customer(FIRST_CUSTOMER_NUMBER + k)
        for k in range(max(1, run.events // EVENTS_PER_CUSTOMER))
    ]
    # Only these small sketches are held for all events; each event itself is built as
    # it is consumed, so 100,000 events need little memory.
    sketches = sorted(
        (_sketch(rng, run, customers) for _ in range(run.events)),
        key=lambda sketch: sketch.occurred_at,
    )
    for number, sketch in enumerate(sketches, start=1):
        yield _event(rng, run, number, sketch)


def demo_feedback_events(run: DemoRun) -> Iterator[FeedbackEventIn]:
    """The run's events validated like every ingested event."""
    for document in generate_demo_events(run):
        yield FeedbackEventIn.model_validate(document)


# -- what became of the tickets --------------------------------------------------------------

# Ingest opens the demo tickets all at once; this gives each the past it would have had.
# Every draw comes from the ticket's own generator, seeded with the event that opened
# it, so a run's history is reproducible and one ticket's fate does not shift another's.
ARRIVAL_LAG_SECONDS = (60, 30 * 60)  # from a feedback's occurrence to its ticket
HANDLED_SHARE = 0.78  # resolved, once the work takes its time
STALLED_SHARE = 0.10  # picked up, then left in progress or waiting for the customer
# The rest is never picked up: still open.
CLOSED_SHARE = 0.3  # of the resolved: closed some days later
CLOSED_AFTER_HOURS = (24.0, 7 * 24.0)
WAITING_SHARE = 0.4  # of the stalled
WAITING_AFTER_HOURS = (1.0, 24.0)
FIRST_RESPONSE_MEDIAN_HOURS = 2.0
FIRST_RESPONSE_SIGMA = 1.0
# Teams work to the SLA: a typical ticket takes about a third of it (8 h of a high
# priority ticket's 24, 17 h of a normal one's 48), and the lognormal tail is late. With
# customers' tickets open for weeks of their feedback, the median is about 20 h.
RESOLUTION_SHARE_OF_SLA = 0.35
RESOLUTION_SIGMA = 0.8
HOURS_WITHOUT_SLA = 48  # a rule without an SLA: worked on like a normal ticket
SLOW_LOCATIONS = {WORST_LOCATION_ID: 3.0}  # the store that also answers slowly
DEMO_ACTOR = "demo"  # who changed a ticket without an assignee


def ticket_history(ticket: OpenedDemoTicket, *, as_of: datetime) -> DemoTicketHistory:
    """The past of a demo ticket up to ``as_of`` (no later than now; after every
    feedback of the ticket).

    Opened a few minutes after its first feedback, every later feedback arriving with
    the same delay. Work is timed from the ticket's last feedback, which it had to be
    open to receive: a customer's ticket takes all their poor feedback until resolved.
    So a ticket that is still recent has had less time to be worked on and is more
    often open: nothing is dated after ``as_of``."""
    rng = random.Random(f"ticket:{ticket.opening_event_id}")  # noqa: S311 - demo data
    lag = rng.randint(*ARRIVAL_LAG_SECONDS)
    fate = rng.random()
    response_hours = rng.lognormvariate(math.log(FIRST_RESPONSE_MEDIAN_HOURS), FIRST_RESPONSE_SIGMA)
    resolution_hours = rng.lognormvariate(
        math.log(
            RESOLUTION_SHARE_OF_SLA
            * (ticket.sla_hours or HOURS_WITHOUT_SLA)
            * SLOW_LOCATIONS.get(ticket.location_id or "", 1.0)
        ),
        RESOLUTION_SIGMA,
    )
    closes = rng.random() < CLOSED_SHARE
    closed_after_hours = rng.uniform(*CLOSED_AFTER_HOURS)
    waits = rng.random() < WAITING_SHARE
    waiting_after_hours = rng.uniform(*WAITING_AFTER_HOURS)

    def arrival(occurred_at: datetime) -> datetime:
        return min(occurred_at + timedelta(seconds=lag), as_of)

    def later(start: datetime, hours: float) -> datetime:
        return start + timedelta(seconds=max(1, round(hours * 3600)))  # strictly after

    created_at = arrival(ticket.first_feedback_at)
    last_arrival = arrival(ticket.last_feedback_at)
    by = f" by {ticket.assignee or DEMO_ACTOR}"
    started_at = later(last_arrival, response_hours)
    done_at = later(last_arrival, resolution_hours)
    handled = fate < HANDLED_SHARE
    stalled = HANDLED_SHARE <= fate < HANDLED_SHARE + STALLED_SHARE
    status = TicketStatus.OPEN
    resolved_at: datetime | None = None
    changes: list[StatusChange] = []
    if handled and done_at <= as_of:
        status, resolved_at = TicketStatus.RESOLVED, done_at
        changes.append(StatusChange(done_at, f"open → resolved{by}"))
        closed_at = later(done_at, closed_after_hours)
        if closes and closed_at <= as_of:
            status = TicketStatus.CLOSED
            changes.append(StatusChange(closed_at, f"resolved → closed{by}"))
    elif (handled or stalled) and started_at <= as_of:  # handled: not done yet
        status = TicketStatus.IN_PROGRESS
        changes.append(StatusChange(started_at, f"open → in_progress{by}"))
        waiting_at = later(started_at, waiting_after_hours)
        if stalled and waits and waiting_at <= as_of:
            status = TicketStatus.WAITING
            changes.append(StatusChange(waiting_at, f"in_progress → waiting{by}"))
    return DemoTicketHistory(
        id=ticket.id,
        status=status.value,
        lag_seconds=lag,
        created_at=created_at,
        updated_at=max([last_arrival, *(change.at for change in changes)]),
        sla_due_at=(later(created_at, ticket.sla_hours) if ticket.sla_hours is not None else None),
        resolved_at=resolved_at,
        changes=tuple(changes),
    )
