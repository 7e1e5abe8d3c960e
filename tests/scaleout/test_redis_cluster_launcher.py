"""The launcher's Redis Cluster: 6 REAL redis-server nodes (3 masters + 3 replicas) on loopback, joined by
`redis-cli --cluster create`, and what a redis-py cluster client can do on it (the spend store's pipelined
one-slot Lua calls)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from redis.asyncio.cluster import RedisCluster

from spendstream.cli.launcher import Launcher
from spendstream.cli.processes import LaunchError, alive as _alive
from spendstream.cli.redis_cluster import NODES, RedisClusterLauncher, free_cluster_base_port
from tests.conftest import ROOT, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

# touches two keys of ONE hash slot ({team:x}), as the store's APPLY_SCOPE does
LUA = ("redis.call('INCRBY', KEYS[1], ARGV[1]); redis.call('INCRBY', KEYS[2], ARGV[1]); "
       "return {tonumber(redis.call('GET', KEYS[1])), tonumber(redis.call('GET', KEYS[2]))}")
SHA = hashlib.sha1(LUA.encode()).hexdigest()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state = tmp_path_factory.mktemp("cluster")
    launcher = RedisClusterLauncher(state, free_cluster_base_port(), tied=True)
    launcher.up()
    yield launcher
    launcher.down()


def _pids(launcher: RedisClusterLauncher) -> dict[int, tuple[int, str]]:
    out = {}
    for f in launcher.run_dir.glob("redis-cluster-*.pid"):
        pid, _, binary = f.read_text().partition(" ")
        out[int(f.stem.rsplit("-", 1)[1])] = (int(pid), binary)
    return out


def _run(coro):
    return asyncio.run(coro)


def test_six_node_processes_with_pid_files_and_logs(cluster):
    pids = _pids(cluster)
    assert sorted(pids) == cluster.ports and len(pids) == NODES
    assert all(_alive(pid, binary) for pid, binary in pids.values())
    assert len({pid for pid, _ in pids.values()}) == NODES
    for port in cluster.ports:
        assert (cluster.cluster_dir / str(port) / "nodes.conf").exists()
        assert (cluster.log_dir / f"redis-cluster-{port}.log").exists()


def test_three_masters_whose_slots_cover_the_whole_key_space(cluster):
    r = redis.Redis(port=cluster.base_port)
    slots = r.execute_command("CLUSTER SLOTS")  # [start, end, [master ip, port, id], [replica ...], ...]
    covered = sorted((int(s[0]), int(s[1])) for s in slots)
    assert covered[0][0] == 0 and covered[-1][1] == 16383
    assert all(a[1] + 1 == b[0] for a, b in zip(covered, covered[1:])), covered
    masters = {int(s[2][1]) for s in slots}
    assert len(masters) == 3 and masters <= set(cluster.ports)
    roles = {p: redis.Redis(port=p).execute_command("ROLE") for p in cluster.ports}
    replicas = {p: int(role[2]) for p, role in roles.items() if role[0] == b"slave"}
    assert len(replicas) == 3 and set(replicas.values()) == masters and masters | set(replicas) == set(cluster.ports)
    # Redis 7 lists a replica in CLUSTER SLOTS once its replication offset moved (the launcher pings every 1 s)
    deadline = time.monotonic() + 15
    while {int(rep[1]) for s in r.execute_command("CLUSTER SLOTS") for rep in s[3:]} != set(replicas):
        assert time.monotonic() < deadline, r.execute_command("CLUSTER SLOTS")
        time.sleep(0.2)


def test_every_node_reports_cluster_state_ok(cluster):
    for port in cluster.ports:
        info = redis.Redis(port=port).execute_command("CLUSTER INFO")
        assert info["cluster_state"] == "ok", port
        assert int(info["cluster_slots_ok"]) == 16384 and int(info["cluster_known_nodes"]) == NODES
        assert cluster.node_ready(port) is None
    assert all(st.healthy for st in cluster.status())


def test_up_again_is_idempotent(cluster):
    before = _pids(cluster)
    cluster.up()
    assert _pids(cluster) == before


def test_cluster_client_sets_and_gets_keys_across_slots(cluster):
    async def go():
        rc = RedisCluster.from_url(cluster.url)
        try:
            keys = [f"k:{i}" for i in range(200)]
            assert len({rc.keyslot(k) for k in keys}) > 100
            async with rc.pipeline(transaction=False) as pipe:
                for i, k in enumerate(keys):
                    pipe.set(k, i)
                assert all(await pipe.execute())
            assert [int(v) for v in await rc.mget_nonatomic(keys)] == list(range(200))
            owners = {rc.get_node_from_key(k).port for k in keys}
            assert len(owners) == 3  # the keys really live on all three masters
        finally:
            await rc.aclose()

    _run(go())


def test_one_slot_lua_through_a_cluster_pipeline(cluster):
    """What works in redis-py's async ClusterPipeline: EVAL, and EVALSHA sent with execute_command (the
    `pipe.evalsha()` method, and so `Script(..., client=pipe)`, raise RedisClusterException: EVALSHA is in
    redis-py's PIPELINE_BLOCKED_COMMANDS). A SCRIPT LOAD through the cluster client reaches every master."""

    async def go():
        rc = RedisCluster.from_url(cluster.url)
        try:
            assert await rc.script_load(LUA) == SHA
            async with rc.pipeline(transaction=False) as pipe:
                pipe.execute_command("EVALSHA", SHA, 2, "{team:x}:a", "{team:x}:b", 1)
                pipe.execute_command("EVALSHA", SHA, 2, "{team:y}:a", "{team:y}:b", 2)
                pipe.eval(LUA, 2, "{team:z}:a", "{team:z}:b", 3)
                assert await pipe.execute() == [[1, 1], [2, 2], [3, 3]]
            async with rc.pipeline(transaction=False) as pipe:  # keys of two slots in one call: refused
                pipe.execute_command("EVALSHA", SHA, 2, "{team:x}:a", "{team:y}:b", 1)
                with pytest.raises(redis.exceptions.RedisClusterException, match="same key slot"):
                    await pipe.execute()
        finally:
            await rc.aclose()

    _run(go())


