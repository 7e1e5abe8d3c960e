"""Property-based API test: schemathesis generates valid and invalid requests for every operation of the
published OpenAPI against a live `spendstream api` (uvicorn on loopback, real Redis). With an admin key:
  * never a 5xx;
  * every status code is one the operation documents, and every body matches its documented schema (response
    schema, status code and content type conformance) — the OpenAPI is the contract clients are generated from;
  * a schema-valid (positive) request is not answered 4xx, except where the answer depends on state the schema
    cannot express (listed in STATEFUL_4XX, each one checked precisely) — so a 422 for a request the schema calls
    valid means the schema or the validation is wrong.
Team-limited 403s cannot occur with an admin key; HTML routes and protobuf bodies (none on this API) would be
tested by their own tests."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance, negative_data_rejection, not_a_server_error, response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import child, wait_until

pytestmark = pytest.mark.integration

EXAMPLES = 40  # per operation and generation mode: bounded (~1,000 requests, ~10 s)
ADMIN_KEY = "ss_test_admin_for_schemathesis"
INGEST = {"/v1/events", "/v1/otlp/v1/traces"}


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/openapi.json", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _stateful_4xx(case, status: int) -> bool:
    """A 4xx for a schema-valid request that only the server's state (or a rule across two parts of the request)
    explains — each checked against the request itself, not waved through by status alone."""
    op = (case.method.upper(), case.path)
    body = case.body if isinstance(case.body, dict) else {}
    if status == 404 and op in {("GET", "/v1/budgets/{budget_id}"), ("DELETE", "/v1/budgets/{budget_id}")}:
        return True  # no such budget (the generated id was never created)
    if status == 409 and op == ("POST", "/v1/budgets"):
        return True  # a budget with this id was created by an earlier generated request
    if status == 422 and op == ("PUT", "/v1/budgets/{budget_id}") \
            and body.get("id") != case.path_parameters.get("budget_id"):
        return True  # the body id must match the path id; with matching ids, a rule across fields below
    if status == 422 and op in {("POST", "/v1/budgets"), ("PUT", "/v1/budgets/{budget_id}")}:
        return _budget_rule_broken(body)
    if status == 422 and op == ("GET", "/v1/usage"):
        return _usage_range_refused(case.query or {})
    return False


def _budget_rule_broken(body: dict) -> bool:
    """A budget the schema admits but a rule across its fields refuses (a rolling budget without a length, a
    per-minute limit on a showback budget, ...): the Budget model's own validators say so."""
    from pydantic import ValidationError

    from schemas.models import Budget

    from enforcement.budget_admin import validate_budget
    from enforcement.errors import InvalidRequest

    try:
        validate_budget(Budget.model_validate(body))
    except ValidationError as exc:
        return any(e["type"] == "value_error" for e in exc.errors())
    except InvalidRequest:
        return True  # a rule the API adds to the model's (enforcement/budget_admin.validate_budget)
    return False


def _usage_range_refused(q: dict) -> bool:
    """GET /v1/usage refuses [from, to) when `to` is not after `from` or the range holds too many periods: rules
    across two parameters, checked here from the request itself."""
    from datetime import UTC, datetime

    from enforcement.api_usage import MAX_BUCKETS

    try:
        t0, t1 = (datetime.fromisoformat(q[k]) for k in ("from", "to"))
    except ValueError:
        return True  # matches the documented pattern but names no calendar day (2026-02-30)
    t0, t1 = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (t0, t1))
    hours = {"hour": 1, "day": 24, "week": 168, "month": 672}[q.get("group_by", "day")]
    if t0.year < 2000 or t1 > datetime(2106, 1, 1, tzinfo=UTC):
        return True  # outside the time range the history holds (ClickHouse DateTime)
    return t1 <= t0 or (t1 - t0).total_seconds() / 3600 / hours > MAX_BUCKETS


def test_generated_requests_get_documented_answers_and_valid_ones_are_accepted(isolated, tmp_path):
    from sinks.clickhouse.schema import connect, migrate

    migrate(connect(isolated.ch_dsn), isolated.database)  # GET /v1/usage reads its rollups
    env = {**isolated.env, "SPENDSTREAM_API__BOOTSTRAP_ADMIN_KEY": ADMIN_KEY}
    url = f"http://127.0.0.1:{isolated.settings().api.port}"
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance,
              negative_data_rejection]
    # the ingestion routes read raw bodies (JSON lines, OTLP protobuf) and answer 202 with per-event rejects: only
    # "never a 5xx" applies to them here; tests/integration/test_http_ingest.py and test_otlp_ingest.py check them
    ingest_checks = [not_a_server_error]
    failures: list[str] = []
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
                    try:
                        resp = case.call_and_validate(base_url=url, headers=headers,
                                                      checks=ingest_checks if op.path in INGEST else checks)
                    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 — collected, reported together
                        subs = getattr(exc, "exceptions", None) or [exc]
                        failures.extend(f"{op.label} [{mode.value}]: {type(e).__name__}: {str(e)[:900]!r}" for e in subs)
                        return
                    seen.append(resp.status_code)
                    if mode is GenerationMode.POSITIVE and 400 <= resp.status_code < 500 and op.path not in INGEST \
                            and not _stateful_4xx(case, resp.status_code):
                        failures.append(f"{op.label} [positive]: a schema-valid request got {resp.status_code} "
                                        f"{resp.text[:300]} for {case.path_parameters} {case.query} {case.body!r:.300}")

                run()
                tried += len(seen)
                for code in seen:
                    statuses[code] = statuses.get(code, 0) + 1
    distinct = list(dict.fromkeys(f.split("\n")[0][:160] for f in failures))
    assert failures == [], f"{len(failures)} failures, {len(distinct)} distinct:\n" + "\n".join(distinct)
    assert tried >= len(operations) * 2  # every operation was actually exercised
    assert 200 in statuses and 422 in statuses, statuses  # valid and invalid requests both got through
