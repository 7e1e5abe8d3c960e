"""A dev ClickHouse server: one process owns a chdb data directory and speaks ClickHouse's HTTP interface on
loopback, so clickhouse-connect, curl and any number of processes can share the same data.

    python -m devservers.clickhouse_http --data-dir DIR [--host 127.0.0.1] [--port 18123]
        [--users-file users.yaml] [--user NAME:PASSWORD:rw|ro ...] [--display-name NAME] [--log-level LEVEL]

Request handling lives in ``devservers.clickhouse_handler``; this module is the server and its CLI."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from http.server import ThreadingHTTPServer

from devservers.clickhouse_engine import Engine
from devservers.clickhouse_handler import ClickHouseHandler
from devservers.clickhouse_protocol import Sessions
from devservers.clickhouse_users import Users

log = logging.getLogger("devservers.clickhouse")

DEFAULT_PORT = 18123


class ClickHouseHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, engine: Engine, users: Users, display_name: str | None = None):
        super().__init__(address, ClickHouseHandler)
        self.engine = engine
        self.users = users
        self.sessions = Sessions()
        self.display_name = display_name or socket.gethostname()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m devservers.clickhouse_http", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True, help="chdb data directory (created if missing)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"listen port (default {DEFAULT_PORT})")
    p.add_argument("--users-file", help="JSON or YAML users file (see devservers.clickhouse_users)")
    p.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="NAME:PASSWORD:rw|ro",
        help="add a user (repeatable); also DEVSERVERS_CH_USERS=spec,spec",
    )
    p.add_argument("--backups-dir", help="where BACKUP ... TO File('name') writes and RESTORE reads (the server's "
                   "backups.allowed_path; default: DATA_DIR-backups next to the data directory)")
    p.add_argument("--display-name", help="X-ClickHouse-Server-Display-Name (default: host name)")
    p.add_argument("--log-level", default=os.environ.get("DEVSERVERS_LOG_LEVEL", "WARNING"))
    return p


def serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    users = Users.from_sources(args.users_file, args.user)
    os.makedirs(args.data_dir, exist_ok=True)
    try:
        backups = os.path.abspath(args.backups_dir or args.data_dir.rstrip("/") + "-backups")
        os.makedirs(backups, exist_ok=True)
        engine = Engine(os.path.abspath(args.data_dir), backups)
    except Exception as ex:  # noqa: BLE001
        log.error("cannot open chdb data directory %s (is another process using it?): %s", args.data_dir, ex)
        return 1
    server = ClickHouseHTTPServer((args.host, args.port), engine, users, args.display_name)
    stopping = threading.Event()

    def stop(signum, _frame):
        if not stopping.is_set():
            stopping.set()
            log.info("signal %s: shutting down", signum)
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "ClickHouse HTTP (chdb %s) on http://%s:%s, data in %s, users: %s",
        engine.version,
        args.host,
        server.server_address[1],
        args.data_dir,
        ", ".join(f"{u.name}({'ro' if u.readonly else 'rw'})" for u in users.by_name.values()),
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        engine.close()
        log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    return serve(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
