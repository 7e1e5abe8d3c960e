"""Optional scopes (project, customer, user, api_key) through the real processor and checker on in-memory ports:
booked only when the event carries them, capped per kind with an `overflow` bucket, looked up by the check with
the same fan-out the stream books."""

from __future__ import annotations

import pytest

from enforcement.checker import Checker, CheckRequest
from schemas.models import Budget, BudgetScope
from spendstream.pricing import default_price_book
from spendstream.scopes import OVERFLOW, CardinalityCap, event_optional_scopes
from stream_app.processor import BatchProcessor
from tests.inmemory import ManualClock, MemoryHolds, MemoryRowSink, MemorySpendStore
from tests.unit.test_processor import BOOK, CODEC, MONTH, NOW, T, cost, ev

pytestmark = pytest.mark.asyncio


def rig(cap: CardinalityCap | None = None):
    store = MemorySpendStore()
    proc = BatchProcessor(CODEC, BOOK, store, MemoryRowSink(), MemoryHolds(store), ManualClock(NOW), cap=cap)
    return proc, store


async def test_optional_tags_are_booked_to_their_scopes_and_absent_ones_book_nothing():
    proc, store = rig()
    await proc.assign(T, [0], {})
    tagged = ev(1, project="apollo", customer="acme-corp", user_hash="u-9f2", attributes={"api_key_id": "k1"})
    plain = ev(2)
    await proc.process(T, 0, [(0, None, CODEC.encode(tagged)), (1, None, CODEC.encode(plain))])
    for scope in [("project", "apollo"), ("customer", "acme-corp"), ("user", "u-9f2"), ("api_key", "k1")]:
        assert store.spend(*scope, MONTH) == cost(tagged)
    assert store.spend("team", "payments", MONTH) == cost(tagged) + cost(plain)
    assert not [k for k in store.windows if k[0] in ("project", "customer", "user", "api_key") and k[1] == ""]


async def test_a_user_beyond_the_cap_books_to_overflow_and_is_counted_never_dropped():
    proc, store = rig(CardinalityCap({"user": 2}))
    await proc.assign(T, [0], {})
    events = [ev(i, user_hash=f"u{i}") for i in range(5)]
    res = await proc.process(T, 0, [(i, None, CODEC.encode(e)) for i, e in enumerate(events)])
    assert res.overflow == {"user": 3}
    assert store.spend("user", "u0", MONTH) == cost(events[0]) and store.spend("user", "u1", MONTH) == cost(events[1])
    assert store.spend("user", OVERFLOW, MONTH) == sum(cost(e) for e in events[2:])
    assert store.spend("org", "all", MONTH) == sum(cost(e) for e in events)  # every other scope books all of it


async def test_a_pinned_value_is_tracked_even_when_the_kind_is_full():
    cap = CardinalityCap({"customer": 1})
    cap.pin([("customer", "big-co")])
    assert event_optional_scopes({"customer": "first"}, cap) == (("customer", "first"),)
    assert event_optional_scopes({"customer": "second"}, cap) == (("customer", OVERFLOW),)
    assert event_optional_scopes({"customer": "big-co"}, cap) == (("customer", "big-co"),)
    assert event_optional_scopes({"team": "x", "attributes": {}}, cap) == ()


async def test_the_check_applies_customer_user_project_and_key_budgets_of_the_asking_call():
    store = MemorySpendStore(budget_map={b.id: b for b in [
        Budget(id="cust", scope=BudgetScope(kind="customer", value="acme-corp"), limit_usd="1", mode="enforce"),
        Budget(id="key", scope=BudgetScope(kind="api_key", value="k1"), limit_usd="1", mode="enforce"),
        Budget(id="other-user", scope=BudgetScope(kind="user", value="u-other"), limit_usd="1", mode="enforce"),
    ]})
    checker = Checker(store, MemoryHolds(store), None, default_price_book(), ManualClock(NOW))
    req = CheckRequest(team="payments", provider="openai", model="gpt-4o", estimated_cost_usd="0.5",
                       customer="acme-corp", user_hash="u-9f2", reserve=True)
    a = await checker.check(req, api_key="k1")
    assert sorted(b.budget_id for b in a.budgets) == ["cust", "key"]
    assert (a.decision, a.api_key_id) == ("allow", "k1")
    assert (await checker.check(req, api_key="k1")).decision == "warn"  # 100 % held: threshold
    assert (await checker.check(req, api_key="k1")).decision == "deny"
    assert (await checker.check(req.model_copy(update={"customer": None}), api_key="k2")).decision == "allow"


async def test_a_redis_rebuild_from_clickhouse_rows_books_the_optional_scopes_too():
    from sinks.redis.rebuild import CounterRebuild, PricedRow

    rebuild = CounterRebuild("p", NOW)
    row = PricedRow("usage", 0, 7, "e1", NOW - 60_000, NOW, "payments", "cc-1", "chat", "production", "inference", 1,
                    "acme", "m1", 1200, 0, "apollo", "acme-corp", "u-9f2", {"api_key_id": "k1"})
    plain = row._replace(offset=8, event_id="e2", project="", customer="", user_hash="", attributes={})
    rebuild.add_events([tuple(row), tuple(plain)])
    for scope in [("project", "apollo"), ("customer", "acme-corp"), ("user", "u-9f2"), ("api_key", "k1")]:
        assert rebuild._deltas[scope][MONTH][0] == 1200
    assert rebuild._deltas[("team", "payments")][MONTH][0] == 2400