def test_a_promoted_replica_answers_noscript_until_the_script_is_loaded_again(cluster):
    """SCRIPT LOAD is not replicated: after a failover the new master of a slot lacks the script. The pipeline
    follows the MOVED by itself; the EVALSHA comes back NOSCRIPT, and a fresh SCRIPT LOAD (every master) mends it."""

    async def go():
        rc = RedisCluster.from_url(cluster.url)
        try:
            await rc.script_load(LUA)
            old_master = rc.get_node_from_key("{team:f}:a").port
            replica = next(p for p in cluster.ports
                           if redis.Redis(port=p).execute_command("ROLE")[0] == b"slave"
                           and int(redis.Redis(port=p).execute_command("ROLE")[2]) == old_master)
            redis.Redis(port=replica).execute_command("CLUSTER FAILOVER")
            deadline = time.monotonic() + 30
            while redis.Redis(port=replica).execute_command("ROLE")[0] != b"master":
                assert time.monotonic() < deadline, "failover did not happen"
                await asyncio.sleep(0.05)

            async def call():
                async with rc.pipeline(transaction=False) as pipe:  # rc still holds the old slot map
                    pipe.execute_command("EVALSHA", SHA, 2, "{team:f}:a", "{team:f}:b", 1)
                    pipe.set("{team:f}:c", "1")
                    return await pipe.execute(raise_on_error=False)

            first = await call()
            assert isinstance(first[0], redis.exceptions.NoScriptError) and first[1] is True
            await rc.script_load(LUA)
            assert await call() == [[1, 1], True]
            assert rc.get_node_from_key("{team:f}:a").port == replica
        finally:
            await rc.aclose()
        cluster.wait_ready(30)  # roles swapped, still 3 + 3 and ok

    _run(go())


def test_a_taken_port_is_a_clear_error_and_leaves_nothing_running(tmp_path):
    base = free_cluster_base_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", base + 2))
        s.listen()
        launcher = RedisClusterLauncher(tmp_path, base, tied=True)
        with pytest.raises(LaunchError, match=f"127.0.0.1:{base + 2}"):
            launcher.up()
    assert launcher.running() == {} and not list(launcher.run_dir.glob("*.pid"))


def test_services_down_stops_exactly_the_nodes_up_started(cluster):
    """The plain Launcher on the same state dir (no cluster flag, as `spendstream services status|down` builds
    it) lists the nodes by their pid files and stops them."""
    pids = _pids(cluster)
    plain = Launcher(cluster.state, free_port(), free_port(), tied=True)
    names = {st.name for st in plain.status()}
    assert {f"redis-cluster-{p}" for p in cluster.ports} <= names
    stopped = plain.down()
    assert sorted(stopped) == sorted(f"redis-cluster-{p}" for p in cluster.ports)
    assert not any(_alive(pid, binary) for pid, binary in pids.values())
    assert not list(cluster.run_dir.glob("redis-cluster-*.pid"))
    assert cluster.running() == {}


def test_the_cli_starts_shows_and_stops_a_cluster(tmp_path):
    base = free_cluster_base_port()
    env = {**os.environ, "SPENDSTREAM_SERVICES__STATE_DIR": str(tmp_path / "state"),
           "SPENDSTREAM_SERVICES__KAFKA_PORT": str(free_port()), "SPENDSTREAM_SERVICES__REDIS_PORT": str(free_port())}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "spendstream", "services", *args], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)

    try:
        up = cli("up", "--redis-cluster", "--cluster-base-port", str(base))
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"redis://127.0.0.1:{base}/0" in up.stdout
        status = cli("status")
        assert status.returncode == 0, status.stdout
        for port in range(base, base + NODES):
            assert f"127.0.0.1:{port}" in status.stdout
    finally:
        down = cli("down")
    assert down.returncode == 0, down.stderr
    assert all(f"redis-cluster-{p}" in down.stdout for p in range(base, base + NODES))
    assert RedisClusterLauncher(tmp_path / "state", base).running() == {}
