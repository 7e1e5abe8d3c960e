"""The Kafka key of a usage message: which partition (and so which worker) an event lands on. Pure, stdlib only.

Strategies (`SPENDSTREAM_KAFKA__PARTITION_KEY`, shards: `SPENDSTREAM_KAFKA__KEY_SHARDS`):
  team        the team (the original key): one team's events share a partition, so a team with 60 % of the
              traffic puts 60 % of the load on one partition and one worker.
  event_id    the event id: uniform over partitions, no per-team locality at all.
  team_shard  "team#k", k = crc32(event_id) % shards: a team is spread over at most `shards` partitions and
              keeps some locality (each partition sees few teams' scopes per batch).
Exactness never depends on the key: the worker dedupes by event id across partitions (`{dd:...}` slots).

A batch message (the SDK's UsageBatch, one team's events) is keyed like its first event. A missing team keys
as "" (team strategy: no key, so the client picks a partition at random, as before).

`partition_for` models librdkafka's default partitioner (`consistent_random`: CRC-32 of the key modulo the
partition count; empty or null keys go to a random partition) so skew can be computed without a broker.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["STRATEGIES", "DEFAULT_STRATEGY", "DEFAULT_SHARDS", "PartitionKeys", "partition_key", "partition_for",
           "skew"]

STRATEGIES = ("team", "event_id", "team_shard")
DEFAULT_STRATEGY = "event_id"  # measured: docs/scaling.md "Keys and hot partitions"
DEFAULT_SHARDS = 8


def _crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def partition_key(event: Mapping[str, Any], strategy: str = DEFAULT_STRATEGY, shards: int = DEFAULT_SHARDS
                  ) -> bytes | None:
    """The Kafka key for one event (or for a batch message whose first event this is). Stable: same event,
    same key."""
    team = event.get("team") or ""
    if strategy == "team":
        return team.encode() or None
    event_id = str(event.get("event_id") or "").encode()
    if strategy == "event_id":
        return event_id or None
    if strategy == "team_shard":
        return f"{team}#{_crc(event_id) % shards}".encode()
    raise ValueError(f"unknown partition key strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")


@dataclass(frozen=True)
class PartitionKeys:
    """A chosen strategy, passed to producers (the SDK publisher, `spendstream publish`)."""

    strategy: str = DEFAULT_STRATEGY
    shards: int = DEFAULT_SHARDS

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown partition key strategy {self.strategy!r}; expected one of {', '.join(STRATEGIES)}")
        if not 1 <= self.shards <= 1024:
            raise ValueError(f"key shards must be 1..1024, got {self.shards}")

    def key(self, event: Mapping[str, Any]) -> bytes | None:
        return partition_key(event, self.strategy, self.shards)


def partition_for(key: bytes | None, partitions: int) -> int | None:
    """librdkafka `consistent_random`: crc32(key) % partitions; None for an empty key (a random partition)."""
    if not key:
        return None
    return _crc(key) % partitions


def skew(counts: Iterable[int]) -> float:
    """Max partition share / mean share (1.0 = perfectly even; P = everything on one of P partitions)."""
    xs = list(counts)
    total = sum(xs)
    return max(xs) * len(xs) / total if total else 0.0
