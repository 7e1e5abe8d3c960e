"""A Redis Cluster master dies mid-stream and its replica, which never saw the master's last writes, is promoted:
acknowledged increments are lost FOR SURE (the replica is SIGSTOPped and its replication link closed by the
master, which keeps acknowledging the worker's bookings; then the master is SIGKILLed). The test proves the loss (Redis below the independent sum),
runs `spendstream repair-counters` while the worker keeps consuming, and ends with Redis == the independent sum ==
ClickHouse raw rows, to the nano-USD, for the org and for every team. The worker is also SIGKILLed just after the
failover and a fresh one redelivers from the last committed offset onto the rolled-back marks. Copies of every
event sent after the repair are all duplicates (the dedupe markers lost with the master were restored).

Real servers: tansu, the ClickHouse dev server, and a PRIVATE 6-node Redis Cluster (the kill must not break the
session's shared cluster), with a 1 s cluster-node-timeout so the failover is quick."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import redis

from schemas.codec import UsageCodec
from spendstream.cli.redis_cluster import RedisClusterLauncher, free_cluster_base_port
from spendstream.cli.services import create_topics
from spendstream.windows import window_ids
from tests.conftest import ROOT, query_clickhouse, sync_redis, wait_until
from tests.faults.conftest import mixed_stream, scrape
from tests.faults.test_worker_kill9 import PacedProducer
from tests.oracle import oracle_total
from tests.scaleout.test_workers_rebalance import Group

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PARTITIONS = 4
N = 24_000
STOP_S = 6.0  # the replica misses this much of the master's writes (within its failover validity window)


@pytest.fixture
def private_cluster(tmp_path):
    launcher = RedisClusterLauncher(tmp_path / "cluster", free_cluster_base_port(), tied=True, node_timeout_ms=1000)
    launcher.up()
    yield launcher
    for p in launcher.running().values():  # a SIGSTOPped node would ignore SIGTERM
        try:
            os.kill(p, signal.SIGCONT)
        except ProcessLookupError:
            pass
    launcher.down()


def _pids(launcher: RedisClusterLauncher) -> dict[int, int]:
    return {int(f.stem.rsplit("-", 1)[1]): int(f.read_text().split()[0]) for f in launcher.run_dir.glob("redis-cluster-*.pid")}


def master_and_replica_of(launcher: RedisClusterLauncher, key: str) -> tuple[int, int]:
    """Ports of the master serving `key`'s slot and of its replica."""
    r = redis.Redis(port=launcher.base_port)
    slot = int(r.execute_command("CLUSTER KEYSLOT", key))
    master = next(int(s[2][1]) for s in r.execute_command("CLUSTER SLOTS") if int(s[0]) <= slot <= int(s[1]))
    replica = next(p for p in launcher.ports
                   if (role := redis.Redis(port=p).execute_command("ROLE"))[0] == b"slave" and int(role[2]) == master)
    return master, replica


def repair_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spendstream", "repair-counters", *args], env={**os.environ, **env},
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def promoted_serves(node: redis.Redis, slot: int) -> bool:
    myid = node.execute_command("CLUSTER MYID")
    return any(int(s[0]) <= slot <= int(s[1]) and s[2][2] == myid for s in node.execute_command("CLUSTER SLOTS"))


def marks(r, prefix: str, topic: str) -> dict[int, int]:
    return {p: int(r.get(f"{prefix}:{{p:{topic}:{p}}}:applied") or -1) for p in range(PARTITIONS)}


def unique_ids(codec: UsageCodec, messages, known: dict) -> set[str]:
    out: set[str] = set()
    for _, value in messages:
        try:
            out.update(e["event_id"] for e in codec.decode(value) if e.get("event_id") in known)
        except Exception:  # noqa: BLE001 — a malformed message carries no valid event
            pass
    return out


