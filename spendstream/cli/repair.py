"""`spendstream repair-counters`: find and fix Redis window counters that disagree with ClickHouse (increments a
Redis failover lost), per scope, while the workers keep running. Method and invariant: sinks/redis/repair.py."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import typer
from rich.table import Table

from spendstream.cli._common import console, settings_or_exit
from spendstream.cli._common import now_ms as wall_ms

__all__ = ["register", "repair_counters", "clickhouse_complete", "served_slots"]

log = logging.getLogger("spendstream.repair")


def clickhouse_complete(settings, ch, partitions: list[int]) -> dict[int, int]:
    """Per partition, the offset up to which ClickHouse holds every row: the highest kafka_offset stored, or the
    group's committed offset - 1 (the worker commits only after writing the rows before it), whichever is higher."""
    from confluent_kafka import Consumer, TopicPartition

    from sinks.clickhouse.writer import ClickHouseWriter

    k = settings.kafka
    written = ClickHouseWriter(ch, settings.clickhouse.database, cluster=settings.clickhouse.cluster).written_offsets(
        k.usage_topic)
    c = Consumer({"bootstrap.servers": k.bootstrap_servers, "group.id": k.consumer_group,
                  "enable.auto.commit": False})
    try:
        committed = c.committed([TopicPartition(k.usage_topic, p) for p in partitions], timeout=30)
    finally:
        c.close()
    out = {p: written.get(p, -1) for p in partitions}
    for tp in committed:
        if tp.offset >= 0:
            out[tp.partition] = max(out[tp.partition], tp.offset - 1)
    return out


def _partitions(settings) -> list[int]:
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers}).list_topics(settings.kafka.usage_topic,
                                                                                        timeout=30)
    return sorted(md.topics[settings.kafka.usage_topic].partitions)


def served_slots(settings, node: str) -> set[int]:
    """The hash slots the Redis Cluster master at `node` (host:port) serves now. Raises SpendstreamError when the
    node is not a master of a cluster."""
    import redis

    from spendstream.errors import SpendstreamError

    host, _, port = node.rpartition(":")
    try:
        slots = redis.Redis(host=host or "127.0.0.1", port=int(port), socket_timeout=10).execute_command("CLUSTER SLOTS")
        myself = redis.Redis(host=host or "127.0.0.1", port=int(port), socket_timeout=10).execute_command("CLUSTER MYID")
    except (redis.RedisError, ValueError) as exc:
        raise SpendstreamError(f"--node {node}: not a reachable Redis Cluster node ({exc})") from exc
    myid = myself.decode() if isinstance(myself, bytes) else myself
    out: set[int] = set()
    for entry in slots:
        master_id = entry[2][2].decode() if isinstance(entry[2][2], bytes) else entry[2][2]
        if master_id == myid:
            out.update(range(int(entry[0]), int(entry[1]) + 1))
    if not out:
        raise SpendstreamError(f"--node {node} serves no slot: give the master (the promoted replica after a failover)")
    return out


# raw rows beyond one per event_id (not FINAL): copies booked while their dedupe marker was lost (docs/scaling.md)
RAW_COPIES_SQL = "SELECT count() - uniqExact(event_id) FROM {db}.priced_events WHERE kafka_topic = %(t)s"


def repair_counters(settings, scopes: list[str] | None = None, apply: bool = True, wait_s: float = 120.0,
                    now_ms: int | None = None, node: str | None = None):
    """Detect (and with `apply`, fix) drift of the owner scopes' live windows; restore lost dedupe markers. `scopes`
    ("kind:value") or `node` (a cluster master's host:port: the scopes and markers in the slots it serves) narrow
    it. Returns the RepairReport. Raises SpendstreamError when ClickHouse does not catch up within `wait_s`."""
    import asyncio

    from sinks.clickhouse.schema import connect
    from sinks.redis.client import make_redis
    from sinks.redis.rebuild import PRICED_SQL
    from sinks.redis.keys import Keys
    from sinks.redis.repair import OWNER_SCOPES_SQL, CounterRepair, owner_scopes, scope_slot
    from spendstream.errors import SpendstreamError

    db, topic = settings.clickhouse.database, settings.kafka.usage_topic
    ch = connect(settings.clickhouse.dsn, settings.clickhouse.timeout_s)
    now = now_ms if now_ms is not None else wall_ms()
    windows = owner_scopes(ch.query(OWNER_SCOPES_SQL.replace("{db}", db), parameters={"t": topic}).result_rows, now)
    if scopes:
        wanted = {tuple(s.split(":", 1)) for s in scopes}
        windows = {s: w for s, w in windows.items() if s in wanted}
    slots = served_slots(settings, node) if node else None
    if slots is not None:
        keys = Keys(settings.redis.prefix)
        windows = {s: w for s, w in windows.items() if scope_slot(keys, s) in slots}
    partitions = _partitions(settings)

    async def run():
        r = make_redis(settings.redis.url, timeout_s=30.0)
        try:
            job = CounterRepair(r, settings.redis.prefix, topic, now)
            await job.marks(partitions)
            await job.snapshot(windows)
            need = job.needed()
            deadline = time.monotonic() + wait_s
            while True:  # the worker writes ClickHouse a flush interval after it books Redis
                have = await asyncio.to_thread(clickhouse_complete, settings, ch, partitions)
                behind = {p: (have.get(p, -1), c) for p, c in need.items() if have.get(p, -1) < c}
                if not behind:
                    break
                if time.monotonic() > deadline:
                    raise SpendstreamError(f"ClickHouse is behind Redis for partitions {behind} (held, needed) after "
                                           f"{wait_s:.0f}s: is a worker writing? nothing was changed")
                await asyncio.sleep(0.5)
            rows = ch.query(PRICED_SQL.replace("{db}", db) + " WHERE kafka_topic = %(t)s",
                            parameters={"t": topic}).result_rows
            job.compare(rows)
            job.report.raw_copies = int(ch.query(RAW_COPIES_SQL.replace("{db}", db), parameters={"t": topic})
                                        .result_rows[0][0])
            if apply:
                await job.apply()
            await job.dedupe_markers(rows, restore=apply, slots=slots)
            return job.report
        finally:
            await r.aclose()

    report = asyncio.run(run())
    for d in report.drift:
        log.warning("counter drift %s:%s %s %s: redis %d clickhouse %d (missing %d)", *d.scope, d.window, d.field,
                    d.redis, d.clickhouse, d.missing)
    return report


