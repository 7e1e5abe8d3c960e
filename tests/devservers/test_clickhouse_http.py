"""The dev ClickHouse HTTP server (devservers.clickhouse_http), started as a real subprocess on a free port,
driven through clickhouse-connect and through raw HTTP (http.client, as curl would)."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

ROOT = Path(__file__).resolve().parents[2]
WRITER = ("default", "w-secret")
ANALYST = ("analyst", "a-secret")
UTC = dt.timezone.utc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw(port, method="POST", path="/", body=None, headers=None, auth=WRITER, params=None):
    """One HTTP exchange: (status, headers, body)."""
    headers = dict(headers or {})
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    if params:
        path = path + "?" + urllib.parse.urlencode(params)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.headers, r.read()
    finally:
        conn.close()


def start_server(data_dir: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("DEVSERVERS_CH_USERS", None)
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "devservers.clickhouse_http", "--data-dir", str(data_dir), "--port", str(port),
            "--user", f"{WRITER[0]}:{WRITER[1]}:rw", "--user", f"{ANALYST[0]}:{ANALYST[1]}:ro",
        ],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        try:
            if raw(port, "GET", "/ping", auth=None)[2] == b"Ok.\n":
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not answer /ping within 60 s")


def stop_server(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return -9
    return proc.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    proc = start_server(tmp_path_factory.mktemp("chdata"), port)
    yield port
    assert stop_server(proc) == 0, "SIGTERM must stop the server cleanly"


def client(port, user=WRITER, **kw):
    return clickhouse_connect.get_client(host="127.0.0.1", port=port, username=user[0], password=user[1], **kw)


TYPED_DDL = """CREATE TABLE {t} (
    s String, i Int64, u UInt8, f Float64, ts DateTime64(3, 'UTC'), m Map(String, String),
    lc LowCardinality(String), n Nullable(Int32)
) ENGINE = MergeTree ORDER BY i"""


def typed_rows(base: int):
    return [
        ["plain", base + 1, 0, 0.5, dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC), {"k": "v", "a": "b"}, "red", None],
        ["quote ' back \\ tab \t nl \n ünï", base - 2**40, 255, -1e-3, dt.datetime(1999, 12, 31, 23, 59, 59, 1000, tzinfo=UTC), {}, "blue", -7],
        ["", base + 3, 7, 12345.125, dt.datetime(2030, 6, 1, tzinfo=UTC), {"x": ""}, "red", 2147483647],
    ]  # fmt: skip


def normalize(row):
    row = list(row)
    ts = row[4]
    row[4] = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    return tuple(row)


# --- basics -------------------------------------------------------------------------------------------------
def test_ping_and_root(server):
    assert raw(server, "GET", "/ping", auth=None)[:1] == (200,)
    assert raw(server, "GET", "/ping", auth=None)[2] == b"Ok.\n"
    assert raw(server, "GET", "/", auth=None)[2] == b"Ok.\n"
    assert raw(server, "GET", "/nope", auth=None)[0] == 404


def test_headers_and_default_format(server):
    status, headers, body = raw(server, "POST", "/", b"SELECT 1 AS one, 'x' AS s", params={"query_id": "q-123"})
    assert status == 200
    assert body == b"1\tx\n"  # TabSeparated by default
    assert headers["X-ClickHouse-Query-Id"] == "q-123"
    assert headers["X-ClickHouse-Format"] == "TabSeparated"
    assert headers["X-ClickHouse-Timezone"] == "UTC"
    assert headers["X-ClickHouse-Database"] == "default"
    assert headers["X-ClickHouse-Server-Display-Name"]
    summary = json.loads(headers["X-ClickHouse-Summary"])
    assert {"read_rows", "written_rows", "elapsed_ns"} <= set(summary)
    status, headers, body = raw(server, "GET", "/", params={"query": "SELECT 2 AS two", "default_format": "JSONEachRow"})
    assert (status, body, headers["X-ClickHouse-Format"]) == (200, b'{"two":2}\n', "JSONEachRow")
    # query param + body are concatenated (query param first, then a newline, then the body)
    status, _, body = raw(server, "POST", "/", b"AS three FORMAT CSV", params={"query": "SELECT 3"})
    assert (status, body) == (200, b"3\n")


def test_client_connects_and_sees_server(server):
    c = client(server)
    assert c.server_version.startswith(c.command("SELECT version()"))
    assert c.command("SELECT 40 + 2") == 42
    assert c.query("SELECT number FROM numbers(4)").result_rows == [(0,), (1,), (2,), (3,)]
    assert c.raw_query("SELECT 5 AS x FORMAT JSONEachRow") == b'{"x":5}\n'


# --- inserts through clickhouse-connect -----------------------------------------------------------------------
@pytest.mark.parametrize("compress", [True, False, "gzip", "zstd"])
def test_typed_insert_roundtrip(server, compress):
    c = client(server, compress=compress)
    db = f"typed_{str(compress).lower()}"
    c.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    c.command(TYPED_DDL.format(t=f"{db}.t"))
    rows = typed_rows(1000)
    c.insert(f"{db}.t", rows)
    got = [normalize(r) for r in c.query(f"SELECT * FROM {db}.t ORDER BY i").result_rows]
    expected = sorted((tuple(r) for r in rows), key=lambda r: r[1])
    assert got == expected
    # an independent check in a text format, computed by the engine
    _, _, tsv = raw(server, "POST", "/", f"SELECT count(), sum(u), countIf(n IS NULL), max(lc) FROM {db}.t".encode())
    assert tsv == b"3\t262\t1\tred\n"


def test_large_native_insert_and_database_param(server):
    c = client(server, database="default")
    c.command("CREATE TABLE big (id UInt64, name String, v Float64) ENGINE = MergeTree ORDER BY id")
    n = 100_000
    data = [[i, f"n{i % 97}", i * 0.5] for i in range(n)]
    c.insert("big", data)
    assert c.query("SELECT count(), sum(id), uniqExact(name) FROM big").result_rows == [(n, n * (n - 1) // 2, 97)]
    status, _, body = raw(server, "GET", "/", params={"query": "SELECT count() FROM big", "database": "default"})
    assert body == b"100000\n"
    status, headers, body = raw(server, "GET", "/", params={"query": "SELECT 1", "database": "no_such_db"})
    assert status == 404 and headers["X-ClickHouse-Exception-Code"] == "81"


def test_rowbinary_raw_insert(server):
    c = client(server)
    c.command("CREATE TABLE rb (a UInt32, b String) ENGINE = MergeTree ORDER BY a")
    block = raw(server, "POST", "/", b"SELECT toUInt32(number) AS a, concat('r', toString(number)) AS b FROM numbers(10) FORMAT RowBinary")[2]
    assert len(block) > 40
    c.raw_insert("rb", ["a", "b"], block, fmt="RowBinary")
    assert c.query("SELECT count(), max(b) FROM rb").result_rows == [(10, "r9")]


# --- query parameters ---------------------------------------------------------------------------------------
def test_server_side_parameters(server):
    c = client(server)
    nasty = "x'); DROP TABLE big; --\\"
    r = c.query("SELECT {s:String} AS s, {n:Int64} * 2 AS n, {a:Array(UInt8)} AS a", parameters={"s": nasty, "n": 21, "a": [1, 2]})
    assert r.result_rows == [(nasty, 42, [1, 2])]
    # raw HTTP param_ binding; the value is data, never SQL
    status, _, body = raw(server, "POST", "/", b"SELECT {v:String} AS v FORMAT JSONEachRow", params={"param_v": "1'; DROP DATABASE default; --"})
    assert (status, json.loads(body)) == (200, {"v": "1'; DROP DATABASE default; --"})
    assert raw(server, "POST", "/", b"EXISTS TABLE default.big")[2] == b"1\n"


def test_client_side_parameters(server):
    c = client(server)
    r = c.query("SELECT %(s)s AS s, %(n)s + 1 AS n", parameters={"s": "it's", "n": 41})
    assert r.result_rows == [("it's", 42)]


# --- formats ------------------------------------------------------------------------------------------------
SAMPLE = b"SELECT number AS n, concat('v', toString(number)) AS s FROM numbers(3)"


@pytest.mark.parametrize(
    "fmt, expected",
    [
        ("TSV", b"0\tv0\n1\tv1\n2\tv2\n"),
        ("TabSeparatedWithNames", b"n\ts\n0\tv0\n1\tv1\n2\tv2\n"),
        ("CSV", b'0,"v0"\n1,"v1"\n2,"v2"\n'),
        ("JSONEachRow", b'{"n":"0","s":"v0"}\n{"n":"1","s":"v1"}\n{"n":"2","s":"v2"}\n'),
    ],
)
def test_text_formats(server, fmt, expected):
    status, headers, body = raw(server, "POST", "/", SAMPLE + f" FORMAT {fmt}".encode())
    assert status == 200 and headers["X-ClickHouse-Format"] == fmt
    if fmt == "JSONEachRow":  # UInt64 quoting depends on output_format_json_quote_64bit_integers
        assert [json.loads(x) for x in body.splitlines()] in (
            [json.loads(x) for x in expected.splitlines()],
            [{"n": i, "s": f"v{i}"} for i in range(3)],
        )
    else:
        assert body == expected


def test_json_format(server):
    status, headers, body = raw(server, "POST", "/", b"SELECT toUInt8(7) AS a, 'q' AS b FORMAT JSON")
    doc = json.loads(body)
    assert doc["meta"] == [{"name": "a", "type": "UInt8"}, {"name": "b", "type": "String"}]
    assert doc["data"] == [{"a": 7, "b": "q"}] and doc["rows"] == 1
    assert headers["Content-Type"].startswith("application/json")


def test_text_format_inserts(server):
    c = client(server)
    c.command("CREATE TABLE txt (a Int32, b String) ENGINE = MergeTree ORDER BY a")
    q = {"query": "INSERT INTO txt (a, b) FORMAT TabSeparated"}
    assert raw(server, "POST", "/", b"1\tone\n2\ttwo\n", params=q)[0] == 200
    assert raw(server, "POST", "/", b'INSERT INTO txt FORMAT CSV\n3,"three"\n4,"four, with comma"\n')[0] == 200
    assert raw(server, "POST", "/", b'{"a":5,"b":"five"}\n{"a":6,"b":"six"}', params={"query": "INSERT INTO txt FORMAT JSONEachRow"})[0] == 200
    assert raw(server, "POST", "/", b"INSERT INTO txt VALUES (7, 'seven')")[0] == 200
    got = c.query("SELECT a, b FROM txt ORDER BY a").result_rows
    assert got == [(1, "one"), (2, "two"), (3, "three"), (4, "four, with comma"), (5, "five"), (6, "six"), (7, "seven")]
    status, headers, body = raw(server, "POST", "/", b"1\tnot-a-number-row\nx\ty\n", params={"query": "INSERT INTO txt FORMAT TSV"})
    assert status >= 400 and headers["X-ClickHouse-Exception-Code"] and body.startswith(b"Code: ")


def test_arrow_and_dataframe(server):
    c = client(server)
    t = c.query_arrow("SELECT number AS n, toString(number * 2) AS s FROM numbers(5)")
    assert t.column("n").to_pylist() == [0, 1, 2, 3, 4]
    assert [str(x) for x in t.column("s").to_pylist()] == ["0", "2", "4", "6", "8"]
    df = c.query_df("SELECT number AS n FROM numbers(3)")
    assert df["n"].tolist() == [0, 1, 2]
    # and back in: Arrow and DataFrame inserts
    c.command("CREATE TABLE arrow_in (n UInt64, s String) ENGINE = MergeTree ORDER BY n")
    c.insert_arrow("arrow_in", t)
    c.insert_df("arrow_in", c.query_df("SELECT number + 100 AS n, 'df' AS s FROM numbers(2)"))
    assert c.query("SELECT groupArray(n), groupArray(s) FROM (SELECT * FROM arrow_in ORDER BY n)").result_rows == [
        ([0, 1, 2, 3, 4, 100, 101], ["0", "2", "4", "6", "8", "df", "df"])
    ]


# --- compression --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("enc", ["gzip", "deflate", "lz4", "zstd"])
def test_http_compression_raw(server, enc):
    from devservers.clickhouse_codecs import decode_body, encode_body

    body = encode_body(b"SELECT sum(number) FROM numbers(1000)", enc)
    status, headers, data = raw(
        server, "POST", "/", body, headers={"Content-Encoding": enc, "Accept-Encoding": enc}, params={"enable_http_compression": "1"}
    )
    assert status == 200 and headers["Content-Encoding"] == enc
    assert decode_body(data, enc) == b"499500\n"
    assert gzip.decompress(raw(server, "POST", "/", b"SELECT 1", headers={"Accept-Encoding": "br, gzip"}, params={"enable_http_compression": "1"})[2]) == b"1\n"
    # without enable_http_compression the answer stays plain
    status, headers, data = raw(server, "POST", "/", b"SELECT 1", headers={"Accept-Encoding": enc})
    assert "Content-Encoding" not in headers and data == b"1\n"


# --- errors -------------------------------------------------------------------------------------------------
def test_error_contract(server):
    c = client(server)
    with pytest.raises(DatabaseError) as ei:
        c.query("SELEC 1")
    assert "Code: 62" in str(ei.value)
    status, headers, body = raw(server, "POST", "/", b"SELEC 1")
    assert status == 400  # ClickHouse answers SYNTAX_ERROR with 400 (exceptionCodeToHTTPStatus)
    assert headers["X-ClickHouse-Exception-Code"] == "62"
    assert body.startswith(b"Code: 62. DB::Exception: ") and b"(SYNTAX_ERROR) (version " in body
    status, headers, body = raw(server, "POST", "/", b"SELECT * FROM default.no_such_table")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (404, "60")
    status, headers, body = raw(server, "POST", "/", b"SELECT throwIf(1, 'boom')")
    assert status == 500 and headers["X-ClickHouse-Exception-Code"] == "395" and b"boom" in body
    status, headers, body = raw(server, "POST", "/", b"SELECT 1; SELECT 2")
    assert status == 400 and headers["X-ClickHouse-Exception-Code"] == "62"
    with pytest.raises(DatabaseError) as ei:
        c.command("DROP TABLE default.no_such_table")
    assert "Code: 60" in str(ei.value)


def test_broken_bodies_get_error_answers(server):
    # Content-Length larger than what is sent, then the client goes away
    with socket.create_connection(("127.0.0.1", server)) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nSELECT 1")
        s.shutdown(socket.SHUT_WR)
        s.settimeout(10)
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 500") and b"X-ClickHouse-Exception-Code: 1001" in answer
    # malformed chunked encoding
    with socket.create_connection(("127.0.0.1", server)) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nSELECT 1\r\n0\r\n\r\n")
        s.settimeout(10)
        assert s.recv(4096).startswith(b"HTTP/1.1 500")
    # a body that claims a compression it does not have
    status, headers, _ = raw(server, "POST", "/", b"not lz4 at all", headers={"Content-Encoding": "lz4"})
    assert status == 500 and headers["X-ClickHouse-Exception-Code"] == "1001"
    # chunked requests that are fine are fine
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    conn.request("POST", "/", body=iter([b"SELECT ", b"7"]), headers={"Authorization": "Basic " + base64.b64encode(b"default:w-secret").decode()}, encode_chunked=True)
    assert conn.getresponse().read() == b"7\n"
    assert raw(server, "GET", "/ping", auth=None)[2] == b"Ok.\n"


def test_keep_alive_connection_reuse(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    auth = {"Authorization": "Basic " + base64.b64encode(b"default:w-secret").decode()}
    for i in range(5):
        conn.request("POST", "/", body=f"SELECT {i}".encode(), headers=auth)
        assert conn.getresponse().read() == f"{i}\n".encode()
    conn.request("POST", "/", body=b"SELEC", headers=auth)
    assert conn.getresponse().read().startswith(b"Code: 62")
    conn.request("POST", "/", body=b"SELECT 9", headers=auth)
    assert conn.getresponse().read() == b"9\n"
    conn.close()


def test_server_stays_responsive_during_a_slow_query(server):
    done = {}

    def slow():
        done["body"] = raw(server, "POST", "/", b"SELECT sleep(1.5) + 1")[2]

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    assert raw(server, "GET", "/ping", auth=None)[2] == b"Ok.\n"
    assert time.monotonic() - t0 < 0.5  # /ping never waits for the engine
    assert raw(server, "POST", "/", b"SELECT 2")[2] == b"2\n"  # queued behind the slow query, then answered
    t.join(10)
    assert done["body"] == b"1\n"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_with_curl(server):
    """The examples of ClickHouse's HTTP interface docs, with the real curl."""
    base = f"http://127.0.0.1:{server}/"
    auth = ["-u", f"{WRITER[0]}:{WRITER[1]}"]

    def curl(*args, data=None):
        return subprocess.run(["curl", "-sS", *auth, *args], input=data, capture_output=True, check=True, timeout=30).stdout

    assert curl(base + "ping") == b"Ok.\n"
    assert curl(base + "?database=system", "--data-binary", "@-", data=b"SELECT number FROM numbers LIMIT 3") == b"0\n1\n2\n"
    assert curl("--data-binary", "@-", "-H", "Content-Encoding: gzip", base, data=gzip.compress(b"SELECT 1")) == b"1\n"
    out = curl(base + "?enable_http_compression=1", "-H", "Accept-Encoding: gzip", "-d", "SELECT number FROM system.numbers LIMIT 3")
    assert gzip.decompress(out) == b"0\n1\n2\n"
    assert curl(base + "?param_arg1=abc%5C%09123", "-d", "SELECT splitByChar('\\t', {arg1:String})") == b"['abc','123']\n"
    curl(base, "-d", "CREATE TABLE curl_t (a UInt8) ENGINE = Memory")
    curl(base + "?query=INSERT%20INTO%20curl_t%20VALUES", "--data-binary", "@-", data=b"(4),(5),(6)")
    big = b"".join(b"%d\n" % (i % 200) for i in range(200_000))  # > 1 MB: curl sends Expect: 100-continue
    curl(base + "?query=INSERT%20INTO%20curl_t%20FORMAT%20TSV", "--data-binary", "@-", data=big)
    assert curl(base, "-d", "SELECT count(), sum(a) FROM curl_t FORMAT CSV") == b"200003,%d\n" % (15 + sum(i % 200 for i in range(200_000)))


