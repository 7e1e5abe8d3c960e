"""The dead-letter queue `spend.dlq.v1`: the original bytes, a reason code, and where they came from.

Headers: reason, detail, source_topic, source_partition, source_offset, source_index (event position inside a
batch message, -1 for a whole message). Nothing that enters the worker leaves without being booked or landing here.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import Producer

__all__ = ["DeadLetter", "DeadLetterQueue"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    value: bytes | None
    reason: str
    detail: str
    topic: str
    partition: int
    offset: int
    index: int = -1
    key: bytes | None = None

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("reason", self.reason.encode()),
            ("detail", self.detail[:500].encode()),
            ("source_topic", self.topic.encode()),
            ("source_partition", str(self.partition).encode()),
            ("source_offset", str(self.offset).encode()),
            ("source_index", str(self.index).encode()),
        ]


class DeadLetterQueue:
    """Publishes dead letters; `flush()` before the consumer commits, so a commit never outruns the DLQ."""

    def __init__(self, producer: Producer, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self.sent = 0

    def send(self, letters: list[DeadLetter]) -> None:
        for d in letters:
            self.producer.produce(self.topic, value=d.value, key=d.key, headers=d.headers())
            self.sent += 1
        self.producer.poll(0)

    def flush(self, timeout_s: float = 10.0) -> None:
        remaining = self.producer.flush(timeout_s)
        if remaining:
            raise TimeoutError(f"{remaining} dead letters not acknowledged by the broker within {timeout_s}s")
