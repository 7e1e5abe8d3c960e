"""The console in a real browser (Debian Chromium headless) on real servers: a real API process, a real worker,
events through Kafka into Redis and ClickHouse. A team lead signs in with a read key and sees the team's spend equal
to GET /v1/spend to the cent (and to the oracle's total), is refused another team, and sees the deny decision
appear live once spend crosses the hard limit; an admin edits a budget and sees the change and its history."""

from __future__ import annotations

import asyncio
import os
import shutil
import time

import httpx
import pytest

from schemas.models import Budget, BudgetScope
from spendstream.allocation import owner_of
from spendstream.cli.services import create_topics
from spendstream.money import format_usd, usd_to_nanos
from spendstream.synthetic import SyntheticStream
from tests.console.browser import api_up, browser_page, create_keys, sign_in, sign_out
from tests.conftest import ROOT, child, encode_events, produce, wait_until
from tests.oracle import oracle_total

pytestmark = pytest.mark.integration

N = 3000
HOUR_MS = 3_600_000


def _events(now: int) -> list[dict]:
    """N events spread over the hours of this month so far (at most 3 days back): the charts have a shape."""
    month_start = now - (now % 86_400_000) - (time.gmtime(now / 1000).tm_mday - 1) * 86_400_000
    hours = max(1, min(72, (now - month_start) // HOUR_MS))
    stream = SyntheticStream(seed=5)
    return [stream.event(now - (i % hours) * HOUR_MS - 60_000) for i in range(N)]


def _keys(settings) -> dict[str, str]:
    return create_keys(settings, {"lead": ("pay-lead", "read", ["payments"]), "admin": ("finops-admin", "admin", [])})


def test_a_team_lead_and_an_admin_use_the_console(isolated, tmp_path):
    from sinks.clickhouse.schema import connect, migrate
    from spendstream.cli.budgets import store_for

    settings = isolated.settings()
    create_topics(settings)
    ch = connect(settings.clickhouse.dsn)
    migrate(ch, settings.clickhouse.database)
    now = int(time.time() * 1000)
    events = _events(now)
    payments = oracle_total([e for e in events if owner_of(e).team == "payments"])
    limit = payments // 2  # this stream crosses it: the worker takes a deny decision
    budgets = (Budget(id="payments-m", scope=BudgetScope(kind="team", value="payments"), limit_usd=format_usd(limit),
                      mode="enforce", action="deny"),
               Budget(id="search-m", scope=BudgetScope(kind="team", value="search"), limit_usd="1000"))

    async def put():
        store = store_for(settings)
        for b in budgets:
            await store.put_budget(b)

    asyncio.run(put())
    keys = _keys(settings)
    port = settings.api.port
    base = f"http://127.0.0.1:{port}"
    shots = tmp_path / "screenshots"

    with child(["api"], isolated.env, tmp_path / "api.log"), browser_page(shots) as page:
        wait_until(lambda: api_up(port), 60, what="API up")
        # a team lead: signs in with a read key (the Secure cookie works on http://127.0.0.1: a secure context)
        sign_in(page, base, keys["lead"])
        assert page.url == f"{base}/ui/team/payments"
        assert page.locator("#decisions").inner_text() == "No active decisions."
        page.screenshot(path=str(shots / "team-before.png"), full_page=True)

        with child(["worker"], isolated.env, tmp_path / "worker.log"):
            produce(settings.kafka.bootstrap_servers, settings.kafka.usage_topic, encode_events(events))
            # the deny appears on the open page by itself (htmx polls the live part)
            page.wait_for_selector('#decisions tr[data-decision="deny"]', timeout=120_000)
            db = settings.clickhouse.database
            wait_until(lambda: ch.query(f"SELECT count() FROM {db}.priced_events").result_rows[0][0] >= N, 120,
                       what="events in ClickHouse")

        spend = httpx.get(f"{base}/v1/spend", params={"scope": "team:payments"}, timeout=10,
                          headers={"authorization": f"Bearer {keys['lead']}"}).json()
        assert usd_to_nanos(spend["spent_usd"]) == payments  # the API agrees with the oracle to the nano-USD
        page.reload()
        page.wait_for_selector("body[data-charts-ready] .chart canvas")
        shown = page.locator("#team-spent")
        assert shown.get_attribute("value") == spend["spent_usd"]
        assert shown.inner_text() == f"{usd_to_nanos(spend['spent_usd']) / 1e9:,.2f}"  # to the cent
        assert "payments-m" in page.locator("#decisions").inner_text()
        assert "over budget" in page.locator("#budget-status").inner_text()
        page.screenshot(path=str(shots / "team.png"), full_page=True)
        if os.environ.get("CONSOLE_SCREENSHOT_TO_DOCS"):
            (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
            shutil.copy(shots / "team.png", ROOT / "docs" / "img" / "console-team.png")

        # another team's page is refused
        resp = page.goto(f"{base}/ui/team/search")
        assert resp.status == 403
        assert "may not read team 'search'" in page.locator("#refusal").inner_text()
        page.screenshot(path=str(shots / "refused.png"))
        sign_out(page)
        assert page.context.cookies() == [] or all(c["name"] != "ss_console" for c in page.context.cookies())

        # an admin: overview, then a budget edit with an inline validation message, the change and its history
        sign_in(page, base, keys["admin"], keyboard=True)
        assert page.url == f"{base}/ui/"
        page.wait_for_selector("body[data-charts-ready]")
        assert page.locator("#org-spent").get_attribute("value") == httpx.get(
            f"{base}/v1/spend", params={"scope": "org:all"}, timeout=10,
            headers={"authorization": f"Bearer {keys['admin']}"}).json()["spent_usd"]
        page.screenshot(path=str(shots / "overview.png"), full_page=True)
        page.get_by_role("link", name="Budgets").click()
        page.get_by_role("link", name="search-m").click()
        page.get_by_label("Limit (USD)").fill("12.5.0")
        page.get_by_role("button", name="Save changes").click()
        assert page.locator("#e-limit_usd").is_visible()
        page.screenshot(path=str(shots / "budget-invalid.png"), full_page=True)
        page.get_by_label("Limit (USD)").fill("1500")
        page.get_by_role("button", name="Save changes").click()
        page.wait_for_selector("#history td:text('update')")
        history = page.locator("#history").inner_text()
        assert 'limit_usd: "1000" → "1500"' in history and "finops-admin" in history
        assert page.get_by_label("Limit (USD)").input_value() == "1500"
        page.screenshot(path=str(shots / "budget-history.png"), full_page=True)
        api_budget = httpx.get(f"{base}/v1/budgets/search-m", timeout=10,
                               headers={"authorization": f"Bearer {keys['admin']}"}).json()
        assert api_budget["limit_usd"] == "1500"
        # reports: the FOCUS export of this month, built in the background, then downloaded
        page.get_by_role("link", name="Reports").click()
        page.get_by_label("Billing month").fill(time.strftime("%Y-%m", time.gmtime(now / 1000)))
        page.get_by_role("button", name="Build the FOCUS export").click()
        page.wait_for_selector('#jobs tr[data-status="done"] a', timeout=180_000)
        with page.expect_download() as dl:
            page.locator('#jobs tr[data-status="done"] a').first.click()
        saved = tmp_path / dl.value.suggested_filename
        dl.value.save_as(saved)
        assert saved.name.startswith("focus-") and saved.read_text().count("\n") > 1
        page.screenshot(path=str(shots / "reports.png"), full_page=True)
        assert not [p for p in page.problems if "Content Security Policy" in p or "Refused to" in p], page.problems
        # and the browser enforces the policy: an inline style injected into the page is refused
        with page.expect_console_message(lambda m: "Content Security Policy" in m.text):
            page.evaluate("document.head.insertAdjacentHTML('beforeend', '<style>body{color: rgb(255, 0, 0)}</style>')")
        assert page.evaluate("getComputedStyle(document.body).color") != "rgb(255, 0, 0)"
    logs = (tmp_path / "api.log").read_text(errors="replace") + (tmp_path / "worker.log").read_text(errors="replace")
    assert keys["lead"] not in logs and keys["admin"] not in logs  # no key in the logs
    assert sorted(p.name for p in shots.iterdir()) == ["budget-history.png", "budget-invalid.png", "overview.png",
                                                       "refused.png", "reports.png", "team-before.png", "team.png"]
