"""The lean path of POST /v1/check (enforcement/fast_check.py) on real Redis: it answers the happy path itself (no
hand-over to the FastAPI app, the request metrics as the FastAPI route gave them), and every answer - success or
error - is byte for byte what the FastAPI route gives for the same request. The FastAPI route is reached by sending
the same body chunked (no Content-Length), which the lean path always hands over. A check runs once per request:
an exception from it is answered by the app's handler, never by running the check again."""

from __future__ import annotations

import json

import httpx
import pytest
import pytest_asyncio

from enforcement.api import MAX_BODY_BYTES, Metrics, create_app
from enforcement.auth import ApiKeys
from enforcement.checker import Checker
from enforcement.errors import InvalidRequest
from tests.integration.test_enforcement_reservations import budget, make_env

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

CHECK = {"team": "payments", "provider": "openai", "model": "gpt-4o", "estimated_cost_usd": "0.01"}
TOKENS = {"team": "payments", "use_case": "checkout", "cost_center": "cc-1", "environment": "production",
          "provider": "openai", "model": "gpt-4o", "estimated_input_tokens": 1200, "estimated_output_tokens": 300}


class CountingChecker(Checker):
    """The real Checker, counting its calls; a request with project "boom-after" / "crash-after" raises after the
    check ran (and reserved), as a failure after the side effect would."""

    calls = 0

    async def check(self, req, api_key=None):
        self.calls += 1
        out = await super().check(req, api_key)
        if req.project == "boom-after":
            raise InvalidRequest("boom after the check")
        if req.project == "crash-after":
            raise RuntimeError("crash after the check")
        return out


class Lean:
    def __init__(self, client: httpx.AsyncClient, keys: dict[str, str], metrics: Metrics, checker, env) -> None:
        self.client, self.keys, self.metrics, self.checker, self.env = client, keys, metrics, checker, env

    async def post(self, content: bytes, headers: dict[str, str], chunked: bool = False) -> httpx.Response:
        if chunked:
            async def chunks():
                yield content[:7]
                yield content[7:]
            return await self.client.post("/v1/check", content=chunks(), headers=headers)
        return await self.client.post("/v1/check", content=content, headers=headers)

    def delegated(self, reason: str | None = None) -> float:
        if reason is not None:
            return self.metrics.registry.get_sample_value("spendstream_api_fast_path_delegated_total",
                                                          {"reason": reason}) or 0.0
        return sum(s.value for m in self.metrics.registry.collect() if m.name == "spendstream_api_fast_path_delegated"
                   for s in m.samples if s.name.endswith("_total"))

    def answered(self, status: int) -> float:
        return self.metrics.registry.get_sample_value("spendstream_api_requests_total",
                                                      {"route": "/v1/check", "status": str(status)}) or 0.0

    async def held(self) -> str:
        resp = await self.client.get("/v1/spend?scope=team:payments",
                                     headers={"Authorization": f"Bearer {self.keys['admin']}"})
        return resp.json()["held_usd"]


@pytest_asyncio.fixture
async def lean(isolated, redis_url):
    env = make_env(redis_url, isolated.prefix)
    checker = CountingChecker(env.checker.store, env.checker.reservations, env.checker.throttle,
                              env.checker.prices, env.clock, cache_ttl_s=60.0)
    ak = ApiKeys(env.r, isolated.prefix)
    keys = {
        "admin": (await ak.create("ops", "admin"))[0],
        "svc": (await ak.create("checkout", "check", ["payments"]))[0],
        "lead": (await ak.create("pay-lead", "read", ["payments"]))[0],
    }
    await env.budgets(budget("pay-m", "team", "payments", "100"), budget("org-m", "org", "all", "1000"),
                      budget("tiny", "team", "search", "0.001", mode="enforce"))
    metrics = Metrics()
    app = create_app(checker, ak, metrics=metrics)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield Lean(client, keys, metrics, checker, env)
    await env.r.aclose()


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "content-type": "application/json"}


async def test_the_lean_path_answers_a_check_itself(lean):
    for body in (CHECK, TOKENS, {**CHECK, "reserve": True}):
        resp = await lean.post(json.dumps(body).encode(), _bearer(lean.keys["svc"]))
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "application/json"
        assert resp.json()["decision"] == "allow"
    assert lean.delegated() == 0  # nothing was handed to the FastAPI app
    assert lean.answered(200) == 3  # counted as the FastAPI route's requests are
    assert lean.metrics.registry.get_sample_value("spendstream_api_checks_total", {"decision": "allow"}) == 3
    assert lean.metrics.registry.get_sample_value("spendstream_api_check_seconds_count") == 3
    assert lean.metrics.registry.get_sample_value("spendstream_api_request_seconds_count",
                                                  {"route": "/v1/check"}) == 3


