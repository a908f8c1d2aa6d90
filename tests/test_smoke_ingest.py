"""The README's first steps, in-process: post the spec's example, read it back."""

import httpx

from tests.conftest import auth, make_event


async def test_post_then_read_back(client: httpx.AsyncClient, admin_key: str) -> None:
    event = make_event("pos-eu-7f3a9c21")
    posted = await client.post("/v1/feedback", json=event, headers=auth(admin_key))
    assert posted.status_code == 202, posted.text
    body = posted.json()
    assert body["status"] == "accepted"
    assert body["event_id"] == "pos-eu-7f3a9c21"

    read = await client.get(f"/v1/feedback/{body['id']}", headers=auth(admin_key))
    assert read.status_code == 200
    stored = read.json()
    assert stored["event_id"] == event["event_id"]
    assert stored["customer"]["email"] == "ana@example.com"
    assert stored["scores"] == [
        {"metric": "nps", "value": 3, "scale": None},
        {"metric": "csat", "value": 2, "scale": 5},
    ]
    assert stored["ingested_via"] == "rest"
    assert stored["metadata"] == {"receipt": "R-88812"}
    assert stored["tags"] == ["queue"]
