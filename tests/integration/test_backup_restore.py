"""Backup and restore of ClickHouse with the engine's BACKUP / RESTORE (`spendstream db backup|restore`), then Redis
rebuilt from the restored ClickHouse (`spendstream rebuild-counters`): after losing both, every total is back to the
nano-USD. Real servers of the test's own (a ClickHouse dev server and a redis-server it wipes)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from sinks.redis.keys import Keys
from spendstream.cli.services import create_topics
from spendstream.synthetic import SyntheticStream
from spendstream.windows import window_ids
from tests.conftest import ROOT, child, encode_events, produce, query_clickhouse, sync_redis, wait_until
from tests.oracle import oracle_total
from tests.private_servers import PrivateClickHouse, PrivateRedis

pytestmark = pytest.mark.integration

N = 3_000


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spendstream", *args], env={**os.environ, **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=180)


def redis_totals(r, prefix: str, scopes: list[tuple[str, str]], windows: list[str]) -> dict:
    keys = Keys(prefix)
    out = {}
    for kind, value in scopes:
        for w in windows:
            h = r.hgetall(keys.window(kind, value, w))
            out[(kind, value, w)] = (int(h.get(b"spend", 0)), int(h.get(b"events", 0)))
    return out


def clickhouse_totals(env: dict) -> dict:
    q = lambda sql: query_clickhouse(env, sql)[0]  # noqa: E731
    return {
        "raw": tuple(int(x) for x in q("SELECT count(), sum(cost), uniqExact(event_id) FROM {db}.priced_events")),
        "hourly": int(q("SELECT sum(cost) FROM {db}.cost_hourly")[0]),
        "per_team": q("SELECT groupArray((team, c)) FROM (SELECT team, sum(cost) AS c FROM {db}.cost_hourly "
                      "GROUP BY team ORDER BY team)")[0],
    }


def test_backup_wipe_restore_and_rebuild_bring_every_total_back_to_the_nano_usd(isolated, tmp_path):
    ch, rs = PrivateClickHouse(tmp_path), PrivateRedis(tmp_path)
    try:
        env = {**isolated.env, "SPENDSTREAM_CLICKHOUSE__DSN": ch.dsn, "SPENDSTREAM_REDIS__URL": rs.url}
        settings = isolated.settings()
        create_topics(settings)
        now = int(time.time() * 1000)
        events = list(SyntheticStream(seed=21).events(N, now))
        expected = oracle_total(events)
        r = sync_redis(rs.url)
        w = window_ids(now)
        scopes = [("org", "all")] + sorted({("team", e["team"] or "unallocated") for e in events})
        windows = [w.month, w.day]
        org_month = Keys(isolated.prefix).window("org", "all", w.month)

        with child(["worker"], env, tmp_path / "worker.log"):
            produce(settings.kafka.bootstrap_servers, settings.kafka.usage_topic, encode_events(events))
            wait_until(lambda: int(r.hget(org_month, "events") or 0) >= N, 120, 0.5, what="every event booked")
            wait_until(lambda: query_clickhouse(env, "SELECT count() FROM {db}.priced_events")[0][0] >= N, 60, 0.5,
                       what="every event in ClickHouse")
        before_redis = redis_totals(r, isolated.prefix, scopes, windows)
        before_ch = clickhouse_totals(env)
        assert before_redis[("org", "all", w.month)] == (expected, N)  # the independent oracle
        assert before_ch["raw"] == (N, expected, N) and before_ch["hourly"] == expected

        made = cli(env, "db", "backup", f"{isolated.name}-1")
        assert made.returncode == 0, made.stderr
        assert "BACKUP_CREATED" in made.stdout
        again = cli(env, "db", "backup", f"{isolated.name}-1")  # a backup is never overwritten
        assert again.returncode == 1 and "exists" in again.stderr.lower(), again.stderr

        # disaster: both stores lost
        query_clickhouse(env, "SELECT 1")  # the server answers before the drop
        import clickhouse_connect  # noqa: PLC0415 - the test's own admin client

        admin = clickhouse_connect.get_client(host="127.0.0.1", port=ch.port, username="default", password="")
        admin.command(f"DROP DATABASE {isolated.database} SYNC")
        r.flushall()
        assert not r.dbsize()

        refused = cli(env, "db", "restore", "no-such-backup")
        assert refused.returncode == 1 and refused.stderr.strip()
        restored = cli(env, "db", "restore", f"{isolated.name}-1")
        assert restored.returncode == 0, restored.stderr
        assert "RESTORED" in restored.stdout
        exists = cli(env, "db", "restore", f"{isolated.name}-1")  # would overwrite: refused without --replace
        assert exists.returncode == 1 and "--replace" not in exists.stdout and "exists" in exists.stderr

        assert clickhouse_totals(env) == before_ch
        rebuilt = cli(env, "rebuild-counters")
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert redis_totals(r, isolated.prefix, scopes, windows) == before_redis

        # and the worker books on top of the restored state without double counting
        more = list(SyntheticStream(seed=22).events(200, now))
        with child(["worker"], env, tmp_path / "worker2.log"):
            produce(settings.kafka.bootstrap_servers, settings.kafka.usage_topic, encode_events(more))
            wait_until(lambda: int(r.hget(org_month, "events") or 0) >= N + 200, 120, 0.5, what="new events booked")
            time.sleep(1.0)
        assert (int(r.hget(org_month, "spend")), int(r.hget(org_month, "events"))) == (
            expected + oracle_total(more), N + 200)
    finally:
        ch.stop()
        rs.kill()
