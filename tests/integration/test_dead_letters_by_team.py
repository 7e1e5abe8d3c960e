"""Dead letters that name a team are counted per team in ClickHouse, exactly, through the real path: a stream of two
teams published to real Kafka (tansu), the real worker, the real ClickHouse engine. The counts equal the stream's
construction (tests/dead_letter_mix.py, no product code) per team and reason — in raw rows, not only under FINAL —
and a second worker in a fresh consumer group, which reads the partition again from offset 0 and dead-letters the
undecided tail again (to the Kafka DLQ: at-least-once), adds no row."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from reports.console_reads import data_quality
from sinks.clickhouse.schema import connect
from spendstream.cli.dlq import read_dead_letters
from spendstream.cli.services import create_topics
from tests.conftest import child, produce, wait_until
from tests.dead_letter_mix import UNKNOWN_MODEL, two_team_mix
from tests.faults.conftest import try_scrape

pytestmark = pytest.mark.integration


def test_dead_letters_are_counted_per_team_once_across_a_second_worker_over_the_same_offsets(isolated, tmp_path):
    settings = isolated.settings()
    create_topics(settings)
    now = int(time.time() * 1000)
    mix = two_team_mix(now)
    ch, db = connect(settings.clickhouse.dsn), settings.clickhouse.database
    web = int(isolated.env["SPENDSTREAM_WORKER__WEB_PORT"])

    def count(sql: str) -> int:
        return int(ch.query(sql.replace("{db}", db)).result_rows[0][0])

    def by_team_reason(final: str) -> Counter:
        return Counter({(t, r): int(n) for t, r, n in ch.query(
            f"SELECT team, reason, count() FROM {db}.dead_letters {final} GROUP BY team, reason").result_rows})

    with child(["worker"], isolated.env, tmp_path / "worker-1.log") as w:
        produce(settings.kafka.bootstrap_servers, settings.kafka.usage_topic, mix.messages)
        wait_until(lambda: (try_scrape(web) or {}).get("spendstream_events_in_total", 0) >= mix.events, 120,
                   what=f"{mix.events} events seen by the worker")
        wait_until(lambda: count("SELECT count() FROM {db}.dead_letters") >= sum(mix.dead.values())
                   and count("SELECT count() FROM {db}.priced_events") >= sum(mix.booked.values()), 60,
                   what="dead letters and priced events in ClickHouse")
        assert w.poll() is None, f"the worker died; see {tmp_path / 'worker-1.log'}"
    first = by_team_reason("")
    assert first == mix.dead, (first, mix.dead)
    in_batch = ch.query(f"SELECT batch_index, event_id FROM {db}.dead_letters WHERE reason = 'absurd_quantity' "
                        "AND team = 'alpha'").result_rows
    assert len(in_batch) == 1 and in_batch[0][0] == 1 and in_batch[0][1].startswith("dq-alpha-")

    # a second worker over the same offsets: a fresh consumer group starts at offset 0
    again = {**isolated.env, "SPENDSTREAM_KAFKA__CONSUMER_GROUP": f"{isolated.name}-again"}
    with child(["worker"], again, tmp_path / "worker-2.log") as w2:
        # the tail is dead-lettered again (the Kafka DLQ is at-least-once): proof the worker decoded it again
        want_letters = sum(mix.dead.values()) + mix.tail_dead
        wait_until(lambda: len(read_dead_letters(settings.kafka.bootstrap_servers, settings.kafka.dlq_topic,
                                                 idle_s=1.0)) >= want_letters, 120,
                   what=f"{want_letters} letters on the DLQ topic")
        time.sleep(1.0)  # a flush or more (0.2 s); stopping flushes once more
        assert w2.poll() is None, f"the second worker died; see {tmp_path / 'worker-2.log'}"
    assert by_team_reason("") == mix.dead  # raw rows: the guard kept every copy out, not a merge
    assert by_team_reason("FINAL") == mix.dead
    assert count("SELECT count() FROM {db}.priced_events") == sum(mix.booked.values())

    # what the console reads: alpha's letters by reason, its unpriced events against all its events
    start = datetime.fromtimestamp(now / 1000, UTC) - timedelta(hours=1)
    q = data_quality(ch, db, "alpha", start, start + timedelta(hours=4))
    assert dict(q.dead_letters) == mix.dead_of("alpha")
    assert q.unpriced == [("openai", UNKNOWN_MODEL, 2)] and q.unpriced_events == 2
    assert q.events == mix.booked["alpha"] == 13 and q.unpriced_pct == "15.4"
    assert dict(data_quality(ch, db, "beta", start, start + timedelta(hours=4)).dead_letters) == {"absurd_quantity": 1}