def test_async_client(server):
    import asyncio

    async def go():
        c = await clickhouse_connect.get_async_client(host="127.0.0.1", port=server, username=WRITER[0], password=WRITER[1])
        try:
            results = await asyncio.gather(*(c.query(f"SELECT {i} * 2") for i in range(5)))
            return [r.result_rows[0][0] for r in results]
        finally:
            await c.close()

    assert asyncio.run(go()) == [0, 2, 4, 6, 8]


# --- users --------------------------------------------------------------------------------------------------
def test_readonly_user(server):
    w = client(server)
    w.command("CREATE TABLE ro_t (a Int32) ENGINE = MergeTree ORDER BY a")
    w.insert("ro_t", [[1], [2]])
    r = client(server, ANALYST)
    assert r.query("SELECT sum(a) FROM ro_t").result_rows == [(3,)]
    for sql in (
        "INSERT INTO ro_t VALUES (3)", "DROP TABLE ro_t", "CREATE TABLE x (a Int8) ENGINE = Memory",
        "ALTER TABLE ro_t DELETE WHERE 1", "TRUNCATE TABLE ro_t", "RENAME TABLE ro_t TO ro_u", "OPTIMIZE TABLE ro_t",
        "SYSTEM FLUSH LOGS", "KILL QUERY WHERE 1", "SET max_threads = 1", "GRANT SELECT ON *.* TO analyst",
        "SELECT 1 SETTINGS readonly = 0",
    ):  # fmt: skip
        with pytest.raises(DatabaseError) as ei:
            r.command(sql)
        assert "Code: 164" in str(ei.value), sql
    with pytest.raises(DatabaseError) as ei:
        r.insert("ro_t", [[4]])
    assert "Code: 164" in str(ei.value)
    assert w.query("SELECT count(), sum(a) FROM ro_t").result_rows == [(2, 3)]
    assert raw(server, "POST", "/", b"EXISTS TABLE ro_t")[2] == b"1\n"
    # the engine's readonly setting itself is on for the analyst
    assert raw(server, "POST", "/", b"SELECT getSetting('readonly')", auth=ANALYST)[2] == b"1\n"
    assert raw(server, "POST", "/", b"SELECT getSetting('readonly')")[2] == b"0\n"