def _metrics_text(report) -> str:
    """Prometheus text format (for node_exporter's textfile collector, or a push)."""
    lines = ["# HELP spendstream_counter_drift_windows Redis window counters that disagree with ClickHouse",
             "# TYPE spendstream_counter_drift_windows gauge",
             f"spendstream_counter_drift_windows {len({(d.scope, d.window) for d in report.drift})}",
             "# HELP spendstream_counter_drift_nanos nano-USD Redis lacks (negative: holds twice), month windows",
             "# TYPE spendstream_counter_drift_nanos gauge"]
    for d in report.drift:
        if d.field == "spend" and d.window.startswith("m:"):
            lines.append(f'spendstream_counter_drift_nanos{{scope="{d.scope[0]}:{d.scope[1]}",window="{d.window}"}} '
                         f"{d.missing}")
    lines += ["# HELP spendstream_dedupe_markers_missing event-id markers missing for events ClickHouse holds",
              "# TYPE spendstream_dedupe_markers_missing gauge",
              f"spendstream_dedupe_markers_missing {report.dedupe_missing}",
              "# HELP spendstream_raw_event_copies priced_events raw rows beyond one per event_id (until merged)",
              "# TYPE spendstream_raw_event_copies gauge",
              f"spendstream_raw_event_copies {report.raw_copies}"]
    return "\n".join(lines) + "\n"


def register(app: typer.Typer) -> None:
    @app.command("repair-counters")
    def repair(
        scope: list[str] = typer.Option(None, "--scope", help="kind:value (repeatable); default every owner scope"),
        dry_run: bool = typer.Option(False, "--dry-run", help="report the drift, change nothing"),
        wait: float = typer.Option(120.0, "--wait", help="seconds to wait for ClickHouse to catch up with Redis"),
        metrics_file: Path = typer.Option(None, "--metrics-file", help="also write the drift as Prometheus text"),
        node: str = typer.Option(None, "--node", help="host:port of a Redis Cluster master (the promoted replica): "
                                                      "only the scopes and dedupe markers in the slots it serves"),
        verbose: bool = typer.Option(False, "--verbose", help="every drifted counter, not one line per scope"),
    ) -> None:
        """Compare each owner scope's live Redis windows with ClickHouse up to a consistent cut and add the
        difference in the scope's slot. Safe with workers RUNNING (after a Redis failover, say)."""
        from sinks.redis.keys import Keys
        from sinks.redis.repair import scope_slot

        s = settings_or_exit()
        rep = repair_counters(s, scope or None, apply=not dry_run, wait_s=wait, node=node)
        keys = Keys(s.redis.prefix)
        if verbose:
            t = Table("scope", "window", "field", "redis", "clickhouse", "missing in redis")
            for d in sorted(rep.drift, key=lambda d: (d.scope, d.window, d.field)):
                t.add_row(f"{d.scope[0]}:{d.scope[1]}", d.window, d.field, f"{d.redis:,}", f"{d.clickhouse:,}",
                          f"{d.missing:,}")
            if rep.drift:
                console.print(t)
        for scope in rep.drifted_scopes():  # one line per scope, whole (an operator greps it): its month windows
            ds = [d for d in rep.drift if d.scope == scope]
            events = sum(d.missing for d in ds if d.field == "events" and d.window.startswith("m:"))
            spend = sum(d.missing for d in ds if d.field == "spend" and d.window.startswith("m:"))
            console.print(f"drift {scope[0]}:{scope[1]} (slot {scope_slot(keys, scope)}): month events missing "
                          f"{events:,}, nano-USD missing {spend:,} ({len(ds)} counters; negative = booked twice)",
                          soft_wrap=True)
        fixed = len(rep.drifted_scopes()) if dry_run else rep.repaired_scopes
        console.print(f"checked {rep.scopes} scopes, {rep.windows} windows: {len(rep.drifted_scopes())} scopes drifted "
                      f"({len(rep.drift)} counters); {'would repair' if dry_run else 'repaired'} {fixed} scopes; "
                      f"dedupe markers missing {rep.dedupe_missing}, restored {rep.dedupe_restored}; partitions in "
                      f"flight (compared up to the scope watermarks) {rep.partitions_in_flight or 'none'}",
                      soft_wrap=True)
        if rep.raw_copies:
            console.print(f"raw rows of an event_id stored again: {rep.raw_copies:,} (copies booked while their "
                          "dedupe marker was lost; FINAL and this repair count each event once, the rollups "
                          "cost_hourly and activity_daily count the copies: see docs/scaling.md)", soft_wrap=True)
        if rep.other_topic_scopes:
            console.print(f"not compared (booked from another topic too): {len(rep.other_topic_scopes)} scopes",
                          soft_wrap=True)
        if metrics_file:
            metrics_file.write_text(_metrics_text(rep))
        if rep.drift and dry_run:
            raise typer.Exit(1)  # for cron / alerting: drift found
