"""`spendstream reprice`: what a new price book changes over a past range — a dry run by default, `--apply` books
the corrections (audited, idempotent). The one reprice command; `prices reprice` and `reprice apply` were its
two older spellings and now say where it moved."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.table import Table

from spendstream.cli._common import console
from spendstream.errors import ConfigError
from spendstream.money import format_usd

__all__ = ["register", "reprice_group"]

reprice_group = typer.Typer(help="Reprice a past range under a new price book: dry run by default, --apply books "
                                 "correction rows (audited; a second run books nothing).",
                            invoke_without_command=True)


def _utc(text: str, what: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"{what} must be an ISO date or date-time (UTC), e.g. 2026-11-01, not {text!r}") from exc
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


@reprice_group.callback()
def reprice(
    ctx: typer.Context,
    book: Path = typer.Option(None, "--book", exists=True, dir_okay=False, help="The NEW price book (YAML/TOML)"),
    since: str = typer.Option(None, "--from", help="Start, ISO date or date-time UTC (inclusive)"),
    until: str = typer.Option(None, "--to", help="End, ISO date or date-time UTC (exclusive)"),
    events: Path = typer.Option(None, "--events", exists=True, dir_okay=False,
                                help="Reprice a JSONL file of usage events instead of what ClickHouse booked "
                                     "(dry run only)"),
    old_book: Path = typer.Option(None, "--old-book", help="With --events: the old book (default: the figures "
                                                           "booked on each event)"),
    apply: bool = typer.Option(False, "--apply", help="Write the correction rows (default: show the deltas only)"),
    by: str = typer.Option("", help="With --apply: who applies it (default: the OS user)"),
    note: str = typer.Option("", help="With --apply: why (stored in the audit row)"),
    show: int = typer.Option(10, "--show", help="How many per-event deltas to print"),
) -> None:
    """Per-event cost deltas of [--from, --to) under --book; with --apply, book them as corrections."""
    if ctx.invoked_subcommand is not None:
        return
    if book is None or since is None or until is None:
        raise typer.BadParameter("--book, --from and --to are required")
    from spendstream.cli.files import load_price_book
    from spendstream.reprice import reprice as reprice_events, summarize

    start, end = _utc(since, "--from"), _utc(until, "--to")
    new = load_price_book(book)
    if events is not None:
        if apply:
            raise ConfigError("--apply books corrections for what ClickHouse holds; it cannot take --events")
        from spendstream.cli.files import read_events_jsonl

        old = load_price_book(old_book) if old_book else None
        deltas = list(reprice_events(read_events_jsonl(events), new, old=old,
                                     start_ms=int(start.timestamp() * 1000), end_ms=int(end.timestamp() * 1000)))
    else:
        from reports.corrections import booked_events
        from spendstream.cli._common import clickhouse_client

        client, db = clickhouse_client()
        booked = list(booked_events(client, db, start, end))
        deltas = list(reprice_events(booked, new))
    _show(deltas, summarize(deltas), new.version, show)
    if apply:
        from reports.corrections import apply_corrections, from_reprice

        res = apply_corrections(client, db, from_reprice(deltas), applied_by=by or getpass.getuser(),
                                now=datetime.now(UTC), start=start, end=end, events_seen=len(booked), note=note)
        state = "already applied" if res.already_applied else "applied"
        console.print(f"{res.run_id} {state}: {res.changed:,} of {len(booked):,} events changed, "
                      f"delta {format_usd(res.delta_cost)} USD")
    else:
        console.print("dry run: nothing written (add --apply to book these corrections)")


def _show(deltas, s, version: str, n: int) -> None:
    t = Table(title=f"reprice: {s.events:,} events, {s.changed:,} changed, new version {version}")
    for col in ("event", "time (UTC)", "provider/model", "old charged", "new charged", "delta", "rule"):
        t.add_column(col)
    for d in deltas[:n]:
        when = datetime.fromtimestamp(d.event_time / 1000, UTC).strftime("%Y-%m-%d %H:%M")
        t.add_row(d.event_id, when, f"{d.provider}/{d.model}", format_usd(d.old_charged_nanos),
                  format_usd(d.new.charged_nanos), format_usd(d.delta_nanos), d.new.rule)
    console.print(t)
    for (p, m), delta in sorted(s.by_model.items(), key=lambda kv: kv[1]):
        console.print(f"  {p}/{m}: {format_usd(delta)} USD")
    console.print(f"[bold]old {format_usd(s.old_charged_nanos)} -> new {format_usd(s.new_charged_nanos)}: "
                  f"delta {format_usd(s.delta_nanos)} USD[/bold]; unpriced under the new book: {s.unpriced_new}")


@reprice_group.command("apply", hidden=True, context_settings={"allow_extra_args": True,
                                                               "ignore_unknown_options": True})
def moved_apply() -> None:
    """Moved: `spendstream reprice --apply`."""
    raise ConfigError("`reprice apply` moved: use `spendstream reprice --book NEW --from D --to D --apply` "
                      "(without --apply it is a dry run)")


def register(app: typer.Typer) -> None:
    app.add_typer(reprice_group, name="reprice")
