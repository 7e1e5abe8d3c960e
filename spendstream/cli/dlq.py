"""`spendstream dlq inspect|replay`: read the dead-letter topic, and send letters back once their cause is fixed."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import typer
from rich.table import Table

from spendstream.cli._common import console, settings_or_exit

__all__ = ["register", "read_dead_letters"]

dlq = typer.Typer(help="Dead-letter queue spend.dlq.v1: original bytes + reason + source partition/offset.", no_args_is_help=True)


def read_dead_letters(bootstrap: str, topic: str, idle_s: float = 3.0, limit: int | None = None) -> list[dict]:
    """Every letter on the DLQ topic from the beginning (a throwaway consumer group; commits nothing)."""
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"dlq-reader-{uuid.uuid4().hex[:8]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False, "session.timeout.ms": 6000})
    c.subscribe([topic])
    out: list[dict] = []
    last = time.monotonic()
    started = last
    try:
        while time.monotonic() - last < idle_s or (not out and time.monotonic() - started < idle_s + 10):
            for m in c.consume(500, 0.5):
                if m.error():
                    continue
                h = {k: v.decode() for k, v in (m.headers() or [])}
                out.append({"value": m.value(), "key": m.key(), "offset": m.offset(), "partition": m.partition(), **h})
                last = time.monotonic()
                if limit and len(out) >= limit:
                    return out
    finally:
        c.close()
    return out


@dlq.command("inspect")
def inspect(
    limit: int = typer.Option(20, help="Letters to show in detail"),
    reason: str = typer.Option(None, help="Only this reason code"),
) -> None:
    """Count dead letters by reason and show the latest ones with their source partition/offset."""
    s = settings_or_exit()
    letters = [d for d in read_dead_letters(s.kafka.bootstrap_servers, s.kafka.dlq_topic) if not reason or d.get("reason") == reason]
    counts = Counter(d.get("reason", "?") for d in letters)
    t = Table("reason", "letters")
    for r, n in counts.most_common():
        t.add_row(r, f"{n:,}")
    console.print(t)
    d = Table("source", "reason", "detail", "bytes")
    for x in letters[-limit:]:
        d.add_row(f"{x.get('source_topic')}[{x.get('source_partition')}]@{x.get('source_offset')}#{x.get('source_index')}",
                  x.get("reason", ""), x.get("detail", "")[:80], str(len(x["value"] or b"")))
    console.print(d)


@dlq.command("replay")
def replay(
    reason: str = typer.Option(..., help="Replay only letters with this reason (after fixing its cause)"),
    dry_run: bool = typer.Option(False, help="Count what would be replayed, send nothing"),
) -> None:
    """Publish the original bytes of matching letters back to the usage topic; the worker's event_id dedupe
    makes a double replay harmless."""
    from confluent_kafka import Producer

    s = settings_or_exit()
    letters = [d for d in read_dead_letters(s.kafka.bootstrap_servers, s.kafka.dlq_topic) if d.get("reason") == reason]
    if dry_run:
        console.print(f"{len(letters):,} letters with reason {reason} would be replayed")
        return
    p = Producer({"bootstrap.servers": s.kafka.bootstrap_servers, "linger.ms": 10})
    for d in letters:
        p.produce(s.kafka.usage_topic, key=d["key"], value=d["value"])
    left = p.flush(30)
    console.print(f"replayed {len(letters) - left:,} letters with reason {reason} to {s.kafka.usage_topic}")
    if left:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(dlq, name="dlq")
