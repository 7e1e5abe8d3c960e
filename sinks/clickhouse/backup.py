"""Backup and restore of the spendstream database with the engine's own `BACKUP` / `RESTORE` (to a `File(...)` on
the server: a path inside the server's `backups.allowed_path`, relative names land inside it).

The dev server (devservers/clickhouse_http.py) has it configured (`--backups-dir`, default DATA_DIR-backups); a
ClickHouse server needs `<backups><allowed_path>…</allowed_path></backups>` (deploy/clickhouse/backups.xml in
docker-compose). One backup holds every table of the database — priced events, rollups and their materialized
views, ledgers, migrations — consistent per table. Redis is not in it: after a restore rebuild it with
`spendstream rebuild-counters` (docs/operations.md)."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.errors import SpendstreamError
from spendstream.errors import ConfigError

__all__ = ["BackupFailed", "BackupResult", "backup_database", "restore_database"]


class BackupFailed(SpendstreamError):
    """The server refused or failed a BACKUP / RESTORE; the message is the server's."""


@dataclass(frozen=True)
class BackupResult:
    id: str
    status: str
    path: str


def _file(path: str) -> str:
    if not path or "\x00" in path:
        raise ConfigError("a backup path is required")
    return "File('" + path.replace("\\", "\\\\").replace("'", "\\'") + "')"


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ConfigError(f"not a database name: {name!r}")
    return name


def _run(client, sql: str, want: str, path: str) -> BackupResult:
    try:
        rows = client.query(sql).result_rows
    except Exception as exc:  # the server's words: not configured (318), exists already, not found ...
        raise BackupFailed(str(exc).strip().splitlines()[0][:500]) from exc
    op_id, status = str(rows[0][0]), str(rows[0][1])
    if status != want:
        raise BackupFailed(f"{sql.split()[0]} of {path} ended {status}")
    return BackupResult(op_id, status, path)


def backup_database(client, database: str, path: str) -> BackupResult:
    """BACKUP DATABASE `database` TO File(path). Raises BackupFailed (e.g. the path exists already, or the server
    has no backups.allowed_path)."""
    return _run(client, f"BACKUP DATABASE {_ident(database)} TO {_file(path)}", "BACKUP_CREATED", path)


def restore_database(client, database: str, path: str, *, source_database: str | None = None,
                     replace: bool = False) -> BackupResult:
    """RESTORE the backup at `path` into `database` (the backup's database `source_database`, default the same
    name). The database must not exist unless `replace` (then it is dropped first: what it holds is lost).
    Raises ConfigError when it exists and `replace` is false, BackupFailed when the server fails."""
    database = _ident(database)
    exists = client.query("SELECT count() FROM system.databases WHERE name = {d:String}",
                          parameters={"d": database}).result_rows[0][0]
    if exists and not replace:
        raise ConfigError(f"database {database} exists: restore into a new name, or replace it (drops it first)")
    if exists:
        client.command(f"DROP DATABASE {database} SYNC")
    source = _ident(source_database or database)
    target = f"{source} AS {database}" if source != database else database
    return _run(client, f"RESTORE DATABASE {target} FROM {_file(path)}", "RESTORED", path)
