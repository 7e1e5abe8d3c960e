"""Exactly-once effects on at-least-once delivery, on real tansu + Redis + ClickHouse:
duplicates injected by the producer and a kill -9 of the worker mid-stream change nothing."""

from __future__ import annotations

import random
import signal
import time

import pytest

from spendstream.cli.services import create_topics
from spendstream.synthetic import SyntheticStream
from spendstream.windows import window_ids
from tests.conftest import child, encode_events, produce, query_clickhouse, sync_redis, wait_until
from tests.oracle import oracle_nanos, oracle_total

pytestmark = pytest.mark.integration

N = 50_000
DUPLICATES = 2_500


def test_duplicates_and_a_kill9_mid_stream_leave_every_total_exact(isolated_backend, tmp_path):
    isolated = isolated_backend
    settings = isolated.settings()
    create_topics(settings)
    now = int(time.time() * 1000)
    events = list(SyntheticStream(seed=5).events(N, now))
    expected = oracle_total(events)
    rng = random.Random(1)
    dups = [dict(rng.choice(events)) for _ in range(DUPLICATES)]  # same event_id re-sent later
    stream = events + dups
    rng.shuffle(stream)  # duplicates land after or before their original; either copy may be booked

    r = sync_redis(settings.redis.url)
    org = f"{isolated.prefix}:{{org:all}}:{window_ids(now).month}"

    def booked() -> int:
        return int(r.hget(org, "events") or 0)

    with child(["worker"], isolated.env, tmp_path / "worker-1.log") as w:
        produce(settings.kafka.bootstrap_servers, settings.kafka.usage_topic, encode_events(stream))
        wait_until(lambda: booked() >= N // 4, 120, what="a quarter of the stream booked")
        w.send_signal(signal.SIGKILL)  # no flush, no commit, no goodbye
        w.wait()
    killed_at = booked()
    assert killed_at < N, "the worker finished before it could be killed; raise N"

    with child(["worker"], isolated.env, tmp_path / "worker-2.log"):
        wait_until(lambda: booked() >= N, 180, what="all unique events booked after the restart")
        time.sleep(1.0)  # let any (wrong) extra booking show up

    assert (booked(), int(r.hget(org, "spend"))) == (N, expected)
    teams = {}
    for e in events:
        t = e["team"] or "unallocated"
        teams[t] = teams.get(t, 0) + oracle_nanos(e)
    for team, cost in teams.items():
        assert int(r.hget(f"{isolated.prefix}:{{team:{team}}}:{window_ids(now).month}", "spend")) == cost, team

    count, total, distinct = query_clickhouse(
        isolated.env, "SELECT count(), sum(cost), uniqExact(event_id) FROM {db}.priced_events FINAL")[0]
    assert (count, int(total), distinct) == (N, expected, N)
    # raw rows too: FINAL would hide a double insert, the rollups (materialized views on INSERT) would not
    raw_count, raw_total = query_clickhouse(isolated.env, "SELECT count(), sum(cost) FROM {db}.priced_events")[0]
    roll_events, roll_total = query_clickhouse(
        isolated.env, "SELECT sum(events), sum(cost) FROM {db}.cost_hourly")[0]
    assert (raw_count, int(raw_total), int(roll_events), int(roll_total)) == (N, expected, N, expected)
