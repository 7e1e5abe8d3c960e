"""The HTTP API on real Redis: who may call what (401 / 403 per scope), bad bodies (422), the read endpoints."""

from __future__ import annotations

import json
import os
from contextlib import asynccontextmanager
import subprocess
import sys

import httpx
import pytest
import pytest_asyncio

from enforcement.api import create_app
from enforcement.auth import ApiKeys
from tests.conftest import ROOT
from tests.integration.test_enforcement_reservations import budget, make_env

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

CHECK = {"team": "payments", "provider": "openai", "model": "gpt-4o", "estimated_cost_usd": "0.01"}
BUDGET = {"id": "pay-m", "scope": {"kind": "team", "value": "payments"}, "limit_usd": "100", "mode": "enforce"}
ENDPOINTS = [
    ("GET", "/healthz", None), ("GET", "/readyz", None), ("GET", "/metrics", None), ("POST", "/v1/check", CHECK),
    ("POST", "/v1/reservations/r1/release", None), ("GET", "/v1/budgets", None), ("GET", "/v1/budgets/pay-m", None),
    ("POST", "/v1/budgets", BUDGET), ("PUT", "/v1/budgets/pay-m", BUDGET), ("DELETE", "/v1/budgets/pay-m", None),
    ("GET", "/v1/spend?scope=team:payments", None), ("GET", "/v1/decisions", None),
]


class Api:
    def __init__(self, client: httpx.AsyncClient, keys: dict[str, str], env) -> None:
        self.client, self.keys, self.env = client, keys, env

    async def call(self, who: str | None, method: str, path: str, body=None, header: str = "bearer") -> httpx.Response:
        headers = {}
        if who is not None:
            key = self.keys.get(who, who)
            headers = {"Authorization": f"Bearer {key}"} if header == "bearer" else {"X-API-Key": key}
        return await self.client.request(method, path, json=body, headers=headers)


@pytest_asyncio.fixture
async def api(isolated, redis_url):
    env = make_env(redis_url, isolated.prefix)  # single Redis and Redis Cluster (parametrized)
    ak = ApiKeys(env.r, isolated.prefix)
    keys = {
        "admin": (await ak.create("ops", "admin"))[0],
        "svc": (await ak.create("checkout", "check", ["payments"]))[0],
        "lead": (await ak.create("pay-lead", "read", ["payments"]))[0],
    }
    await env.budgets(budget("pay-m", "team", "payments", "100"), budget("search-m", "team", "search", "100"),
                      budget("org-m", "org", "all", "1000"))
    app = create_app(env.checker, ak)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        yield Api(client, keys, env)
    await env.r.aclose()


@pytest.mark.parametrize("method,path,body", ENDPOINTS)
async def test_every_endpoint_refuses_a_missing_or_unknown_key(api, method, path, body):
    for who in (None, "ss_00000000_not-a-key"):
        resp = await api.call(who, method, path, body)
        assert resp.status_code == 401, (who, resp.text)
        assert resp.json()["error"]


@pytest.mark.parametrize("who,method,path,body,status", [
    ("svc", "POST", "/v1/check", CHECK, 200),
    ("svc", "POST", "/v1/check", {**CHECK, "team": "search"}, 403),
    ("svc", "GET", "/v1/spend?scope=team:payments", None, 403),
    ("svc", "GET", "/v1/budgets", None, 403),
    ("svc", "PUT", "/v1/budgets/pay-m", BUDGET, 403),
    ("lead", "GET", "/v1/spend?scope=team:payments", None, 200),
    ("lead", "GET", "/v1/spend?scope=team_use_case:payments/chat", None, 200),
    ("lead", "GET", "/v1/spend?scope=team:search", None, 403),
    ("lead", "GET", "/v1/spend?scope=org:all", None, 403),
    ("lead", "GET", "/v1/budgets/pay-m", None, 200),
    ("lead", "GET", "/v1/budgets/search-m", None, 403),
    ("lead", "POST", "/v1/check", CHECK, 403),
    ("lead", "PUT", "/v1/budgets/pay-m", BUDGET, 403),
    ("lead", "DELETE", "/v1/budgets/pay-m", None, 403),
    ("admin", "POST", "/v1/check", {**CHECK, "team": "search"}, 200),
    ("admin", "GET", "/v1/spend?scope=org:all", None, 200),
    ("admin", "PUT", "/v1/budgets/pay-m", BUDGET, 200),
    ("admin", "POST", "/v1/budgets", BUDGET, 409),
    ("admin", "DELETE", "/v1/budgets/nope", None, 404),
    ("admin", "GET", "/v1/decisions", None, 200),
    ("lead", "GET", "/healthz", None, 200),
    ("svc", "GET", "/metrics", None, 200),
])
async def test_scopes_decide_what_a_key_may_do(api, who, method, path, body, status):
    resp = await api.call(who, method, path, body)
    assert resp.status_code == status, resp.text


async def test_a_team_lead_lists_only_their_teams_budgets(api):
    resp = await api.call("lead", "GET", "/v1/budgets", header="x-api-key")
    assert [b["id"] for b in resp.json()] == ["pay-m"]


