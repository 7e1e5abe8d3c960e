"""The HTTP API on real Redis with the new budget kinds: the admin API validates rolling budgets, a check books
its key's id as scope api_key, /v1/spend answers for user, api_key, quarter and rolling windows."""

from __future__ import annotations

import time

import pytest

from enforcement.auth import ApiKeys
from spendstream.money import usd_to_nanos
from spendstream.windows import window_ids
from tests.integration.test_api_auth import CHECK, api  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

ROLLING = {"id": "r-user", "scope": {"kind": "user", "value": "u-9f2"}, "limit_usd": "2", "mode": "enforce",
           "window": "rolling", "length": "24h"}


async def test_the_admin_api_accepts_a_rolling_budget_and_explains_a_bad_one(api):
    ok = await api.call("admin", "POST", "/v1/budgets", ROLLING)
    assert ok.status_code == 201 and ok.json()["length"] == "24h"
    bad = await api.call("admin", "POST", "/v1/budgets", {**ROLLING, "id": "r2", "length": None})
    assert bad.status_code == 422 and "a rolling budget needs length: 24h, 7d or 30d" in bad.text
    bad = await api.call("admin", "POST", "/v1/budgets", {**ROLLING, "id": "r3", "window": "calendar"})
    assert bad.status_code == 422 and "length applies to window: rolling only" in bad.text
    bad = await api.call("admin", "POST", "/v1/budgets", {**ROLLING, "id": "r4", "scope": {"kind": "tenant", "value": "x"}})
    assert bad.status_code == 422 and "api_key" in bad.text  # the message lists the scope kinds


async def test_a_reserving_check_names_its_key_and_a_key_budget_applies(api):
    ak = ApiKeys(api.env.r, api.env.store.keys.prefix)
    key, who = await ak.create("gateway-a", "check", ["payments"])
    api.keys["gw"] = key
    budget = {"id": "k", "scope": {"kind": "api_key", "value": who.key_id}, "limit_usd": "0.02", "mode": "enforce"}
    assert (await api.call("admin", "POST", "/v1/budgets", budget)).status_code == 201
    first = (await api.call("gw", "POST", "/v1/check", {**CHECK, "reserve": True})).json()
    assert first["api_key_id"] == who.key_id and "k" in [b["budget_id"] for b in first["budgets"]]
    await api.call("gw", "POST", "/v1/check", {**CHECK, "reserve": True})
    assert (await api.call("gw", "POST", "/v1/check", {**CHECK, "reserve": True})).json()["decision"] == "deny"
    assert (await api.call("svc", "POST", "/v1/check", {**CHECK, "reserve": True})).json()["decision"] != "deny"
    spend = (await api.call("admin", "GET", f"/v1/spend?scope=api_key:{who.key_id}")).json()
    assert spend["held_usd"] == "0.020000000"


async def test_spend_answers_for_a_user_in_its_rolling_window_and_in_the_quarter(api):
    api.env.clock.ms = int(time.time() * 1000)  # hour windows expire by Redis' real clock
    n = usd_to_nanos("1.5")
    ids = window_ids(api.env.clock.ms)
    await api.env.store.apply_batch("u", 0, 0, 0, {("user", "u-9f2"): {w: [n, n, 1, 0] for w in ids}})
    await api.call("admin", "POST", "/v1/budgets", ROLLING)
    rolling = (await api.call("admin", "GET", "/v1/spend?scope=user:u-9f2&length=24h")).json()
    assert (rolling["period"], rolling["window"], rolling["spent_usd"]) == ("rolling 24h", "r:24h", "1.500000000")
    assert [b["budget_id"] for b in rolling["budgets"]] == ["r-user"]
    quarter = (await api.call("admin", "GET", "/v1/spend?scope=user:u-9f2&period=quarter")).json()
    assert quarter["spent_usd"] == "1.500000000" and quarter["label"].startswith("FY")
    assert (await api.call("lead", "GET", "/v1/spend?scope=user:u-9f2")).status_code == 403  # not a team scope


async def test_spend_shows_the_carried_amount_of_a_carry_over_budget(api):
    budget = {"id": "pay-carry", "scope": {"kind": "team", "value": "payments"}, "limit_usd": "10",
              "mode": "enforce", "carry_over": True, "carry_over_cap_pct": 30}
    assert (await api.call("admin", "POST", "/v1/budgets", budget)).status_code == 201
    n = usd_to_nanos("8")  # previous month (the clock is 2026-11-16): 2 unused, all of it carries (cap 3)
    await api.env.store.apply_batch("u", 0, 0, 0, {("team", "payments"): {"m:202610": [n, n, 1, 0]}})
    spend = (await api.call("lead", "GET", "/v1/spend?scope=team:payments")).json()
    (b,) = [b for b in spend["budgets"] if b["budget_id"] == "pay-carry"]
    assert (b["carried_usd"], b["limit_usd"]) == ("2.000000000", "12.000000000")
    bad = await api.call("admin", "POST", "/v1/budgets", {**budget, "id": "x", "window": "rolling", "length": "7d"})
    assert bad.status_code == 422 and "carry_over needs a calendar period" in bad.text


async def test_a_group_budget_is_shared_by_its_member_keys_and_a_new_key_gets_the_default_budget(api):
    ak = ApiKeys(api.env.r, api.env.store.keys.prefix)
    members = {}
    for name in ("a", "b", "new"):
        key, who = await ak.create(f"free-{name}", "check", ["payments"])
        api.keys[name], members[name] = key, who.key_id
    free = {"team": "payments", "tier": "free"}
    for name in ("a", "b", "new"):
        r = await api.call("admin", "PUT", f"/v1/members/api_key/{members[name]}", {"labels": free})
        assert r.status_code == 200
    shared = {"id": "free-pool", "scope": {"kind": "api_key", "value": "*"}, "selector": free, "group": "shared",
              "limit_usd": "0.03", "mode": "enforce"}
    default = {"id": "free-each", "scope": {"kind": "api_key", "value": "*"}, "selector": free, "group": "each",
               "limit_usd": "0.02", "mode": "enforce"}
    own = {"id": "a-own", "scope": {"kind": "api_key", "value": members["a"]}, "limit_usd": "1", "mode": "enforce"}
    for b in (shared, default, own):
        assert (await api.call("admin", "POST", "/v1/budgets", b)).status_code == 201
    body = {**CHECK, "reserve": True}  # 0.01 USD each
    first = (await api.call("a", "POST", "/v1/check", body)).json()
    mine = lambda answer: sorted(b["budget_id"] for b in answer["budgets"] if b["budget_id"] not in ("org-m", "pay-m"))  # noqa: E731
    assert mine(first) == ["a-own", "free-pool"]  # a has its own: no default
    new = (await api.call("new", "POST", "/v1/check", body)).json()
    assert mine(new) == ["free-each", "free-pool"]  # the default applies
    assert (await api.call("b", "POST", "/v1/check", body)).json()["reservation_id"]  # pool: 0.03 held now
    for who in ("a", "b", "new"):
        refused = (await api.call(who, "POST", "/v1/check", body)).json()
        assert refused["decision"] == "deny" and "free-pool" in refused["reason"]
    assert (await api.call("admin", "GET", f"/v1/members/api_key/{members['new']}")).json() == {"labels": free}
    bad = await api.call("admin", "POST", "/v1/budgets", {**shared, "id": "x", "scope": {"kind": "team", "value": "*"}})
    assert bad.status_code == 422 and "a group budget (selector) needs scope" in bad.text
