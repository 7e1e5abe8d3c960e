"""Every answered check lands in ClickHouse `check_outcomes` (real Redis, the ClickHouse dev server over HTTP):
a denied call, which never becomes a usage event, is counted there with its reason and estimate; the rows are
written off the request path and survive a ClickHouse outage shorter than the queue."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

pytestmark = [pytest.mark.integration]

BUDGET = {"id": "pay-cap", "scope": {"kind": "team", "value": "payments"}, "limit_usd": "10", "mode": "enforce",
          "action": "deny"}


@pytest.fixture
def ch(isolated, clickhouse, monkeypatch):
    monkeypatch.setenv("SPENDSTREAM_CLICKHOUSE__DSN", clickhouse.dsn)
    monkeypatch.setenv("SPENDSTREAM_CLICKHOUSE__DATABASE", clickhouse.database)
    clickhouse.client.command(f"TRUNCATE TABLE IF EXISTS {clickhouse.database}.check_outcomes")
    return clickhouse.client, clickhouse.database


def _check(usd: str, **extra) -> dict:
    return {"team": "payments", "use_case": "refunds", "provider": "openai", "model": "gpt-4o",
            "estimated_cost_usd": usd, **extra}


@pytest.mark.asyncio
async def test_each_answered_check_is_one_row_with_its_decision_reason_and_estimate(isolated, ch):
    from enforcement.auth import ApiKeys
    from sinks.redis.client import make_redis
    from spendstream.cli.api import build_api
    from spendstream.settings import load_settings

    s = load_settings()
    r = make_redis(s.redis.url, 2.0)
    admin, _ = await ApiKeys(r, s.redis.prefix).create("finops", "admin")
    app = build_api(s)
    answers: list[dict] = []
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api:
            auth = {"Authorization": f"Bearer {admin}"}
            assert (await api.post("/v1/budgets", json=BUDGET, headers=auth)).status_code == 201
            for usd, reserve in [("2.5", False), ("4", True), ("11", False), ("0.000000001", False), ("10.5", True)]:
                resp = await api.post("/v1/check", json=_check(usd, reserve=reserve), headers=auth)
                assert resp.status_code == 200, resp.text
                answers.append(resp.json())
    await r.aclose()
    client, db = ch
    rows = client.query(f"SELECT decision, reason, estimated_cost, reserved, reservation_id, api_key_id, budget_ids, "
                        f"team, use_case, model FROM {db}.check_outcomes ORDER BY checked_at, estimated_cost"
                        ).named_results()
    rows = list(rows)
    assert len(rows) == 5  # counted, one per answer
    assert Counter(r["decision"] for r in rows) == Counter(a["decision"] for a in answers)
    assert Counter(a["decision"] for a in answers) == Counter({"allow": 3, "deny": 2})
    by_cost = {r["estimated_cost"]: r for r in rows}
    # the estimates as nano-USD, written by hand
    assert sorted(by_cost) == [1, 2_500_000_000, 4_000_000_000, 10_500_000_000, 11_000_000_000]
    denied = by_cost[11_000_000_000]
    assert denied["decision"] == "deny" and denied["budget_ids"] == ["pay-cap"]
    assert denied["reason"] == next(a["reason"] for a in answers if a["estimated_cost_usd"].startswith("11"))
    held = by_cost[4_000_000_000]
    assert held["reserved"] == 1 and held["reservation_id"] == answers[1]["reservation_id"] != ""
    assert by_cost[10_500_000_000]["reserved"] == 0  # a refused reservation holds nothing
    assert {r["api_key_id"] for r in rows} == {admin.split("_")[1]}
    assert {(r["team"], r["use_case"], r["model"]) for r in rows} == {("payments", "refunds", "gpt-4o")}


@pytest.mark.asyncio
async def test_rows_queued_while_clickhouse_is_away_are_written_when_it_answers_again(isolated, ch):
    """The log's client points at a closed port first (ClickHouse away), then at the real server."""
    from enforcement.check_models import CheckRequest, CheckResponse
    from enforcement.outcomes import outcome_row
    from sinks.clickhouse.check_outcomes import ClickHouseCheckOutcomes
    from sinks.clickhouse.schema import connect

    import os

    from tests.conftest import free_port

    client, db = ch
    dsn = {"url": f"http://default@127.0.0.1:{free_port()}/"}
    log = ClickHouseCheckOutcomes(lambda: connect(dsn["url"], 2.0), db, max_rows=3, on_drop=lambda n: dropped.append(n))
    dropped: list[int] = []
    req = CheckRequest.model_validate(_check("1"))
    out = CheckResponse(decision="deny", reason="r", estimated_cost_usd="1", budgets=[])
    for i in range(4):
        log.record(outcome_row(req, out, "k1", 1_790_000_000_000 + i))
    assert dropped == [1] and log.pending() == 3  # the oldest beyond the cap is dropped and counted
    assert await log.flush() == 0 and log.pending() == 3  # away: nothing written, nothing lost from the queue
    dsn["url"] = os.environ["SPENDSTREAM_CLICKHOUSE__DSN"]
    assert await log.flush() == 3 and log.pending() == 0
    got = client.query(f"SELECT toUnixTimestamp64Milli(checked_at) FROM {db}.check_outcomes ORDER BY 1").result_rows
    assert [g[0] for g in got] == [1_790_000_000_001, 1_790_000_000_002, 1_790_000_000_003]


class _Ids(list):
    """A row's budget ids a weak reference can follow (a plain list cannot have one)."""


@pytest.mark.asyncio
async def test_written_outcome_rows_are_freed_at_once_not_by_the_cyclic_collector(ch):
    """clickhouse-connect's insert context refers to itself: before the insert broke that cycle, every flushed
    outcome row stayed alive until a collection found it (~6,000 objects per young collection of the API at 1,000
    checks/s, each pause 4-15 ms in the latency tail). With the collector off, the rows must be gone once the
    INSERT returns."""
    import gc
    import weakref

    from sinks.clickhouse.check_outcomes import ClickHouseCheckOutcomes

    client, db = ch
    log = ClickHouseCheckOutcomes(lambda: client, db)
    ids = [_Ids([f"b{i}"]) for i in range(30)]
    watch = [weakref.ref(x) for x in ids]
    for i, budget_ids in enumerate(ids):
        log.record([1_796_270_441_700 + i, "payments", "refunds", "cc-1", "production", "openai", "gpt-4o", "allow",
                    "within_budget", 1_000_000, 0, "", "key-1", budget_ids, ""])
    del ids, budget_ids
    gc.collect()
    gc.disable()
    try:
        assert await log.flush() == 30
        alive = sum(ref() is not None for ref in watch)
    finally:
        gc.enable()
    assert alive == 0, f"{alive} of 30 rows still alive after the INSERT (held by a reference cycle)"
    rows = client.query(f"SELECT count(), groupArray(budget_ids[1]) FROM {db}.check_outcomes").result_rows[0]
    assert rows[0] == 30 and sorted(rows[1]) == sorted(f"b{i}" for i in range(30))