async def test_another_teams_service_may_not_release_a_reservation(api, isolated):
    rid = (await api.call("admin", "POST", "/v1/check", {**CHECK, "team": "search", "reserve": True})).json()["reservation_id"]
    assert (await api.call("svc", "POST", f"/v1/reservations/{rid}/release")).status_code == 403
    first = await api.call("admin", "POST", f"/v1/reservations/{rid}/release")
    again = await api.call("admin", "POST", f"/v1/reservations/{rid}/release")
    assert (first.json()["released"], again.json()["released"]) == (True, False)


@pytest.mark.parametrize("body,fragment", [
    ({**CHECK, "estimated_cost_usd": "1e9"}, "estimated_cost_usd"),
    ({"team": "payments", "provider": "openai", "model": "gpt-4o"}, "estimated_input_tokens"),
    ({**CHECK, "colour": "red"}, "colour"),
    ({**CHECK, "estimated_cost_usd": 0.1}, "estimated_cost_usd"),
])
async def test_a_bad_body_is_a_422_that_says_what_is_wrong(api, body, fragment):
    resp = await api.call("svc", "POST", "/v1/check", body)
    assert resp.status_code == 422
    assert fragment in " ".join(resp.json()["detail"])


async def test_a_bad_scope_or_budget_is_a_422(api):
    assert (await api.call("admin", "GET", "/v1/spend?scope=galaxy:far")).status_code == 422
    downgrade = {**BUDGET, "action": "downgrade"}
    resp = await api.call("admin", "PUT", "/v1/budgets/pay-m", downgrade)
    assert resp.status_code == 422 and "downgrade_model" in resp.json()["error"]


async def test_spend_shows_what_a_reservation_holds(api):
    await api.call("svc", "POST", "/v1/check", {**CHECK, "estimated_cost_usd": "2.5", "reserve": True})
    spend = (await api.call("lead", "GET", "/v1/spend?scope=team:payments&period=month")).json()
    assert (spend["spent_usd"], spend["held_usd"]) == ("0.000000000", "2.500000000")
    assert spend["budgets"][0]["remaining_usd"] == "97.500000000"


async def test_decisions_show_a_team_lead_only_their_team(api):
    key = api.env.store.keys.decisions()
    for bid, scope in (("pay-m", "team:payments"), ("search-m", "team:search")):
        await api.env.r.hset(key, bid, json.dumps({"budget_id": bid, "action": "deny", "scope": scope,
                                                   "window": "m:202611", "expires_at_ms": 2**50, "reason": "x"}))
    assert [d["budget_id"] for d in (await api.call("lead", "GET", "/v1/decisions")).json()] == ["pay-m"]
    assert len((await api.call("admin", "GET", "/v1/decisions")).json()) == 2


async def test_budget_writes_through_the_api_apply_to_the_next_check(api):
    tight = {**BUDGET, "limit_usd": "0.001", "action": "deny"}
    assert (await api.call("admin", "PUT", "/v1/budgets/pay-m", tight)).status_code == 200
    assert (await api.call("svc", "POST", "/v1/check", CHECK)).json()["decision"] == "deny"


async def test_keys_create_prints_a_key_that_is_stored_only_hashed(isolated):
    import redis

    out = subprocess.run([sys.executable, "-m", "spendstream", "keys", "create", "--name", "svc", "--scope", "check",
                          "--team", "payments"], env={**os.environ, **isolated.env}, capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip()
    assert key.startswith("ss_")
    stored = redis.Redis.from_url(isolated.servers.redis_url).hgetall(f"{isolated.prefix}:{{auth}}:keys")
    assert len(stored) == 1 and key.encode() not in b"".join(k + v for k, v in stored.items())


# --- the web console (/ui): the same keys, from its sign-in cookie -----------------------------------------------

CONSOLE_PAGES = ["/ui/", "/ui/live/overview", "/ui/team/payments", "/ui/team/payments/live", "/ui/budgets",
                 "/ui/budgets/new", "/ui/budgets/pay-m", "/ui/reports", "/ui/reports/jobs"]
CONSOLE_POSTS = ["/ui/budgets/new", "/ui/budgets/pay-m", "/ui/budgets/pay-m/delete", "/ui/reports"]


class Console:
    """A browser-like client of the console: cookies kept, https (the cookies are Secure)."""

    def __init__(self, app, keys: dict[str, str]) -> None:
        self.app, self.keys = app, keys

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="https://console.test")

    @asynccontextmanager
    async def signed_in(self, who: str):
        async with self.client() as c:
            page = await c.get("/ui/sign-in")
            resp = await c.post("/ui/sign-in", data={"key": self.keys[who], "csrf": _csrf(page.text)})
            assert resp.status_code == 303, resp.text
            yield c


def _csrf(html: str) -> str:
    import re

    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


