"""`spendstream budgets apply|list`: budgets live in Redis; a YAML file is the reviewed source of truth."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.table import Table

from schemas.models import Budget
from spendstream.cli._common import console, settings_or_exit
from spendstream.cli.files import read_yaml
from spendstream.errors import ConfigError

__all__ = ["register", "load_budgets", "store_for"]

budgets = typer.Typer(help="Budgets: scope, period, limit, thresholds, showback or enforce.", no_args_is_help=True)


def load_budgets(path: Path) -> list[Budget]:
    """Parse a budgets YAML file (a list under `budgets:`). Raises ConfigError naming the entry and field."""
    raw = read_yaml(path, "budgets file")
    items = (raw or {}).get("budgets") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        raise ConfigError(f"{path}: expected a top-level `budgets:` list")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(Budget.model_validate(item))
        except ValidationError as exc:
            where = ", ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"{path}: budget #{i + 1} ({item.get('id', '?') if isinstance(item, dict) else '?'}): {where}") from exc
    return out


def store_for(settings):
    from sinks.redis.client import make_redis
    from sinks.redis.spend_store import RedisSpendStore

    return RedisSpendStore(make_redis(settings.redis.url, 2.0), settings.redis.prefix)


@budgets.command("apply")
def apply(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="budgets YAML")) -> None:
    """Create or replace every budget in FILE."""
    s = settings_or_exit()
    items = load_budgets(file)

    async def _go() -> None:
        store = store_for(s)
        for b in items:
            await store.put_budget(b)

    asyncio.run(_go())
    console.print(f"applied {len(items)} budgets")


@budgets.command("list")
def list_() -> None:
    """List the budgets the stream and the API enforce."""
    s = settings_or_exit()
    t = Table("id", "scope", "period", "limit USD", "mode", "action", "thresholds")
    for b in asyncio.run(store_for(s).budgets()):
        t.add_row(b.id, f"{b.scope.kind}:{b.scope.value}", b.window_name, b.limit_usd, b.mode, b.action, ",".join(map(str, b.thresholds)))
    console.print(t)


@budgets.command("close")
def close(window: str = typer.Option(..., help="Window id that ended: m:202611, w:2026W47, d:20261124 or a fiscal "
                                             "quarter q:202610 (its first month)")) -> None:
    """Write the period-close row of every calendar budget of that period to the budget history (budget_snapshots):
    limit, spent (Redis counters of the window; a quarter sums its months), mode. Rolling budgets have no period
    and get no close row. Closing a window again replaces its rows."""
    from sinks.clickhouse.budget_history import close_window
    from spendstream.cli._common import clickhouse_client, now_ms
    from spendstream.windows import window_bounds

    try:
        window_bounds(window)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"window must look like m:202611, w:2026W47, d:20261124 or q:202610, not {window!r}") from exc
    s = settings_or_exit()
    client, db = clickhouse_client()
    try:
        n = asyncio.run(close_window(store_for(s), client, db, window, now_ms(),
                                     s.budgets.fiscal_year_start_month))
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    console.print(f"closed {window}: {n} budget snapshot(s)")


@budgets.command("history")
def history(budget: str = typer.Option(None, help="Only this budget id")) -> None:
    """The budget history: every change (who, when, before -> after limit) and period close."""
    import json

    from reports.render.html import usd
    from sinks.clickhouse.budget_history import snapshot_rows
    from spendstream.cli._common import clickhouse_client

    client, db = clickhouse_client()
    t = Table("at", "budget", "kind", "window", "by", "limit before", "limit after", "spent")
    for r in snapshot_rows(client, db, budget):
        lim = {k: (json.loads(r[k])["limit_usd"] if r[k] else "") for k in ("before", "after")}
        t.add_row(f"{r['snapshot_at']:%Y-%m-%d %H:%M:%S}", r["budget_id"], r["kind"] or "close", r["window_id"],
                  r["changed_by"], lim["before"], lim["after"], usd(r["spent_nanos"]) if r["kind"] == "close" else "")
    console.print(t)


def register(app: typer.Typer) -> None:
    app.add_typer(budgets, name="budgets")
