"""The team page's "Data quality" section on real servers, over HTTP (the rendered page, no browser: quicker): a
two-team stream through real Kafka and the real worker into ClickHouse (tests/dead_letter_mix.py), a real API
process. Team alpha's read key sees alpha's dead letters by reason and its unpriced events by model with their
share, exactly as the stream was built; beta's read key is refused alpha's page and sees only beta's counts; the
admin's overview lists the letters that name no team."""

from __future__ import annotations

import time
from html.parser import HTMLParser

import httpx
import pytest

from enforcement.console.session import SESSION_COOKIE
from sinks.clickhouse.schema import connect, migrate
from spendstream.cli.services import create_topics
from tests.console.browser import api_up, create_keys
from tests.conftest import child, produce, wait_until
from tests.dead_letter_mix import UNKNOWN_MODEL, two_team_mix

pytestmark = pytest.mark.integration


class _Tables(HTMLParser):
    """The text of each cell of each body row of every table with an id: {id: [[cell, ...], ...]}; and the value
    attribute of every <data id=...>."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.data: dict[str, str] = {}
        self._table = self._cell = None
        self._in_body = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("id"):
            self._table = self.tables.setdefault(a["id"], [])
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._table is not None and self._in_body:
            self._table.append([])
        elif tag == "td" and self._table is not None and self._in_body:
            self._cell = ""
        elif tag == "data" and a.get("id"):
            self.data[a["id"]] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._table[-1].append(self._cell.strip())
            self._cell = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def test_the_team_page_shows_its_own_dead_letters_and_unpriced_events_only(isolated, tmp_path):
    settings = isolated.settings()
    create_topics(settings)
    mix = two_team_mix(int(time.time() * 1000))
    ch, db = connect(settings.clickhouse.dsn), settings.clickhouse.database
    migrate(ch, db)
    keys = create_keys(settings, {"alpha": ("alpha-lead", "read", ["alpha"]), "beta": ("beta-lead", "read", ["beta"]),
                                  "admin": ("finops-admin", "admin", [])})
    with child(["worker"], isolated.env, tmp_path / "worker.log"):
        produce(settings.kafka.bootstrap_servers, settings.kafka.usage_topic, mix.messages)
        wait_until(lambda: ch.query(f"SELECT count() FROM {db}.dead_letters").result_rows[0][0]
                   >= sum(mix.dead.values())
                   and ch.query(f"SELECT count() FROM {db}.priced_events").result_rows[0][0]
                   >= sum(mix.booked.values()), 120, what="dead letters and priced events in ClickHouse")

    port = settings.api.port
    with child(["api"], isolated.env, tmp_path / "api.log"):
        wait_until(lambda: api_up(port), 60, what="API up")

        def page(path: str, key: str) -> httpx.Response:
            return httpx.get(f"http://127.0.0.1:{port}/ui{path}", headers={"cookie": f"{SESSION_COOKIE}={key}"},
                             timeout=30)

        alpha = page("/team/alpha", keys["alpha"])
        assert alpha.status_code == 200
        t = _Tables(alpha.text)
        assert {r[0]: int(r[1].replace(",", "")) for r in t.tables["dead-letters"]} == mix.dead_of("alpha")
        assert t.tables["unpriced-models"] == [["openai", UNKNOWN_MODEL, "2"]]
        assert (t.data["unpriced-events"], t.data["quality-events"]) == ("2", str(mix.booked["alpha"]))
        assert "</data> events (15.4 %)." in alpha.text  # 2 of 13

        refused = page("/team/alpha", keys["beta"])  # beta's key never sees alpha's counts
        assert refused.status_code == 403 and "dead-letters" not in refused.text
        assert "may not read team &#39;alpha&#39;" in refused.text
        beta = _Tables(page("/team/beta", keys["beta"]).text)
        assert beta.tables["dead-letters"] == [["absurd_quantity", "1"]]  # beta's own, none of alpha's
        assert beta.tables["unpriced-models"] == [["none"]]
        assert beta.data["unpriced-events"] == "0" and beta.data["quality-events"] == str(mix.booked["beta"])

        overview = _Tables(page("/", keys["admin"]).text)  # the org: every team's letters, "no team" included
        rows = {(r[0], r[1]): int(r[2]) for r in overview.tables["dead-letters"]}
        assert rows == {(team or "no team", reason): n for (team, reason), n in mix.dead.items()}