def test_get_implies_readonly(server):
    status, headers, body = raw(server, "GET", "/", params={"query": "CREATE TABLE via_get (a Int8) ENGINE = Memory"})
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (500, "164") and b"method GET implies readonly" in body
    assert raw(server, "GET", "/", params={"query": "SELECT 1"})[2] == b"1\n"


def test_authentication(server):
    for auth in (("analyst", "wrong"), ("nobody", ""), ("default", "")):
        status, headers, body = raw(server, "POST", "/", b"SELECT 1", auth=auth)
        assert (status, headers["X-ClickHouse-Exception-Code"]) == (403, "516") and b"AUTHENTICATION_FAILED" in body
    assert raw(server, "POST", "/", b"SELECT 1", auth=None)[0] == 403  # no credentials = default without password
    hdrs = {"X-ClickHouse-User": "analyst", "X-ClickHouse-Key": "a-secret"}
    assert raw(server, "POST", "/", b"SELECT currentUser() = currentUser()", headers=hdrs, auth=None)[2] == b"1\n"
    assert raw(server, "POST", "/", b"SELECT 2", auth=None, params={"user": "analyst", "password": "a-secret"})[2] == b"2\n"
    with pytest.raises(DatabaseError) as ei:
        client(server, ("analyst", "wrong"))
    assert "516" in str(ei.value)