def test_a_failover_that_loses_acknowledged_bookings_is_detected_and_repaired_online(
        isolated, private_cluster, tmp_path, capsys):
    url = f"redis+cluster://127.0.0.1:{private_cluster.base_port}"
    # every node as a startup node: the repair command starts after a master died
    nodes = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in private_cluster.ports)
    env = {**isolated.env, "SPENDSTREAM_REDIS__URL": nodes, "SPENDSTREAM_KAFKA__PARTITIONS": str(PARTITIONS)}
    os.environ.update(env)
    settings = isolated.settings()
    create_topics(settings)
    topic = settings.kafka.usage_topic
    now = int(time.time() * 1000)
    # no copies in the stream: a copy arriving between the failover and the repair, of an event whose dedupe marker
    # the failover lost, is booked and inserted again (raw rows until a merge, the rollups for good) — stated
    # deterministically in tests/faults/test_lost_dedupe_marker.py; here the raw rows must be exactly N
    stream = mixed_stream(N, now, seed=47, batch_share=0.5, batch_size=50, dup_share=0.0)
    messages = [(str(i).encode(), v) for i, (_, v) in enumerate(stream.messages)]
    cut = int(len(messages) * 0.8)
    head, tail = messages[:cut], messages[cut:]
    codec = UsageCodec()
    head_ids = unique_ids(codec, head, stream.unique)
    head_cost = oracle_total(stream.unique[i] for i in head_ids)
    assert len(head_ids) < N

    r = sync_redis(url)
    org = f"{isolated.prefix}:{{org:all}}:{window_ids(now).month}"
    master, replica = master_and_replica_of(private_cluster, org)
    org_slot = int(redis.Redis(port=master).execute_command("CLUSTER KEYSLOT", org))
    pids = _pids(private_cluster)
    group = Group(env, tmp_path)
    producer = PacedProducer(settings.kafka.bootstrap_servers, topic, head, per_s=400.0)
    try:
        worker = group.start()
        producer.start()
        wait_until(lambda: int(r.hget(org, "events") or 0) > N // 8, 120, what="the worker booking")
        # the replica stops reading its master's stream; the master keeps acknowledging the worker's bookings
        os.kill(pids[replica], signal.SIGSTOP)
        # and its link is cut from the master's side: what the master acknowledges from now on is never sent (a
        # stopped replica's kernel would otherwise still buffer a few hundred KB of the stream for it)
        assert redis.Redis(port=master).execute_command("CLIENT KILL TYPE replica") == 1
        booked_before = int(r.hget(org, "events") or 0)
        time.sleep(STOP_S)
        on_master = int(redis.Redis(port=master).hget(org, "events") or 0)
        assert producer.is_alive() and on_master > booked_before, "no bookings landed while the replica was stopped"
        os.kill(pids[master], signal.SIGKILL)
        os.kill(pids[replica], signal.SIGCONT)
        t_kill = time.monotonic()
        promoted = redis.Redis(port=replica)
        try:
            wait_until(lambda: promoted.execute_command("ROLE")[0] == b"master", 15, 0.2, what="automatic failover")
            how = "automatic"
        except AssertionError:
            promoted.execute_command("CLUSTER FAILOVER TAKEOVER")
            wait_until(lambda: promoted.execute_command("ROLE")[0] == b"master", 30, 0.2, what="takeover")
            how = "takeover"
        failover_s = time.monotonic() - t_kill
        after = int(promoted.hget(org, "events") or 0)
        # the worker is killed too and a fresh one takes over: it redelivers from the last committed offset and
        # reads the partitions' applied marks and journals as the failover left them (some rolled back)
        time.sleep(2.0)
        worker.kill()
        worker.wait(30)
        worker = group.start()
        producer.slow.clear()
        producer.join(300)
        assert producer.error is None and not producer.is_alive()

        def head_in_clickhouse() -> bool:
            return query_clickhouse(env, "SELECT count() FROM {db}.priced_events")[0][0] >= len(head_ids)
        wait_until(head_in_clickhouse, 180, 0.5, what="every event of the head in ClickHouse")
        time.sleep(2)
        # the loss is real: Redis holds less than what was produced, booked and stored
        events_lost, spend_lost = int(r.hget(org, "events")), int(r.hget(org, "spend"))
        assert events_lost < len(head_ids) and spend_lost < head_cost, (events_lost, len(head_ids))

        # detection, then the repair of the failed-over master's slots, while the worker consumes the tail
        tail_producer = PacedProducer(settings.kafka.bootstrap_servers, topic, tail, per_s=150.0)  # ~20 s
        tail_producer.start()
        time.sleep(1.0)
        prom = tmp_path / "drift.prom"
        found = repair_cli(env, "--dry-run", "--metrics-file", str(prom))
        assert found.returncode == 1, found.stdout + found.stderr  # drift found: a cron job's alert
        assert (f"drift org:all (slot {org_slot}): month events missing {len(head_ids) - events_lost:,}, nano-USD "
                f"missing {head_cost - spend_lost:,}") in found.stdout, found.stdout
        served = {int(x) for x in re.findall(r"^drift \S+ \(slot (\d+)\)", found.stdout, re.M)}
        assert served and all(promoted_serves(promoted, slot) for slot in served), found.stdout  # only its slots
        assert f'scope="org:all",window="{window_ids(now).month}"}} {head_cost - spend_lost}' in prom.read_text()
        before_repair = marks(r, isolated.prefix, topic)
        t0 = time.monotonic()
        out = repair_cli(env, "--node", f"127.0.0.1:{replica}")
        repair_s = time.monotonic() - t0
        assert out.returncode == 0, out.stdout + out.stderr
        assert "drift org:all" in out.stdout and "dedupe markers missing" in out.stdout
        assert marks(r, isolated.prefix, topic) != before_repair  # the worker booked while the repair ran
        tail_producer.slow.clear()
        tail_producer.join(300)
        assert tail_producer.error is None
        expected = stream.expected_cost
        wait_until(lambda: int(r.hget(org, "events") or 0) >= N, 180, 0.5, what="every unique event booked")
        wait_until(lambda: query_clickhouse(env, "SELECT count() FROM {db}.priced_events")[0][0] >= N, 120, 0.5,
                   what="every event in ClickHouse")

        # copies of every event after the failover: every one a duplicate, booked nowhere
        dup_before = scrape(group.web[-1])["spendstream_events_duplicate_total"]
        copies = [(b"copy", codec.encode_batch(list(stream.unique.values())[i:i + 200])) for i in range(0, N, 200)]
        copier = PacedProducer(settings.kafka.bootstrap_servers, topic, copies, per_s=2000.0)
        copier.slow.clear()
        copier.run()
        assert copier.error is None
        wait_until(lambda: scrape(group.web[-1])["spendstream_events_duplicate_total"] - dup_before >= N, 120, 0.5,
                   what="the copies seen as duplicates")
        time.sleep(3)  # a double booking or insert would land in this time
        clean = repair_cli(env, "--dry-run")
        assert clean.returncode == 0 and "0 scopes drifted" in clean.stdout, clean.stdout
        assert "dedupe markers missing 0" in clean.stdout, clean.stdout
        assert worker.poll() is None
        metrics = scrape(group.web[-1])
    finally:
        group.stop_all()

    assert (int(r.hget(org, "events")), int(r.hget(org, "spend"))) == (N, expected)
    raw, raw_cost, distinct = query_clickhouse(
        env, "SELECT count(), sum(cost), uniqExact(event_id) FROM {db}.priced_events")[0]
    assert (raw, int(raw_cost), distinct) == (N, expected, N)
    month = window_ids(now).month
    teams = query_clickhouse(env, "SELECT team, count(), sum(cost) FROM {db}.priced_events GROUP BY team")
    for team, count, cost in teams:
        key = f"{isolated.prefix}:{{team:{team}}}:{month}"
        assert (int(r.hget(key, "events") or 0), int(r.hget(key, "spend") or 0)) == (int(count), int(cost)), team
    with capsys.disabled():
        print(f"\nfailover ({how}) {failover_s:.1f}s after the kill; org events on the killed master "
              f"{on_master:,}, on the promoted replica {after:,}; before the repair Redis held {events_lost:,} of "
              f"{len(head_ids):,} events ({head_cost - spend_lost:,} nano-USD short); repair took {repair_s:.1f}s "
              f"with the worker consuming; worker store failures {metrics['spendstream_store_failures_total']:.0f}, "
              f"stale batches {metrics['spendstream_stale_batches_total']:.0f}")
        print(found.stdout[-1500:])
