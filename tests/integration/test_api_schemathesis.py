"""Property-based API test: schemathesis generates valid and invalid requests for every operation of the
published OpenAPI; a live `spendstream api` (uvicorn on loopback, real Redis) must never answer 5xx."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.conftest import child, wait_until

pytestmark = pytest.mark.integration

EXAMPLES = 40  # per operation and generation mode: bounded (~1,000 requests, ~10 s)
ADMIN_KEY = "ss_test_admin_for_schemathesis"


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/openapi.json", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_no_generated_request_makes_the_api_answer_5xx(isolated, tmp_path):
    env = {**isolated.env, "SPENDSTREAM_API__BOOTSTRAP_ADMIN_KEY": ADMIN_KEY}
    url = f"http://127.0.0.1:{isolated.settings().api.port}"
    with child(["api"], env, tmp_path / "api.log"):
        wait_until(lambda: _up(url), 30, what="API up")
        schema = schemathesis.openapi.from_url(url + "/openapi.json")
        operations = [r.ok() for r in schema.get_all_operations()]
        assert len(operations) >= 12
        assert {"/v1/events", "/v1/otlp/v1/traces"} <= {op.path for op in operations}   # ingestion covered too
        tried = 0
        statuses: dict[int, int] = {}
        for op in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                seen: list[int] = []

                @given(case=op.as_strategy(generation_mode=mode))
                @settings(max_examples=EXAMPLES, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))
                def run(case) -> None:
                    headers = {**(case.headers or {}), "Authorization": f"Bearer {ADMIN_KEY}"}
                    resp = case.call_and_validate(base_url=url, headers=headers, checks=[not_a_server_error])
                    seen.append(resp.status_code)

                run()
                tried += len(seen)
                for code in seen:
                    statuses[code] = statuses.get(code, 0) + 1
    assert tried >= len(operations) * 2  # every operation was actually exercised
    assert 200 in statuses and 422 in statuses, statuses  # valid and invalid requests both got through
