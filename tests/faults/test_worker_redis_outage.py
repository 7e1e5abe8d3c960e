"""Redis frozen (SIGSTOP) for 12 s while the worker books a stream: the worker keeps its records, retries with
backoff (spendstream_store_failures_total counts the retries), stays up, and once Redis answers again every event
is booked exactly once — Redis and ClickHouse equal the independent sum."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from spendstream.cli.services import create_topics
from spendstream.synthetic import SyntheticStream
from spendstream.windows import window_ids
from tests.conftest import child, encode_events, produce, query_clickhouse, sync_redis, wait_until
from tests.faults.conftest import scrape
from tests.oracle import oracle_total

pytestmark = pytest.mark.faults

N = 20_000


def test_the_worker_rides_out_a_frozen_redis_and_books_everything_once(isolated, own_redis, tmp_path):
    env = {**isolated.env, "SPENDSTREAM_REDIS__URL": own_redis.url}
    settings = isolated.settings()
    create_topics(settings)
    now = int(time.time() * 1000)
    events = list(SyntheticStream(seed=77).events(N, now))
    expected = oracle_total(events)
    r = sync_redis(own_redis.url)
    org = f"{isolated.prefix}:{{org:all}}:{window_ids(now).month}"
    web = int(env["SPENDSTREAM_WORKER__WEB_PORT"])
    bootstrap, topic = settings.kafka.bootstrap_servers, settings.kafka.usage_topic

    def slices() -> None:
        for i in range(0, N, 500):  # 40 slices over ~25 s: still producing through the freeze
            produce(bootstrap, topic, encode_events(events[i:i + 500]))
            time.sleep(0.6)

    with child(["worker"], env, tmp_path / "worker.log") as w:
        producer = threading.Thread(target=slices, daemon=True)
        producer.start()
        wait_until(lambda: int(r.hget(org, "events") or 0) > 1_000, 60, what="booking under way")
        assert producer.is_alive()
        own_redis.proc.send_signal(signal.SIGSTOP)  # hung: connections open, no answers
        try:
            time.sleep(6)
            assert producer.is_alive()  # events still flowing into the outage
            time.sleep(6)
            assert w.poll() is None  # the worker rides it out
        finally:
            own_redis.proc.send_signal(signal.SIGCONT)
        producer.join(60)
        wait_until(lambda: int(r.hget(org, "events") or 0) >= N, 120, 0.5, what="every event booked")
        wait_until(lambda: query_clickhouse(env, "SELECT count() FROM {db}.priced_events")[0][0] >= N, 60, 0.5,
                   what="every event in ClickHouse")
        assert scrape(web)["spendstream_store_failures_total"] >= 1  # the outage hit a batch in flight
        assert w.poll() is None
    assert (int(r.hget(org, "events")), int(r.hget(org, "spend"))) == (N, expected)
    count, cost = query_clickhouse(env, "SELECT count(), sum(cost) FROM {db}.priced_events")[0]
    assert (count, int(cost)) == (N, expected)
