"""A real Redis Cluster for dev and tests: 6 redis-server processes (3 masters + 3 replicas) on consecutive
loopback ports, joined by `redis-cli --cluster create`.

Layout in the launcher's state directory: `<state>/redis-cluster/<port>/` (nodes.conf, the node's --dir),
`<state>/run/redis-cluster-<port>.pid`, `<state>/log/redis-cluster-<port>.log` and
`<state>/log/redis-cluster-create.log`. `down()` stops exactly the nodes whose pid files exist (whatever the base
port), checking each pid still runs the binary that was started. The cluster keeps no data (`--save ''`,
`--appendonly no`): a fresh `up()` wipes the old nodes.conf files and creates a new cluster.

Redis also needs each node's cluster bus port (port + 10000) free.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from spendstream.cli.processes import (
    LaunchError, ServiceStatus, alive, die_with_parent, port_open, read_pidfile, redis_binary,
)

__all__ = ["RedisClusterLauncher", "redis_cli_binary", "free_cluster_base_port", "NODES", "BUS_OFFSET"]

NODES = 6  # 3 masters + 3 replicas
BUS_OFFSET = 10000  # Redis' cluster bus listens on port + 10000
SLOTS = 16384


def redis_cli_binary(server: Path | None = None) -> Path:
    """The redis-cli that goes with the redis-server in use: next to it (Debian's /usr/bin, from redis-tools), else
    on PATH. Without one no cluster can be created."""
    server = server or redis_binary()
    beside = server.parent / "redis-cli"
    if beside.exists() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("redis-cli")
    if found:
        return Path(found)
    raise LaunchError(f"no redis-cli beside {server} nor on PATH: a Redis Cluster needs it; "
                      "apt-get install redis-server (brings redis-tools' redis-cli)")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_base_port(nodes: int = NODES, start: int = 20000, stop: int = 22700) -> int:
    """A base port whose `nodes` consecutive ports and their bus ports (+10000) are all free now (for tests). The
    default range keeps ports and bus ports below Linux' ephemeral range (32768+), where free_port() picks."""
    import random

    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(start, stop - nodes)
        if all(_bindable(p) and _bindable(p + BUS_OFFSET) for p in range(base, base + nodes)):
            return base
    raise LaunchError(f"no {nodes} consecutive free ports (and bus ports) between {start} and {stop}")


def _info(port: int, command: str, timeout: float = 1.0) -> str:
    """Send one inline command, return the bulk-string reply (CLUSTER INFO / CLUSTER NODES), '' on any error."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(command.encode() + b"\r\n")
            buf = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return ""
                buf += chunk
                if buf.startswith(b"$"):
                    head, _, rest = buf.partition(b"\r\n")
                    if len(rest) >= int(head[1:]) + 2:
                        return rest[: int(head[1:])].decode()
                elif buf.endswith(b"\r\n"):
                    return ""  # an error or a status reply
    except (OSError, ValueError):
        return ""


class RedisClusterLauncher:
    """`up()` starts and joins the 6 nodes and waits for `cluster_state:ok` on each; `down()` stops them.
    `tied=True` (tests, demo, benchmarks): the nodes die with the process that started them."""

    def __init__(self, state_dir: Path, base_port: int = 17000, tied: bool = False, node_timeout_ms: int = 2000,
                 ready_timeout_s: float = 60.0) -> None:
        if not 1024 <= base_port <= 65535 - BUS_OFFSET - NODES:
            raise LaunchError(f"cluster base port {base_port}: must be 1024..{65535 - BUS_OFFSET - NODES} (bus port = +10000)")
        self.state = state_dir.resolve()
        self.base_port = base_port
        self.tied = tied
        self.node_timeout_ms = node_timeout_ms
        self.ready_timeout_s = ready_timeout_s
        self.run_dir = self.state / "run"
        self.log_dir = self.state / "log"
        self.cluster_dir = self.state / "redis-cluster"

    # ---- addresses ---------------------------------------------------------------------------------------------
    @property
    def ports(self) -> list[int]:
        return list(range(self.base_port, self.base_port + NODES))

    @property
    def nodes(self) -> list[tuple[str, int]]:
        """(host, port) of every node: startup nodes for `redis.cluster.RedisCluster(startup_nodes=...)`."""
        return [("127.0.0.1", p) for p in self.ports]

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:<first port>/0`: give it to `RedisCluster.from_url` (it discovers the other nodes)."""
        return f"redis://127.0.0.1:{self.base_port}/0"

    # ---- pid files -----------------------------------------------------------------------------------------------
    def _pidfile(self, port: int) -> Path:
        return self.run_dir / f"redis-cluster-{port}.pid"

    def _read_pid(self, port: int) -> tuple[int, str] | None:
        return read_pidfile(self._pidfile(port))

    def _started_ports(self) -> list[int]:
        """Ports of every node with a pid file: what an earlier `up()` started, whatever its base port."""
        return sorted(int(f.stem.rsplit("-", 1)[1]) for f in self.run_dir.glob("redis-cluster-*.pid"))

    def running(self) -> dict[int, int]:
        """port -> pid of the nodes of this base port that run now."""
        out = {}
        for port in self.ports:
            known = self._read_pid(port)
            if known and alive(*known):
                out[port] = known[0]
        return out

    # ---- up ------------------------------------------------------------------------------------------------------
    def _spawn(self, server: Path, port: int) -> subprocess.Popen:
        if port_open(port) or not _bindable(port + BUS_OFFSET):
            raise LaunchError(f"127.0.0.1:{port} or its cluster bus port {port + BUS_OFFSET} is taken; "
                              "choose another base port (--cluster-base-port)")
        node_dir = self.cluster_dir / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        (node_dir / "nodes.conf").unlink(missing_ok=True)  # no data is kept: a stale config would block create
        argv = [str(server), "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                "--cluster-config-file", str(node_dir / "nodes.conf"), "--cluster-node-timeout", str(self.node_timeout_ms),
                "--save", "", "--appendonly", "no", "--dir", str(node_dir),
                # replicas sync at once (not after 5 s), and their offset moves every second: Redis 7 leaves a
                # replica with offset 0 out of CLUSTER SLOTS ("loading"), which a client's replica discovery reads
                "--repl-diskless-sync-delay", "0", "--repl-ping-replica-period", "1"]
        log = open(self.log_dir / f"redis-cluster-{port}.log", "ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=die_with_parent if self.tied else None)
        log.close()
        self._pidfile(port).write_text(f"{proc.pid} {argv[0]}")
        return proc

    def _wait_listening(self, procs: dict[int, subprocess.Popen]) -> None:
        deadline = time.monotonic() + 20
        waiting = dict(procs)
        while waiting and time.monotonic() < deadline:
            for port, proc in list(waiting.items()):
                if proc.poll() is not None:
                    raise LaunchError(f"redis cluster node 127.0.0.1:{port} exited with {proc.returncode}; "
                                      f"see {self.log_dir / f'redis-cluster-{port}.log'}")
                if port_open(port):
                    del waiting[port]
            time.sleep(0.05)
        if waiting:
            raise LaunchError(f"redis cluster node(s) {sorted(waiting)} did not listen on 127.0.0.1 within 20 s")

    def _create(self, cli: Path) -> None:
        argv = [str(cli), "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas", "1", "--cluster-yes"]
        logfile = self.log_dir / "redis-cluster-create.log"
        with open(logfile, "ab") as log:
            try:
                rc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=60).returncode
            except subprocess.TimeoutExpired as exc:
                raise LaunchError(f"redis-cli --cluster create did not finish within 60 s; see {logfile}") from exc
        if rc != 0:
            raise LaunchError(f"redis-cli --cluster create exited with {rc}; see {logfile}")

    def node_ready(self, port: int) -> str | None:
        """None when the node reports cluster_state:ok, all slots, 6 known nodes, 3 masters + 3 replicas and, on a
        replica, a finished sync with its master (before that CLUSTER SLOTS leaves the replica out); else what is
        missing."""
        info = dict(line.split(":", 1) for line in _info(port, "CLUSTER INFO").splitlines() if ":" in line)
        if info.get("cluster_state") != "ok":
            return f"cluster_state:{info.get('cluster_state', '<no answer>')}"
        if info.get("cluster_slots_ok") != str(SLOTS) or info.get("cluster_known_nodes") != str(NODES):
            return f"slots_ok={info.get('cluster_slots_ok')} known_nodes={info.get('cluster_known_nodes')}"
        roles = [ln.split()[2] for ln in _info(port, "CLUSTER NODES").splitlines() if ln.strip()]
        masters = sum("master" in r for r in roles)
        replicas = sum("slave" in r for r in roles)
        if (masters, replicas) != (NODES // 2, NODES // 2):
            return f"sees {masters} masters and {replicas} replicas"
        repl = _info(port, "INFO replication")
        if "role:slave" in repl and "master_link_status:up" not in repl:
            return "replica not synced with its master yet"
        return None

    def wait_ready(self, timeout_s: float | None = None) -> None:
        deadline = time.monotonic() + (timeout_s or self.ready_timeout_s)
        pending = {p: "not asked yet" for p in self.ports}
        while pending and time.monotonic() < deadline:
            for port in list(pending):
                why = self.node_ready(port)
                if why is None:
                    del pending[port]
                else:
                    pending[port] = why
            if pending:
                time.sleep(0.1)
        if pending:
            port, why = next(iter(pending.items()))
            raise LaunchError(f"redis cluster node 127.0.0.1:{port} not ready within {timeout_s or self.ready_timeout_s:.0f} s "
                              f"({why}); {len(pending)} node(s) not ready; see {self.log_dir}")

    def up(self) -> list[ServiceStatus]:
        """Start the 6 nodes, create the cluster, wait until every node says cluster_state:ok. Idempotent: a
        complete running cluster is left as it is; a partial one is an error (run `down()` first)."""
        server = redis_binary()
        cli = redis_cli_binary(server)
        alive = self.running()
        if len(alive) == NODES:
            self.wait_ready()
            return self.status()
        if alive:
            raise LaunchError(f"a partial redis cluster is running (nodes {sorted(alive)} of {self.ports}): "
                              "run `spendstream services down` first")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            procs = {port: self._spawn(server, port) for port in self.ports}
            self._wait_listening(procs)
            self._create(cli)
            self.wait_ready()
        except BaseException:
            self.down()
            raise
        return self.status()

    # ---- down / status -------------------------------------------------------------------------------------------
    def down(self) -> list[str]:
        """Stop every node with a pid file (SIGTERM, then SIGKILL after 5 s); returns their names."""
        stopped, waiting = [], []
        for port in self._started_ports():
            known = self._read_pid(port)
            if known and alive(*known):
                os.kill(known[0], signal.SIGTERM)
                waiting.append((port, known))
        deadline = time.monotonic() + 5
        for port, known in waiting:
            while alive(*known) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(*known):
                os.kill(known[0], signal.SIGKILL)
                while alive(*known):
                    time.sleep(0.02)
            stopped.append(f"redis-cluster-{port}")
        for port in self._started_ports():
            self._pidfile(port).unlink(missing_ok=True)
        return stopped

    def status(self, ports: list[int] | None = None) -> list[ServiceStatus]:
        """One row per node (of this base port, or of `ports`): healthy = running and cluster_state:ok."""
        out = []
        for port in ports if ports is not None else self.ports:
            known = self._read_pid(port)
            pid = known[0] if known and alive(*known) else None
            ok = pid is not None and "cluster_state:ok" in _info(port, "CLUSTER INFO")
            out.append(ServiceStatus(f"redis-cluster-{port}", pid, f"127.0.0.1:{port}", ok))
        return out

    def started_status(self) -> list[ServiceStatus]:
        """Status of the nodes that have pid files (what `up` started), whatever the base port."""
        return self.status(self._started_ports())
