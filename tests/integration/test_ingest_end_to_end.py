"""HTTP and OTLP ingestion end to end on the real servers: `spendstream keys create --scope ingest`, the real
`spendstream api` (its Publisher -> tansu), the real worker -> Redis and ClickHouse. A retried POST and a
retried OTLP export (the real opentelemetry-sdk OTLPSpanExporter) are booked exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest
import redis
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from spendstream.cli.services import create_topics
from spendstream.pricing import default_price_book
from spendstream.windows import window_ids
from tests.conftest import ROOT, child, query_clickhouse, wait_until
from tests.integration.test_otlp_ingest import record_spans

pytestmark = pytest.mark.integration


def _ingest_key(env: dict) -> str:
    out = subprocess.run([sys.executable, "-m", "spendstream", "keys", "create", "--name", "otel-gw", "--scope",
                          "ingest", "--team", "payments"], env={**os.environ, **env}, capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _up(base: str, auth: dict) -> bool:
    try:
        return httpx.get(f"{base}/healthz", headers=auth, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _expected(events: list[dict]) -> int:
    """What the worker books for these events (validated the way the endpoints validate them)."""
    from schemas.import_lines import normalize_event
    from schemas.models import UsageEvent

    book = default_price_book()
    return sum(book.price(UsageEvent.model_validate(normalize_event(e)).model_dump()).charged_nanos for e in events)


def test_events_sent_by_http_and_by_the_otel_exporter_are_booked_exactly_once(isolated, tmp_path):
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from enforcement.intake import Reject
    from enforcement.otlp_spans import span_events

    settings = isolated.settings()
    create_topics(settings)
    key = _ingest_key(isolated.env)
    auth = {"Authorization": f"Bearer {key}"}
    base = f"http://127.0.0.1:{settings.api.port}"
    now = int(time.time() * 1000)
    http_events = [{"event_id": f"http-{i}", "event_time": now - i, "provider": "openai", "model": "gpt-4o",
                    "input_tokens": 1000 + i, "output_tokens": 100, "cost_center": "cc-1", "use_case": "qa",
                    "environment": "production", "workload_type": "inference"} for i in range(20)]
    spans, _ = record_spans({"service.name": "bot", "spendstream.use_case": "support"})
    otel_events = [{**e, "team": e["team"] or "payments"} for _, e in span_events(encode_spans(spans))
                   if not isinstance(e, Reject)]
    assert len(otel_events) == 4
    expected = _expected([{**e, "team": "payments"} for e in http_events] + otel_events)
    r = redis.Redis.from_url(settings.redis.url)
    team_key = f"{isolated.prefix}:{{team:payments}}:{window_ids(now).month}"

    with child(["api"], isolated.env, tmp_path / "api.log"):
        wait_until(lambda: _up(base, auth), 30, what="API up")
        for _ in range(2):                                  # the retry of a POST changes nothing
            resp = httpx.post(f"{base}/v1/events", json=http_events, headers=auth, timeout=10)
            assert resp.status_code == 202 and resp.json() == {"accepted": 20, "rejected": []}, resp.text
        exporter = OTLPSpanExporter(endpoint=f"{base}/v1/otlp/v1/traces", headers=auth, timeout=10)
        assert exporter.export(spans) == SpanExportResult.SUCCESS
        assert exporter.export(spans) == SpanExportResult.SUCCESS     # an exporter retry: same trace/span ids
        exporter.shutdown()
        with child(["worker"], isolated.env, tmp_path / "worker.log"):
            wait_until(lambda: int(r.hget(team_key, "events") or 0) >= 24, 90, what="24 events in Redis")
            time.sleep(2)                                   # anything booked twice would land by now

    assert int(r.hget(team_key, "events")) == 24
    assert int(r.hget(team_key, "spend")) == expected
    count, total = query_clickhouse(isolated.env, "SELECT count(), sum(cost) FROM {db}.priced_events FINAL")[0]
    assert (count, int(total)) == (24, expected)
