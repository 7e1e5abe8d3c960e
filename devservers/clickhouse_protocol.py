"""ClickHouse HTTP interface details used by the dev server's handler: which URL parameters are not engine
settings, the HTTP status of each error, Content-Type per format, HTTP sessions (``session_id``), and the
SET / USE statements the server handles itself."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from devservers.clickhouse_engine import EngineError
from devservers.clickhouse_sql import is_identifier, tokens

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
STATUS_BY_NAME = {
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


def parse_set(sql: str) -> dict[str, str]:
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


def parse_use(sql: str) -> str:
    toks = list(tokens(sql))
    if len(toks) != 2 or toks[1].kind not in ("word", "qid"):
        raise EngineError(62, "Syntax error: USE expects one database name", "SYNTAX_ERROR")
    t = toks[1]
    return t.text[1:-1] if t.kind == "qid" else t.text
