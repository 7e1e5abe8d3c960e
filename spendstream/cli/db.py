"""`spendstream db migrate|status`: versioned ClickHouse migrations (sinks/clickhouse/migrations/*.sql), idempotent."""

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


def register(app: typer.Typer) -> None:
    app.add_typer(db, name="db")
