"""`spendstream keys create|list|revoke`: API keys of the enforcement API (stored hashed in Redis)."""

from __future__ import annotations

import asyncio

import typer
from rich.table import Table

from spendstream.cli._common import console, now_ms, settings_or_exit

__all__ = ["register"]

keys = typer.Typer(help="API keys: scope check (a service, bound to teams), read (a team lead), ingest (a producer "
                   "sending events over HTTP / OTLP, bound to teams), admin.", no_args_is_help=True)


def _store(settings):
    from enforcement.auth import ApiKeys
    from sinks.redis.client import make_redis

    return ApiKeys(make_redis(settings.redis.url, 2.0), settings.redis.prefix)


@keys.command("create")
def create(
    name: str = typer.Option(..., "--name", help="who uses the key, e.g. checkout-service"),
    scope: str = typer.Option(..., "--scope", help="check | read | ingest | admin"),
    team: list[str] = typer.Option([], "--team", help="team the key acts for (repeat; '*' = any); check, read and ingest"),
) -> None:
    """Create a key and print it ONCE (only its hash is stored)."""
    s = settings_or_exit()
    key, p = asyncio.run(_store(s).create(name, scope, team, now_ms=now_ms()))
    typer.echo(key)
    typer.secho(f"key id {p.key_id}, scope {p.scope}, teams {','.join(p.teams) or '-'}: store it now, it is not "
                "shown again", err=True)


@keys.command("list")
def list_() -> None:
    """Key ids, names, scopes and teams (never the keys)."""
    t = Table("id", "name", "scope", "teams")
    for p in asyncio.run(_store(settings_or_exit()).list()):
        t.add_row(p.key_id, p.name, p.scope, ",".join(p.teams))
    console.print(t)


@keys.command("revoke")
def revoke(key_id: str = typer.Argument(..., help="the id shown by create / list")) -> None:
    """Delete a key; running APIs stop accepting it within their cache time (5 s)."""
    if not asyncio.run(_store(settings_or_exit()).revoke(key_id)):
        typer.secho(f"no key with id {key_id}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(keys, name="keys")
