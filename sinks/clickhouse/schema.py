"""ClickHouse connection and versioned migrations: one client path, clickhouse-connect over HTTP, against a ClickHouse
server in production and against the dev server `spendstream services up` starts (the real engine, chdb, behind
ClickHouse's HTTP interface: devservers/clickhouse_http.py) everywhere else.

`connect(dsn)` takes `http(s)://user:password@host:port`.
Migrations are the numbered files in sinks/clickhouse/migrations/, applied once each and recorded in `schema_migrations`.
They are written for one node; with a cluster name (SPENDSTREAM_CLICKHOUSE__CLUSTER) `migrate` applies their cluster
form instead (sinks/clickhouse/cluster_ddl.py, docs/scaling.md "ClickHouse cluster").
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from sinks.clickhouse.cluster_ddl import ClusterDDL, replicated_tables
from sinks.clickhouse.inserts import insert_rows
from spendstream.errors import ConfigError

__all__ = ["connect", "migrate", "MIGRATIONS_DIR", "pending_migrations", "render", "cluster_ddl", "ensure_migrations_table",
           "MIGRATIONS_TABLE", "SYNC_INSERT"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def connect(dsn: str, timeout_s: float = 30.0) -> Client:
    """A clickhouse-connect client for `dsn`, with `timeout_s` per request (the client's default is 300 s, long
    enough for a hung server to stall a flush). Raises ConfigError on an unusable DSN."""
    u = urlparse(dsn)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ConfigError(f"unusable ClickHouse DSN {_redacted(dsn)!r}: expected http(s)://user:password@host:port")
    return clickhouse_connect.get_client(dsn=dsn, connect_timeout=min(10.0, timeout_s),
                                         send_receive_timeout=timeout_s, autogenerate_session_id=False)


def _redacted(dsn: str) -> str:
    u = urlparse(dsn)
    return dsn.replace(f":{u.password}@", ":***@") if u.password else dsn


def _statements(sql: str) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


MIGRATIONS_TABLE = ("CREATE TABLE IF NOT EXISTS {db}.schema_migrations (version String, applied_at DateTime DEFAULT now()) "
                    "ENGINE = ReplacingMergeTree ORDER BY version")
SYNC_INSERT = {"insert_distributed_sync": 1}  # on a cluster: an INSERT through a Distributed table returns once stored


def cluster_ddl(cluster: str, sql_texts: Iterable[str] | None = None) -> ClusterDDL:
    """The DDL transform for `cluster`, knowing every table of every migration (not only the pending ones: a later
    migration's view or ALTER refers to tables an earlier one created) and schema_migrations."""
    texts = list(sql_texts) if sql_texts is not None else [p.read_text() for p in sorted(MIGRATIONS_DIR.glob("*.sql"))]
    stmts = [MIGRATIONS_TABLE] + [s for t in texts for s in _statements(t)]
    return ClusterDDL(cluster, replicated_tables(stmts))


def render(sql: str, database: str, ddl: ClusterDDL | None = None) -> list[str]:
    """The statements of one migration file's text for `database`: as written (single node), or their cluster form."""
    stmts = _statements(sql)
    if ddl is not None:
        stmts = [out for stmt in stmts for out in ddl.statements(stmt)]
    return [stmt.replace("{db}", database) for stmt in stmts]


def ensure_migrations_table(client: Client, database: str, ddl: ClusterDDL | None = None) -> None:
    """CREATE the database and schema_migrations (ON CLUSTER, replicated, when `ddl` is set)."""
    if not _NAME.match(database):
        raise ConfigError(f"database name {database!r} must be an identifier")
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}" + (ddl.on if ddl is not None else ""))
    for stmt in render(MIGRATIONS_TABLE, database, ddl):
        client.command(stmt)


def pending_migrations(client: Client, database: str) -> list[Path]:
    done = {r[0] for r in client.query(f"SELECT version FROM {database}.schema_migrations").result_rows}
    return [p for p in sorted(MIGRATIONS_DIR.glob("*.sql")) if p.stem not in done]


def migrate(client: Client, database: str, cluster: str | None = None) -> list[str]:
    """Apply every migration not yet recorded. Idempotent. Returns the versions applied now. With `cluster` (a
    cluster name of the server's remote_servers), the cluster form of each statement (cluster_ddl.py)."""
    ddl = cluster_ddl(cluster) if cluster else None
    ensure_migrations_table(client, database, ddl)
    applied = []
    for path in pending_migrations(client, database):
        for stmt in render(path.read_text(), database, ddl):
            client.command(stmt)
        insert_rows(client, f"{database}.schema_migrations", ["version"], [[path.stem]],
                    SYNC_INSERT if ddl is not None else None)
        applied.append(path.stem)
    return applied
