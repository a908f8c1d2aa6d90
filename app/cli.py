"""``feedback-service``: run the service and administer it from the command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable, Sequence
from types import FrameType
from typing import TypeVar

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from app.config import ProcessRoles, Settings, load_settings
from app.db import Database
from app.logs import configure_logging
from app.models.enums import DeadLetterReason, Scope
from app.schemas.api_keys import ApiKeyCreate
from app.services import api_keys

T = TypeVar("T")


class CommandError(Exception):
    """A command that cannot go on; its message is printed, without a traceback."""


def _with_database(
    settings: Settings, work: Callable[[Database], Awaitable[T]], *, migrate: bool = False
) -> T:
    async def run() -> T:
        database = await Database.open(settings)
        try:
            # An external database is upgraded only on purpose (`migrate`, `serve`): a
            # newer CLI must not change the schema under older running replicas. The
            # embedded one belongs to this installation and is simply brought up to date.
            if migrate or database.embedded is not None:
                await database.migrate()
            elif not await database.is_migrated():
                raise CommandError(
                    "the database schema is not at this version's newest migration; "
                    "run 'feedback-service migrate' first"
                )
            return await work(database)
        finally:
            await database.close()

    return asyncio.run(run())


class _Server(uvicorn.Server):
    """Ends live streams as soon as shutdown begins. uvicorn waits for open responses
    before it runs the app's shutdown, and an event stream never finishes by itself:
    without this every SIGTERM with a client watching took the whole grace period."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        services = getattr(self._app.state, "services", None)
        live_stream = getattr(services, "live_stream", None)
        if live_stream is not None:
            with contextlib.suppress(RuntimeError):  # no running loop: nothing streams
                asyncio.get_running_loop().call_soon_threadsafe(live_stream.end_all)
        super().handle_exit(sig, frame)


def _run_http(args: argparse.Namespace, settings: Settings, roles: ProcessRoles) -> None:
    from app.main import create_app

    app = create_app(settings, roles)
    config = uvicorn.Config(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_config=None,  # our JSON logging, configured already
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=20,
    )
    _Server(config, app).run()


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    roles = ProcessRoles(api=True, consumer=not args.no_consumer, dispatcher=not args.no_dispatcher)
    _run_http(args, settings, roles)
    return 0


def cmd_consume(args: argparse.Namespace, settings: Settings) -> int:
    if settings.kafka_bootstrap_servers is None:
        raise CommandError("FEEDBACK_KAFKA_BOOTSTRAP_SERVERS is not set; nothing to consume")
    _run_http(args, settings, ProcessRoles(api=False, consumer=True, dispatcher=False))
    return 0


def cmd_dispatch(args: argparse.Namespace, settings: Settings) -> int:
    _run_http(args, settings, ProcessRoles(api=False, consumer=False, dispatcher=True))
    return 0


def cmd_replay_dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    from app.workers.dead_letter_replay import replay_dead_letters

    if settings.kafka_bootstrap_servers is None:
        raise CommandError("FEEDBACK_KAFKA_BOOTSTRAP_SERVERS is not set")
    try:
        summary = asyncio.run(
            replay_dead_letters(settings, reasons=args.reason or (), group=args.group)
        )
    except LookupError as exc:
        raise CommandError(str(exc)) from None
    print(
        f"replayed {summary.replayed} message(s) from {settings.kafka_dlq_topic}"
        + (f"; passed over {summary.passed_over} of other reasons" if summary.passed_over else "")
    )
    return 0


def cmd_migrate(_: argparse.Namespace, settings: Settings) -> int:
    async def done(database: Database) -> None:
        return None

    _with_database(settings, done, migrate=True)
    print("database is at the newest schema")
    return 0


def cmd_keys_create(args: argparse.Namespace, settings: Settings) -> int:
    try:  # the same rules as POST /v1/api-keys
        request = ApiKeyCreate(name=args.name, scopes=args.scope, location_ids=args.location)
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise CommandError(fields) from None

    async def create(database: Database) -> api_keys.CreatedKey:
        async with database.sessionmaker() as session, session.begin():
            return await api_keys.create_key(
                session,
                name=request.name,
                scopes=request.scopes,
                location_ids=request.location_ids,
                creator=None,
            )

    created = _with_database(settings, create)
    print(f"id:        {created.row.id}")
    print(f"scopes:    {', '.join(created.row.scopes)}")
    print(f"locations: {', '.join(created.row.location_ids or ['(all)'])}")
    print(f"key:       {created.key}")
    print("The key is shown only now; only its hash is stored.")
    return 0


