"""POST /v1/events on real Redis keys: who may send, team stamping, per-event rejects, limits (413), bad bodies.

The recording publisher is only the sink of accepted events here; the Kafka -> worker -> Redis path of the same
endpoint is tested end to end in test_ingest_end_to_end.py.
"""

from __future__ import annotations

import gzip
import json

import httpx
import pytest
import pytest_asyncio

from enforcement.api import create_app
from enforcement.auth import ApiKeys
from enforcement.intake import EventIntake, IngestLimits
from tests.integration.test_enforcement_reservations import make_env

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

TAGS = {"cost_center": "cc-1", "use_case": "qa", "environment": "production", "workload_type": "inference"}


def event(i: int = 1, **kw) -> dict:
    return {"event_id": f"ev-{i}", "event_time": "2026-11-03T10:15:00Z", "provider": "openai",
            "model": "gpt-4o", "input_tokens": 100, "output_tokens": 10, **TAGS, **kw}


class Recorder:
    def __init__(self):
        self.events = []

    def record_event(self, ev):
        self.events.append(dict(ev))
        return ev["event_id"]


@pytest_asyncio.fixture
async def api(isolated):
    env = make_env(isolated.servers.redis_url, isolated.prefix)
    ak = ApiKeys(env.r, isolated.prefix)
    keys = {
        "one": (await ak.create("pay-ingest", "ingest", ["payments"]))[0],
        "two": (await ak.create("multi-ingest", "ingest", ["payments", "search"]))[0],
        "any": (await ak.create("gateway", "ingest", ["*"]))[0],
        "svc": (await ak.create("checkout", "check", ["payments"]))[0],
    }
    sink = Recorder()
    app = create_app(env.checker, ak, intake=EventIntake(sink, IngestLimits(max_body_bytes=20_000, max_events=50)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        async def post(who, content, headers=None):
            body = content if isinstance(content, (bytes, str)) else json.dumps(content)
            return await client.post("/v1/events", content=body, headers={
                "Authorization": f"Bearer {keys[who]}", "Content-Type": "application/json", **(headers or {})})
        post.metrics = lambda: client.get("/metrics", headers={"Authorization": f"Bearer {keys['one']}"})
        yield post, sink
    await env.r.aclose()


async def test_a_json_array_is_accepted_with_202_and_published_in_the_contracts_shape(api):
    post, sink = api
    resp = await post("one", [event(1), event(2, team="payments")])
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"accepted": 2, "rejected": []}
    first = sink.events[0]
    assert first["team"] == "payments"                      # stamped from the key
    assert first["event_time"] == 1793700900000              # RFC 3339 -> epoch ms
    assert (first["source"], first["attributes"]) == ("import", {"ingest": "http"})


async def test_json_lines_work_and_a_broken_line_is_a_reject_not_a_400(api):
    post, sink = api
    body = "\n".join([json.dumps(event(1)), "{not json", "", json.dumps(event(3))])
    resp = await post("one", body, {"Content-Type": "application/x-ndjson"})
    assert resp.status_code == 202
    assert resp.json()["accepted"] == 2
    [reject] = resp.json()["rejected"]
    assert reject["index"] == 1 and "not JSON" in reject["reason"]
    assert [e["event_id"] for e in sink.events] == ["ev-1", "ev-3"]


@pytest.mark.parametrize("bad,field,fragment", [
    ({k: v for k, v in event().items() if k != "event_id"}, "event_id", "required"),
    (event(event_time="2026-11-03T10:15:00"), "event_time", "no UTC offset"),
    (event(input_tokens=-1), "input_tokens", "greater than or equal"),
    (event(output_tokens=2**64), "output_tokens", "larger than a 64-bit count"),
    (event(colour="red"), "colour", "Extra inputs"),
    (event(team="search"), "team", "may not send events for team 'search'"),
    ("just a string", None, "expected a JSON object"),
])
async def test_each_bad_event_is_rejected_with_its_index_field_and_reason(api, bad, field, fragment):
    post, sink = api
    resp = await post("one", [event(1), bad])
    assert resp.status_code == 202
    body = resp.json()
    assert body["accepted"] == 1
    [reject] = body["rejected"]
    assert (reject["index"], reject["field"]) == (1, field)
    assert fragment in reject["reason"]
    assert len(sink.events) == 1


async def test_a_key_for_several_teams_needs_the_team_named_and_a_star_key_sends_for_any(api):
    post, sink = api
    resp = await post("two", [event(1), event(2, team="search")])
    assert resp.json()["accepted"] == 1 and resp.json()["rejected"][0]["field"] == "team"
    assert (await post("any", [event(3, team="ops"), event(4)])).json() == {"accepted": 2, "rejected": []}
    assert [e["team"] for e in sink.events] == ["search", "ops", None]


async def test_a_key_without_the_ingest_scope_is_refused(api):
    post, _ = api
    resp = await post("svc", [event()])
    assert resp.status_code == 403 and "ingest" in resp.json()["error"]


@pytest.mark.parametrize("body,status,fragment", [
    (b"", 400, "empty body"),
    (b"[1, 2", 400, "not a JSON array"),
    (b"hello", 400, "neither"),
    (b"\xff\xfe[]", 400, "UTF-8"),
    (json.dumps([event(i) for i in range(51)]), 413, "limit of 50"),
    (json.dumps([event(1, request_id="x" * 30_000)]), 413, "limit of 20000 bytes"),
])
async def test_bad_or_oversized_bodies_get_a_4xx_with_a_json_message(api, body, status, fragment):
    post, sink = api
    resp = await post("one", body)
    assert resp.status_code == status, resp.text
    assert fragment in resp.json()["error"]
    assert sink.events == []


async def test_a_gzip_body_is_read_and_a_gzip_bomb_is_a_413(api):
    post, sink = api
    ok = await post("one", gzip.compress(json.dumps([event(1)]).encode()), {"Content-Encoding": "gzip"})
    assert ok.json() == {"accepted": 1, "rejected": []}
    bomb = gzip.compress(b"[" + b" " * 1_000_000 + b"]")
    assert len(bomb) < 20_000
    resp = await post("one", bomb, {"Content-Encoding": "gzip"})
    assert resp.status_code == 413


async def test_accepted_and_rejected_events_are_counted_in_the_metrics(api):
    post, _ = api
    await post("one", [event(1), event(2, team="search")])
    text = (await post.metrics()).text
    assert 'spendstream_api_ingested_events_total{outcome="accepted",way="http"} 1.0' in text
    assert 'spendstream_api_ingested_events_total{outcome="rejected",way="http"} 1.0' in text


async def test_an_ingest_key_needs_a_team(isolated):
    from spendstream.errors import ConfigError

    env = make_env(isolated.servers.redis_url, isolated.prefix)
    with pytest.raises(ConfigError, match="'ingest' key needs at least one --team"):
        await ApiKeys(env.r, isolated.prefix).create("no-team", "ingest", [])
    await env.r.aclose()