def test_sessions_keep_settings_per_session_only(server):
    c = client(server, session_id=None)
    base = raw(server, "POST", "/", b"SELECT getSetting('max_block_size')")[2]
    sid = {"session_id": "s-1"}
    assert raw(server, "POST", "/", b"SET max_block_size = 1234", params=sid)[0] == 200
    assert raw(server, "POST", "/", b"SELECT getSetting('max_block_size')", params=sid)[2] == b"1234\n"
    assert raw(server, "POST", "/", b"SELECT getSetting('max_block_size')")[2] == base
    assert raw(server, "POST", "/", b"SET max_block_size = 99")[0] == 200  # no session: no lasting effect
    assert raw(server, "POST", "/", b"SELECT getSetting('max_block_size')")[2] == base
    # URL settings apply to one request
    assert raw(server, "POST", "/", b"SELECT getSetting('max_block_size')", params={"max_block_size": "777"})[2] == b"777\n"
    assert raw(server, "POST", "/", b"SELECT getSetting('max_block_size')")[2] == base
    db = {"session_id": "s-2"}
    assert raw(server, "POST", "/", b"USE system", params=db)[0] == 200
    assert raw(server, "POST", "/", b"SELECT currentDatabase()", params=db)[2] == b"system\n"
    assert raw(server, "POST", "/", b"SELECT currentDatabase()")[2] == b"default\n"
    assert raw(server, "POST", "/", b"USE no_such_db", params=db)[1]["X-ClickHouse-Exception-Code"] == "81"
    status, headers, _ = raw(server, "POST", "/", b"SELECT 1", params={"no_such_setting_xyz": "1"})
    assert headers["X-ClickHouse-Exception-Code"] == "115"
    assert c.command("SELECT 1") == 1


