"""ClickHouse unavailable for 60 s while events flow (the real engine's table storage remounted read-only):
Redis keeps booking, the worker buffers and reports the backlog (pending rows, flush failures), and once
ClickHouse is back the backlog drains: count and sum equal the produced events exactly, nothing twice."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from spendstream.cli.services import create_topics
from spendstream.synthetic import SyntheticStream
from spendstream.windows import window_ids
from tests.conftest import child, encode_events, produce, query_clickhouse, wait_until
from tests.faults.conftest import scrape, set_read_only, try_scrape
from tests.oracle import oracle_total

pytestmark = pytest.mark.faults

OUTAGE_S = 60
BEFORE = 5_000
DURING = 30_000  # published in 30 slices over the first ~45 s of the outage


def test_a_60s_clickhouse_outage_loses_nothing_and_the_backlog_drains(isolated, chdb_store_tmpfs, tmp_path):
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
            time.sleep(1.5)

    samples: list[tuple[float, float, float, int]] = []  # (t, pending rows, flush failures, booked)
    with child(["worker"], isolated.env, tmp_path / "worker.log") as w:
        produce(bootstrap, topic, encode_events(first))
        wait_until(lambda: booked() >= BEFORE, 60, what="the first events booked")
        wait_until(lambda: (m := try_scrape(web)) and m["spendstream_clickhouse_pending_rows"] == 0, 30,
                   what="the first events written to ClickHouse")
        assert scrape(web)["spendstream_clickhouse_flush_failures_total"] == 0

        set_read_only(chdb_store_tmpfs, True)  # ClickHouse down: every INSERT fails
        t0 = time.monotonic()
        try:
            producer = threading.Thread(target=slices, name="producer", daemon=True)
            producer.start()
            while time.monotonic() - t0 < OUTAGE_S:
                m = scrape(web)
                samples.append((time.monotonic() - t0, m["spendstream_clickhouse_pending_rows"],
                                m["spendstream_clickhouse_flush_failures_total"], booked()))
                assert w.poll() is None, "the worker died during the outage"
                time.sleep(2.0)
            producer.join(30)
            assert not producer.is_alive()
            booked_in_outage = booked()
            failures_in_outage = scrape(web)["spendstream_clickhouse_flush_failures_total"]
        finally:
            set_read_only(chdb_store_tmpfs, False)
        drain_started = time.monotonic()
        wait_until(lambda: (m := try_scrape(web)) and m["spendstream_clickhouse_pending_rows"] == 0, 90, 0.5,
                   what="the backlog written after ClickHouse came back")
        drain_s = time.monotonic() - drain_started
        assert w.poll() is None

    # Redis never stopped booking: every event was booked while ClickHouse was still down
    assert booked_in_outage == BEFORE + DURING
    assert samples[-1][3] > samples[0][3]
    # the backlog was reported: pending rows grew, flushes failed and were retried with backoff (not every loop)
    pending = [s[1] for s in samples]
    assert max(pending) >= DURING * 0.9 and pending[-1] > pending[0], samples
    assert 3 <= failures_in_outage <= 20, failures_in_outage
    # nothing lost, nothing twice
    assert (booked(), int(r.hget(org, "spend"))) == (BEFORE + DURING, expected)
    count, total, distinct = query_clickhouse(
        isolated.env, "SELECT count(), sum(cost), uniqExact(event_id) FROM {db}.priced_events")[0]
    assert (count, int(total), distinct) == (BEFORE + DURING, expected, BEFORE + DURING)
    final_count, final_total = query_clickhouse(
        isolated.env, "SELECT count(), sum(cost) FROM {db}.priced_events FINAL")[0]
    roll_events, roll_total = query_clickhouse(isolated.env, "SELECT sum(events), sum(cost) FROM {db}.cost_hourly")[0]
    assert (final_count, int(final_total), int(roll_events), int(roll_total)) == (
        BEFORE + DURING, expected, BEFORE + DURING, expected)
    print(f"outage {OUTAGE_S}s: {failures_in_outage:.0f} failed flushes, peak backlog {max(pending):.0f} rows, "
          f"drained {drain_s:.1f}s after ClickHouse came back")
