"""How the SDK's confluent-kafka producer is configured, which delivery errors mean what, and its counters."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from confluent_kafka import KafkaError

from schemas.models import ENVIRONMENTS, WORKLOAD_TYPES

__all__ = ["producer_config", "PublisherStats", "PERMANENT_ERRORS", "RESET_ERRORS", "ENVS", "WORKLOADS"]

# Kafka will never accept these: count and log, do not spool (replaying them would loop forever).
PERMANENT_ERRORS = {
    KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.INVALID_RECORD, KafkaError._INVALID_ARG, KafkaError.INVALID_MSG,
}
# After these an idempotent producer can stay wedged: build a fresh one.
RESET_ERRORS = {KafkaError._MSG_TIMED_OUT, KafkaError.UNKNOWN_PRODUCER_ID, KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER}
ENVS = frozenset(ENVIRONMENTS)
WORKLOADS = frozenset(WORKLOAD_TYPES)


def producer_config(bootstrap_servers: str, **overrides: Any) -> dict[str, Any]:
    """librdkafka settings for the SDK: idempotent, lz4-compressed, batched, fast to notice an outage."""
    return {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "compression.type": "lz4",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "message.timeout.ms": 30_000,
        "reconnect.backoff.max.ms": 2_000,
        "allow.auto.create.topics": False,  # topics are created up front, never by a metadata probe
        "logger": logging.getLogger("integrations.librdkafka"),
        **overrides,
    }


@dataclass
class PublisherStats:
    """Counters since start. Events are counted per event; spool figures per Kafka message (one batch)."""

    recorded: int = 0
    delivered: int = 0
    tag_warnings: int = 0
    invalid: int = 0
    failed: int = 0
    dropped_spool_full: int = 0
    spooled_messages: int = 0
    replayed_messages: int = 0
    producer_rebuilds: int = 0
    denied_calls: int = 0      # calls a budget check denied before they left: counted, never published

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