@pytest_asyncio.fixture
async def console(isolated, redis_url, tmp_path):
    from enforcement.console import ConsoleDeps

    env = make_env(redis_url, isolated.prefix)
    ak = ApiKeys(env.r, isolated.prefix)
    keys = {"admin": (await ak.create("ops", "admin"))[0], "svc": (await ak.create("checkout", "check", ["payments"]))[0],
            "lead": (await ak.create("pay-lead", "read", ["payments"]))[0]}
    await env.budgets(budget("pay-m", "team", "payments", "100"), budget("search-m", "team", "search", "100"))
    app = create_app(env.checker, ak, console=ConsoleDeps(None, isolated.database, tmp_path / "reports"))
    yield Console(app, keys)
    await env.r.aclose()


@pytest.mark.parametrize("path", CONSOLE_PAGES)
async def test_every_console_page_sends_a_visitor_without_a_session_to_sign_in(console, path):
    async with console.client() as c:
        resp = await c.get(path)
        assert (resp.status_code, resp.headers["location"]) == (303, "/ui/sign-in")
        c.cookies.set("ss_console", "ss_00000000_not-a-key", domain="console.test", path="/ui")
        assert (await c.get(path)).status_code == 303  # an unknown or revoked key is no session
        htmx = await c.get(path, headers={"HX-Request": "true"})
        assert (htmx.status_code, htmx.headers["hx-redirect"]) == (401, "/ui/sign-in")


@pytest.mark.parametrize("path", CONSOLE_POSTS)
async def test_every_console_form_refuses_a_post_without_a_session_or_csrf_token(console, path):
    async with console.client() as c:
        assert (await c.post(path, data={"limit_usd": "1"})).status_code == 303
    async with console.signed_in("admin") as c:
        resp = await c.post(path, data={"id": "x", "limit_usd": "1", "kind": "weekly", "period": "2026-W47"})
        assert resp.status_code == 403 and "form expired" in resp.text
        token = c.cookies["ss_console_csrf"]
        forged = await c.post(path, data={"csrf": token, "period": "2026-W47", "kind": "weekly"},
                              headers={"Origin": "https://evil.test"})
        assert forged.status_code == 403


@pytest.mark.parametrize("who,path,status", [
    ("lead", "/ui/", 303), ("lead", "/ui/team/payments", 200), ("lead", "/ui/team/payments/live", 200),
    ("lead", "/ui/team/search", 403), ("lead", "/ui/team/search/live", 403), ("lead", "/ui/live/overview", 403),
    ("lead", "/ui/budgets", 403), ("lead", "/ui/budgets/pay-m", 403), ("lead", "/ui/budgets/new", 403),
    ("lead", "/ui/reports", 200),
    ("admin", "/ui/", 200), ("admin", "/ui/team/search", 200), ("admin", "/ui/budgets", 200),
    ("admin", "/ui/budgets/pay-m", 200), ("admin", "/ui/budgets/nope", 404), ("admin", "/ui/reports", 200),
])
async def test_console_pages_follow_the_key_scopes(console, who, path, status):
    async with console.signed_in(who) as c:
        resp = await c.get(path)
        assert resp.status_code == status, resp.text
        if who == "lead" and path == "/ui/":
            assert resp.headers["location"] == "/ui/team/payments"


async def test_a_read_key_may_not_change_budgets_or_build_the_org_reports(console):
    async with console.signed_in("lead") as c:
        token = c.cookies["ss_console_csrf"]
        for path in ("/ui/budgets/new", "/ui/budgets/pay-m", "/ui/budgets/pay-m/delete"):
            resp = await c.post(path, data={"csrf": token, "id": "pay-m", "scope_kind": "team", "scope_value":
                                            "payments", "period": "month", "limit_usd": "1", "mode": "enforce",
                                            "action": "deny", "thresholds": "100"})
            assert resp.status_code == 403, path
        for kind in ("monthly", "focus"):
            resp = await c.post("/ui/reports", data={"csrf": token, "kind": kind, "period": "2026-11"})
            assert resp.status_code == 403
    async with console.signed_in("admin") as c:
        assert "100.00" in (await c.get("/ui/budgets")).text  # pay-m unchanged


async def test_check_and_ingest_keys_cannot_sign_in_and_the_cookie_is_strict(console):
    async with console.client() as c:
        page = await c.get("/ui/sign-in")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "unsafe-inline" not in page.headers["content-security-policy"]
        resp = await c.post("/ui/sign-in", data={"key": console.keys["svc"], "csrf": _csrf(page.text)})
        assert resp.status_code == 403 and "cannot use the console" in resp.text
        resp = await c.post("/ui/sign-in", data={"key": console.keys["lead"], "csrf": _csrf(page.text)})
        cookie = [h for h in resp.headers.get_list("set-cookie") if h.startswith("ss_console=")][0].lower()
        for attr in ("secure", "httponly", "samesite=strict", "path=/ui"):
            assert attr in cookie
        assert console.keys["lead"] not in resp.headers["location"]


async def test_console_routes_are_not_in_the_openapi_schema(console):
    async with console.client() as c:
        paths = (await c.get("/openapi.json")).json()["paths"]
    assert paths and not [p for p in paths if p.startswith("/ui")]
