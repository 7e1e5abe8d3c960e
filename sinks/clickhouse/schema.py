"""ClickHouse connection and versioned migrations: one client path, clickhouse-connect over HTTP, against a ClickHouse
server in production and against the dev server `spendstream services up` starts (the real engine, chdb, behind
ClickHouse's HTTP interface: devservers/clickhouse_http.py) everywhere else.

`connect(dsn)` takes `http(s)://user:password@host:port`.
Migrations are the numbered files in sinks/clickhouse/migrations/, applied once each and recorded in `schema_migrations`.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from spendstream.errors import ConfigError

__all__ = ["connect", "migrate", "MIGRATIONS_DIR", "pending_migrations"]

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


def pending_migrations(client: Client, database: str) -> list[Path]:
    done = {r[0] for r in client.query(f"SELECT version FROM {database}.schema_migrations").result_rows}
    return [p for p in sorted(MIGRATIONS_DIR.glob("*.sql")) if p.stem not in done]


def migrate(client: Client, database: str) -> list[str]:
    """Apply every migration not yet recorded. Idempotent. Returns the versions applied now."""
    if not _NAME.match(database):
        raise ConfigError(f"database name {database!r} must be an identifier")
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations (version String, applied_at DateTime DEFAULT now()) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    applied = []
    for path in pending_migrations(client, database):
        for stmt in _statements(path.read_text()):
            client.command(stmt.replace("{db}", database))
        client.insert(f"{database}.schema_migrations", [[path.stem]], column_names=["version"])
        applied.append(path.stem)
    return applied
