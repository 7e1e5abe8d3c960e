"""The walking skeleton on real servers: Avro events -> tansu -> worker -> Redis + ClickHouse -> enforcement API."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import redis

from schemas.models import Budget, BudgetScope
from spendstream.allocation import owner_of
from spendstream.cli.services import create_topics
from spendstream.money import format_usd
from spendstream.synthetic import SyntheticStream
from spendstream.windows import window_ids
from tests.conftest import child, encode_events, produce, query_clickhouse, wait_until
from tests.oracle import oracle_total

pytestmark = pytest.mark.integration

N = 3000


def _hget(r: redis.Redis, key: str, field: str = "spend") -> int:
    return int(r.hget(key, field) or 0)


ADMIN = "skeleton-admin-key"
AUTH = {"authorization": f"Bearer {ADMIN}"}


def _check(port: int, team: str) -> dict:
    body = {"team": team, "provider": "openai", "model": "gpt-4o", "estimated_input_tokens": 1000,
            "estimated_output_tokens": 100, "environment": "production"}
    r = httpx.post(f"http://127.0.0.1:{port}/v1/check", json=body, timeout=5, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def test_events_flow_to_redis_clickhouse_and_flip_the_api_decision(isolated, tmp_path):
    settings = isolated.settings()
    create_topics(settings)
    now = int(time.time() * 1000)
    events = list(SyntheticStream(seed=11).events(N, now))
    expected_total = oracle_total(events)
    payments = [e for e in events if owner_of(e).team == "payments"]
    payments_total = oracle_total(payments)
    assert payments and 0 < payments_total

    # A monthly enforce budget for payments that this stream will cross, between the two checks.
    limit = payments_total // 2
    budget = Budget(id="payments-m", scope=BudgetScope(kind="team", value="payments"), period="month",
                    limit_usd=format_usd(limit), mode="enforce", action="deny")
    from spendstream.cli.budgets import store_for

    asyncio.run(store_for(settings).put_budget(budget))
    r = redis.Redis.from_url(settings.redis.url)
    month = window_ids(now).month
    org_key = f"{isolated.prefix}:{{org:all}}:{month}"
    api_port = settings.api.port

    api_env = {**isolated.env, "SPENDSTREAM_API__BOOTSTRAP_ADMIN_KEY": ADMIN}
    with child(["api"], api_env, tmp_path / "api.log"):
        wait_until(lambda: _ok(api_port), 20, what="API up")
        assert _check(api_port, "payments")["decision"] == "allow"

        with child(["worker"], isolated.env, tmp_path / "worker.log"):
            produce(settings.kafka.bootstrap_servers, settings.kafka.usage_topic, encode_events(events))
            wait_until(lambda: _hget(r, org_key, "events") >= N, 90, what=f"{N} events in Redis")

        # Redis: exact to the nano-USD, per org and per team.
        assert _hget(r, org_key) == expected_total
        assert _hget(r, f"{isolated.prefix}:{{team:payments}}:{month}") == payments_total

        denied = _check(api_port, "payments")
        assert denied["decision"] == "deny", denied
        assert denied["budgets"][0]["budget_id"] == "payments-m"
        assert _check(api_port, "search")["decision"] == "allow"

    # ClickHouse (worker stopped: the embedded engine's data dir is free): rows and cost exact.
    count, total = query_clickhouse(isolated.env, "SELECT count(), sum(cost) FROM {db}.priced_events FINAL")[0]
    assert (count, int(total)) == (N, expected_total)
    # raw rows too: FINAL would hide a double insert, the rollups (materialized views on INSERT) would not
    raw_count, raw_total = query_clickhouse(isolated.env, "SELECT count(), sum(cost) FROM {db}.priced_events")[0]
    roll_events, roll_total = query_clickhouse(
        isolated.env, "SELECT sum(events), sum(cost) FROM {db}.cost_hourly")[0]
    assert (raw_count, int(raw_total), int(roll_events), int(roll_total)) == (N, expected_total, N, expected_total)


def _ok(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1, headers=AUTH).status_code == 200
    except httpx.TransportError:
        return False
