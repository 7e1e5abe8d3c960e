"""`spendstream rebuild-counters`: restore the Redis spend store from ClickHouse after Redis lost its data.

Stop every worker first: a worker booking while the rebuild writes is overwritten.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from spendstream.cli._common import console, settings_or_exit
from spendstream.cli._common import now_ms as wall_ms  # `now_ms` is a parameter below

__all__ = ["register", "rebuild_counters"]


def rebuild_counters(settings, budgets_file: Path | None, now_ms: int | None = None):
    """Read ClickHouse, write Redis; returns the RebuildReport. Raises SpendstreamError on bad budgets."""
    import asyncio

    from sinks.redis.client import make_redis
    from sinks.redis.rebuild import ALERTS_SQL, DECISIONS_SQL, PRICED_SQL, CounterRebuild
    from sinks.clickhouse.schema import connect
    from spendstream.cli.budgets import load_budgets

    budgets = load_budgets(budgets_file) if budgets_file else None  # fail before touching anything
    db = settings.clickhouse.database
    ch = connect(settings.clickhouse.dsn, settings.clickhouse.timeout_s)
    job = CounterRebuild(settings.redis.prefix, now_ms if now_ms is not None else wall_ms())
    with ch.query_row_block_stream(PRICED_SQL.replace("{db}", db)) as blocks:
        for block in blocks:
            job.add_events(block)
    decisions = ch.query(DECISIONS_SQL.replace("{db}", db)).result_rows
    alerts = ch.query(ALERTS_SQL.replace("{db}", db)).result_rows

    async def write():
        r = make_redis(settings.redis.url, timeout_s=30.0)
        try:
            return await job.write(r, budgets, decisions, alerts)
        finally:
            await r.aclose()

    return asyncio.run(write())


def register(app: typer.Typer) -> None:
    @app.command("rebuild-counters")
    def rebuild(
        budgets: Path = typer.Option(None, "--budgets", exists=True, dir_okay=False,
                                     help="budgets YAML (the reviewed source of truth); without it the store's "
                                          "current budgets are kept"),
    ) -> None:
        """Rebuild Redis (open windows, applied offsets, dedupe markers, budgets, active decisions, alert markers)
        from ClickHouse after Redis lost its data. Run it with every worker STOPPED."""
        s = settings_or_exit()
        rep = rebuild_counters(s, budgets)
        t = Table("restored", "count")
        t.add_row("priced events read", f"{rep.events:,}")
        t.add_row("window counters", f"{rep.windows:,}")
        t.add_row("windows past their retention (not restored)", f"{rep.expired_windows:,}")
        t.add_row("partitions (applied marks)", f"{len(rep.partitions):,}")
        t.add_row("dedupe markers", f"{rep.seen_markers:,}")
        t.add_row("budgets", f"{rep.budgets:,}" if budgets else "kept")
        t.add_row("active decisions", f"{len(rep.decisions):,}")
        t.add_row("alert markers", f"{rep.alert_markers:,}")
        console.print(t)
        for budget_id, why in sorted(rep.skipped_decisions.items()):
            console.print(f"decision of {budget_id} not restored: {why}")
