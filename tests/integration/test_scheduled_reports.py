"""Scheduled digests and reviews on real Redis + the real ClickHouse engine, with a controlled clock: two workers
tick at the same time and a third starts later (a restart); each period's report is written and delivered once,
per team, to a local Slack receiver and — for the team routed to email — a local SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.conftest import free_port
from tests.integration.test_reports_ledger import load

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def now_ms(self) -> int:
        return int(self.t.timestamp() * 1000)

    def monotonic(self) -> float:
        return self.t.timestamp()


@pytest.fixture
def slack():
    got: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server naming
            got.append(json.loads(self.rfile.read(int(self.headers["content-length"])))["text"])
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", got
    server.shutdown()


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    mails: list = []

    class Inbox:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd naming
            mails.append((envelope.rcpt_tos, envelope.content.decode()))
            return "250 OK"

    c = Controller(Inbox(), hostname="127.0.0.1", port=free_port())
    c.start()
    yield c.port, mails
    c.stop()


async def test_each_period_is_written_and_delivered_once_across_two_workers_and_a_restart(
        isolated, clickhouse, slack, smtp, tmp_path):
    from reports.scheduled import ScheduledReports
    from sinks.notifiers import EmailNotifier, Routing, SlackNotifier
    from sinks.redis.client import make_redis
    from sinks.redis.spend_store import RedisSpendStore

    load(clickhouse, 2_000)
    url, posts = slack
    port, mails = smtp
    r = make_redis(isolated.servers.redis_url, 2.0)
    clock = Clock(datetime(2026, 11, 23, 6, 30, tzinfo=UTC))  # Monday, after 06:00: W47 is due (and October's review)

    def worker() -> ScheduledReports:
        return ScheduledReports(lambda: clickhouse.client, clickhouse.database, RedisSpendStore(r, isolated.prefix),
                                clock, tmp_path / "reports", Routing(
                                    [SlackNotifier(url)], {"support": [EmailNotifier(
                                        "127.0.0.1", port, "finops@example.com", ("support-leads@example.com",))]}))

    a, b = worker(), worker()
    ran = await asyncio.gather(a.tick(), b.tick())
    assert sorted((x.kind, x.period) for runs in ran for x in runs) == [("monthly", "2026-10"), ("weekly", "2026-W47")]
    assert await a.tick() == [] and await worker().tick() == []  # a later tick, a restarted worker: nothing again

    teams_w47 = {p.split(" · ")[0].removeprefix(":bar_chart: ") for p in posts if "week 2026-W47" in p}
    assert teams_w47 and "support" not in teams_w47
    assert len([p for p in posts if "week 2026-W47" in p]) == len(teams_w47)  # one summary per team
    assert all("vs last week" in p and "top drivers" in p and "report:" in p for p in posts if "W47" in p)
    assert (tmp_path / "reports" / "digest-2026-W47-payments.html").exists()
    assert (tmp_path / "reports" / "review-2026-10-real-cost.html").exists()
    support = [m for to, m in mails if to == ["support-leads@example.com"]]
    assert len([m for m in support if "weekly report 2026-W47" in m]) == 1
    assert len([m for m in support if "monthly report 2026-10" in m]) == 1

    clock.t = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)  # Mon 30 Nov ran W48 (missed: catch up); Dec 2: November
    ran = await asyncio.gather(a.tick(), b.tick())
    assert sorted((x.kind, x.period) for runs in ran for x in runs) == [("monthly", "2026-11"), ("weekly", "2026-W48")]
    assert len([p for p in posts if "· 2026-11:" in p]) == len({p.split(" · ")[0] for p in posts if "· 2026-11:" in p})
    assert len([m for to, m in mails if "monthly report 2026-11" in m]) == 1
    await r.aclose()


async def test_a_report_clickhouse_refuses_is_retried_by_a_later_tick_not_lost(isolated, clickhouse, tmp_path):
    """ClickHouse away when a report is due: the tick raises StoreUnavailable (logged by the worker's timer; any
    other error crashed the worker) and gives the claim back, so the next tick writes and delivers it."""
    from reports.scheduled import ScheduledReports
    from sinks.clickhouse.schema import connect
    from sinks.redis.client import make_redis
    from sinks.redis.spend_store import RedisSpendStore
    from spendstream.errors import StoreUnavailable

    load(clickhouse, 500)
    r = make_redis(isolated.servers.redis_url, 2.0)
    clock = Clock(datetime(2026, 11, 23, 6, 30, tzinfo=UTC))
    away = f"http://default@127.0.0.1:{free_port()}/"  # nothing listens there
    target = {"client": lambda: connect(away, 2.0)}
    rep = ScheduledReports(lambda: target["client"](), clickhouse.database, RedisSpendStore(r, isolated.prefix),
                           clock, tmp_path / "reports")
    with pytest.raises(StoreUnavailable, match="not written"):
        await rep.tick()
    target["client"] = lambda: clickhouse.client  # ClickHouse back
    ran = await rep.tick()
    assert sorted((x.kind, x.period) for x in ran) == [("monthly", "2026-10"), ("weekly", "2026-W47")]
    assert (tmp_path / "reports" / "review-2026-10-real-cost.html").exists()
    await r.aclose()