# --- concurrency --------------------------------------------------------------------------------------------
def test_concurrent_inserts_and_selects(server):
    client(server).command("CREATE TABLE conc (w UInt8, k UInt32, payload String) ENGINE = MergeTree ORDER BY (w, k)")
    workers, batches, per_batch = 8, 10, 200
    errors: list[BaseException] = []
    barrier = threading.Barrier(workers)

    def work(w: int):
        try:
            c = client(server, compress=bool(w % 2))
            barrier.wait()
            for b in range(batches):
                c.insert("conc", [[w, b * per_batch + k, f"w{w}b{b}k{k}"] for k in range(per_batch)])
                seen = c.query("SELECT count() FROM conc WHERE w = {w:UInt8}", parameters={"w": w}).result_rows[0][0]
                assert seen == (b + 1) * per_batch
        except BaseException as ex:  # noqa: BLE001
            errors.append(ex)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    expected_sum = workers * sum(range(batches * per_batch))
    got = client(server).query("SELECT count(), uniqExact(payload), sum(k) FROM conc").result_rows
    assert got == [(workers * batches * per_batch, workers * batches * per_batch, expected_sum)]


# --- process lifecycle --------------------------------------------------------------------------------------
def test_sigkill_then_restart_keeps_data(tmp_path):
    port = free_port()
    proc = start_server(tmp_path / "data", port)
    try:
        c = client(port)
        c.command("CREATE DATABASE keep")
        c.command("CREATE TABLE keep.t (id UInt32, s String) ENGINE = MergeTree ORDER BY id")
        c.insert("keep.t", [[i, f"s{i}"] for i in range(1000)])
        c.close()
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    proc = start_server(tmp_path / "data", port)
    try:
        c = client(port)
        assert c.query("SELECT count(), sum(id) FROM keep.t").result_rows == [(1000, 499500)]
        c.insert("keep.t", [[5000, "after"]])
        assert c.command("SELECT count() FROM keep.t") == 1001
    finally:
        assert stop_server(proc) == 0