def cmd_keys_list(_: argparse.Namespace, settings: Settings) -> int:
    async def rows(database: Database) -> list[tuple[str, ...]]:
        async with database.sessionmaker() as session:
            result: list[tuple[str, ...]] = []
            after: int | None = None
            while True:
                page = await api_keys.list_keys(session, viewer=None, after_id=after, limit=500)
                result += [
                    (
                        str(r.id),
                        r.key_prefix + "…",
                        r.name,
                        ",".join(r.scopes),
                        ",".join(r.location_ids) if r.location_ids is not None else "(all)",
                        "revoked" if r.revoked_at else "active",
                    )
                    for r in page
                ]
                if len(page) < 500:
                    return result
                after = page[-1].id

    header = ("id", "key", "name", "scopes", "locations", "state")
    table = [header, *_with_database(settings, rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


def cmd_keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    async def revoke(database: Database) -> None:
        async with database.sessionmaker() as session, session.begin():
            await api_keys.revoke_key(session, args.id, by=None)

    _with_database(settings, revoke)
    print(f"key {args.id} revoked")
    return 0


def _count_within(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:,} and {high:,}")
        return value

    return parse


def _show_seed_progress(stored: int, total: int) -> None:
    print(
        f"\r  {stored:,} of {total:,} events", end="" if stored < total else "\n", file=sys.stderr
    )


def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    from app.services.seeding import SeedSummary, seed_demo_data

    async def seed(database: Database) -> SeedSummary:
        return await seed_demo_data(
            database,
            random_seed=args.random_seed,
            events=args.events,
            days=args.days,
            on_progress=_show_seed_progress if sys.stderr.isatty() else None,
        )

    summary = _with_database(settings, seed)
    run = summary.run
    print(
        f"Demo data of random seed {run.random_seed}: {run.events:,} events over {run.days} "
        f"days up to {run.window_end:%Y-%m-%d %H:%M} UTC"
    )
    print(f"  events     {summary.accepted:,} accepted, {summary.duplicates:,} duplicates")
    if summary.conflicts:
        print(f"             {summary.conflicts:,} conflicts (stored differently before; kept)")
    print(
        f"  tickets    {summary.tickets_opened:,} opened by the rules for poor feedback, "
        f"{summary.tickets_resolved:,} of them since resolved or closed"
    )
    if summary.first_occurred_at and summary.last_occurred_at:
        print(
            f"  time range {summary.first_occurred_at:%Y-%m-%d %H:%M} to "
            f"{summary.last_occurred_at:%Y-%m-%d %H:%M} UTC"
        )
    created, kept = len(summary.locations_created), len(summary.locations_kept)
    print(
        "  locations  "
        + "; ".join(
            ([f"{created} created with owners and teams"] if created else [])
            + ([f"{kept} existed already, left unchanged"] if kept else [])
        )
    )
    base_url = f"http://{settings.host}:{settings.port}"
    print(
        f"Next: try GET {base_url}/v1/metrics?group_by=location_id (with "
        "'feedback-service serve' running), or open /docs"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="feedback-service",
        description="Feedback loop service. Configuration: FEEDBACK_* environment variables "
        "or a .env file (see README).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the HTTP API and the outbox dispatcher, plus the Kafka consumer when "
        "FEEDBACK_KAFKA_BOOTSTRAP_SERVERS is set (migrates first)",
    )
    serve.add_argument(
        "--no-consumer",
        action="store_true",
        help="do not run the Kafka consumer here (run 'consume' processes instead)",
    )
    serve.add_argument(
        "--no-dispatcher",
        action="store_true",
        help="do not send deliveries to integrations here (run 'dispatch' processes instead)",
    )
    consume = commands.add_parser(
        "consume",
        help="run only the Kafka consumer; serves /healthz, /readyz and /metrics (no /v1)",
    )
    consume.set_defaults(handler=cmd_consume)
    dispatch = commands.add_parser(
        "dispatch",
        help="run only the outbox dispatcher (deliveries to integrations); serves /healthz, "
        "/readyz and /metrics (no /v1)",
    )
    dispatch.set_defaults(handler=cmd_dispatch)
    replay = commands.add_parser(
        "replay-dead-letters",
        help="send the dead-letter topic's messages back to their original topic, up to "
        "its current end (see README, 'Running with Kafka')",
    )
    replay.add_argument(
        "--reason",
        action="append",
        choices=[reason.value for reason in DeadLetterReason],
        help="replay only these reasons (repeatable); others are passed over",
    )
    replay.add_argument(
        "--group", help="consumer group of the replay (default FEEDBACK_KAFKA_GROUP_ID.replay)"
    )
    replay.set_defaults(handler=cmd_replay_dead_letters)
    for command in (serve, consume, dispatch):
        command.add_argument("--host", help="bind address (default FEEDBACK_HOST, 127.0.0.1)")
        command.add_argument("--port", type=int, help="port (default FEEDBACK_PORT, 8000)")
    serve.set_defaults(handler=cmd_serve)

    migrate = commands.add_parser("migrate", help="upgrade the database schema and exit")
    migrate.set_defaults(handler=cmd_migrate)

    seed = commands.add_parser(
        "seed",
        help="fill the database with realistic demo feedback across channels, locations "
        "and languages, through the real ingest pipeline (tickets included)",
    )
    seed.add_argument("--events", type=_count_within(1, 999_999), default=5000, help="default 5000")
    seed.add_argument(
        "--days",
        type=_count_within(1, 3650),
        default=90,
        help="spread over the last D days (default 90)",
    )
    seed.add_argument(
        "--random-seed",
        type=_count_within(0, 2**63 - 1),
        default=2026,
        help="same seed, same events: seeding again stores only duplicates (default 2026)",
    )
    seed.set_defaults(handler=cmd_seed)

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=[s.value for s in Scope],
        help="repeatable",
    )
    create.add_argument("--location", action="append", help="restrict to location (repeatable)")
    create.set_defaults(handler=cmd_keys_create)
    listing = keys.add_parser("list", help="list keys (never the keys themselves)")
    listing.set_defaults(handler=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(handler=cmd_keys_revoke)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = load_settings()
    configure_logging(settings.log_level)
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    try:
        return handler(args, settings)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from app.errors import AppError

        if isinstance(exc, AppError):
            print(f"error: {exc.detail}", file=sys.stderr)
            return 1
        if isinstance(exc, CommandError):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
