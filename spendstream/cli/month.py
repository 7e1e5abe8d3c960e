"""`spendstream month close 2026-11`: lock a billing month once reviewed and exported."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime

import typer

from sinks.clickhouse.inserts import insert_rows
from spendstream.cli._common import clickhouse_client, console
from spendstream.errors import ConfigError
from spendstream.windows import month_bounds

__all__ = ["register"]

month = typer.Typer(help="Billing months: close (lock) a month.", no_args_is_help=True)


@month.command("close")
def close(
    label: str = typer.Argument(..., help="Billing month, e.g. 2026-11"),
    by: str = typer.Option(None, help="Who closes it (default: the OS user)"),
    note: str = typer.Option("", help="Why / reference, e.g. the review ticket"),
) -> None:
    """Lock MONTH: from now on its events that arrive late are exported as FOCUS Corrections in the month they
    arrive (reprices already are), so the month's own export never changes. Closing twice is refused."""
    try:
        start, end = month_bounds(label)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    now = datetime.now(UTC)
    if now < end:
        raise ConfigError(f"{label} has not ended yet (ends {end:%Y-%m-%d %H:%M} UTC)")
    client, db = clickhouse_client()
    done = client.query(f"SELECT min(closed_at), any(closed_by) FROM {db}.month_closes WHERE month = %(m)s "
                        "HAVING count() > 0", parameters={"m": start.date()}).result_rows
    if done:
        console.print(f"{label} was closed at {done[0][0]:%Y-%m-%d %H:%M} UTC by {done[0][1]}; nothing changed")
        raise typer.Exit(1)
    insert_rows(client, f"{db}.month_closes", ["month", "closed_at", "closed_by", "note"],
                [[start.date(), now, by or getpass.getuser(), note]])
    console.print(f"{label} closed at {now:%Y-%m-%d %H:%M:%S} UTC: late events now export as corrections")


def register(app: typer.Typer) -> None:
    app.add_typer(month, name="month")
