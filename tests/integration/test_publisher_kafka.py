"""The publisher SDK against a real tansu broker: batches on the wire, the spool across a broker outage."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from integrations.publisher import Publisher, producer_config
from integrations.spool import DiskSpool
from schemas.codec import UsageCodec
from tests.integration.conftest_events import own_tansu, tansu, unique_topic  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TAGS = dict(team="search", cost_center="cc-42", use_case="ranking", environment="production", workload_type="inference")


def _events_on(broker, topic, until=None, idle_s=3.0):
    codec = UsageCodec()
    msgs = broker.consume(topic, until=until, idle_s=idle_s)
    return msgs, [ev for m in msgs for ev in codec.decode(m.value())]


def test_recorded_events_arrive_packed_in_batch_messages_keyed_by_their_first_event(tansu, tmp_path):
    topic = tansu.create_topic(unique_topic())
    with Publisher(topic, producer_config(tansu.bootstrap), spool=DiskSpool(tmp_path), batch_size=100) as pub:
        ids = [pub.record(provider="openai", model="gpt-4o-mini", input_tokens=i, **TAGS) for i in range(250)]
        ids.append(pub.record(provider="openai", model="gpt-4o-mini", team="ads"))
    msgs, events = _events_on(tansu, topic, idle_s=2.0)  # read to the end: count every delivery
    assert sorted(e["event_id"] for e in events) == sorted(ids)
    assert {m.key() for m in msgs} == {ids[i].encode() for i in (0, 100, 200, 250)}  # default key: the event id
    assert len(msgs) == 4  # 100 + 100 + 50 for search, 1 for ads
    assert pub.stats.delivered == 251 and pub.stats.spooled_messages == 0


def test_event_with_missing_tags_is_sent_and_warned_about(tansu, tmp_path, caplog):
    topic = tansu.create_topic(unique_topic())
    with Publisher(topic, producer_config(tansu.bootstrap), spool=DiskSpool(tmp_path)) as pub:
        event_id = pub.record(provider="anthropic", model="claude-haiku-4-5", team="search", environment="prod")
    _, events = _events_on(tansu, topic, idle_s=2.0)
    assert [e["event_id"] for e in events] == [event_id]
    assert pub.stats.tag_warnings == 1
    assert "unallocated" in caplog.text and "environment 'prod'" in caplog.text


def test_spooled_events_survive_a_broker_outage_and_arrive_exactly_once(own_tansu, tmp_path):
    topic = own_tansu.create_topic(unique_topic())
    cfg = producer_config(own_tansu.bootstrap, **{"message.timeout.ms": 3000, "reconnect.backoff.max.ms": 300})
    spool = DiskSpool(tmp_path / "spool")
    pub = Publisher(topic, cfg, spool=spool, batch_size=100, probe_interval_s=0.3)
    pub.record(provider="openai", model="gpt-4o", **TAGS)
    assert pub.flush(10) == 0  # connected, warmed up

    own_tansu.stop()
    started = time.monotonic()
    ids = [pub.record(provider="openai", model="gpt-4o", input_tokens=i, **TAGS) for i in range(1000)]
    record_s = time.monotonic() - started
    deadline = time.monotonic() + 20
    while pub.stats.spooled_messages < 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pub.stats.spooled_messages >= 10 and spool.pending_bytes > 0  # all 1,000 are on disk

    own_tansu.start()
    own_tansu.create_topic(topic)  # memory storage: the restarted broker starts empty
    deadline = time.monotonic() + 30
    while (spool.pending_bytes or pub.stats.delivered < 1001) and time.monotonic() < deadline:
        time.sleep(0.2)
    pub.close()

    _, events = _events_on(own_tansu, topic, idle_s=3.0)
    # exactly once = every delivery counted: each id arrives once, nothing else arrives (the warm-up event was
    # lost with the broker's memory storage, before the outage)
    deliveries = Counter(e["event_id"] for e in events)
    assert set(ids) - set(deliveries) == set(), "no event may be missing"
    assert {i: n for i, n in deliveries.items() if n != 1} == {}, "no event may arrive twice"
    assert sum(deliveries.values()) == len(ids) == 1000
    assert spool.pending_bytes == 0
    assert record_s < 5  # recording with the broker down never waited on the network


def test_async_publisher_delivers_everything_on_exit(tansu, tmp_path):
    import asyncio

    from integrations.async_publisher import AsyncPublisher

    topic = tansu.create_topic(unique_topic())

    async def go():
        async with AsyncPublisher(Publisher(topic, producer_config(tansu.bootstrap), spool=DiskSpool(tmp_path))) as pub:
            return [pub.record(provider="openai", model="gpt-4o", **TAGS) for _ in range(30)]
    ids = asyncio.run(go())
    _, events = _events_on(tansu, topic, idle_s=2.0)
    assert sorted(e["event_id"] for e in events) == sorted(ids)
    assert max(Counter(e["event_id"] for e in events).values()) == 1


def test_cli_publish_sends_valid_lines_lists_rejects_and_tail_prints_them(tansu, tmp_path):
    from pathlib import Path

    from typer.testing import CliRunner

    from spendstream.cli import app

    topic = tansu.create_topic(unique_topic())
    sample = Path(__file__).resolve().parents[2] / "examples" / "events.sample.jsonl"
    lines = sample.read_text().splitlines()
    bad = ['{"event_id": "", "event_time": 1, "provider": "openai", "model": "m"}', "not json"]
    f = tmp_path / "events.jsonl"
    f.write_text("\n".join(lines + bad) + "\n")
    env = {"SPENDSTREAM_KAFKA__BOOTSTRAP_SERVERS": tansu.bootstrap, "SPENDSTREAM_KAFKA__USAGE_TOPIC": topic,
           "SPENDSTREAM_SERVICES__STATE_DIR": str(tmp_path / "state")}
    runner = CliRunner()
    result = runner.invoke(app, ["publish", "--file", str(f)], env=env)
    assert result.exit_code == 1, result.output  # rejects make the exit code non-zero
    assert f"{len(lines)} sent, 2 rejected" in result.output
    assert "event_id" in result.output and "not JSON" in result.output

    tail = runner.invoke(app, ["events", "tail", "--from-beginning", "--max", str(len(lines)), "--idle-timeout", "10"], env=env)
    assert tail.exit_code == 0, tail.output
    assert all(f"sample-000{i}" in tail.output for i in range(1, len(lines) + 1))
