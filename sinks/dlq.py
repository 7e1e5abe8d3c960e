"""The dead-letter queue `spend.dlq.v1`: the original bytes, a reason code, and where they came from.

The value is always the ORIGINAL bytes of the Kafka message; one letter per bad event. Headers: reason, detail,
source_topic, source_partition, source_offset, source_index (the bad event's position inside a batch message, -1
for a whole message), and team / use_case / event_id when the event decoded far enough to name them. Nothing that
enters the worker leaves without being booked or landing here. The worker also counts every letter in ClickHouse
(`DeadLetterSinks` in front of this queue and sinks/clickhouse/dead_letters.py), where the console reads them.
"""

from __future__ import annotations

from typing import Sequence

from confluent_kafka import Producer

from spendstream.ports import DeadLetter, DeadLetterSink

__all__ = ["DeadLetterQueue", "DeadLetterSinks", "headers"]


def headers(d: DeadLetter) -> list[tuple[str, bytes]]:
    h = [
        ("reason", d.reason.encode()),
        ("detail", d.detail[:500].encode()),
        ("source_topic", d.topic.encode()),
        ("source_partition", str(d.partition).encode()),
        ("source_offset", str(d.offset).encode()),
        ("source_index", str(d.index).encode()),
    ]
    return h + [(name, v.encode()) for name, v in (("team", d.team), ("use_case", d.use_case),
                                                     ("event_id", d.event_id)) if v]


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


class DeadLetterSinks:
    """Several DeadLetterSinks as one (the Kafka DLQ and the ClickHouse count): `send` and `flush` go to each in
    order, and a `flush` that raises stops there (the caller must not commit)."""

    def __init__(self, *sinks: DeadLetterSink) -> None:
        self.sinks: Sequence[DeadLetterSink] = sinks

    def send(self, letters: list[DeadLetter]) -> None:
        for s in self.sinks:
            s.send(letters)

    def flush(self) -> None:
        for s in self.sinks:
            s.flush()
