"""The metrics the operators' dashboards and alert rules read (deploy/grafana, deploy/prometheus) move when work
happens, on real servers: consumer lag per partition, Redis call latency, ClickHouse insert latency (worker), and
requests by route/status and fail-mode answers (API)."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from enforcement.api import Metrics, create_app
from enforcement.auth import ApiKeys
from spendstream.cli.services import create_topics
from spendstream.synthetic import SyntheticStream
from tests.conftest import child, encode_events, produce, wait_until
from tests.integration.test_enforcement_reservations import budget, make_env
from tests.private_servers import PrivateRedis

pytestmark = pytest.mark.integration


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, from a Prometheus text exposition."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(scraped: dict, name: str, **labels) -> float:
    return sum(v for (n, ls), v in scraped.items() if n == name and all((k, v2) in ls for k, v2 in labels.items()))


def test_worker_lag_grows_while_redis_is_frozen_and_drains_and_store_and_insert_latency_are_observed(
        isolated, tmp_path):
    redis_server = PrivateRedis(tmp_path)
    env = {**isolated.env, "SPENDSTREAM_REDIS__URL": redis_server.url, "SPENDSTREAM_WORKER__LAG_INTERVAL_S": "0.5",
           "SPENDSTREAM_WORKER__BATCH_MAX": "200"}
    settings = isolated.settings()
    create_topics(settings)
    web = int(env["SPENDSTREAM_WORKER__WEB_PORT"])
    events = list(SyntheticStream(seed=5).events(6_000, int(time.time() * 1000)))

    def scrape() -> dict | None:
        try:
            return samples(httpx.get(f"http://127.0.0.1:{web}/metrics", timeout=5).text)
        except httpx.HTTPError:
            return None

    try:
        with child(["worker"], env, tmp_path / "worker.log") as w:
            produce(settings.kafka.bootstrap_servers, settings.kafka.usage_topic, encode_events(events[:1_000]))
            m = wait_until(lambda: (x := scrape()) and total(x, "spendstream_events_in_total") >= 1_000 and x, 90,
                           0.5, what="the first 1,000 events processed")
            calls = {dict(ls)["call"] for (n, ls) in m if n == "spendstream_redis_call_seconds_count"}
            assert {"apply_batch", "find_duplicates"} <= calls, calls
            assert total(m, "spendstream_redis_call_seconds_count", call="apply_batch") >= 1
            wait_until(lambda: (x := scrape()) and total(x, "spendstream_clickhouse_insert_seconds_count") >= 1, 30,
                       0.3, what="an insert timed")
            redis_server.proc.send_signal(signal.SIGSTOP)  # the worker cannot book: the broker runs ahead of it
            try:
                feeder = threading.Thread(target=produce, args=(settings.kafka.bootstrap_servers,
                                                                settings.kafka.usage_topic,
                                                                encode_events(events[1_000:])), daemon=True)
                feeder.start()
                feeder.join(60)
                lagging = wait_until(lambda: (x := scrape()) and total(x, "spendstream_consumer_lag") > 0 and x, 30,
                                     0.3, what="lag > 0 while Redis is frozen")
                assert total(lagging, "spendstream_consumer_lag") <= 5_000
                assert w.poll() is None
                time.sleep(3)  # a booking call is blocked on the frozen Redis: keep it blocked long enough to show
            finally:
                redis_server.proc.send_signal(signal.SIGCONT)
            done = wait_until(lambda: (x := scrape()) and total(x, "spendstream_events_in_total") >= 6_000 and x, 120,
                              0.5, what="every event processed")
            assert total(done, "spendstream_events_booked_total") == 6_000
            wait_until(lambda: (x := scrape()) and total(x, "spendstream_consumer_lag") == 0, 30, 0.3,
                       what="lag back to 0")
            # the freeze is in the Redis latency: some call took at least the time Redis was stopped... or timed out
            slow = scrape()
            assert total(slow, "spendstream_redis_call_seconds_sum") > 1.0
            lag_partitions = {dict(ls)["partition"] for (n, ls) in slow if n == "spendstream_consumer_lag"}
            assert lag_partitions and lag_partitions <= {str(p) for p in range(settings.kafka.partitions)}
    finally:
        redis_server.kill()


@pytest.mark.asyncio
async def test_api_counts_requests_by_route_and_status_and_fail_open_answers(tmp_path):
    server = PrivateRedis(tmp_path)
    env = make_env(server.url, "opsm", timeout_s=0.05)
    try:
        await env.store.put_budget(budget("pay", "team", "payments", "100", mode="enforce"))
        await env.store.put_budget(budget("search", "team", "search", "100"))  # showback: fails open
        keys = ApiKeys(env.r, "opsm")
        key = (await keys.create("gw", "admin", ["*"]))[0]
        h = {"Authorization": f"Bearer {key}"}
        body = {"provider": "openai", "model": "gpt-4o", "estimated_cost_usd": "0.01"}
        metrics = Metrics()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(env.checker, keys, metrics=metrics)),
                                     base_url="http://api") as c:
            for _ in range(3):
                assert (await c.post("/v1/check", json={**body, "team": "payments"}, headers=h)).status_code == 200
            assert (await c.post("/v1/check", json={**body, "team": "payments"})).status_code == 401
            assert (await c.post("/v1/check", json={"team": "payments"}, headers=h)).status_code == 422
            assert (await c.get("/v1/budgets/nope", headers=h)).status_code == 404
            assert (await c.get("/no/such/path", headers=h)).status_code == 404
            server.stop()
            env.checker.invalidate_budgets()
            for _ in range(2):
                assert (await c.post("/v1/check", json={**body, "team": "search"}, headers=h)).json()["decision"] == "allow"
            assert (await c.post("/v1/check", json={**body, "team": "payments"}, headers=h)).json()["decision"] == "deny"
            text = (await c.get("/metrics", headers=h)).text
        m = samples(text)
        r = "spendstream_api_requests_total"
        assert total(m, r, route="/v1/check", status="200") == 6
        assert total(m, r, route="/v1/check", status="401") == 1
        assert total(m, r, route="/v1/check", status="422") == 1
        assert total(m, r, route="/v1/budgets/{budget_id}", status="404") == 1
        assert total(m, r, route="unmatched", status="404") == 1
        assert total(m, "spendstream_api_request_seconds_count", route="/v1/check") == 8
        assert total(m, "spendstream_api_fail_mode_answers_total", mode="open") == 2
        assert total(m, "spendstream_api_fail_mode_answers_total", mode="closed") == 1
        assert total(m, "spendstream_api_checks_total", decision="deny") == 1
    finally:
        server.kill()
        await env.r.aclose()
