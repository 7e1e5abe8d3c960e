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


def register(app: typer.Typer) -> None:
    app.add_typer(budgets, name="budgets")
