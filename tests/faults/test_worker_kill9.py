"""kill -9 the worker three times at random points while 200k+ events flow (batched and single-event messages,
duplicates, malformed messages): Redis totals = ClickHouse totals = an independent sum of the produced events, to
the nano-USD, and every event is booked once, skipped as a duplicate, or dead-lettered once."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest

from spendstream.cli.dlq import read_dead_letters
from spendstream.cli.services import create_topics
from spendstream.windows import window_ids
from tests.conftest import child, query_clickhouse, sync_redis, wait_until
from tests.faults.conftest import mixed_stream, scrape, try_scrape
from tests.oracle import oracle_nanos

pytestmark = pytest.mark.faults

N = 200_000
KILLS = 3


class PacedProducer(threading.Thread):
    """Publishes `messages` beside the worker, slowly while `slow` is set (so events are still being produced when
    each kill lands), then at full speed. `acked` counts broker acknowledgements."""

    def __init__(self, bootstrap: str, topic: str, messages, per_s: float = 600.0) -> None:
        super().__init__(name="producer", daemon=True)
        self.bootstrap, self.topic, self.messages, self.per_s = bootstrap, topic, messages, per_s
        self.slow = threading.Event()
        self.slow.set()
        self.acked = 0
        self.error: BaseException | None = None

    def _ack(self, err, _msg) -> None:
        if err is None:
            self.acked += 1

    def run(self) -> None:
        from confluent_kafka import Producer

        try:
            p = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5, "batch.num.messages": 10000})
            step = 30
            for i in range(0, len(self.messages), step):
                for k, v in self.messages[i:i + step]:
                    while True:
                        try:
                            p.produce(self.topic, key=k, value=v, on_delivery=self._ack)
                            break
                        except BufferError:
                            p.poll(0.05)
                p.poll(0)
                if self.slow.is_set():
                    p.flush(5)
                    time.sleep(step / self.per_s)
            assert p.flush(60) == 0
        except BaseException as exc:  # noqa: BLE001 — reported by the test
            self.error = exc


def _last_scrape(port: int, into: dict, stop: threading.Event) -> None:
    """Keep the worker's latest /metrics in `into` (a worker killed with -9 cannot be asked afterwards)."""
    while not stop.is_set():
        m = try_scrape(port)
        if m:
            into.update(m)
        time.sleep(0.2)


