"""Request handling of the dev ClickHouse HTTP server (see devservers.clickhouse_http)."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlsplit

from devservers import clickhouse_codecs as codecs
from devservers.clickhouse_engine import EngineError, Result
from devservers.clickhouse_sql import READ_KINDS, analyze, is_identifier, setting_literal, tokens

log = logging.getLogger("devservers.clickhouse")

# URL parameters that are HTTP-interface options, not engine settings.
CLIENT_ONLY = frozenset(
    {
        "query", "database", "default_format", "session_id", "session_timeout", "session_check", "query_id",
        "compress", "decompress", "user", "password", "quota_key", "wait_end_of_query", "buffer_size",
        "send_progress_in_http_headers", "http_headers_progress_interval_ms", "enable_http_compression",
        "http_zlib_compression_level", "client_protocol_version", "readonly", "http_response_buffer_size",
        "cancel_http_readonly_queries_on_client_close", "http_wait_end_of_query", "role", "stacktrace",
        "http_native_compression_disable_checksumming_on_decompress", "add_http_cors_header",
    }
)  # fmt: skip

# HTTP status per ClickHouse error name (ClickHouse's src/Server/HTTP/exceptionCodeToHTTPStatus.cpp)
_STATUS_BY_NAME = {
    "REQUIRED_PASSWORD": 401,
    **dict.fromkeys(
        ["UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED", "SET_NON_GRANTED_ROLE", "ACCESS_DENIED"], 403
    ),
    **dict.fromkeys(
        "BAD_ARGUMENTS CANNOT_COMPILE_REGEXP CANNOT_PARSE_TEXT CANNOT_PARSE_ESCAPE_SEQUENCE CANNOT_PARSE_QUOTED_STRING "
        "CANNOT_PARSE_DATE CANNOT_PARSE_DATETIME CANNOT_PARSE_NUMBER CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING "
        "CANNOT_PARSE_IPV4 CANNOT_PARSE_IPV6 CANNOT_PARSE_INPUT_ASSERTION_FAILED CANNOT_PARSE_UUID DUPLICATE_COLUMN "
        "ILLEGAL_COLUMN UNKNOWN_ELEMENT_IN_AST UNKNOWN_TYPE_OF_AST_NODE THERE_IS_NO_COLUMN TOO_DEEP_AST TOO_BIG_AST "
        "UNEXPECTED_AST_STRUCTURE SYNTAX_ERROR INCORRECT_DATA TYPE_MISMATCH VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE".split(),
        400,
    ),
    **dict.fromkeys(
        "UNKNOWN_TABLE UNKNOWN_FUNCTION UNKNOWN_IDENTIFIER UNKNOWN_TYPE UNKNOWN_STORAGE UNKNOWN_DATABASE "
        "UNKNOWN_SETTING UNKNOWN_DIRECTION_OF_SORTING UNKNOWN_AGGREGATE_FUNCTION UNKNOWN_FORMAT "
        "UNKNOWN_DATABASE_ENGINE UNKNOWN_TYPE_OF_QUERY UNKNOWN_ROLE".split(),
        404,
    ),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "CANNOT_SCHEDULE_TASK": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}


def content_type_for(fmt: str) -> str:
    f = fmt.lower()
    if f.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if f.startswith("csv"):
        return "text/csv; charset=UTF-8; header=absent"
    if f.startswith("json"):
        return "application/json; charset=UTF-8"
    if f.startswith(("native", "rowbinary", "arrow", "parquet", "orc", "avro", "msgpack", "protobuf", "capnproto")):
        return "application/octet-stream"
    return "text/plain; charset=UTF-8"


class BrokenBody(Exception):
    pass


@dataclass
class Session:
    settings: dict[str, str] = field(default_factory=dict)  # name -> SQL literal
    database: str | None = None
    readonly: int = 0
    timeout: float = 60.0
    last_used: float = field(default_factory=time.monotonic)


class Sessions:
    """ClickHouse HTTP sessions (``session_id``): SET and USE are remembered per session, never applied to
    the shared engine beyond one request."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_id: dict[str, Session] = {}

    def get(self, sid: str | None, timeout: str | None) -> Session | None:
        if not sid:
            return None
        now = time.monotonic()
        with self._lock:
            for key in [k for k, s in self._by_id.items() if now - s.last_used > s.timeout]:
                del self._by_id[key]
            s = self._by_id.setdefault(sid, Session())
            if timeout:
                try:
                    s.timeout = float(timeout)
                except ValueError:
                    pass
            s.last_used = now
            return s


class ClickHouseHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
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
            changes = _parse_set(text[: st.end])
            if session is not None:
                for name, lit in changes.items():
                    if name == "readonly":
                        session.readonly = int(lit.strip("'") or 0)
                    else:
                        session.settings[name] = lit
            return self._ok(Result(b""), "TabSeparated", headers, params)
        if kind == "USE":
            db = _parse_use(text[: st.end])
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
        status = _STATUS_BY_NAME.get(name, 500)
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


def _parse_set(sql: str) -> dict[str, str]:
    """``SET a = 1, b = 'x'`` -> {"a": "1", "b": "'x'"} (values kept as SQL literals)."""
    out: dict[str, str] = {}
    toks = list(tokens(sql))[1:]
    i = 0
    while i < len(toks):
        name = toks[i].text
        if not is_identifier(name) or i + 1 >= len(toks) or toks[i + 1].text != "=":
            raise EngineError(62, f"Syntax error in SET near {name!r}", "SYNTAX_ERROR")
        j = i + 2
        start = toks[j].start if j < len(toks) else None
        while j < len(toks) and not (toks[j].text == "," and toks[j].depth == 0):
            j += 1
        if start is None:
            raise EngineError(62, f"Syntax error in SET: no value for {name}", "SYNTAX_ERROR")
        out[name] = sql[start : toks[j - 1].end]
        i = j + 1
    return out


def _parse_use(sql: str) -> str:
    toks = list(tokens(sql))
    if len(toks) != 2 or toks[1].kind not in ("word", "qid"):
        raise EngineError(62, "Syntax error: USE expects one database name", "SYNTAX_ERROR")
    t = toks[1]
    return t.text[1:-1] if t.kind == "qid" else t.text
