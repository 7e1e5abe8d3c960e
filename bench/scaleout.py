"""Scale-out benchmark: events/s with 1, 2 and 3 workers in one consumer group, the rebalance pause after a
SIGKILL, and the skew of a hot-team mix under the old key (team) and the chosen one. Prints one JSON object.

Real servers started for the run by the project's Launcher (tansu, redis-server, the dev ClickHouse HTTP server).
All of them AND the workers share this machine's cores (2 here): more workers cannot add CPU, so the figures say
what a group costs and how it behaves, not how it scales on real hardware. Figures are noisy.

  skew        one team 60 % of events, 4 mid teams 5 % each, 40 tail teams; single-event messages over a
              P-partition topic. pure: librdkafka's default partitioner modelled (consistent_random = crc32(key)
              % P); real: produced to tansu, consumed back, counted per partition (tansu's high watermark is
              wrong). skew = max partition share / mean share.
  workers_N   N `spendstream worker` processes, one group. The group is formed first (warm-up rounds, one event
              per partition, until each partition's last offset is owned by exactly one worker per /metrics),
              then the pre-encoded load is produced in one burst; events/s = from the first booked to all booked
              (Redis {org:all} month `events`).
  by key      3 workers on the same events keyed the other ways (the hot team's partition holds the group up).
              Also each worker's CPU seconds (/proc): events per worker CPU second (the per-event cost of a key:
              batch size per partition, scope slots per batch) and events / the busiest worker's CPU seconds (the
              rate if each worker had its own core) — less noisy than wall time on shared cores.
  rebalance   3 workers; at 25 % booked one is SIGKILLed. pause = from the kill until every partition it owned
              (that still had a backlog) is booked again (its Redis applied offset moves): session timeout
              (SPENDSTREAM_KAFKA__SESSION_TIMEOUT_S=10 here) + tansu's group join + assignment.
Usage: python bench/scaleout.py [--events 100000] [--partitions 12] [--skew-events 60000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from schemas.codec import UsageCodec  # noqa: E402
from schemas.partition_keys import DEFAULT_SHARDS, DEFAULT_STRATEGY, PartitionKeys, partition_for, skew  # noqa: E402
from sinks.redis.keys import Keys  # noqa: E402
from spendstream.cli.launcher import Launcher  # noqa: E402
from spendstream.cli.services import create_topics  # noqa: E402
from spendstream.settings import KafkaSettings, Settings  # noqa: E402
from spendstream.synthetic import SyntheticStream, hot_team_mix  # noqa: E402
from spendstream.windows import window_ids  # noqa: E402
from tests.conftest import free_port  # noqa: E402

SESSION_TIMEOUT_S = 10
POSITION = re.compile(r'^spendstream_partition_position\{partition="(\d+)"\} (\S+)$', re.M)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hot_events(n: int, now_ms: int, seed: int = 5) -> list[dict]:
    events = list(SyntheticStream(seed=seed, untagged_share=0.0).events(n, now_ms))
    for e, team in zip(events, hot_team_mix(n, seed)):
        e["team"] = team
    return events


class Bench:
    def __init__(self, state: Path, partitions: int) -> None:
        self.state, self.partitions = state, partitions
        self.kafka, self.redis_port, self.ch_port = free_port(), free_port(), free_port()
        self.launcher = Launcher(state, self.kafka, self.redis_port, tied=True, clickhouse_port=self.ch_port)
        self.bootstrap = f"127.0.0.1:{self.kafka}"
        self.r = redis.Redis(port=self.redis_port)
        self.codec = UsageCodec()

    def topic(self, name: str) -> str:
        create_topics(Settings(kafka=KafkaSettings(
            bootstrap_servers=self.bootstrap, usage_topic=f"{name}.usage", dlq_topic=f"{name}.dlq",
            alerts_topic=f"{name}.alerts", decisions_topic=f"{name}.decisions", partitions=self.partitions)))
        return f"{name}.usage"

    def env(self, name: str, web_port: int) -> dict[str, str]:
        return {**os.environ,
                "SPENDSTREAM_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap, "SPENDSTREAM_KAFKA__USAGE_TOPIC": f"{name}.usage",
                "SPENDSTREAM_KAFKA__DLQ_TOPIC": f"{name}.dlq", "SPENDSTREAM_KAFKA__ALERTS_TOPIC": f"{name}.alerts",
                "SPENDSTREAM_KAFKA__DECISIONS_TOPIC": f"{name}.decisions", "SPENDSTREAM_KAFKA__CONSUMER_GROUP": f"{name}-g",
                "SPENDSTREAM_KAFKA__SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S), "SPENDSTREAM_WORKER__APP_ID": f"{name}-app",
                "SPENDSTREAM_REDIS__URL": f"redis://127.0.0.1:{self.redis_port}/0", "SPENDSTREAM_REDIS__PREFIX": name,
                "SPENDSTREAM_CLICKHOUSE__DSN": f"http://default:@127.0.0.1:{self.ch_port}",
                "SPENDSTREAM_CLICKHOUSE__DATABASE": f"b_{name}", "SPENDSTREAM_WORKER__WEB_PORT": str(web_port),
                "SPENDSTREAM_WORKER__DATA_DIR": str(self.state / f"{name}-{web_port}")}

    def produce(self, topic: str, values: list[tuple[bytes | None, bytes]], partition: int | None = None) -> dict[int, int]:
        """Send and wait for every ack; returns the highest acked offset per partition."""
        p = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5, "batch.num.messages": 10000})
        last: dict[int, int] = {}

        def acked(err, msg) -> None:
            if err is None:
                last[msg.partition()] = max(last.get(msg.partition(), -1), msg.offset())

        for i, (k, v) in enumerate(values):
            while True:
                try:
                    if partition is None:
                        p.produce(topic, key=k, value=v, on_delivery=acked)
                    else:
                        p.produce(topic, key=k, value=v, partition=partition, on_delivery=acked)
                    break
                except BufferError:
                    p.poll(0.05)
            if i % 5000 == 0:
                p.poll(0)
        assert p.flush(60) == 0
        return last

    def consume_counts(self, topic: str, n: int) -> list[int]:
        """Read the topic back from the start and count messages per partition (our own counts)."""
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"count-{topic}", "enable.auto.commit": False})
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(self.partitions)])
        counts, deadline = [0] * self.partitions, time.monotonic() + 120
        while sum(counts) < n and time.monotonic() < deadline:
            for m in c.consume(10000, 0.5):
                if not m.error():
                    counts[m.partition()] += 1
        c.close()
        return counts

    # -- skew -------------------------------------------------------------------------------------------------
    def skew(self, n: int, chosen: PartitionKeys) -> dict:
        events = hot_events(n, int(time.time() * 1000), seed=11)
        pure = {}
        for label, keys in [("team", PartitionKeys("team")), ("event_id", PartitionKeys("event_id"))] + [
                (f"team_shard_{s}", PartitionKeys("team_shard", s)) for s in (4, 8, 16, 32)]:
            for parts in sorted({8, 12, self.partitions}):
                cnt = Counter(partition_for(keys.key(e), parts) for e in events)
                pure[f"{label}@{parts}"] = round(skew([cnt.get(p, 0) for p in range(parts)]), 2)
        real = {}
        for label, keys in (("before_team", PartitionKeys("team")), ("after_" + chosen.strategy, chosen)):
            topic = self.topic(f"skew-{label.replace('_', '-')}")
            values = [(keys.key(e), self.codec.encode(e)) for e in events]
            self.produce(topic, values)
            counts = self.consume_counts(topic, n)
            model = Counter(partition_for(k, self.partitions) for k, _ in values)
            real[label] = {"skew": round(skew(counts), 2), "per_partition": counts,
                           "model_agrees": counts == [model.get(p, 0) for p in range(self.partitions)]}
        return {"events": n, "partitions": self.partitions, "pure": pure, "real_tansu": real}

    # -- worker groups ----------------------------------------------------------------------------------------
    def booked(self, name: str) -> int:
        return int(self.r.hget(f"{name}:{{org:all}}:{window_ids(int(time.time() * 1000)).month}", "events") or 0)

    def owned(self, port: int, last: dict[int, int]) -> set[int]:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        except OSError:
            return set()
        return {int(p) for p, v in POSITION.findall(text) if int(float(v)) == last.get(int(p))}

    def form_group(self, name: str, topic: str, procs: dict[int, subprocess.Popen], stream: SyntheticStream
                   ) -> tuple[int, dict]:
        """Warm-up rounds until every partition's last offset is owned by exactly one worker and each has some."""
        sent, deadline, ports = 0, time.monotonic() + 180, list(procs)
        while time.monotonic() < deadline:
            if any(proc.poll() is not None for proc in procs.values()):
                raise RuntimeError(f"{name}: a worker exited during start-up")
            last = {}
            for p in range(self.partitions):
                last.update(self.produce(topic, [(None, self.codec.encode(stream.event(int(time.time() * 1000))))], p))
            sent += self.partitions
            t = time.monotonic() + 60
            while self.booked(name) < sent and time.monotonic() < t:
                time.sleep(0.05)
            time.sleep(0.5)  # let the gauges catch up
            owners = {port: self.owned(port, last) for port in ports}
            flat = [p for s in owners.values() for p in s]
            if sorted(flat) == list(range(self.partitions)) and all(owners.values()):
                return sent, owners
            time.sleep(2)
        raise RuntimeError(f"{name}: the group did not settle")

    def group_run(self, name: str, workers: int, events: list[dict], keys: PartitionKeys, kill_at: float = 0) -> dict:
        topic = self.topic(name)
        values = [(keys.key(e), self.codec.encode(e)) for e in events]
        ports = [free_port() for _ in range(workers)]
        procs = {port: subprocess.Popen([sys.executable, "-m", "spendstream", "worker"], env=self.env(name, port),
                                        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for port in ports}
        try:
            t_start = time.monotonic()
            base, owners = self.form_group(name, topic, procs, SyntheticStream(seed=99))
            formed_s = time.monotonic() - t_start
            cpu0 = {port: cpu_s(proc.pid) for port, proc in procs.items()}
            n, target = len(values), base + len(values)
            per_p = Counter(partition_for(k, self.partitions) for k, _ in values)  # keyed: the model is exact
            t0 = time.perf_counter()
            last = self.produce(topic, values)
            produce_s = time.perf_counter() - t0
            first = killed = None
            stall: dict[int, float] = {}
            keys_r = Keys(name)
            while True:
                c, t = self.booked(name), time.perf_counter()
                if first is None and c > base:
                    first = (t, c)
                if kill_at and killed is None and c >= base + kill_at * n:
                    port = ports[-1]
                    procs[port].send_signal(signal.SIGKILL)
                    procs[port].wait()
                    at_kill = {p: int(self.r.get(keys_r.applied(topic, p)) or -1) for p in owners[port]}
                    killed = (t, {p: o for p, o in at_kill.items() if o < last.get(p, -1)})
                if killed:
                    for p, o in killed[1].items():
                        if p not in stall and int(self.r.get(keys_r.applied(topic, p)) or -1) > o:
                            stall[p] = t - killed[0]
                if c >= target:
                    break
                if t - t0 > 600:
                    raise RuntimeError(f"{name}: {c - base} of {n} booked after 600 s")
                time.sleep(0.01)
            cpu = [cpu_s(proc.pid) - cpu0[port] for port, proc in procs.items() if proc.poll() is None]
            out = {"workers": workers, "events": n, "events_per_s": round((target - first[1]) / (t - first[0])),
                   "seconds": round(t - first[0], 2), "produce_burst_s": round(produce_s, 2),
                   "group_formed_s": round(formed_s, 1),
                   "partitions_per_worker": sorted(len(s) for s in owners.values()),
                   "busiest_worker_share": round(max(sum(per_p.get(p, 0) for p in s) for s in owners.values()) / n, 3),
                   "worker_cpu_s": [round(c, 2) for c in cpu]}
            if not killed:  # CPU is less noisy than wall time here: the busiest worker is the critical path
                out.update(events_per_worker_cpu_s=round(n / sum(cpu)),
                           projected_events_per_s_core_per_worker=round(n / max(cpu)))
            if killed:
                out.update(killed_partitions=sorted(killed[1]), pause_per_partition_s={p: round(s, 2) for p, s in stall.items()},
                           rebalance_pause_s=round(max(stall.values()), 2) if stall else None)
            return out
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.terminate()
            for proc in procs.values():
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--partitions", type=int, default=12)
    ap.add_argument("--skew-events", type=int, default=60_000)
    ap.add_argument("--workers", default="1,2,3")
    a = ap.parse_args()
    chosen = PartitionKeys(DEFAULT_STRATEGY, DEFAULT_SHARDS)
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as d:
        b = Bench(Path(d), a.partitions)
        b.launcher.up()
        try:
            sk = b.skew(a.skew_events, chosen)
            events = hot_events(a.events, int(time.time() * 1000))
            runs = [b.group_run(f"w{n}", n, events, chosen) for n in map(int, a.workers.split(","))]
            by_key = {f"{k.strategy}{'_' + str(k.shards) if k.strategy == 'team_shard' else ''}":
                      b.group_run(f"k{k.strategy.replace('_', '')}", 3, events, k)
                      for k in (PartitionKeys("team"), PartitionKeys("team_shard", 8)) if k != chosen}
            reb = b.group_run("kill", 3, events, chosen, kill_at=0.25)
        finally:
            b.launcher.down()
    print(json.dumps({
        "bench": "scaleout", "cpus": os.cpu_count(), "broker": "tansu (memory)",
        "note": "broker, Redis, ClickHouse dev server and all workers share these cores; noisy",
        "key": {"strategy": chosen.strategy, "shards": chosen.shards},
        "events_per_s": {str(r["workers"]): r["events_per_s"] for r in runs},
        "events_per_s_3_workers_by_key": {**{k: r["events_per_s"] for k, r in by_key.items()},
                                          chosen.strategy: next((r["events_per_s"] for r in runs if r["workers"] == 3), None)},
        "events_per_worker_cpu_s_3_workers_by_key": {
            **{k: r["events_per_worker_cpu_s"] for k, r in by_key.items()},
            chosen.strategy: next((r["events_per_worker_cpu_s"] for r in runs if r["workers"] == 3), None)},
        "projected_events_per_s_3_workers_own_cores_by_key": {
            **{k: r["projected_events_per_s_core_per_worker"] for k, r in by_key.items()},
            chosen.strategy: next((r["projected_events_per_s_core_per_worker"] for r in runs if r["workers"] == 3), None)},
        "rebalance_pause_s": reb.get("rebalance_pause_s"), "session_timeout_s": SESSION_TIMEOUT_S,
        "skew_before_team": sk["real_tansu"]["before_team"]["skew"],
        "skew_after": sk["real_tansu"][f"after_{chosen.strategy}"]["skew"],
        "detail": {"skew": sk, "runs": runs, "runs_3_workers_by_key": by_key, "rebalance": reb},
    }, indent=1))


if __name__ == "__main__":
    main()
