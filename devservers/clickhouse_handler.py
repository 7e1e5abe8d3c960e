"""Request handling of the dev ClickHouse HTTP server (see devservers.clickhouse_http)."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlsplit

from devservers import clickhouse_codecs as codecs
from devservers.clickhouse_engine import EngineError, Result
from devservers.clickhouse_protocol import CLIENT_ONLY, STATUS_BY_NAME, content_type_for, parse_set, parse_use
from devservers.clickhouse_sql import READ_KINDS, analyze, setting_literal

log = logging.getLogger("devservers.clickhouse")


class BrokenBody(Exception):
    pass


class ClickHouseHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120  # idle keep-alive connections (and stalled uploads) are closed after this many seconds
    disable_nagle_algorithm = True  # otherwise delayed ACKs add ~40 ms to every keep-alive round trip
    server_version = "ClickHouse-devserver"
    sys_version = ""

    def version_string(self) -> str:
        return self.server_version

    # ---- plumbing ------------------------------------------------------------------------------------
    def log_message(self, format, *args):  # noqa: A002
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_HEAD(self):
        path = urlsplit(self.path).path
        self._send(200 if path in ("/", "/ping") else 404, b"", {"Content-Type": "text/html; charset=UTF-8"})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        else:
            self.send_header("Keep-Alive", "timeout=30")
        self._headers_buffer.append(b"\r\n")  # end_headers(), with the body in the same write
        if self.command != "HEAD":
            self._headers_buffer.append(body)
        self.wfile.write(b"".join(self._headers_buffer))
        self._headers_buffer = []

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise BrokenBody("connection closed inside a chunked body")
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise BrokenBody("bad chunk size line") from None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                chunk = self.rfile.read(size)
                if len(chunk) < size:
                    raise BrokenBody("connection closed inside a chunk")
                out += chunk
                self.rfile.readline(3)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise BrokenBody("bad Content-Length") from None
        data = self.rfile.read(n) if n > 0 else b""
        if len(data) < n:
            raise BrokenBody(f"body shorter than Content-Length ({len(data)} < {n})")
        return data

    # ---- request -------------------------------------------------------------------------------------
    def _handle(self, method: str) -> None:
        query_id = str(uuid.uuid4())
        try:
            url = urlsplit(self.path)
            params = dict(parse_qsl(url.query, keep_blank_values=True))
            # ClickHouse also takes the database and the default format as request headers
            for header, name in (("X-ClickHouse-Database", "database"), ("X-ClickHouse-Format", "default_format")):
                if self.headers.get(header) and name not in params:
                    params[name] = self.headers[header]
            query_id = params.get("query_id") or query_id
            try:
                body = self._read_body()
            except BrokenBody as ex:
                self.close_connection = True
                raise EngineError(1001, f"Cannot read the request body: {ex}", "STD_EXCEPTION") from None
            if url.path in ("/ping", "/replicas_status") or (url.path == "/" and method == "GET" and not body and "query" not in params):
                self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
                return
            if url.path not in ("/", "/query"):
                self._send(404, f"There is no handle {url.path}\n".encode(), {"Content-Type": "text/plain; charset=UTF-8"})
                return
            try:
                ctype = self.headers.get("Content-Type") or ""
                body = codecs.decode_body(body, self.headers.get("Content-Encoding"))
                if params.get("decompress") in ("1", "true"):
                    body = codecs.decode_native_blocks(body)
                if ctype.lower().startswith("multipart/form-data"):
                    params.update(codecs.parse_multipart(body, ctype))
                    body = b""
            except codecs.CodecError as ex:
                raise EngineError(1001, str(ex), "STD_EXCEPTION") from None
            user = self._authenticate(params)
            self._execute(method, params, body, user, query_id)
        except EngineError as ex:
            self._send_error(ex, query_id)
        except Exception as ex:  # noqa: BLE001 - every failure becomes a ClickHouse error answer
            log.exception("unexpected error")
            self._send_error(EngineError(1001, f"{type(ex).__name__}: {ex}", "STD_EXCEPTION"), query_id)

    def _authenticate(self, params: dict[str, str]):
        name, password = None, ""
        auth = self.headers.get("Authorization") or ""
        if auth.lower().startswith("basic "):
            try:
                name, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except Exception:  # noqa: BLE001
                raise EngineError(516, "Malformed Basic authorization header", "AUTHENTICATION_FAILED") from None
        elif self.headers.get("X-ClickHouse-User") is not None:
            name, password = self.headers.get("X-ClickHouse-User"), self.headers.get("X-ClickHouse-Key") or ""
        elif "user" in params:
            name, password = params["user"], params.get("password", "")
        name = name or "default"
        user = self.server.users.authenticate(name, password)
        if user is None:
            raise EngineError(
                516,
                f"{name}: Authentication failed: password is incorrect, or there is no user with such name",
                "AUTHENTICATION_FAILED",
            )
        return user

    def _execute(self, method: str, params: dict[str, str], body: bytes, user, query_id: str) -> None:
        srv = self.server
        if params.get("compress") in ("1", "true"):
            raise EngineError(
                48,
                "compress=1 (ClickHouse block compression of responses) is not supported by this dev server; "
                "use Accept-Encoding with enable_http_compression=1",
                "NOT_IMPLEMENTED",
            )
        session = srv.sessions.get(params.get("session_id"), params.get("session_timeout"))
        q = params.get("query", "")
        raw = (q.encode() + b"\n" + body) if q and body else (q.encode() if q else body)
        text = raw.decode("latin-1")
        st = analyze(text)
        if not st.kind:
            raise EngineError(62, "Empty query", "SYNTAX_ERROR")
        if st.multi:
            raise EngineError(62, "Syntax error (Multi-statements are not allowed)", "SYNTAX_ERROR")
        if st.into_outfile:
            raise EngineError(497, "INTO OUTFILE is not allowed over HTTP", "ACCESS_DENIED")

        readonly = 1 if user.readonly else 0
        for level in (params.get("readonly"), session and session.readonly):
            try:
                level = int(level or 0)
            except ValueError:
                level = 0
            if level and (not readonly or level < readonly):
                readonly = level
        get_ro = method == "GET" and not readonly
        if get_ro:
            readonly = 2
        kind = st.kind
        allowed = READ_KINDS | {"USE"} | ({"SET"} if readonly == 2 else set())
        if readonly and kind not in allowed:
            hint = (
                ". For queries over HTTP, method GET implies readonly. You should use method POST for modifying queries"
                if get_ro
                else ""
            )
            raise EngineError(164, f"{user.name}: Cannot execute query in readonly mode{hint}", "READONLY")

        database = params.get("database") or (session.database if session else None) or "default"
        settings: dict[str, str] = dict(session.settings) if session else {}
        for k, v in params.items():
            if k in CLIENT_ONLY or k.startswith("param_"):
                continue
            settings[k] = setting_literal(v)
        qparams = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        headers = {"X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Database": database}

        if kind == "SET":
            changes = parse_set(text[: st.end])
            if session is not None:
                for name, lit in changes.items():
                    if name == "readonly":
                        try:
                            session.readonly = int(lit.strip("'\" ") or 0)
                        except ValueError:
                            raise EngineError(27, f"Cannot parse readonly value {lit}", "CANNOT_PARSE_INPUT_ASSERTION_FAILED") from None
                    else:
                        session.settings[name] = lit
            return self._ok(Result(b""), "TabSeparated", headers, params)
        if kind == "USE":
            db = parse_use(text[: st.end])
            if not srv.engine.database_exists(db):
                raise EngineError(81, f"Database {db} does not exist", "UNKNOWN_DATABASE")
            if session is not None:
                session.database = db
            return self._ok(Result(b""), "TabSeparated", headers, params)

        fmt = st.fmt or params.get("default_format") or "TabSeparated"
        if kind == "INSERT" and st.data_start is not None:
            prefix = raw[: st.insert_prefix_end].decode("utf-8", errors="replace")
            res = srv.engine.insert(
                prefix, fmt, raw[st.data_start :], database=database, settings=settings, readonly=readonly
            )
            return self._ok(res, fmt, headers, params)
        sql = raw[: st.end].decode("utf-8", errors="replace")
        res = srv.engine.query(sql, fmt, database=database, settings=settings, params=qparams, readonly=readonly)
        self._ok(res, fmt, headers, params)

    # ---- answers -------------------------------------------------------------------------------------
    def _common_headers(self, headers: dict[str, str]) -> dict[str, str]:
        return {
            "X-ClickHouse-Server-Display-Name": self.server.display_name,
            "X-ClickHouse-Timezone": "UTC",
            **headers,
        }

    def _ok(self, res: Result, fmt: str, headers: dict[str, str], params: dict[str, str]) -> None:
        data = res.data
        summary = {
            "read_rows": str(res.rows_read),
            "read_bytes": str(res.bytes_read),
            "written_rows": str(res.rows_written),
            "written_bytes": str(res.bytes_written),
            "total_rows_to_read": str(res.rows_read),
            "result_rows": str(res.result_rows),
            "result_bytes": str(len(data)),
            "elapsed_ns": str(int(res.elapsed * 1e9)),
        }
        out = self._common_headers(headers)
        out.update(
            {
                "X-ClickHouse-Format": fmt,
                "Content-Type": content_type_for(fmt),
                "X-ClickHouse-Summary": json.dumps(summary, separators=(",", ":")),
            }
        )
        if params.get("enable_http_compression") in ("1", "true") and data:
            enc = codecs.choose_encoding(self.headers.get("Accept-Encoding"))
            if enc:
                data = codecs.encode_body(data, enc)
                out["Content-Encoding"] = enc
        self._send(200, data, out)

    def _send_error(self, ex: EngineError, query_id: str) -> None:
        engine = getattr(self.server, "engine", None)
        name = ex.name or (engine.error_names.get(ex.code) if engine else None) or "UNKNOWN_EXCEPTION"
        version = engine.version if engine else "unknown"
        body = f"Code: {ex.code}. DB::Exception: {ex.message}. ({name}) (version {version} (chdb devserver))\n"
        status = STATUS_BY_NAME.get(name, 500)
        headers = self._common_headers(
            {
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Exception-Code": str(ex.code),
                "Content-Type": "text/plain; charset=UTF-8",
            }
        )
        log.info("query %s failed: code %s %s", query_id, ex.code, ex.message[:200])
        try:
            self._send(status, body.encode(), headers)
        except OSError:
            self.close_connection = True
