"""The Kafka key of usage messages (schemas/partition_keys.py): stable, spreads a hot team, uniform for event_id;
the SDK publisher keys its batch messages with it."""

from __future__ import annotations

import random
import zlib

import pytest

from integrations.publisher import Publisher
from schemas.partition_keys import DEFAULT_STRATEGY, PartitionKeys, partition_for, partition_key, skew
from spendstream.errors import ConfigError
from spendstream.settings import load_settings
from spendstream.synthetic import hot_team_mix


def _hot_mix(n: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    return [{"team": t, "event_id": f"{rng.getrandbits(64):016x}-{i}"} for i, t in enumerate(hot_team_mix(n, seed))]


def _counts(events: list[dict], strategy: str, shards: int, partitions: int) -> list[int]:
    c = [0] * partitions
    for e in events:
        c[partition_for(partition_key(e, strategy, shards), partitions)] += 1
    return c


def test_keys_are_stable_and_shaped_per_strategy():
    e = {"team": "search", "event_id": "abc-1"}
    assert partition_key(e, "team") == b"search"
    assert partition_key(e, "event_id") == b"abc-1"
    k = partition_key(e, "team_shard", 8)
    assert k == partition_key(dict(e), "team_shard", 8)  # same event, same key, every time
    assert k == f"search#{zlib.crc32(b'abc-1') % 8}".encode()
    assert partition_key({"team": None, "event_id": "x"}, "team") is None  # no team: random partition, as before
    with pytest.raises(ValueError):
        partition_key(e, "round_robin")
    with pytest.raises(ValueError):
        PartitionKeys("team_shard", 0)


def test_team_shard_spreads_a_hot_team_over_its_shards():
    events = [e for e in _hot_mix(20_000) if e["team"] == "hot-team"]
    assert 0.57 < len(events) / 20_000 < 0.63
    keys = {partition_key(e, "team_shard", 8) for e in events}
    assert keys == {f"hot-team#{k}".encode() for k in range(8)}
    per_key = [sum(1 for e in events if partition_key(e, "team_shard", 8) == k) for k in keys]
    assert max(per_key) / min(per_key) < 1.3  # each shard takes about 1/8 of the team


def test_event_id_is_uniform_and_team_is_skewed_on_the_hot_mix():
    events = _hot_mix(60_000)
    assert skew(_counts(events, "event_id", 1, 12)) < 1.1
    assert skew(_counts(events, "team", 1, 12)) > 5  # the hot team's 60 % sits on one of 12 partitions
    assert skew(_counts(events, "team_shard", 8, 12)) < skew(_counts(events, "team", 1, 12))


def test_partition_model_is_librdkafka_consistent_random():
    assert partition_for(b"search", 12) == zlib.crc32(b"search") % 12
    assert partition_for(b"", 12) is None and partition_for(None, 12) is None
    assert skew([5, 5, 5, 5]) == 1.0 and skew([20, 0, 0, 0]) == 4.0


def test_settings_choose_the_strategy(monkeypatch):
    assert load_settings().kafka.partition_key == DEFAULT_STRATEGY
    monkeypatch.setenv("SPENDSTREAM_KAFKA__PARTITION_KEY", "team_shard")
    monkeypatch.setenv("SPENDSTREAM_KAFKA__KEY_SHARDS", "4")
    k = load_settings().kafka
    assert (k.partition_key, k.key_shards) == ("team_shard", 4)
    monkeypatch.setenv("SPENDSTREAM_KAFKA__PARTITION_KEY", "bogus")
    with pytest.raises(ConfigError, match="SPENDSTREAM_KAFKA__PARTITION_KEY"):
        load_settings()


class _FakeProducer:
    def __init__(self, config):
        self.sent: list[tuple[bytes | None, bytes]] = []

    def produce(self, topic, value, key, on_delivery=None):
        self.sent.append((key, value))

    def poll(self, timeout=0):
        return 0

    def flush(self, timeout=0):
        return 0


@pytest.mark.parametrize("strategy", ["team", "event_id", "team_shard"])
def test_publisher_keys_each_batch_message_like_its_first_event(strategy):
    keys = PartitionKeys(strategy, 4)
    pub = Publisher("t", {}, spool=None, batch_size=10, linger_s=3600, producer_factory=_FakeProducer, keys=keys)
    try:
        ids = [pub.record(provider="openai", model="gpt-4o", team="hot", input_tokens=1) for _ in range(30)]
        sent = pub._producer.sent
        assert len(sent) == 3
        assert [k for k, _ in sent] == [keys.key({"team": "hot", "event_id": ids[i]}) for i in (0, 10, 20)]
    finally:
        pub.close(timeout=0.1)
