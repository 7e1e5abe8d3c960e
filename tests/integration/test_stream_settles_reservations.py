"""Reserve -> call -> the priced event carries the reservation id -> the real worker books the actual cost and
releases the hold: spend == actual, held == 0, on real tansu + Redis."""

from __future__ import annotations

import asyncio
import time

import pytest

from spendstream.cli.services import create_topics
from tests.conftest import child, encode_events, produce, wait_until
from tests.integration.test_enforcement_reservations import ask, budget, make_env
from tests.oracle import oracle_nanos

pytestmark = pytest.mark.integration


def test_the_worker_settles_a_reservation_with_the_actual_cost(isolated, tmp_path):
    settings = isolated.settings()
    create_topics(settings)

    async def reserve():
        env = make_env(settings.redis.url, isolated.prefix)
        env.clock.ms = int(time.time() * 1000)
        await env.budgets(budget("pay", "team", "payments", "10", mode="enforce", action="deny"))
        rid = (await env.checker.check(ask(cost="2"))).reservation_id
        held = (await env.cell("team", "payments"))["held"]
        await env.r.aclose()
        return rid, held

    async def cell():
        env = make_env(settings.redis.url, isolated.prefix)
        env.clock.ms = int(time.time() * 1000)
        c = await env.cell("team", "payments")
        await env.r.aclose()
        return c

    rid, held = asyncio.run(reserve())
    assert rid and held == 2_000_000_000
    event = {"event_id": "settle-1", "event_time": int(time.time() * 1000), "provider": "openai", "model": "gpt-4o",
             "input_tokens": 1234, "output_tokens": 321, "team": "payments", "cost_center": "cc-3001",
             "use_case": "fraud-explainer", "environment": "production", "workload_type": "inference",
             "reservation_id": rid}
    actual = oracle_nanos(event)
    with child(["worker"], isolated.env, tmp_path / "worker.log"):
        produce(settings.kafka.bootstrap_servers, settings.kafka.usage_topic, encode_events([event]))
        final = wait_until(lambda: (c := asyncio.run(cell())).get("spend") and c.get("held", 0) == 0 and c, 60,
                           what="booked and released")
    assert (final["spend"], final.get("held", 0)) == (actual, 0)
