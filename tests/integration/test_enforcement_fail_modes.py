"""With the Redis server stopped, checks answer by each budget's fail mode and say why; nothing hangs or 5xxs.

Each test runs its own redis-server (the shared one must keep running for the other tests) and stops it."""

from __future__ import annotations


import httpx
import pytest
import pytest_asyncio

from enforcement.api import create_app
from enforcement.auth import ApiKeys
from tests.private_servers import PrivateRedis
from tests.integration.test_enforcement_reservations import ask, budget, make_env

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


@pytest_asyncio.fixture
async def down(tmp_path):
    """An env on a private Redis, with budgets and a verified key; the test calls .server.stop()."""
    server = PrivateRedis(tmp_path)
    env = make_env(server.url, "fm", timeout_s=0.05)
    env.server = server
    try:
        yield env
    finally:
        server.stop()
        await env.r.aclose()


async def test_enforce_budgets_fail_closed_and_showback_budgets_fail_open(down):
    await down.budgets(budget("pay", "team", "payments", "100", mode="enforce"),
                       budget("search", "team", "search", "100", mode="showback"),
                       budget("ml", "team", "ml", "100", mode="enforce", fail_mode="open"))
    assert (await down.checker.check(ask("payments"))).decision == "allow"
    down.server.stop()
    down.checker.invalidate_budgets()  # force a read of the (gone) store
    closed = await down.checker.check(ask("payments"))
    assert (closed.decision, closed.reservation_id) == ("deny", None)
    assert closed.reason.startswith("spend store unavailable")
    assert closed.budgets[0].budget_id == "pay" and closed.budgets[0].spent_usd is None
    opened = await down.checker.check(ask("search"))
    assert (opened.decision, opened.reason) == ("allow", "spend store unavailable: failing open")
    assert (await down.checker.check(ask("ml"))).decision == "allow"  # enforce, but told to fail open


async def test_a_reserving_check_fails_closed_when_redis_dies_after_the_budgets_were_read(down):
    await down.budgets(budget("pay", "team", "payments", "100", mode="enforce"))
    await down.checker.budgets()  # cached: the next check goes straight to the reservation script
    down.server.stop()
    answer = await down.checker.check(ask("payments", reserve=True))
    assert (answer.decision, answer.reason) == ("deny", "spend store unavailable: budget pay fails closed")


async def test_the_http_api_answers_by_fail_mode_and_readyz_says_not_ready(down):
    await down.budgets(budget("pay", "team", "payments", "100", mode="enforce"),
                       budget("search", "team", "search", "100"))
    keys = ApiKeys(down.r, "fm")
    key = (await keys.create("gw", "check", ["*"]))[0]
    h = {"Authorization": f"Bearer {key}"}
    body = {"provider": "openai", "model": "gpt-4o", "estimated_cost_usd": "0.01"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(down.checker, keys)),
                                 base_url="http://api") as c:
        assert (await c.post("/v1/check", json={**body, "team": "payments"}, headers=h)).status_code == 200
        down.server.stop()
        down.checker.invalidate_budgets()
        pay = await c.post("/v1/check", json={**body, "team": "payments", "reserve": True}, headers=h)
        search = await c.post("/v1/check", json={**body, "team": "search"}, headers=h)
        ready = await c.get("/readyz", headers=h)
    assert (pay.status_code, pay.json()["decision"]) == (200, "deny")
    assert (search.status_code, search.json()["decision"]) == (200, "allow")
    assert "spend store unavailable" in pay.json()["reason"] and "spend store unavailable" in search.json()["reason"]
    assert ready.status_code == 503
