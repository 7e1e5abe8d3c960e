"""Analysts query ClickHouse while the worker streams into it: `db query`, the weekly digest, the monthly review,
the FOCUS export and reconcile (each a separate CLI process) and a plain HTTP query by the readonly analyst user
all run while events flow, and return figures that agree with Redis once the stream is drained; the analyst
cannot insert or drop."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import redis

from spendstream.cli.services import create_topics
from spendstream.synthetic import SyntheticStream
from spendstream.windows import window_ids
from tests.conftest import ANALYST_PASSWORD, ROOT, child, encode_events, produce, query_clickhouse, wait_until

pytestmark = pytest.mark.integration

N = 12_000


def analyst(port: int, sql: str, password: str = ANALYST_PASSWORD) -> tuple[int, str]:
    """What `curl 'http://127.0.0.1:PORT/?user=analyst&password=…' --data-binary SQL` does."""
    q = urllib.parse.urlencode({"user": "analyst", "password": password})
    req = urllib.request.Request(f"http://127.0.0.1:{port}/?{q}", data=sql.encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def rows_in(env: dict[str, str]) -> int:
    """priced_events rows through `db query`; 0 until the worker has created the database."""
    try:
        return query_clickhouse(env, "SELECT count() FROM {db}.priced_events")[0][0]
    except AssertionError:
        return 0


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spendstream", *args], env=env, capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_reports_queries_and_an_analyst_work_while_the_worker_streams(isolated, tmp_path):
    settings = isolated.settings()
    create_topics(settings)
    port, db = isolated.servers.clickhouse_port, isolated.database
    now = int(time.time() * 1000)
    events = list(SyntheticStream(seed=23).events(N, now))
    r = redis.Redis.from_url(settings.redis.url)
    org = f"{isolated.prefix}:{{org:all}}:{window_ids(now).month}"
    env = {**__import__("os").environ, **isolated.env}
    month = time.strftime("%Y-%m", time.gmtime(now / 1000))
    week = time.strftime("%G-W%V", time.gmtime(now / 1000))

    with child(["worker"], isolated.env, tmp_path / "worker.log") as w:
        produce(settings.kafka.bootstrap_servers, settings.kafka.usage_topic, encode_events(events[:2_000]))
        wait_until(lambda: rows_in(isolated.env) > 0, 60, what="the first rows in ClickHouse")
        rest = threading.Thread(target=produce, args=(settings.kafka.bootstrap_servers, settings.kafka.usage_topic,
                                                      encode_events(events[2_000:])), daemon=True)
        rest.start()
        # while the worker writes: every analyst path answers
        booked_at_start = int(r.hget(org, "events") or 0)
        during = {
            "db query": cli(env, "db", "query", "--json", "SELECT count() FROM {db}.priced_events"),
            "digest": cli(env, "digest", "weekly", "--week", week, "--out", str(tmp_path / "digest")),
            "review": cli(env, "review", "monthly", "--month", month, "--model", "real-cost", "--out",
                          str(tmp_path / "review")),
            "focus": cli(env, "export", "focus", "--month", month, "--out", str(tmp_path / "focus.csv")),
            "reconcile": cli(env, "reconcile", "--invoice", str(ROOT / "examples" / "invoice.sample.csv"),
                             "--provider", "openai"),
        }
        status, body = analyst(port, f"SELECT count() FROM {db}.priced_events")
        assert w.poll() is None, "the worker died"
        rest.join(120)
        wait_until(lambda: int(r.hget(org, "events") or 0) == N, 120, what="every event booked")
        wait_until(lambda: rows_in(isolated.env) == N, 60, what="every event in ClickHouse")
        assert w.poll() is None

    assert booked_at_start < N  # the reports ran while the stream was still being booked
    for name, res in during.items():
        assert res.returncode in (0, 1), (name, res.stderr[-2000:])  # reconcile exits 1 on drift: still answered
        assert "Traceback" not in res.stderr, (name, res.stderr[-2000:])
    assert int(during["db query"].stdout.strip().splitlines()[-1].strip("[]")) > 0
    assert list((tmp_path / "digest").glob("*.html")) and list((tmp_path / "review").glob("*.csv"))
    assert (tmp_path / "focus.csv").stat().st_size > 0
    assert status == 200 and int(body) > 0
    # after the drain: the analyst's figure is Redis's figure, to the nano-USD
    status, body = analyst(port, f"SELECT sum(cost) FROM {db}.priced_events")
    assert status == 200 and int(body) == int(r.hget(org, "spend"))
    # the readonly analyst may not write or drop, and a wrong password is refused
    for sql in (f"INSERT INTO {db}.alerts (alert_id) VALUES ('x')", f"DROP TABLE {db}.alerts"):
        status, body = analyst(port, sql)
        assert status != 200 and "Code: 164" in body, (sql, body)
    status, body = analyst(port, "SELECT 1", password="wrong")
    assert status == 403 and "Code: 516" in body
    assert analyst(port, f"SELECT count() FROM {db}.alerts")[0] == 200  # the table is still there