def test_ten_column_native_insert(server):
    """A Native block with 10 columns starts with byte 0x0a ('\\n'): it must not be eaten as the separator."""
    c = client(server)
    cols = ", ".join(f"c{i} UInt16" for i in range(10))
    c.command(f"CREATE TABLE ten ({cols}) ENGINE = MergeTree ORDER BY c0")
    c.insert("ten", [[r * 10 + i for i in range(10)] for r in range(50)])
    assert c.query("SELECT count(), sum(c9) FROM ten").result_rows == [(50, sum(r * 10 + 9 for r in range(50)))]


def test_decompress_1_native_blocks(server):
    import lz4.block

    client(server).command("CREATE TABLE dec (a UInt8, b String) ENGINE = MergeTree ORDER BY a")
    payload = b"1\tx\n2\ty\n"
    comp = lz4.block.compress(payload, store_size=False)
    block = bytes(16) + b"\x82" + (len(comp) + 9).to_bytes(4, "little") + len(payload).to_bytes(4, "little") + comp
    status, _, body = raw(server, "POST", "/", block, params={"query": "INSERT INTO dec FORMAT TSV", "decompress": "1"})
    assert status == 200, body
    assert raw(server, "POST", "/", b"SELECT groupArray(b) FROM (SELECT b FROM dec ORDER BY a)")[2] == b"['x','y']\n"