def test_three_kill9s_under_200k_events_leave_redis_clickhouse_and_the_produced_sum_equal(
        isolated_backend, tmp_path, monkeypatch):
    isolated = isolated_backend  # a single Redis and a Redis Cluster
    settings = isolated.settings()
    create_topics(settings)
    now = int(time.time() * 1000)
    stream = mixed_stream(N, now, seed=21)
    expected = stream.expected_cost
    r = sync_redis(settings.redis.url)
    org = f"{isolated.prefix}:{{org:all}}:{window_ids(now).month}"
    web = int(isolated.env["SPENDSTREAM_WORKER__WEB_PORT"])
    seed = int(os.environ.get("SPENDSTREAM_TEST_SEED") or random.SystemRandom().randrange(2**32))
    print(f"kill -9 points drawn with seed {seed} (rerun with SPENDSTREAM_TEST_SEED={seed})")
    rng = random.Random(seed)

    def booked() -> int:
        return int(r.hget(org, "events") or 0)

    # the producer runs beside the worker the whole time, paced: events are flowing when each kill lands (asserted)
    total_msgs = len(stream.messages)
    producer = PacedProducer(settings.kafka.bootstrap_servers, settings.kafka.usage_topic, stream.messages)
    killed_at = []  # (booked, acked messages, seconds into the worker's life) at each kill
    lives: list[dict] = []
    producer.start()
    for i in range(KILLS):
        with child(["worker"], isolated.env, tmp_path / f"worker-{i}.log") as w:
            started, acked_at_start = booked(), producer.acked
            metrics: dict = {}
            stop = threading.Event()
            scraper = threading.Thread(target=_last_scrape, args=(web, metrics, stop), daemon=True)
            scraper.start()
            wait_until(lambda: booked() > started or w.poll() is not None, 180, what=f"worker {i} booking")
            born = time.monotonic()
            time.sleep(rng.uniform(0.2, 4.0))  # the kill point, drawn at random from this worker's life
            assert w.poll() is None, f"worker {i} died on its own; see {tmp_path / f'worker-{i}.log'}"
            acked = producer.acked
            assert producer.is_alive() and acked_at_start < acked and 0 < acked < total_msgs, (
                f"kill {i} (seed {seed}): producing had stopped ({acked} of {total_msgs} messages acked, "
                f"{acked_at_start} when the worker started; producer error: {producer.error})")
            w.send_signal(signal.SIGKILL)  # no flush, no commit, no goodbye
            w.wait()
            stop.set()
            scraper.join(5)
        killed_at.append((booked(), acked, round(time.monotonic() - born, 2)))
        lives.append(metrics)
    assert killed_at[-1][0] < N, f"the worker finished before the last kill ({killed_at}); raise N"
    assert producer.acked < total_msgs, f"producing ended before the last kill ({killed_at}, seed {seed})"
    producer.slow.clear()  # the kills are done: publish the rest at full speed

    producer.join(120)
    assert not producer.is_alive() and producer.error is None, f"the producer did not finish: {producer.error}"
    assert producer.acked == total_msgs
    with child(["worker"], isolated.env, tmp_path / "worker-final.log"):
        wait_until(lambda: booked() >= N, 240, what="all unique events booked after the last restart")
        time.sleep(1.0)  # let any (wrong) extra booking show up
        final = scrape(web)
    # the final worker's own books balance: every event it read was booked, a duplicate or dead-lettered
    assert final["spendstream_events_booked_total"] + final["spendstream_events_duplicate_total"] + \
        final["spendstream_events_dead_lettered_total"] == final["spendstream_events_in_total"], final
    # the child exits with SIGTERM: the final flush wrote ClickHouse

    assert (booked(), int(r.hget(org, "spend"))) == (N, expected), f"kills at {killed_at}, seed {seed}"
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

    # the worker's OWN duplicate count: the same topic read once more, from the start, by one worker that is never
    # killed (own consumer group, Redis prefix, ClickHouse database, DLQ): its /metrics must say exactly what the
    # stream holds — N booked, every re-sent copy a duplicate, every bad event dead-lettered
    fresh = {"SPENDSTREAM_REDIS__PREFIX": isolated.prefix + "v", "SPENDSTREAM_KAFKA__CONSUMER_GROUP": isolated.name + "-v",
             "SPENDSTREAM_CLICKHOUSE__DATABASE": isolated.database + "v",
             "SPENDSTREAM_KAFKA__DLQ_TOPIC": isolated.name + ".dlq-v", "SPENDSTREAM_KAFKA__ALERTS_TOPIC": isolated.name + ".alerts-v",
             "SPENDSTREAM_KAFKA__DECISIONS_TOPIC": isolated.name + ".decisions-v", "SPENDSTREAM_WORKER__APP_ID": isolated.name + "-v"}
    for k, v in fresh.items():
        monkeypatch.setenv(k, v)
    create_topics(isolated.settings())
    with child(["worker"], {**isolated.env, **fresh}, tmp_path / "worker-verify.log"):
        m = wait_until(lambda: (x := try_scrape(web)) and x.get("spendstream_events_in_total", 0) >= stream.events and x,
                       240, 0.5, what="the verifying worker read the whole topic")
        time.sleep(1.0)
        m = scrape(web)
    assert (m["spendstream_events_in_total"], m["spendstream_events_booked_total"],
            m["spendstream_events_duplicate_total"], m["spendstream_events_dead_lettered_total"]) == (
        stream.events, N, stream.duplicates, stream.dead), m
    # and the killed workers' last scrapes never claimed more duplicates than the stream holds, per life
    assert all(life.get("spendstream_events_duplicate_total", 0) <= stream.duplicates for life in lives), lives
    print(f"kills at (booked, acked messages of {total_msgs}, s into the life): {killed_at}; seed {seed}")
