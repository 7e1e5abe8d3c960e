"""GET /v1/usage on real Redis (keys) and the real ClickHouse engine over HTTP (rollups): per-day and per-model
history equals independent sums of the rows written, a read key sees only its team, bad parameters get 4xx with
a message, ClickHouse away gets 503 — and never a 5xx for bad input."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from functools import partial

import httpx
import pytest
import pytest_asyncio

from enforcement.api import create_app
from enforcement.auth import ApiKeys
from reports.usage import usage_history
from sinks.clickhouse.priced_rows import PRICED_COLUMNS, priced_row
from sinks.clickhouse.writer import ClickHouseWriter
from spendstream.allocation import owner_of
from spendstream.money import format_usd
from spendstream.pricing import default_price_book
from tests.integration.test_enforcement_reservations import make_env

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

NOV_1 = datetime(2026, 11, 1, tzinfo=UTC)
MODELS = [("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4"), ("openai", "gpt-4o-mini")]
COL = {c: i for i, c in enumerate(PRICED_COLUMNS)}


def write_month(clickhouse) -> list[list]:
    rng = random.Random(5)
    book = default_price_book()
    rows = []
    for i in range(3_000):
        provider, model = rng.choice(MODELS)
        t = NOV_1 + timedelta(minutes=rng.randrange(0, 30 * 24 * 60))
        e = {"event_id": f"u{i}", "event_time": int(t.timestamp() * 1000), "provider": provider, "model": model,
             "input_tokens": rng.randrange(100, 5000), "output_tokens": rng.randrange(10, 800), "request_count": 1,
             "team": rng.choice(["payments", "search"]), "cost_center": "cc", "use_case": rng.choice(["chat", "rag"]),
             "environment": "production", "workload_type": "inference"}
        row = list(priced_row(e, owner_of(e), book.price(e), "usage", i % 4, i, datetime.now(UTC)))  # a tuple
        row[COL["event_time"]] = t  # the row carries epoch ms; the expectations below group datetimes
        rows.append(row)
    w = ClickHouseWriter(clickhouse.client, clickhouse.database)
    for p in range(4):
        mine = [r for r in rows if r[COL["kafka_partition"]] == p]
        w.add(mine, "usage", p, mine[-1][COL["kafka_offset"]])
    w.flush()
    return rows


@pytest_asyncio.fixture
async def api(isolated, clickhouse):
    env = make_env(isolated.servers.redis_url, isolated.prefix)
    ak = ApiKeys(env.r, isolated.prefix)
    keys = {"admin": (await ak.create("ops", "admin"))[0], "lead": (await ak.create("lead", "read", ["payments"]))[0]}
    rows = write_month(clickhouse)
    app = create_app(env.checker, ak, history=partial(usage_history, clickhouse.client, clickhouse.database))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        async def get(who: str, **params) -> httpx.Response:
            return await client.get("/v1/usage", params=params, headers={"Authorization": f"Bearer {keys[who]}"})
        yield get, rows, env, ak
    await env.r.aclose()


async def test_daily_history_of_a_team_equals_the_rows_written(api):
    get, rows, _, _ = api
    resp = await get("lead", scope="team:payments", **{"from": "2026-11-01", "to": "2026-12-01"}, group_by="day")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    want: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in rows:
        if r[COL["team"]] == "payments":
            day = r[COL["event_time"]].strftime("%Y-%m-%d")
            want[day][0] += r[COL["cost"]]
            want[day][1] += 1
            want[day][2] += r[COL["input_tokens"]]
    got = {p["period_start"][:10]: [p["spend_usd"], p["events"], p["input_tokens"]] for p in body["points"]}
    assert got == {d: [format_usd(c), n, i] for d, (c, n, i) in want.items()}
    assert body["total_spend_usd"] == format_usd(sum(c for c, _, _ in want.values()))


async def test_history_by_model_over_a_week_sums_per_model(api):
    get, rows, _, _ = api
    resp = await get("admin", scope="org:all", **{"from": "2026-11-09", "to": "2026-11-16"}, group_by="week",
                     by="model")
    assert resp.status_code == 200, resp.text
    lo, hi = datetime(2026, 11, 9, tzinfo=UTC), datetime(2026, 11, 16, tzinfo=UTC)
    want: dict[str, int] = defaultdict(int)
    for r in rows:
        if lo <= r[COL["event_time"]] < hi:
            want[f"{r[COL['provider']]}/{r[COL['model']]}"] += r[COL["cost"]]
    assert {p["key"]: p["spend_usd"] for p in resp.json()["points"]} == {k: format_usd(v) for k, v in want.items()}
    assert {p["period_start"][:10] for p in resp.json()["points"]} == {"2026-11-09"}


async def test_an_optional_scope_kind_the_rollups_do_not_hold_is_a_422_not_a_503(api):
    from enforcement.api_usage import HISTORY_KINDS
    from reports.usage import SCOPE_COLUMNS

    assert set(HISTORY_KINDS) == set(SCOPE_COLUMNS)  # what the API documents = what the rollups answer
    get, *_ = api  # found by schemathesis: customer:... with by=model was answered 503 "history unavailable"
    resp = await get("admin", scope="customer:acme", **{"from": "2026-11-01", "to": "2026-12-01"}, by="model")
    assert resp.status_code == 422 and "query.scope" in resp.text, resp.text


@pytest.mark.parametrize("params,status,words", [
    ({"scope": "team:search", "from": "2026-11-01", "to": "2026-12-01"}, 403, "may only read"),
    ({"scope": "team:payments", "from": "2026-12-01", "to": "2026-11-01"}, 422, "must be after"),
    ({"scope": "team:payments", "from": "yesterday!", "to": "2026-12-01"}, 422, "query.from: String should match pattern"),
    ({"scope": "galaxy:payments", "from": "2026-11-01", "to": "2026-12-01"}, 422, "query.scope: String should match pattern"),
    ({"scope": "team:payments", "from": "2020-01-01", "to": "2026-12-01", "group_by": "hour"}, 422, "periods"),
    ({"scope": "team:payments", "from": "2026-11-01", "to": "2026-12-01", "group_by": "minute"}, 422, "group_by"),
    ({"scope": "team:payments", "from": "2026-11-01"}, 422, "to"),
])
async def test_bad_or_foreign_requests_get_a_4xx_with_a_message(api, params, status, words):
    get, *_ = api
    resp = await get("lead", **params)
    assert resp.status_code == status, resp.text
    assert words in resp.text


async def test_clickhouse_away_is_a_503_with_the_reason_and_checks_still_answer(api):
    _, _, env, ak = api
    from reports.usage import UsageHistory

    app = create_app(env.checker, ak, history=UsageHistory("http://default:@127.0.0.1:9", "nowhere", 1.0))
    key = (await ak.create("lead2", "read", ["payments"]))[0]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        resp = await client.get("/v1/usage", params={"scope": "team:payments", "from": "2026-11-01",
                                                     "to": "2026-12-01"}, headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 503 and "usage history unavailable" in resp.json()["error"]
