"""kill -9 the worker three times at random points while 200k+ events flow (batched and single-event messages,
duplicates, malformed messages): Redis totals = ClickHouse totals = an independent sum of the produced events, to
the nano-USD, and every event is booked once, skipped as a duplicate, or dead-lettered once."""

from __future__ import annotations

import random
import signal
import threading
import time

import pytest
import redis

from spendstream.cli.dlq import read_dead_letters
from spendstream.cli.services import create_topics
from spendstream.windows import window_ids
from tests.conftest import child, produce, query_clickhouse, wait_until
from tests.faults.conftest import mixed_stream
from tests.oracle import oracle_nanos

pytestmark = pytest.mark.faults

N = 200_000
KILLS = 3


def test_three_kill9s_under_200k_events_leave_redis_clickhouse_and_the_produced_sum_equal(isolated, tmp_path):
    settings = isolated.settings()
    create_topics(settings)
    now = int(time.time() * 1000)
    stream = mixed_stream(N, now, seed=21)
    expected = stream.expected_cost
    r = redis.Redis.from_url(settings.redis.url)
    org = f"{isolated.prefix}:{{org:all}}:{window_ids(now).month}"

    def booked() -> int:
        return int(r.hget(org, "events") or 0)

    # the producer runs beside the worker the whole time: events are flowing when each kill lands
    producer = threading.Thread(target=produce, name="producer", daemon=True,
                                args=(settings.kafka.bootstrap_servers, settings.kafka.usage_topic, stream.messages))
    rng = random.Random(7)
    targets = sorted(rng.sample(range(N // 10, N * 8 // 10), KILLS))
    killed_at = []
    producer.start()
    for i, target in enumerate(targets):
        with child(["worker"], isolated.env, tmp_path / f"worker-{i}.log") as w:
            wait_until(lambda: booked() >= target or w.poll() is not None, 180, what=f"{target} events booked")
            assert w.poll() is None, f"worker {i} died on its own; see {tmp_path / f'worker-{i}.log'}"
            w.send_signal(signal.SIGKILL)  # no flush, no commit, no goodbye
            w.wait()
        killed_at.append(booked())
    assert killed_at[-1] < N, f"the worker finished before the last kill ({killed_at}); raise N"

    producer.join(120)
    assert not producer.is_alive(), "the producer did not finish"
    with child(["worker"], isolated.env, tmp_path / "worker-final.log"):
        wait_until(lambda: booked() >= N, 240, what="all unique events booked after the last restart")
        time.sleep(1.0)  # let any (wrong) extra booking show up
    # the child exits with SIGTERM: the final flush wrote ClickHouse

    assert (booked(), int(r.hget(org, "spend"))) == (N, expected), f"kills at {killed_at}"
    teams: dict[str, int] = {}
    for e in stream.unique.values():
        t = e["team"] or "unallocated"
        teams[t] = teams.get(t, 0) + oracle_nanos(e)
    for team, cost in teams.items():
        assert int(r.hget(f"{isolated.prefix}:{{team:{team}}}:{window_ids(now).month}", "spend")) == cost, team

    count, total, distinct = query_clickhouse(
        isolated.env, "SELECT count(), sum(cost), uniqExact(event_id) FROM {db}.priced_events FINAL")[0]
    raw_count, raw_total = query_clickhouse(isolated.env, "SELECT count(), sum(cost) FROM {db}.priced_events")[0]
    assert (count, int(total), distinct, raw_count, int(raw_total)) == (N, expected, N, N, expected)
    roll_events, roll_total = query_clickhouse(isolated.env, "SELECT sum(events), sum(cost) FROM {db}.cost_hourly")[0]
    assert (int(roll_events), int(roll_total)) == (N, expected)  # the rollups saw every insert: none doubled

    # every event is accounted for: booked once + duplicates skipped + dead-lettered once = events produced.
    # A kill between the DLQ send and the offset commit redelivers a bad message, so a letter may be sent twice;
    # each source (partition, offset, index) must appear, and only bad ones.
    letters = read_dead_letters(settings.kafka.bootstrap_servers, settings.kafka.dlq_topic, idle_s=3.0)
    sources = {(d["source_partition"], d["source_offset"], d["source_index"]) for d in letters}
    assert len(sources) == stream.dead
    assert N + stream.duplicates + len(sources) == stream.events
    assert all(d.get("reason") for d in letters)
