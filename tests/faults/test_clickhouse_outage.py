"""ClickHouse away while events flow, two ways: the server killed with SIGKILL and restarted on its data dir, and
the server frozen with SIGSTOP for 60 s (a hung server: requests time out, and the ones it received run when it
resumes). Each time Redis keeps booking, the worker buffers and reports the backlog (pending rows, failed flushes), and once ClickHouse
is back the backlog drains: raw rows, FINAL rows and the rollups equal the produced events exactly, nothing twice."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from spendstream.cli.services import create_topics
from spendstream.synthetic import SyntheticStream
from spendstream.windows import window_ids
from tests.conftest import child, encode_events, produce, query_clickhouse, wait_until
from tests.faults.conftest import scrape, try_scrape
from tests.oracle import oracle_total

pytestmark = pytest.mark.faults

BEFORE = 5_000
DURING = 30_000  # published in 30 slices
OUTAGES = {  # mode -> (seconds away, seconds between slices)
    "sigkill-restart": (20, 0.5),
    "sigstop-hung": (60, 1.5),
}


@pytest.fixture
def away(request, tmp_path):
    """The test's own ClickHouse, plus how to take it away and bring it back for this mode."""
    mode = request.param
    ch = request.getfixturevalue("own_clickhouse")
    if mode == "sigkill-restart":
        return mode, ch, ch.kill, ch.start
    return mode, ch, ch.freeze, ch.thaw


@pytest.mark.parametrize("away", list(OUTAGES), indirect=True)
def test_clickhouse_away_loses_nothing_doubles_nothing_and_the_backlog_drains(isolated, away, tmp_path):
    mode, ch, take_away, bring_back = away
    outage_s, pace_s = OUTAGES[mode]
    env = {**isolated.env, "SPENDSTREAM_CLICKHOUSE__DSN": ch.dsn, "SPENDSTREAM_CLICKHOUSE__TIMEOUT_S": "5"}
    settings = isolated.settings()
    create_topics(settings)
    now = int(time.time() * 1000)
    syn = SyntheticStream(seed=71)
    first = list(syn.events(BEFORE, now))
    during = list(syn.events(DURING, now))
    expected = oracle_total(first + during)
    r = redis.Redis.from_url(settings.redis.url)
    org = f"{isolated.prefix}:{{org:all}}:{window_ids(now).month}"
    web = int(isolated.env["SPENDSTREAM_WORKER__WEB_PORT"])
    bootstrap, topic = settings.kafka.bootstrap_servers, settings.kafka.usage_topic

    def booked() -> int:
        return int(r.hget(org, "events") or 0)

    def slices() -> None:
        step = DURING // 30
        for i in range(0, DURING, step):
            produce(bootstrap, topic, encode_events(during[i:i + step]))
            time.sleep(pace_s)

    samples: list[tuple[float, float, float, int]] = []  # (t, pending rows, flush failures, booked)
    with child(["worker"], env, tmp_path / "worker.log") as w:
        produce(bootstrap, topic, encode_events(first))
        wait_until(lambda: booked() >= BEFORE, 60, what="the first events booked")
        wait_until(lambda: (m := try_scrape(web)) and m["spendstream_clickhouse_pending_rows"] == 0, 30,
                   what="the first events written to ClickHouse")
        assert scrape(web)["spendstream_clickhouse_flush_failures_total"] == 0

        take_away()
        t0 = time.monotonic()
        try:
            producer = threading.Thread(target=slices, name="producer", daemon=True)
            producer.start()
            while time.monotonic() - t0 < outage_s:
                m = scrape(web)
                samples.append((time.monotonic() - t0, m["spendstream_clickhouse_pending_rows"],
                                m["spendstream_clickhouse_flush_failures_total"], booked()))
                assert w.poll() is None, "the worker died during the outage"
                time.sleep(1.0)
            producer.join(60)
            assert not producer.is_alive()
            wait_until(lambda: booked() >= BEFORE + DURING, 30, what="every event booked while ClickHouse is away")
            booked_in_outage = booked()
            failures_in_outage = scrape(web)["spendstream_clickhouse_flush_failures_total"]
            pending_in_outage = scrape(web)["spendstream_clickhouse_pending_rows"]
        finally:
            bring_back()
        drain_started = time.monotonic()
        wait_until(lambda: (m := try_scrape(web)) and m["spendstream_clickhouse_pending_rows"] == 0, 120, 0.5,
                   what="the backlog written after ClickHouse came back")
        drain_s = time.monotonic() - drain_started
        assert w.poll() is None

    # Redis never stopped booking: every event was booked while ClickHouse was still away
    assert booked_in_outage == BEFORE + DURING
    assert samples[-1][3] > samples[0][3]
    # the backlog was reported: pending rows grew while flushes failed and were retried with backoff
    assert pending_in_outage >= DURING * 0.9, samples
    assert 2 <= failures_in_outage <= 25, failures_in_outage
    # nothing lost, nothing twice: raw rows (no FINAL), distinct ids, and the rollups the reports read
    assert (booked(), int(r.hget(org, "spend"))) == (BEFORE + DURING, expected)
    count, total, distinct = query_clickhouse(
        env, "SELECT count(), sum(cost), uniqExact(event_id) FROM {db}.priced_events")[0]
    assert (count, int(total), distinct) == (BEFORE + DURING, expected, BEFORE + DURING)
    final_count, final_total = query_clickhouse(env, "SELECT count(), sum(cost) FROM {db}.priced_events FINAL")[0]
    events, rolled = query_clickhouse(env, "SELECT sum(events), sum(cost) FROM {db}.cost_hourly")[0]
    assert (final_count, int(final_total), int(events), int(rolled)) == (BEFORE + DURING, expected, BEFORE + DURING,
                                                                       expected)
    print(f"{mode}: away {outage_s}s, {failures_in_outage:.0f} failed flushes, backlog {pending_in_outage:.0f} rows, "
          f"drained {drain_s:.1f}s after ClickHouse came back")
