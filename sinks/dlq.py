"""The dead-letter queue `spend.dlq.v1`: the original bytes, a reason code, and where they came from.

The value is always the ORIGINAL bytes of the Kafka message; one letter per bad event. Headers: reason, detail,
source_topic, source_partition, source_offset, source_index (the bad event's position inside a batch message, -1
for a whole message). Nothing that enters the worker leaves without being booked or landing here.
"""

from __future__ import annotations

from confluent_kafka import Producer

from spendstream.ports import DeadLetter

__all__ = ["DeadLetterQueue", "headers"]


def headers(d: DeadLetter) -> list[tuple[str, bytes]]:
    return [
        ("reason", d.reason.encode()),
        ("detail", d.detail[:500].encode()),
        ("source_topic", d.topic.encode()),
        ("source_partition", str(d.partition).encode()),
        ("source_offset", str(d.offset).encode()),
        ("source_index", str(d.index).encode()),
    ]


class DeadLetterQueue:
    """Publishes dead letters (implements spendstream.ports.DeadLetterSink); `flush()` before the consumer commits, so a commit never outruns the DLQ."""

    def __init__(self, producer: Producer, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self.sent = 0

    def send(self, letters: list[DeadLetter]) -> None:
        for d in letters:
            self.producer.produce(self.topic, value=d.value, key=d.key, headers=headers(d))
            self.sent += 1
        self.producer.poll(0)

    def flush(self, timeout_s: float = 10.0) -> None:
        remaining = self.producer.flush(timeout_s)
        if remaining:
            raise TimeoutError(f"{remaining} dead letters not acknowledged by the broker within {timeout_s}s")
