"""Budgets evaluated by the real worker: threshold, forecast and spike alerts fire exactly once each and reach
on-call through real HTTP (a local receiver stands in for Slack, PagerDuty and a generic webhook); an enforce
budget's decision is written, published, and lifted when the budget is raised."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis
from confluent_kafka import Consumer

from schemas.models import Budget, BudgetScope
from spendstream.cli.budgets import store_for
from spendstream.cli.services import create_topics
from spendstream.pricing import default_price_book
from spendstream.windows import HOUR_MS, period_bounds, window_ids
from tests.conftest import child, encode_events, free_port, produce, wait_until

pytestmark = pytest.mark.integration

SECRET = b"webhook-secret"
TEAM = "alerting"
USD = 1_000_000_000


class Receiver:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.calls.append((self.path, json.loads(body), {k.lower(): v for k, v in self.headers.items()} | {"_raw": body}))
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def on(self, path: str) -> list[dict]:
        return [body for p, body, _ in self.calls if p == path]


def _event(i: int, ts: int, output_tokens: int) -> dict:
    # gpt-4o output at $10 / 1M tokens: $100 is 10M tokens, inside the 50M-per-event sanity cap
    return {"event_id": f"alert-{i}", "event_time": ts, "provider": "openai", "model": "gpt-4o",
            "output_tokens": output_tokens, "request_count": 0, "team": TEAM, "cost_center": "cc-7", "use_case": "qa",
            "environment": "production", "workload_type": "inference"}


def _tokens_for(nanos: int) -> int:
    per_token = default_price_book().price(_event(0, int(time.time() * 1000), 1_000_000)).charged_nanos / 1_000_000
    return max(1, round(nanos / per_token))


def test_threshold_forecast_and_spike_alerts_fire_once_and_reach_on_call(isolated, tmp_path):
    settings = isolated.settings()
    create_topics(settings)
    rx = Receiver()
    env = {**isolated.env,
           "SPENDSTREAM_ALERTS__SLACK_WEBHOOK_URL": rx.url + "/slack",
           "SPENDSTREAM_ALERTS__PAGERDUTY_ROUTING_KEY": "pd-routing-key",
           "SPENDSTREAM_ALERTS__PAGERDUTY_URL": rx.url + "/pagerduty",
           "SPENDSTREAM_ALERTS__WEBHOOK_URL": rx.url + "/webhook",
           "SPENDSTREAM_ALERTS__WEBHOOK_SECRET": SECRET.decode(),
           "SPENDSTREAM_WORKER__FORECAST_MIN_SAMPLE_PCT": "0",
           "SPENDSTREAM_WORKER__FORECAST_MIN_SAMPLE_S": "0"}
    now = int(time.time() * 1000)
    if HOUR_MS - now % HOUR_MS < 60_000:  # keep the whole test inside one clock hour (spike is per hour)
        time.sleep((HOUR_MS - now % HOUR_MS) / 1000 + 1)
        now = int(time.time() * 1000)
    limit = 100 * USD
    budget = Budget(id="alerting-m", scope=BudgetScope(kind="team", value=TEAM), period="month",
                    limit_usd="100", mode="enforce", action="deny")
    def on_store(call):  # a fresh client per call: each asyncio.run has its own loop
        return asyncio.run(call(store_for(settings)))

    on_store(lambda st: st.put_budget(budget))
    start, end = period_bounds("month", now)
    elapsed = (now - start) / (end - start)
    r = redis.Redis.from_url(settings.redis.url)
    month_key = f"{isolated.prefix}:{{team:{TEAM}}}:{window_ids(now).month}"

    def spent() -> int:
        return int(r.hget(month_key, "spend") or 0)

    history = [_event(h, now - h * HOUR_MS, _tokens_for(USD // 10)) for h in range(1, 25)
               if window_ids(now - h * HOUR_MS).month == window_ids(now).month]
    with child(["worker"], env, tmp_path / "worker.log"):
        # 1. a quiet history: $0.10 in each of the previous hours of this month
        produce(settings.kafka.bootstrap_servers, settings.kafka.usage_topic, encode_events(history))
        wait_until(lambda: spent() > 0 or not history, 60, what="history booked")
        base = spent()
        # 2. jump to between max(elapsed, 80 %) and 100 % of the limit in this hour: 50 %, 80 %, forecast, spike
        target = int(limit * (max(elapsed, 0.8) + 1) / 2)
        produce(settings.kafka.bootstrap_servers, settings.kafka.usage_topic,
                encode_events([_event(100, now, _tokens_for(target - base))]))
        wait_until(lambda: spent() > base, 60, what="phase 2 booked")
        # 3. cross the limit: 100 % and a deny decision; 4. more spend: nothing fires twice
        produce(settings.kafka.bootstrap_servers, settings.kafka.usage_topic,
                encode_events([_event(101, now, _tokens_for(limit // 5))]))
        wait_until(lambda: spent() >= limit, 60, what="limit crossed")
        produce(settings.kafka.bootstrap_servers, settings.kafka.usage_topic,
                encode_events([_event(102, now, _tokens_for(USD))]))
        wait_until(lambda: len(rx.on("/webhook")) >= 5, 60, what="5 alerts delivered")
        decision = wait_until(lambda: on_store(lambda st: st.decisions()).get("alerting-m"), 30, what="decision")
        assert decision["action"] == "deny" and decision["window"] == window_ids(now).month
        time.sleep(3)  # a second copy of any alert would arrive now

        kinds = Counter((a["kind"], a["threshold"]) for a in rx.on("/webhook"))
        assert kinds == Counter({("threshold", 50): 1, ("threshold", 80): 1, ("threshold", 100): 1,
                                 ("forecast", 100): 1, ("spike", 3): 1})
        forecast = next(a for a in rx.on("/webhook") if a["kind"] == "forecast")
        assert forecast["projected_nanos"] > limit > forecast["spent_nanos"]
        assert len(rx.on("/slack")) == 5 and all("text" in b for b in rx.on("/slack"))
        pd = rx.on("/pagerduty")
        assert len(pd) == 5 and {b["event_action"] for b in pd} == {"trigger"}
        assert all(b["routing_key"] == "pd-routing-key" and b["payload"]["source"] == "spendstream" for b in pd)
        for path, body, headers in rx.calls:
            if path == "/webhook":
                mac = hmac.new(SECRET, headers["x-spendstream-timestamp"].encode() + b"." + headers["_raw"], hashlib.sha256)
                assert headers["x-spendstream-signature"] == "sha256=" + mac.hexdigest()

        # raising the budget lifts the decision and resolves the PagerDuty incident
        on_store(lambda st: st.put_budget(budget.model_copy(update={"limit_usd": "100000"})))
        wait_until(lambda: "alerting-m" not in on_store(lambda st: st.decisions()), 30, what="decision lifted")
        wait_until(lambda: any(b["event_action"] == "resolve" for b in rx.on("/pagerduty")), 30, what="PD resolve")

    decisions = _read_all(settings.kafka.bootstrap_servers, settings.kafka.decisions_topic)
    assert [d["action"] for d in decisions] == ["deny", "lifted"]
    rx.server.shutdown()


def _read_all(bootstrap: str, topic: str) -> list[dict]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{time.time_ns()}", "auto.offset.reset": "earliest",
                  "session.timeout.ms": 6000})
    c.subscribe([topic])
    out, deadline = [], time.monotonic() + 20
    while time.monotonic() < deadline and len(out) < 2:
        out += [json.loads(m.value()) for m in c.consume(100, 0.5) if not m.error()]
    c.close()
    return out
