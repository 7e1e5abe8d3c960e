"""The HTTP API (ASGI app on real Redis) refuses bad input with a JSON 4xx that says what is wrong, and never books
or holds anything for it: non-object JSON, negative or huge token estimates, an empty team, hold_ttl_s out of
range, and bodies over the size limit (413)."""

from __future__ import annotations

import json

import pytest

from enforcement.api import MAX_BODY_BYTES
from tests.integration.test_api_auth import BUDGET, CHECK, api  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

POSTS = [("POST", "/v1/check"), ("POST", "/v1/budgets"), ("PUT", "/v1/budgets/pay-m")]


async def _raw(api, method: str, path: str, content, headers=None):
    h = {"Authorization": f"Bearer {api.keys['admin']}", "content-type": "application/json", **(headers or {})}
    return await api.client.request(method, path, content=content, headers=h)


@pytest.mark.parametrize("method,path", POSTS)
@pytest.mark.parametrize("body", ["[]", "[1, 2]", '"payments"', "1", "null", "true", "{", "not json", "",
                                  b'{"team": "\xff\xfe"}'])  # the last: JSON that is not UTF-8 (was a bare 400)
async def test_a_body_that_is_not_a_json_object_is_a_422(api, method, path, body):
    resp = await _raw(api, method, path, body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] == "invalid request" and resp.json()["detail"]


@pytest.mark.parametrize("field,value", [
    ("estimated_input_tokens", -1), ("estimated_output_tokens", -1), ("estimated_input_tokens", -(2**63)),
    ("estimated_input_tokens", 100_000_001), ("estimated_output_tokens", 2**63), ("estimated_input_tokens", 10**40),
    ("estimated_input_tokens", 1.5), ("estimated_input_tokens", "12"), ("estimated_output_tokens", True),
    ("hold_ttl_s", "60"), ("reserve", "yes"), ("reserve", 1),
    ("team", ""), ("hold_ttl_s", 0), ("hold_ttl_s", -5), ("hold_ttl_s", 86_401), ("hold_ttl_s", 10**18),
])
async def test_out_of_range_check_fields_are_a_422_naming_the_field(api, field, value):
    body = {**CHECK, "estimated_cost_usd": None, "estimated_input_tokens": 10, "reserve": True, field: value}
    resp = await api.call("admin", "POST", "/v1/check", body)
    assert resp.status_code == 422, resp.text
    assert field in " ".join(resp.json()["detail"]), resp.json()
    spend = (await api.call("admin", "GET", "/v1/spend?scope=team:payments")).json()
    assert spend["held_usd"] == "0.000000000"  # nothing was held for a refused request


@pytest.mark.parametrize("field,value", [("estimated_input_tokens", 100_000_000), ("hold_ttl_s", 1),
                                         ("hold_ttl_s", 86_400), ("estimated_output_tokens", 0)])
async def test_check_fields_at_their_bounds_are_answered(api, field, value):
    body = {**CHECK, "estimated_cost_usd": None, "estimated_input_tokens": 10, field: value}
    resp = await api.call("admin", "POST", "/v1/check", body)
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("method,path", POSTS)
async def test_a_body_over_the_limit_is_a_413_with_a_json_message(api, method, path):
    big = json.dumps({**CHECK, "pad": "x" * (MAX_BODY_BYTES + 10)})
    resp = await _raw(api, method, path, big)
    assert resp.status_code == 413, resp.text
    assert "too large" in resp.json()["error"]


async def test_a_chunked_body_over_the_limit_without_content_length_is_a_413(api):
    async def chunks():
        for _ in range(MAX_BODY_BYTES // 65_536 + 2):
            yield b" " * 65_536

    resp = await _raw(api, "POST", "/v1/check", chunks())
    assert resp.status_code == 413, resp.text
    assert "too large" in resp.json()["error"]


async def test_a_chunked_body_under_the_limit_is_read_as_usual(api):
    body = json.dumps(CHECK).encode()

    async def chunks():
        yield body[:10]
        yield body[10:]

    resp = await _raw(api, "POST", "/v1/check", chunks())
    assert resp.status_code == 200, resp.text


async def test_a_body_just_under_the_limit_is_parsed_not_refused(api):
    body = json.dumps({**CHECK, "team": "p" * 201}).ljust(MAX_BODY_BYTES)  # padded with spaces: still JSON
    resp = await _raw(api, "POST", "/v1/check", body)
    assert resp.status_code == 422 and "team" in " ".join(resp.json()["detail"])  # too long a team, not too big
    budget = json.dumps(BUDGET).ljust(MAX_BODY_BYTES)
    assert (await _raw(api, "PUT", "/v1/budgets/pay-m", budget)).status_code == 200
