"""`spendstream db migrate|status|query|ttl|backup|restore`: versioned ClickHouse migrations
(sinks/clickhouse/migrations/*.sql, idempotent), read-only queries, retention, backup and restore."""

from __future__ import annotations

import typer

from spendstream.cli._common import console, settings_or_exit

__all__ = ["register"]

db = typer.Typer(help="ClickHouse schema (versioned migrations) and read-only queries, over HTTP.", no_args_is_help=True)


@db.command("migrate")
def migrate_cmd() -> None:
    """Apply every migration not yet applied (safe to run again)."""
    from sinks.clickhouse.schema import connect, migrate

    s = settings_or_exit()
    applied = migrate(connect(s.clickhouse.dsn, s.clickhouse.timeout_s), s.clickhouse.database, s.clickhouse.cluster)
    console.print(f"applied: {', '.join(applied) or 'nothing (up to date)'}")


@db.command("status")
def status_cmd() -> None:
    """List migrations not yet applied."""
    from sinks.clickhouse.schema import cluster_ddl, connect, ensure_migrations_table, pending_migrations

    s = settings_or_exit()
    client = connect(s.clickhouse.dsn, s.clickhouse.timeout_s)
    ensure_migrations_table(client, s.clickhouse.database,
                            cluster_ddl(s.clickhouse.cluster) if s.clickhouse.cluster else None)
    pending = pending_migrations(client, s.clickhouse.database)
    console.print(f"pending: {', '.join(p.stem for p in pending) or 'none'}")


@db.command("query")
def query_cmd(
    sql: str = typer.Argument(..., help="One SELECT; `{db}` is replaced by the configured database"),
    as_json: bool = typer.Option(False, "--json", help="Print rows as a JSON array of arrays"),
) -> None:
    """Run a read-only query against ClickHouse (over HTTP: works while the worker runs)."""
    import json

    from rich.table import Table

    from sinks.clickhouse.schema import connect

    s = settings_or_exit()
    res = connect(s.clickhouse.dsn, s.clickhouse.timeout_s).query(sql.replace("{db}", s.clickhouse.database), settings={"readonly": 2})  # no writes; settings may change
    if as_json:
        typer.echo(json.dumps([list(r) for r in res.result_rows], default=str))
        return
    t = Table(*res.column_names)
    for r in res.result_rows:
        t.add_row(*(str(v) for v in r))
    console.print(t)


@db.command("ttl")
def ttl_cmd(
    raw_days: int = typer.Option(400, help="Days raw priced events (with user / customer) are kept"),
    rollup_days: int = typer.Option(1100, help="Days the rollups (no subject in them) are kept"),
) -> None:
    """Set the retention TTLs: raw events shorter, rollups longer; ledgers are kept (audit)."""
    from sinks.clickhouse.lifecycle import set_ttls
    from spendstream.cli._common import clickhouse_client

    client, database = clickhouse_client()
    for stmt in set_ttls(client, database, raw_days, rollup_days):
        typer.echo(stmt)


@db.command("backup")
def backup_cmd(
    path: str = typer.Argument(..., help="where the server writes the backup: a name inside its backups.allowed_path "
                                         "(the dev server: DATA_DIR-backups), or an absolute path under it"),
) -> None:
    """Back up the whole database with the engine's BACKUP (priced events, rollups, ledgers). Redis is not in it:
    after a restore, run `spendstream rebuild-counters`."""
    from sinks.clickhouse.backup import backup_database
    from spendstream.cli._common import clickhouse_client

    client, database = clickhouse_client()
    res = _or_exit(lambda: backup_database(client, database, path))
    console.print(f"backup {res.id} of {database} to {path}: {res.status}")


@db.command("restore")
def restore_cmd(
    path: str = typer.Argument(..., help="the backup's path, as given to `db backup`"),
    from_database: str = typer.Option(None, "--from-database", help="the database name inside the backup "
                                                                      "(default: the configured one)"),
    replace: bool = typer.Option(False, "--replace", help="drop the configured database first if it exists "
                                                          "(what it holds is lost)"),
) -> None:
    """Restore the database from a backup made by `db backup`; then rebuild Redis with
    `spendstream rebuild-counters` (workers stopped)."""
    from sinks.clickhouse.backup import restore_database
    from spendstream.cli._common import clickhouse_client

    client, database = clickhouse_client()
    res = _or_exit(lambda: restore_database(client, database, path, source_database=from_database, replace=replace))
    console.print(f"restore {res.id} of {database} from {path}: {res.status}; now run `spendstream rebuild-counters`")


def _or_exit(action):
    from schemas.errors import SpendstreamError

    try:
        return action()
    except SpendstreamError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc


def register(app: typer.Typer) -> None:
    @app.command("forget")
    def forget_cmd(
        user_hash: str = typer.Option(None, "--user-hash", help="The hashed user id, as in events"),
        customer: str = typer.Option(None, help="A customer id"),
    ) -> None:
        """Remove one subject's raw events (privacy request) and say what was removed. Spend totals stay in the
        rollups, which hold no subject."""
        from sinks.clickhouse.lifecycle import forget
        from spendstream.cli._common import clickhouse_client
        from spendstream.money import format_usd

        client, database = clickhouse_client()
        try:
            f = forget(client, database, user_hash=user_hash, customer=customer)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        who = f"user_hash {user_hash}" if user_hash else f"customer {customer}"
        typer.echo(f"removed {f.events} raw event(s) of {who} from priced_events ({format_usd(f.cost)} USD of spend "
                   "stays in the rollups, without the subject)")

    app.add_typer(db, name="db")
