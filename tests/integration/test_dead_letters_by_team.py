"""Dead letters that name a team are counted per team in ClickHouse, exactly, through the real path: a stream of two
teams published to real Kafka (tansu), the real worker, the real ClickHouse engine. The counts equal the stream's
construction (tests/dead_letter_mix.py, no product code) per team and reason, in raw rows. Then a `dlq replay` of
one reason (still bad: dead-lettered again, at new offsets) and a second worker in a fresh consumer group, which
reads the partition again from offset 0 and dead-letters the undecided tail again (to the Kafka DLQ: at-least-once):
the tail adds no raw row (the writer's guard), the replay adds exactly its new letters as rows, and the counts the
console reads (distinct letters) still equal the construction."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from reports.console_reads import data_quality, dead_letter_counts
from sinks.clickhouse.schema import connect
from spendstream.cli.dlq import read_dead_letters
from spendstream.cli.services import create_topics
from tests.conftest import ROOT, child, produce, wait_until
from tests.dead_letter_mix import UNKNOWN_MODEL, two_team_mix
from tests.faults.conftest import try_scrape

pytestmark = pytest.mark.integration


def test_dead_letters_are_counted_per_team_once_across_a_replay_and_a_second_worker_over_the_same_offsets(isolated, tmp_path):
    settings = isolated.settings()
    create_topics(settings)
    now = int(time.time() * 1000)
    mix = two_team_mix(now)
    ch, db = connect(settings.clickhouse.dsn), settings.clickhouse.database
    web = int(isolated.env["SPENDSTREAM_WORKER__WEB_PORT"])

    def count(sql: str) -> int:
        return int(ch.query(sql.replace("{db}", db)).result_rows[0][0])

    def raw(where: str = "") -> Counter:
        return Counter({(t, r): int(n) for t, r, n in ch.query(
            f"SELECT team, reason, count() FROM {db}.dead_letters {where} GROUP BY team, reason").result_rows})

    def events_in() -> float:
        return (try_scrape(web) or {}).get("spendstream_events_in_total", 0)

    with child(["worker"], isolated.env, tmp_path / "worker-1.log") as w:
        produce(settings.kafka.bootstrap_servers, settings.kafka.usage_topic, mix.messages)
        wait_until(lambda: events_in() >= mix.events, 120, what=f"{mix.events} events seen by the worker")
        wait_until(lambda: count("SELECT count() FROM {db}.dead_letters") >= sum(mix.dead.values())
                   and count("SELECT count() FROM {db}.priced_events") >= sum(mix.booked.values()), 60,
                   what="dead letters and priced events in ClickHouse")
        assert w.poll() is None, f"the worker died; see {tmp_path / 'worker-1.log'}"
    assert raw() == mix.dead, (raw(), mix.dead)
    in_batch = ch.query(f"SELECT batch_index, event_id FROM {db}.dead_letters WHERE reason = 'absurd_quantity' "
                        "AND team = 'alpha'").result_rows
    assert len(in_batch) == 1 and in_batch[0][0] == 1 and in_batch[0][1].startswith("dq-alpha-")

    # an operator replays the negative_quantity letters (the cause is not fixed: they are dead-lettered again)
    out = subprocess.run([sys.executable, "-m", "spendstream", "dlq", "replay", "--reason", "negative_quantity"],
                         env={**os.environ, **isolated.env}, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    replayed = mix.with_reason("negative_quantity")
    replay_letters = Counter(d for m in replayed for d in m.dead)
    # a second worker over the same offsets: a fresh consumer group starts at offset 0
    again = {**isolated.env, "SPENDSTREAM_KAFKA__CONSUMER_GROUP": f"{isolated.name}-again"}
    with child(["worker"], again, tmp_path / "worker-2.log") as w2:
        redone = sum(m.events for m in mix.tail) + sum(m.events for m in replayed)  # what it decodes, no more
        wait_until(lambda: events_in() >= redone, 120, what=f"{redone} events seen by the second worker")
        wait_until(lambda: count("SELECT count() FROM {db}.dead_letters")
                   >= sum(mix.dead.values()) + sum(replay_letters.values()), 60, what="the replay's letters stored")
        time.sleep(1.0)  # a flush or more (0.2 s) for any (wrong) extra row; stopping flushes once more
        assert w2.poll() is None, f"the second worker died; see {tmp_path / 'worker-2.log'}"
        assert events_in() == redone
    # the tail was dead-lettered again on the DLQ topic (proof it was decoded again) ...
    letters = read_dead_letters(settings.kafka.bootstrap_servers, settings.kafka.dlq_topic, idle_s=2.0)
    assert len(letters) == sum(mix.dead.values()) + sum(len(m.dead) for m in mix.tail) + sum(replay_letters.values())
    # ... but added no row: the source offsets of the stream hold exactly its letters, raw rows (no FINAL)
    assert raw(f"WHERE kafka_offset < {len(mix.messages)}") == mix.dead
    assert raw(f"WHERE kafka_offset >= {len(mix.messages)}") == replay_letters  # the replay: new offsets, new rows
    assert count("SELECT count() FROM {db}.priced_events") == sum(mix.booked.values())  # replayed goods: duplicates

    # what the console reads: distinct letters, so the replay does not double them
    start = datetime.fromtimestamp(now / 1000, UTC) - timedelta(hours=1)
    end = start + timedelta(hours=4)
    counted = Counter({(t, r): n for t, r, n in dead_letter_counts(ch, db, start, end)})
    assert counted == mix.dead, (counted, mix.dead)
    q = data_quality(ch, db, "alpha", start, end)
    assert dict(q.dead_letters) == mix.dead_of("alpha")
    assert q.unpriced == [("openai", UNKNOWN_MODEL, 2)] and q.unpriced_events == 2
    assert q.events == mix.booked["alpha"] == 13 and q.unpriced_pct == "15.4"
    assert dict(data_quality(ch, db, "beta", start, end).dead_letters) == {"absurd_quantity": 1}