def _same_answer(lean_resp: httpx.Response, fastapi_resp: httpx.Response) -> None:
    assert lean_resp.status_code == fastapi_resp.status_code, (lean_resp.text, fastapi_resp.text)
    assert lean_resp.headers.raw == fastapi_resp.headers.raw
    assert lean_resp.content == fastapi_resp.content


# (who, body, extra headers, status, the reason the lean path hands it over; None: it answers)
SAME = [
    ("svc", CHECK, {}, 200, None),
    ("svc", TOKENS, {}, 200, None),
    ("svc", {**CHECK, "team": "search", "estimated_cost_usd": "5"}, {}, 403, "forbidden"),
    ("admin", {**CHECK, "team": "search", "estimated_cost_usd": "5"}, {}, 200, None),  # a deny (over "tiny")
    ("lead", CHECK, {}, 403, "forbidden"),
    (None, CHECK, {}, 401, "key"),
    ("ss_00000000_not-a-key", CHECK, {}, 401, "key"),
    ("svc", {**CHECK, "team": ""}, {}, 422, "invalid"),
    ("svc", {**CHECK, "estimated_input_tokens": "12"}, {}, 422, "invalid"),
    ("svc", {**CHECK, "reserve": 1}, {}, 422, "invalid"),
    ("svc", {**CHECK, "extra": 1}, {}, 422, "invalid"),
    ("svc", {"team": "payments"}, {}, 422, "invalid"),
    ("svc", b"[1, 2]", {}, 422, "invalid"),
    ("svc", b"{", {}, 422, "invalid"),
    ("svc", b"", {}, 422, "invalid"),
    ("svc", b'{"team": "\xff\xfe"}', {}, 422, "invalid"),
    ("svc", CHECK, {"content-type": "text/plain"}, 422, "content_type"),
    ("svc", CHECK, {"content-type": "application/json; charset=utf-8"}, 200, None),
]


@pytest.mark.parametrize("who,body,extra,status,reason", SAME)
async def test_every_answer_is_the_fastapi_routes(lean, who, body, extra, status, reason):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": "application/json", **extra}
    if who is not None:
        headers["Authorization"] = f"Bearer {lean.keys.get(who, who)}"
    before = lean.delegated()
    fast = await lean.post(content, headers)
    assert fast.status_code == status, fast.text
    assert lean.delegated() - before == (0 if reason is None else 1)
    if reason is not None:
        assert lean.delegated(reason) == 1
    slow = await lean.post(content, headers, chunked=True)
    _same_answer(fast, slow)


@pytest.mark.parametrize("headers", [
    {"X-API-Key": "{svc}"}, {"Authorization": "bearer {svc}"}, {"Authorization": "Bearer   {svc}  "},
    {"Authorization": "Basic {svc}", "X-API-Key": "{svc}"}, {"Authorization": "Bearer", "X-API-Key": "{svc}"},
    {"Authorization": "Bearer {lead}", "X-API-Key": "{svc}"},  # the bearer key wins: 403
    {"Authorization": "Basic {svc}"}, {"X-API-Key": ""},
])
async def test_the_key_is_taken_as_the_fastapi_dependency_takes_it(lean, headers):
    h = {k: v.format(**lean.keys) for k, v in headers.items()}
    content = json.dumps(CHECK).encode()
    fast = await lean.post(content, {"content-type": "application/json", **h})
    slow = await lean.post(content, {"content-type": "application/json", **h}, chunked=True)
    _same_answer(fast, slow)


async def test_a_body_over_the_limit_is_the_fastapi_apps_413(lean):
    big = json.dumps({**CHECK, "pad": "x" * (MAX_BODY_BYTES + 10)}).encode()
    resp = await lean.post(big, _bearer(lean.keys["svc"]))
    assert resp.status_code == 413 and "too large" in resp.json()["error"]
    assert lean.delegated("length") == 1
    resp = await lean.client.get("/v1/check", headers=_bearer(lean.keys["svc"]))
    assert resp.status_code == 405 and lean.delegated("method") == 1


async def test_a_reserve_holds_once(lean):
    resp = await lean.post(json.dumps({**CHECK, "reserve": True}).encode(), _bearer(lean.keys["svc"]))
    assert resp.status_code == 200 and resp.json()["reservation_id"]
    assert lean.checker.calls == 1
    assert await lean.held() == "0.010000000"


@pytest.mark.parametrize("project,status", [("boom-after", 422), ("crash-after", 500)])
async def test_a_failure_after_the_check_is_answered_without_checking_again(lean, project, status):
    body = json.dumps({**CHECK, "reserve": True, "project": project}).encode()
    fast = await lean.post(body, _bearer(lean.keys["svc"]))
    assert fast.status_code == status, fast.text
    assert lean.checker.calls == 1 and lean.delegated() == 0
    assert await lean.held() == "0.010000000"  # one hold, not two
    assert lean.answered(status) == 1
    slow = await lean.post(body, _bearer(lean.keys["svc"]), chunked=True)  # the FastAPI route's answer, the same
    _same_answer(fast, slow)
