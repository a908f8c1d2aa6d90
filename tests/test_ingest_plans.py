"""Statements of the ingest transaction that look stored feedback up by a list of keys
use the index even with the plan a connection cached while the table was small.

PostgreSQL plans a prepared statement (asyncpg prepares every statement) five times
for its parameters, then may keep one generic plan for the connection's lifetime. Made
on a small table (a new database, the first minute of ingest), that plan is a
sequential scan, and it stays one as the table grows until PostgreSQL next analyses
the table. The statements below must not depend on that.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.dependencies import AppState
from app.repositories import feedback as feedback_repo
from app.repositories import metrics as metrics_repo
from tests.conftest import scans_of

_FILL = """
    INSERT INTO feedback (event_id, content_hash, occurred_at, ingested_via, channel,
                          location_id, nps, tags)
    SELECT 'e-' || n, '\\x00'::bytea, now(), 'rest', 'web', 'L1', 3, '{}'
    FROM generate_series($1::int, $2::int) AS n
"""
# The form both statements had before: what the test would catch.
_BY_ID_ANY = "SELECT id FROM feedback WHERE id = ANY($1::bigint[])"


async def _scans(
    state: AppState, statement: str, parameter_type: str, small: str, large: str
) -> list[dict[str, Any]]:
    """The feedback scans of ``statement``'s plan, prepared and run while the table held
    20 rows, then explained with 30,000 rows (the tables are emptied before each test)."""
    async with state.database.driver_connection() as connection:
        await connection.execute(f"PREPARE lookup({parameter_type}) AS {statement}")
        try:
            await connection.execute(_FILL, 1, 20)
            for _ in range(8):  # past the five custom plans: the generic plan is kept now
                await connection.execute(f"EXECUTE lookup({small})")
            await connection.execute(_FILL, 21, 30_000)
            plan = await connection.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE lookup({large})")
        finally:
            await connection.execute("DEALLOCATE lookup")
    return scans_of(plan[0]["Plan"], "feedback")


_IDS = ("ARRAY[1, 2, 3]::bigint[]", "ARRAY[29990, 29995, 30000]::bigint[]")
_EVENT_IDS = ("ARRAY['e-1', 'e-2']::varchar[]", "ARRAY['e-29990', 'e-30000']::varchar[]")


@pytest.mark.parametrize(
    ("statement", "parameter_type", "arguments"),
    [
        (metrics_repo._ADD_TO_ROLLUP_SQL, "bigint[]", _IDS),
        (feedback_repo._FIND_BY_EVENT_IDS_SQL, "varchar[]", _EVENT_IDS),
        (feedback_repo._ROWS_BY_IDS_SQL, "bigint[]", _IDS),
    ],
    ids=["daily rollup", "stored events by event_id", "stored rows for delivery payloads"],
)
async def test_a_plan_cached_on_a_small_table_still_uses_the_index(
    state: AppState, statement: str, parameter_type: str, arguments: tuple[str, str]
) -> None:
    scans = await _scans(state, statement, parameter_type, *arguments)
    assert scans
    for scan in scans:
        assert scan["Node Type"] in ("Index Scan", "Index Only Scan"), scan


async def test_the_situation_is_real_for_a_lookup_by_any(state: AppState) -> None:
    # What the statements above avoid: this form gets a sequential scan here.
    scans = await _scans(state, _BY_ID_ANY, "bigint[]", *_IDS)
    assert [scan["Node Type"] for scan in scans] == ["Seq Scan"]