# --- pieces, in-process -------------------------------------------------------------------------------------
def test_statement_analysis():
    from devservers.clickhouse_sql import analyze

    st = analyze("SELECT 'FORMAT CSV' AS x /* FORMAT JSON */ -- FORMAT TSV\n FORMAT JSONEachRow ;  ")
    assert (st.kind, st.fmt, st.multi) == ("SELECT", "JSONEachRow", False)
    assert analyze("select 1; drop table t").multi
    assert not analyze("SELECT ';' ;;").multi
    text = "INSERT INTO t (a, `b c`) FORMAT Native\n\n\x00rest"
    st = analyze(text)
    assert (st.kind, st.fmt, text[st.data_start :]) == ("INSERT", "Native", "\n\x00rest")
    assert text[: st.insert_prefix_end].strip() == "INSERT INTO t (a, `b c`)"
    assert analyze("INSERT INTO t VALUES ('FORMAT x')").data_start is None
    assert analyze("SELECT * FROM t INTO OUTFILE 'x'").into_outfile
    assert analyze("WITH 1 AS x SELECT x").kind == "WITH"
    assert not analyze("SELECT $$a; b$$, $t$ ; $t$").multi


def test_users_sources(tmp_path):
    from devservers.clickhouse_users import Users, parse_user_spec

    u = parse_user_spec("bob:pa:ss:ro")
    assert (u.name, u.password, u.readonly) == ("bob", "pa:ss", True)
    assert parse_user_spec("w:pw").readonly is False
    f = tmp_path / "users.yaml"
    f.write_text("users:\n  default: {password: ''}\n  analyst: {password: 'p', readonly: true}\n")
    users = Users.from_sources(str(f), ["extra:x:rw"], env={"DEVSERVERS_CH_USERS": "envuser:e:ro"})
    assert users.authenticate("analyst", "p").readonly
    assert users.authenticate("analyst", "nope") is None
    assert users.authenticate("default", "").readonly is False
    assert users.authenticate("envuser", "e").readonly and users.authenticate("extra", "x")
    assert Users.from_sources(None, [], env={}).authenticate("default", "") is not None
