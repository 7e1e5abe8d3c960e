"""The chdb engine behind the dev server: one chdb Session on the data directory, every call serialized by
one lock (chdb runs one query at a time per engine anyway — measured: two concurrent ``sleep(1)`` take
2 s), per-request settings and current database applied with SET / USE inside that lock, and chdb's
exception text turned into ClickHouse's (code, name, message)."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field

from devservers.clickhouse_sql import is_identifier, quote_string

log = logging.getLogger("devservers.clickhouse")

_CODE_RE = re.compile(r"Code:\s*(\d+)\.")
_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*$")


class EngineError(Exception):
    def __init__(self, code: int, message: str, name: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.name = name


def engine_error(ex: BaseException) -> EngineError:
    if isinstance(ex, EngineError):
        return ex
    text = str(ex).strip()
    for prefix in ("Streaming insert append failed: ", "Streaming insert finish failed: "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    m = _CODE_RE.search(text)
    code = int(m.group(1)) if m else 1001
    # chdb sometimes nests "Code: N. DB::Exception: Code: N. DB::Exception: ..."; keep the innermost text
    msg = text
    while True:
        m2 = re.match(r"Code:\s*\d+\.\s*DB::Exception:\s*", msg)
        if not m2:
            break
        msg = msg[m2.end() :]
    msg = re.sub(r"\s*\(version [^)]*\)", "", msg)
    name = None
    while True:  # drop trailing "(NAME)" markers (chdb may repeat them)
        msg = msg.rstrip(". ")
        nm = _NAME_RE.search(msg)
        if not nm:
            break
        name = name or nm.group(1)
        msg = msg[: nm.start()]
    return EngineError(code, msg, name)


@dataclass
class Result:
    data: bytes
    rows_read: int = 0
    bytes_read: int = 0
    rows_written: int = 0
    bytes_written: int = 0
    result_rows: int = 0
    elapsed: float = 0.0


@dataclass
class _Applied:
    database: str = "default"
    settings: dict[str, str] = field(default_factory=dict)


class _Conn:
    """One chdb session on the data directory (they share the engine and the data, not settings / USE)."""

    def __init__(self, session):
        self.session = session
        self.applied = _Applied()


class Engine:
    """Sessions per readonly level: 0 (writer), 1 (read-only users: the engine refuses writes and setting
    changes), 2 (GET requests: no writes, settings allowed). All engine calls go through one lock."""

    # clickhouse-local (hence chdb) defaults that differ from clickhouse-server's. implicit_select=1 would run
    # "SELEC" as "SELECT SELEC". They are startup options of every session and restored after a request
    # that overrides them.
    BASELINE = {"implicit_select": "0"}

    def __init__(self, data_dir: str, backups_dir: str | None = None):
        """`backups_dir`: where `BACKUP … TO File('name')` writes and `RESTORE … FROM File('name')` reads (the
        server's `backups.allowed_path`; a relative name lands inside it). None: BACKUP / RESTORE are refused, as
        by a ClickHouse server without that setting."""
        from chdb import session as chs

        self.data_dir = data_dir
        self.backups_dir = backups_dir
        startup = dict(self.BASELINE)
        if backups_dir:
            startup["backups.allowed_path"] = backups_dir.rstrip("/") + "/"
        opts = "&".join(f"{k}={v}" for k, v in startup.items())
        self._lock = threading.Lock()
        self._conns = {level: _Conn(chs.Session(f"{data_dir}?readonly={level}&{opts}")) for level in (0, 1, 2)}
        self.version = self._raw(self._conns[0], "SELECT version()").decode().strip()
        self.error_names = self._load_error_names()

    @staticmethod
    def _raw(conn: _Conn, sql: str, fmt: str = "TabSeparated") -> bytes:
        return conn.session.query(sql, fmt).bytes()

    def _load_error_names(self) -> dict[int, str]:
        sql = "SELECT number, errorCodeToName(number) FROM numbers(1200) WHERE errorCodeToName(number) != ''"
        names = {}
        for line in self._raw(self._conns[0], sql).decode().splitlines():
            code, _, name = line.partition("\t")
            names[int(code)] = name
        return names

    def close(self) -> None:
        with self._lock:
            for conn in self._conns.values():
                try:
                    conn.session.close()
                except Exception:  # noqa: BLE001
                    log.exception("closing a chdb session")

    # --- state sync (lock held) ---------------------------------------------------------------------
    def _sync(self, conn: _Conn, database: str, settings: dict[str, str]) -> None:
        """settings: name -> SQL literal."""
        ap = conn.applied
        try:
            for name in [k for k in ap.settings if k not in settings]:
                self._raw(conn, f"SET {name} = {self.BASELINE.get(name, 'DEFAULT')}")
                del ap.settings[name]
            for name, value in settings.items():
                if ap.settings.get(name) == value:
                    continue
                if not is_identifier(name):
                    raise EngineError(115, f"Unknown setting '{name}'", "UNKNOWN_SETTING")
                self._raw(conn, f"SET {name} = {value}")
                ap.settings[name] = value
            if database != ap.database:
                self._raw(conn, f"USE `{database.replace('`', '``')}`")
                ap.database = database
        except Exception as ex:
            raise engine_error(ex) from None

    def database_exists(self, database: str) -> bool:
        with self._lock:
            sql = f"SELECT count() FROM system.databases WHERE name = {quote_string(database)}"
            return self._raw(self._conns[0], sql).strip() == b"1"

    def query(
        self, sql: str, fmt: str, *, database: str, settings: dict[str, str], params: dict[str, str], readonly: int = 0
    ) -> Result:
        conn = self._conns[min(readonly, 2)]
        with self._lock:
            self._sync(conn, database, settings)
            try:
                r = conn.session.query(sql, fmt, params=params)
            except Exception as ex:
                raise engine_error(ex) from None
            data = r.bytes()
            return Result(
                data,
                rows_read=_stat(r, "rows_read"),
                bytes_read=_stat(r, "bytes_read"),
                rows_written=_stat(r, "rows_written"),
                bytes_written=_stat(r, "bytes_written"),
                elapsed=float(_stat(r, "elapsed")),
            )

    def insert(
        self, prefix: str, fmt: str, data: bytes, *, database: str, settings: dict[str, str], readonly: int = 0
    ) -> Result:
        conn = self._conns[min(readonly, 2)]
        with self._lock:
            self._sync(conn, database, settings)
            try:
                ins = conn.session.send_insert(prefix, fmt)
            except Exception as ex:
                raise engine_error(ex) from None
            try:
                if data:
                    ins.append(data)
                res = ins.finish()
            except Exception as ex:
                try:
                    ins.cancel()
                except Exception:  # noqa: BLE001
                    pass
                raise engine_error(ex) from None
            return Result(b"", rows_written=res.rows_written, bytes_written=res.bytes_written, elapsed=res.elapsed or 0.0)


def _stat(r, name: str) -> float:
    try:
        v = getattr(r, name)
        return v() if callable(v) else v
    except Exception:  # noqa: BLE001
        return 0
