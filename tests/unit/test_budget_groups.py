"""Budget groups on in-memory ports: a shared group budget is one counter for every key whose labels match its
selector (the stream books members' spend to it, the check reads it); an `each` group is the default budget of
members without their own."""

from __future__ import annotations

import pytest

from enforcement.checker import Checker, CheckRequest
from schemas.models import Budget, BudgetScope
from spendstream.groups import GroupIndex
from spendstream.pricing import default_price_book
from stream_app.budget_watch import BudgetWatcher
from stream_app.metrics import Metrics
from stream_app.processor import BatchProcessor
from tests.inmemory import ManualClock, MemoryHolds, MemoryRowSink, MemorySpendStore, Published
from tests.unit.test_processor import BOOK, CODEC, MONTH, NOW, T, cost, ev

pytestmark = pytest.mark.asyncio

FREE = {"team": "payments", "tier": "free"}


def group(id: str, limit: str, kind: str = "each", **selector) -> Budget:
    return Budget(id=id, scope=BudgetScope(kind="api_key", value="*"), selector=selector or FREE, group=kind,
                  limit_usd=limit, mode="enforce")


def rig(*budgets: Budget, members: dict[str, dict] | None = None):
    store = MemorySpendStore(budget_map={b.id: b for b in budgets},
                             member_map={("api_key", k): v for k, v in (members or {}).items()})
    return Checker(store, MemoryHolds(store), None, default_price_book(), ManualClock(NOW)), store


def ask(cost: str = "1") -> CheckRequest:
    return CheckRequest(team="payments", provider="openai", model="gpt-4o", estimated_cost_usd=cost, reserve=True)


async def test_a_shared_group_budget_is_one_room_for_all_its_member_keys():
    checker, _ = rig(group("free-pool", "3", "shared"), members={"k1": FREE, "k2": FREE, "k3": {"tier": "paid"}})
    answers = [await checker.check(ask(), key) for key in ("k1", "k2", "k1", "k2")]
    assert [a.decision for a in answers][-1] == "deny" and sum(1 for a in answers if a.reservation_id) == 3
    assert (await checker.check(ask(), "k3")).budgets == []  # not a member


async def test_a_new_key_gets_the_default_budget_and_a_key_with_its_own_keeps_it():
    own = Budget(id="k1-own", scope=BudgetScope(kind="api_key", value="k1"), limit_usd="10", mode="enforce")
    checker, _ = rig(group("free-default", "1"), own, members={"k1": FREE, "new": FREE})
    fresh = await checker.check(ask("0.8"), "new")
    assert [b.budget_id for b in fresh.budgets] == ["free-default"] and fresh.budgets[0].scope == "api_key:*"
    assert (await checker.check(ask("0.8"), "new")).decision == "deny"  # its own 1 USD, not shared
    assert (await checker.check(ask("0.8"), "other-new")).decision == "allow"  # no labels: not a member
    assert [b.budget_id for b in (await checker.check(ask("5"), "k1")).budgets] == ["k1-own"]


async def test_the_stream_books_members_spend_to_their_shared_group():
    budgets = [group("free-pool", "0.000002", "shared")]  # 2,000 nano-USD: the two members' 2,400 exceed it
    store = MemorySpendStore(budget_map={b.id: b for b in budgets}, member_map={("api_key", "k1"): FREE,
                                                                                ("api_key", "k2"): FREE})
    groups = GroupIndex()
    clock = ManualClock(NOW)
    proc = BatchProcessor(CODEC, BOOK, store, MemoryRowSink(), MemoryHolds(store), clock, groups=groups)
    out = Published()
    watcher = BudgetWatcher(store, out, "alerts", "decisions", clock, Metrics(), refresh_s=0, groups=groups)
    await watcher.budgets()  # the refresh rebuilds the index from budgets and members' labels
    await proc.assign(T, [0], {})
    events = [ev(1, attributes={"api_key_id": "k1"}), ev(2, attributes={"api_key_id": "k2"}),
              ev(3, attributes={"api_key_id": "k9"})]
    res = await proc.process(T, 0, [(i, None, CODEC.encode(e)) for i, e in enumerate(events)])
    assert store.spend("group", "free-pool", MONTH) == cost(events[0]) + cost(events[1])
    await watcher.on_batch(res.totals)  # the watcher evaluates the group budget from its own counter
    assert [(d["budget_id"], d["action"]) for d in out.on("decisions")] == [("free-pool", "deny")]


async def test_a_group_budget_must_select_members_of_a_groupable_kind():
    with pytest.raises(ValueError, match="needs scope"):
        Budget(id="g", scope=BudgetScope(kind="team", value="*"), selector=FREE, limit_usd="1")
    with pytest.raises(ValueError, match="needs a selector"):
        Budget(id="g", scope=BudgetScope(kind="api_key", value="*"), limit_usd="1")
