"""`spendstream publish --file events.jsonl` and `spendstream events tail`: the contract from a terminal.

The entry point builds the producer / consumer and codec from Settings; nothing here is module-level state.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError
from rich.progress import Progress
from rich.table import Table

from spendstream.cli._common import console, settings_or_exit

__all__ = ["register"]

events_app = typer.Typer(help="Usage events on the wire: tail the topic.", no_args_is_help=True)


def _codec(settings):
    from schemas.codec import UsageCodec
    from schemas.registry import build_catalog

    return UsageCodec(build_catalog(settings.kafka.schema_registry_url))


def publish(
    file: Path = typer.Option(..., "--file", "-f", exists=True, dir_okay=False, help="JSON lines, one UsageEvent each"),
    topic: Optional[str] = typer.Option(None, help="default: kafka.usage_topic"),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate only, send nothing"),
    timeout_s: float = typer.Option(30.0, "--timeout", help="seconds to wait for delivery at the end"),
) -> None:
    """Validate every line against the contract and send the valid ones; rejects are listed, never sent.

    event_time: epoch ms, or an RFC 3339 timestamp with an offset (2026-11-03T10:15:00Z, ...+01:00).
    null for an optional field means its default. Exit code 0 when every line was sent, 1 when some were
    rejected or could not be delivered."""
    from integrations.publisher import Publisher, producer_config
    from integrations.spool import DiskSpool
    from schemas.import_lines import EventFieldError, normalize_event
    from schemas.models import UsageEvent
    from schemas.partition_keys import PartitionKeys

    settings = settings_or_exit()
    lines = file.read_text().splitlines()
    rejects: list[tuple[int, str]] = []
    pub = None if dry_run else Publisher(
        topic or settings.kafka.usage_topic, producer_config(settings.kafka.bootstrap_servers),
        spool=DiskSpool(settings.services.state_dir / "spool"), codec=_codec(settings), source="import",
        keys=PartitionKeys(settings.kafka.partition_key, settings.kafka.key_shards),
    )
    sent = 0
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("publishing", total=len(lines))
        for no, line in enumerate(lines, 1):
            progress.advance(task)
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                if isinstance(raw, dict) and raw.get("source") is None:
                    raw["source"] = "import"      # absent or null: this command's default, not the schema's "sdk"
                event = UsageEvent.model_validate(normalize_event(raw))
            except (EventFieldError, ValueError, ValidationError) as exc:
                rejects.append((no, _short(exc)))
                continue
            if pub is not None:
                pub.record_event(event.model_dump())
            sent += 1
    undelivered = 0
    if pub is not None:
        undelivered = pub.flush(timeout_s)
        pub.close(timeout=1.0)
    _summary(sent, rejects, pub.stats.as_dict() if pub else None, dry_run)
    if rejects or undelivered:
        raise typer.Exit(1)


def _short(exc: Exception) -> str:
    from schemas.import_lines import EventFieldError

    if isinstance(exc, EventFieldError):
        return str(exc)
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'line'}: {e['msg']}" for e in exc.errors()[:3])
    return f"not JSON: {exc}"


def _summary(sent: int, rejects: list[tuple[int, str]], stats: dict | None, dry_run: bool) -> None:
    verb = "valid" if dry_run else "sent"
    console.print(f"[bold]{sent}[/] {verb}, [bold]{len(rejects)}[/] rejected")
    if stats:
        console.print(f"delivered {stats['delivered']}, spooled messages {stats['spooled_messages']}, "
                      f"tag warnings {stats['tag_warnings']} (booked to unallocated)")
    if rejects:
        table = Table("line", "why rejected")
        for no, why in rejects[:50]:
            table.add_row(str(no), why)
        console.print(table)
        if len(rejects) > 50:
            console.print(f"... and {len(rejects) - 50} more")


@events_app.command("tail")
def tail(
    topic: Optional[str] = typer.Option(None, help="default: kafka.usage_topic"),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="start at the oldest message"),
    max_events: int = typer.Option(0, "--max", help="stop after this many events (0 = run until Ctrl-C)"),
    idle_timeout_s: float = typer.Option(0.0, "--idle-timeout", help="stop after this long without a message"),
) -> None:
    """Decode and pretty-print usage events as they arrive; undecodable messages show their DLQ reason."""
    import time

    from confluent_kafka import Consumer

    from schemas.errors import DecodeError

    settings = settings_or_exit()
    codec = _codec(settings)
    consumer = Consumer({
        "bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": f"spendstream-tail-{uuid.uuid4().hex[:8]}",
        "auto.offset.reset": "earliest" if from_beginning else "latest", "enable.auto.commit": False,
        "session.timeout.ms": int(settings.kafka.session_timeout_s * 1000),
    })
    consumer.subscribe([topic or settings.kafka.usage_topic])
    shown, last = 0, time.monotonic()
    try:
        while not max_events or shown < max_events:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                if idle_timeout_s and time.monotonic() - last > idle_timeout_s:
                    break
                continue
            last = time.monotonic()
            try:
                events = codec.decode(msg.value())
            except DecodeError as exc:
                console.print(f"[red]p{msg.partition()}@{msg.offset()} undecodable: {exc.reason}[/] {exc.detail}")
                continue
            for ev in events:
                console.print(_line(ev), highlight=False)
                shown += 1
                if max_events and shown >= max_events:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


def _line(ev: dict) -> str:
    tokens = "/".join(str(ev.get(k, 0)) for k in ("input_tokens", "cached_input_tokens", "output_tokens"))
    tags = " ".join(f"{k}={ev[k]}" for k in ("team", "use_case", "environment") if ev.get(k))
    return (f"{ev['event_time']} {ev['event_id']} {ev['provider']}/{ev['model']} {ev['operation']} "
            f"{ev['status']} tok(in/cached/out)={tokens} {tags or '[unallocated]'}")


def register(app: typer.Typer) -> None:
    app.command("publish")(publish)
    app.add_typer(events_app, name="events")
