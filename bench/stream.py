"""Stream benchmark: the pipeline per worker against two baselines on the SAME topic in the SAME run, budgets on,
and freshness at 5k events/s. Prints one JSON object.

Everything runs here on real servers started for the run (tansu, redis-server, ClickHouse over HTTP). Each shape
(one Avro event per Kafka message, and SDK batch messages of 500 events) gets one topic, produced once; then
  bare_consume   a bare confluent-kafka `consume(num_messages=...)` of every record, nothing else (bench/bare_consume.py):
                 the client's own ceiling, the physical limit of this design;
  plain_faust    a plain Faust agent doing the same work per event, one message at a time (bench/plain_faust.py):
                 decode, validate, dedupe + journal + apply in Redis, price, budgets, ClickHouse inserts;
  pipeline       `spendstream worker`;
each in its own consumer group, Redis prefix and ClickHouse database, with the same >= 200 budgets (teams, cost
centres, use cases, team+use case, models, environments, org; day / week / month; limits from 0.3x to 4x the run's
spend, so thresholds cross during the run and enforce budgets write decisions).
Timed window: from the first record consumed (the earliest `ingested_at` in ClickHouse: the processor stamps it when
it takes the batch) to the moment every partition's committed offset reached the end and ClickHouse holds every row
— the final flush included, no warm-up excluded. After each run the bench checks exactness and fails loudly:
Redis org total == an independent sum (tests/oracle.py) == ClickHouse raw rows (count and sum) == the rollup.
Usage: python bench/stream.py [--events 100000] [--repeat 1] [--seconds 20] [--profile DIR] [--skip-plain]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis
from confluent_kafka import Consumer, Producer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import clickhouse_connect  # noqa: E402

from schemas.codec import UsageCodec  # noqa: E402
from schemas.models import Budget, BudgetScope  # noqa: E402
from sinks.redis.keys import Keys  # noqa: E402
from spendstream.allocation import owner_of  # noqa: E402
from spendstream.cli.launcher import Launcher  # noqa: E402
from spendstream.cli.services import create_topics  # noqa: E402
from spendstream.scopes import scope_values  # noqa: E402
from spendstream.settings import KafkaSettings, Settings  # noqa: E402
from spendstream.synthetic import SyntheticStream  # noqa: E402
from spendstream.windows import window_ids  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.oracle import oracle_nanos  # noqa: E402

BATCH = 500  # events per SDK batch message
KINDS = ("org", "cost_center", "team", "use_case", "team_use_case", "model", "environment")


class ExactnessError(RuntimeError):
    """The run lost or doubled money: the bench fails loudly."""


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of a process (all its threads) so far; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, TypeError):
        return 0.0


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def bench_budgets(events: list[dict]) -> list[Budget]:
    """>= 200 budgets over the scopes these events book to, limits from 0.3x to 4x each scope's spend in the run:
    thresholds cross while the run books, and enforce budgets (the 0.7x ones) write throttle decisions."""
    spend: dict[tuple[str, str], int] = {}
    for e in events:
        o = owner_of(e)
        for scope in scope_values(o.team, o.cost_center, o.use_case, o.environment, e["provider"], e["model"]):
            spend[scope] = spend.get(scope, 0) + oracle_nanos(e, fallback=True)
    out = []
    for (kind, value), nanos in sorted(spend.items()):
        for period in ("day", "week", "month"):
            for mult in (0.3, 0.7, 1.5, 4.0):
                limit = max(1, int(nanos * mult))
                out.append(Budget(
                    id=f"b-{kind}-{value}-{period}-{mult}".replace("/", "_").replace(" ", "_"),
                    scope=BudgetScope(kind=kind, value=value), period=period,
                    limit_usd=f"{limit // 10**9}.{limit % 10**9:09d}",
                    mode="enforce" if mult == 0.7 else "showback", action="throttle" if mult == 0.7 else "deny"))
    return out


class Run:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.kafka, self.redis_port, self.ch_port = free_port(), free_port(), free_port()
        self.launcher = Launcher(state, self.kafka, self.redis_port, tied=True, clickhouse_port=self.ch_port)
        self.bootstrap = f"127.0.0.1:{self.kafka}"
        self.r = redis.Redis(port=self.redis_port)
        self.codec = UsageCodec()
        self._ch = None

    @property
    def ch(self):
        if self._ch is None:
            self._ch = clickhouse_connect.get_client(host="127.0.0.1", port=self.ch_port, username="default")
        return self._ch

    def env(self, name: str, usage_topic: str | None = None) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(ROOT),
                "SPENDSTREAM_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
                "SPENDSTREAM_KAFKA__USAGE_TOPIC": usage_topic or f"{name}.usage", "SPENDSTREAM_KAFKA__DLQ_TOPIC": f"{name}.dlq",
                "SPENDSTREAM_KAFKA__ALERTS_TOPIC": f"{name}.alerts", "SPENDSTREAM_KAFKA__DECISIONS_TOPIC": f"{name}.decisions",
                "SPENDSTREAM_KAFKA__CONSUMER_GROUP": f"{name}-g", "SPENDSTREAM_WORKER__APP_ID": f"{name}-app",
                "SPENDSTREAM_REDIS__URL": f"redis://127.0.0.1:{self.redis_port}/0", "SPENDSTREAM_REDIS__PREFIX": name,
                "SPENDSTREAM_CLICKHOUSE__DSN": f"http://default:@127.0.0.1:{self.ch_port}",
                "SPENDSTREAM_CLICKHOUSE__DATABASE": self.db(name),
                "SPENDSTREAM_WORKER__WEB_PORT": str(free_port())}

    @staticmethod
    def db(name: str) -> str:
        return f"b_{name.replace('-', '_')}"

    def settings(self, name: str, usage_topic: str | None = None) -> Settings:
        k = KafkaSettings(bootstrap_servers=self.bootstrap, usage_topic=usage_topic or f"{name}.usage",
                          dlq_topic=f"{name}.dlq", alerts_topic=f"{name}.alerts", decisions_topic=f"{name}.decisions")
        return Settings(kafka=k)

    def topics_for(self, name: str, usage_topic: str | None = None) -> str:
        create_topics(self.settings(name, usage_topic))
        return usage_topic or f"{name}.usage"

    def start_worker(self, name: str, usage_topic: str | None = None, plain: bool = False) -> subprocess.Popen:
        cmd = [sys.executable, str(ROOT / "bench" / "plain_faust.py")] if plain else \
            [sys.executable, "-m", "spendstream", "worker"]
        log = open(self.state / f"{name}.log", "wb")  # noqa: SIM115 - the child owns it
        return subprocess.Popen(cmd, env=self.env(name, usage_topic), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    @staticmethod
    def stop_worker(proc: subprocess.Popen) -> None:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    # -- the shared topic of one shape --------------------------------------------------------------------------
    def produce_shape(self, shape: str, events: list[dict], per_message: int) -> tuple[str, dict[int, int], int]:
        """Produce the events once; returns (topic, last offset per partition, records)."""
        topic = self.topics_for(shape)
        if per_message > 1:
            values = [(b"", self.codec.encode_batch(events[i:i + per_message]))
                      for i in range(0, len(events), per_message)]
        else:
            values = [((e.get("team") or "").encode(), self.codec.encode(e)) for e in events]
        ends: dict[int, int] = {}

        def delivered(err, msg) -> None:
            if err is not None:
                raise RuntimeError(f"produce failed: {err}")
            ends[msg.partition()] = max(ends.get(msg.partition(), -1), msg.offset())

        p = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5, "batch.num.messages": 10000})
        for i, (k, v) in enumerate(values):
            while True:
                try:
                    p.produce(topic, key=k, value=v, on_delivery=delivered)
                    break
                except BufferError:
                    p.poll(0.05)
            if i % 5000 == 0:
                p.poll(0)
        if p.flush(60):
            raise RuntimeError("produce: messages left undelivered")
        return topic, ends, len(values)

    def put_budgets(self, prefix: str, budgets: list[Budget]) -> None:
        key = Keys(prefix).budgets()
        self.r.hset(key, mapping={b.id: b.model_dump_json() for b in budgets})

    # -- the three consumers ------------------------------------------------------------------------------------
    def bare(self, name: str, topic: str, records: int, events: int) -> dict:
        out = self.state / f"{name}.json"
        proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bare_consume.py"), self.bootstrap, topic,
                               f"{name}-g", str(records), str(out)], timeout=600, capture_output=True)
        if not out.exists():
            raise RuntimeError(f"bare consume failed: {proc.stderr.decode()[-2000:]}")
        r = json.loads(out.read_text())
        seconds = r["end_at"] - r["first_at"]
        return {"events": events, "records": r["records"], "seconds": round(seconds, 3),
                "events_per_s": events / seconds}

    def _committed(self, group: str, topic: str, ends: dict[int, int]) -> bool:
        c = self._committers.get(group)
        if c is None:
            c = self._committers[group] = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group,
                                                   "enable.auto.commit": False})
        got = c.committed([TopicPartition(topic, p) for p in ends], timeout=10)
        return all(tp.offset == ends[tp.partition] + 1 for tp in got)

    def timed_worker(self, name: str, topic: str, ends: dict[int, int], events: list[dict], budgets: list[Budget],
                     plain: bool, profile: Path | None = None) -> dict:
        """Run the pipeline (or the plain Faust agent) over the shared topic; time it; check exactness."""
        self._committers = getattr(self, "_committers", {})
        self.topics_for(name, topic)
        self.put_budgets(name, budgets)
        group = f"{name}-app" if plain else f"{name}-g"  # Faust's consumer group is its app id
        db = self.db(name)
        proc = self.start_worker(name, topic, plain=plain)
        org = f"{name}:{{org:all}}:{window_ids(events[0]['event_time']).month}"
        pids = {"worker": proc.pid, **{n: self.launcher.pid(n) for n in ("kafka", "redis", "clickhouse")}}
        cpu0 = None
        spy = None
        if profile is not None:
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(proc.pid), "--rate", "250", "--format", "raw",
                                    "--nonblocking", *(["--threads", "--gil"] if os.environ.get("BENCH_SPY_THREADS") else []), "-o", str(profile)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 1800
            end_at = None
            while time.monotonic() < deadline:
                if cpu0 is None and (n0 := int(self.r.hget(org, "events") or 0)) > 0:  # the first batch is booked
                    cpu0 = {n: _cpu_s(p) for n, p in pids.items()}
                if proc.poll() is not None:
                    log = (self.state / f"{name}.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{name}: worker exited with {proc.returncode}: {log}")
                if self._committed(group, topic, ends):
                    t = time.time()
                    if self._ch_rows(db) >= len(events):
                        end_at = t
                        cpu1 = {n: _cpu_s(p) for n, p in pids.items()}
                        break
                time.sleep(0.02)
            if end_at is None:
                raise RuntimeError(f"{name}: not all offsets committed and rows written in time")
        finally:
            self.stop_worker(proc)
            if spy is not None:
                spy.wait(60)
        first_ms = self.ch.query(f"SELECT toUnixTimestamp64Milli(min(ingested_at)) FROM {db}.priced_events").result_rows[0][0]
        seconds = end_at - first_ms / 1000
        ex = self.exactness(name, events)
        alerts = self.ch.query(f"SELECT count() FROM {db}.alerts").result_rows[0][0]
        decisions = self.ch.query(f"SELECT count() FROM {db}.decisions").result_rows[0][0]
        # CPU each process used from the first booked batch to the end, per event booked in that span
        # (microseconds): where the machine's two cores went
        cpu = {n: round((cpu1[n] - cpu0[n]) * 1e6 / (len(events) - n0), 1) for n in pids} \
            if cpu0 and n0 < len(events) else None
        return {"events": len(events), "seconds": round(seconds, 3), "events_per_s": len(events) / seconds,
                "cpu_us_per_event": cpu, "budgets": len(budgets), "alerts_fired": alerts, "decisions": decisions, "exactness": ex}

    def _ch_rows(self, db: str) -> int:
        try:
            return int(self.ch.query(f"SELECT count() FROM {db}.priced_events").result_rows[0][0])
        except Exception:  # the database is created by the worker at start-up
            return 0

    def exactness(self, name: str, events: list[dict]) -> dict:
        expected = sum(oracle_nanos(e, fallback=True) for e in events)
        month = window_ids(events[0]["event_time"]).month
        h = self.r.hgetall(f"{name}:{{org:all}}:{month}")
        redis_spend, redis_events = int(h.get(b"spend", 0)), int(h.get(b"events", 0))
        db = self.db(name)
        rows, ch_sum, ids = self.ch.query(
            f"SELECT count(), sum(cost), uniqExact(event_id) FROM {db}.priced_events").result_rows[0]
        rollup = self.ch.query(f"SELECT sum(cost) FROM {db}.cost_hourly").result_rows[0][0]
        out = {"oracle_nanos": expected, "redis_nanos": redis_spend, "redis_events": redis_events,
               "clickhouse_raw_rows": rows, "clickhouse_raw_nanos": int(ch_sum), "clickhouse_rollup_nanos": int(rollup),
               "distinct_event_ids": ids}
        if not (expected == redis_spend == int(ch_sum) == int(rollup) and rows == ids == redis_events == len(events)):
            raise ExactnessError(f"{name}: NOT EXACT {out} (events {len(events)})")
        out["exact"] = True
        return out

    def freshness(self, rate: int, seconds: float) -> dict:
        name = "fresh"
        topic = self.topics_for(name)
        proc = self.start_worker(name)
        p = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 1})
        stream = SyntheticStream(seed=3)
        pending: dict[str, float] = {}
        seen: list[float] = []
        lock = threading.Lock()
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                with lock:
                    items = list(pending.items())
                if items:
                    month = window_ids(int(time.time() * 1000)).month
                    pipe = self.r.pipeline(transaction=False)
                    for team, _ in items:
                        pipe.exists(f"{name}:{{team:{team}}}:{month}")
                    now = time.perf_counter()
                    for (team, t0), hit in zip(items, pipe.execute()):
                        if hit:
                            seen.append(now - t0)
                            with lock:
                                pending.pop(team, None)
                time.sleep(0.002)

        try:
            # warm up: wait for the consumer group to form before measuring
            warm = stream.event(int(time.time() * 1000))
            warm["team"] = "warmup"
            p.produce(topic, key=b"warmup", value=self.codec.encode(warm))
            p.flush(10)
            month = window_ids(int(time.time() * 1000)).month
            deadline = time.monotonic() + 60
            while not self.r.exists(f"{name}:{{team:warmup}}:{month}") and time.monotonic() < deadline:
                time.sleep(0.05)
            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
            t_start = time.perf_counter()
            sent = probes = 0
            tick = 0.01
            while time.perf_counter() - t_start < seconds:
                t = time.perf_counter()
                now_ms = int(time.time() * 1000)
                for e in stream.events(int(rate * tick), now_ms):
                    p.produce(topic, key=(e["team"] or "").encode(), value=self.codec.encode(e))
                    sent += 1
                if sent // 250 > probes:  # a probe every 50 ms
                    probe = stream.event(now_ms)
                    probe["team"] = f"probe-{probes}"
                    with lock:
                        pending[probe["team"]] = time.perf_counter()
                    p.produce(topic, key=probe["team"].encode(), value=self.codec.encode(probe))
                    probes += 1
                p.poll(0)
                time.sleep(max(0.0, tick - (time.perf_counter() - t)))
            elapsed = time.perf_counter() - t_start
            p.flush(30)
            deadline = time.monotonic() + 30
            while pending and time.monotonic() < deadline:
                time.sleep(0.05)
            stop.set()
            poller.join(5)
            return {"target_events_per_s": rate, "achieved_events_per_s": round(sent / elapsed),
                    "probes": probes, "probes_lost": len(pending),
                    "p50_ms": round(_percentile(seen, 0.50) * 1000, 1), "p99_ms": round(_percentile(seen, 0.99) * 1000, 1),
                    "max_ms": round(max(seen) * 1000, 1) if seen else None}
        finally:
            self.stop_worker(proc)


def _summary(runs: list[dict]) -> dict:
    rates = [r["events_per_s"] for r in runs]
    return {"events_per_s": round(statistics.median(rates)), "runs_events_per_s": [round(x) for x in rates],
            "spread_pct": round(100 * (max(rates) - min(rates)) / statistics.median(rates), 1)}


def shape_runs(run: Run, shape: str, per_message: int, events: list[dict], budgets: list[Budget], repeat: int,
               skip_plain: bool, profile: Path | None) -> dict:
    topic, ends, records = run.produce_shape(shape, events, per_message)
    out: dict[str, list[dict]] = {"bare_consume": [], "plain_faust": [], "pipeline": []}
    for i in range(repeat):  # interleaved, so a neighbour's load hits every variant alike
        out["bare_consume"].append(run.bare(f"{shape}-bare{i}", topic, records, len(events)))
        if not skip_plain:
            out["plain_faust"].append(run.timed_worker(f"{shape}-plain{i}", topic, ends, events, budgets, plain=True))
        prof = profile / f"pipeline-{shape}-{i}.txt" if profile is not None else None
        out["pipeline"].append(run.timed_worker(f"{shape}-pipe{i}", topic, ends, events, budgets, plain=False,
                                                profile=prof))
        print(json.dumps({shape: {k: round(v[-1]["events_per_s"]) for k, v in out.items() if v}}), file=sys.stderr)
    res = {"events": len(events), "events_per_message": per_message, "records": records, "partitions": len(ends)}
    for k, v in out.items():
        if v:
            res[k] = _summary(v)
    pipe, bare = res["pipeline"]["events_per_s"], res["bare_consume"]["events_per_s"]
    res["ratio_pipeline_vs_bare_consume"] = round(pipe / bare, 4)
    if "plain_faust" in res:
        res["ratio_pipeline_vs_plain_faust"] = round(pipe / res["plain_faust"]["events_per_s"], 2)
    last = out["pipeline"][-1]
    res["budgets"], res["alerts_fired"], res["decisions"] = last["budgets"], last["alerts_fired"], last["decisions"]
    res["detail"] = out
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each variant, interleaved (report median + spread)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--skip-plain", action="store_true", help="skip the (slow) plain Faust baseline")
    ap.add_argument("--skip-batched", action="store_true")
    ap.add_argument("--skip-freshness", action="store_true")
    ap.add_argument("--profile", type=Path, help="py-spy record each pipeline run into DIR (raw collapsed stacks; with "
                    "BENCH_SPY_THREADS=1 set, per thread and only samples holding the GIL)")
    a = ap.parse_args()
    if a.profile is not None:
        a.profile.mkdir(parents=True, exist_ok=True)
    now = int(time.time() * 1000)
    events = list(SyntheticStream(seed=2).events(a.events, now))
    budgets = bench_budgets(events)
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as d:
        run = Run(Path(d))
        run.launcher.up()
        try:
            single = shape_runs(run, "single", 1, events, budgets, a.repeat, a.skip_plain, a.profile)
            batched = None if a.skip_batched else \
                shape_runs(run, "batched", BATCH, events, budgets, a.repeat, a.skip_plain, None)
            fresh = None if a.skip_freshness else run.freshness(a.rate, a.seconds)
        finally:
            run.launcher.down()
    pipe = single["pipeline"]["events_per_s"]
    print(json.dumps({
        "bench": "stream", "cpus": os.cpu_count(), "broker": "tansu (memory)", "events": a.events,
        "repeat": a.repeat, "budgets": len(budgets),
        "bare_consume_events_per_s": single["bare_consume"]["events_per_s"],
        "plain_faust_events_per_s": single.get("plain_faust", {}).get("events_per_s"),
        "pipeline_events_per_s": pipe,
        "ratio_pipeline_vs_bare_consume": single["ratio_pipeline_vs_bare_consume"],
        "ratio_pipeline_vs_plain_faust": single.get("ratio_pipeline_vs_plain_faust"),
        "batched": None if batched is None else {
            "bare_consume_events_per_s": batched["bare_consume"]["events_per_s"],
            "plain_faust_events_per_s": batched.get("plain_faust", {}).get("events_per_s"),
            "pipeline_events_per_s": batched["pipeline"]["events_per_s"],
            "ratio_pipeline_vs_bare_consume": batched["ratio_pipeline_vs_bare_consume"],
            "ratio_pipeline_vs_plain_faust": batched.get("ratio_pipeline_vs_plain_faust")},
        "freshness_at_5k": fresh,
        "goals": {"per_worker_ge_50k": pipe >= 50_000,
                  "freshness_p99_le_1s": None if fresh is None else fresh["p99_ms"] <= 1000},
        "detail": {"single": single, "batched": batched},
    }, indent=1))


if __name__ == "__main__":
    main()
