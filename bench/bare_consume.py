"""Baseline (a) of bench/stream.py: a bare confluent-kafka consumer reading every record of the topic with
`consume(num_messages=...)`, doing nothing with them — the client's own ceiling on this machine, the physical limit
of the pipeline's design (which consumes the same way). Commits the end offsets once, synchronously, at the end.

Usage: python bench/bare_consume.py BOOTSTRAP TOPIC GROUP N_RECORDS OUT.json   (writes {records, first_at, end_at}:
wall-clock epoch seconds of the first record consumed and of the commit returning)
"""

from __future__ import annotations

import json
import sys
import time

from confluent_kafka import Consumer, TopicPartition


def main() -> None:
    bootstrap, topic, group, n, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "session.timeout.ms": 6000, "fetch.wait.max.ms": 20,
                  "queued.max.messages.kbytes": 65536})
    c.subscribe([topic])
    seen, first_at, last = 0, None, {}
    while seen < n:
        msgs = c.consume(5000, 0.05)
        for m in msgs:
            if m.error() is None:
                if first_at is None:
                    first_at = time.time()
                seen += 1
                last[m.partition()] = m.offset()
    c.commit(offsets=[TopicPartition(topic, p, o + 1) for p, o in last.items()], asynchronous=False)
    end_at = time.time()
    c.close()
    with open(out, "w") as f:
        json.dump({"records": seen, "first_at": first_at, "end_at": end_at}, f)


if __name__ == "__main__":
    main()
