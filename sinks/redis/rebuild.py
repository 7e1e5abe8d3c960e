"""Rebuild the Redis spend store from the ClickHouse ledger after Redis lost its data (FLUSHALL, a restart without
persistence, a failover to an empty replica).

What is restored, and from what (the entry point `spendstream rebuild-counters` reads ClickHouse and passes rows in;
this module does no ClickHouse I/O):
  * every scope window hash `{kind:value}:<window>` (spend / tagged / events / unpriced) whose key would still be
    alive (`windows.expire_at` > now), by booking each priced_events row through the SAME `aggregate()` the worker
    uses — so the counters are identical to what the worker booked, to the nano-USD;
  * the per-partition applied mark `{p:topic:partition}:applied` = the highest kafka_offset ClickHouse holds for the
    partition, and every scope's `wm` field `topic:partition` = that mark, so a worker restarted afterwards neither
    re-books what ClickHouse holds nor skips what it does not;
  * event-id dedupe markers `{dd:topic:bucket}:seen:g<generation>` (the generation of the event's ingestion day)
    for events ingested within SEEN_TTL_S, so a late copy of a booked event is still caught. The value names the
    record ("partition:offset.index"); ClickHouse does not keep the index of an event inside a batch message, so
    the rebuilt index is the event's rank by event_id within its record. Only equality with the *same* record
    matters to DEDUPE, and a record at or below the applied mark is never dedupe-checked again, so the index cannot
    cause a false duplicate;
  * budgets: from the reviewed budgets file (the source of truth for budgets), when one is given;
  * active decisions (latest `decisions` row per budget, not `lifted`, window not ended, budget still known) into the
    `{budgets}:decisions` hash, in the JSON shape of `DecisionRecord.to_json()`;
  * alert set-once markers for alerts whose window is still open, except a 100 % threshold marker a later `lifted`
    decision cleared (the worker clears it so the limit may alert again).
Not restorable (they never reach ClickHouse): live reservations (holds) and throttle token buckets — both expire
within minutes by design — API keys (re-issue them, or use the bootstrap admin key), and the partitions' ownership
epochs and in-flight INSERT intents (`{p:..}:owner`, `:inflight`: with every worker stopped there is no zombie to
fence nor an INSERT that could still land; a restarted worker claims afresh).

Every write replaces the key it writes (DEL + HSET / SET), so running the rebuild twice gives the same store. Run it
with every worker stopped: a worker booking while the rebuild writes would be overwritten.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple

from sinks.redis.keys import Keys, dedupe_bucket, seen_generation
from sinks.redis.scripts import Call, RedisClient, ScriptRunner
from sinks.redis.spend_store import SEEN_TTL_S
from schemas.models import Budget
from spendstream.aggregation import CELL_FIELDS, Booking, Deltas, aggregate
from spendstream.alerts import DecisionRecord
from spendstream.allocation import Owner
from spendstream.scopes import API_KEY_ATTRIBUTE, optional_scopes
from spendstream.windows import event_day, expire_at, window_bounds

__all__ = ["PricedRow", "DecisionRow", "AlertRow", "RebuildReport", "CounterRebuild",
           "PRICED_SQL", "DECISIONS_SQL", "ALERTS_SQL"]

# `{db}` is replaced by the database. Column order = PricedRow / DecisionRow / AlertRow field order.
PRICED_SQL = (
    "SELECT kafka_topic, kafka_partition, kafka_offset, event_id, toUnixTimestamp64Milli(event_time), "
    "toUnixTimestamp64Milli(ingested_at), team, cost_center, use_case, environment, workload_type, fully_tagged, "
    "provider, model, cost, unpriced, project, customer, user_hash, attributes FROM {db}.priced_events FINAL"
)
DECISIONS_SQL = (
    "SELECT budget_id, scope_kind, scope_value, decision, reason, suggested_model, window_id, "
    "toUnixTimestamp64Milli(decided_at) FROM {db}.decisions FINAL"
)
ALERTS_SQL = (
    "SELECT budget_id, kind, window_id, threshold, toUnixTimestamp64Milli(fired_at) FROM {db}.alerts FINAL "
    "WHERE kind IN ('budget_threshold', 'budget_forecast', 'budget_spike')"
)

_CHUNK = 20_000  # rows aggregated / markers written per round


class PricedRow(NamedTuple):
    topic: str
    partition: int
    offset: int
    event_id: str
    event_time_ms: int
    ingested_ms: int
    team: str
    cost_center: str
    use_case: str
    environment: str
    workload_type: str
    fully_tagged: int
    provider: str
    model: str
    cost: int
    unpriced: int
    project: str = ""
    customer: str = ""
    user_hash: str = ""
    attributes: dict | None = None


class DecisionRow(NamedTuple):
    budget_id: str
    scope_kind: str
    scope_value: str
    decision: str
    reason: str
    suggested_model: str
    window_id: str
    decided_ms: int


class AlertRow(NamedTuple):
    budget_id: str
    kind: str  # budget_threshold | budget_forecast | budget_spike
    window_id: str
    threshold: int
    fired_ms: int


@dataclass
class RebuildReport:
    events: int = 0
    windows: int = 0
    expired_windows: int = 0
    partitions: dict[str, int] = field(default_factory=dict)  # "topic:partition" -> applied mark
    seen_markers: int = 0
    budgets: int = 0
    decisions: list[str] = field(default_factory=list)
    skipped_decisions: dict[str, str] = field(default_factory=dict)  # budget id -> why not restored
    alert_markers: int = 0


class CounterRebuild:
    """Feed it ClickHouse rows (`add_events` as many times as there are blocks), then `await write()` once.
    Writes go through the one ScriptRunner (StoreUnavailable when Redis does not answer), one slot per command."""

    def __init__(self, prefix: str, now_ms: int) -> None:
        self.runner: ScriptRunner | None = None
        self.keys = Keys(prefix)
        self.now_ms = now_ms
        self.report = RebuildReport()
        self._deltas: Deltas = {}
        self._applied: dict[tuple[str, int], int] = {}
        self._scope_partitions: dict[tuple[str, str], set[tuple[str, int]]] = defaultdict(set)
        self._seen_expiry: dict[str, int] = {}  # seen key -> epoch s (last ingestion + SEEN_TTL_S)
        self._record_rows: dict[tuple[str, int, int], dict[str, str]] = defaultdict(dict)  # record -> {id: seen key}
        self._seen_from_ms = now_ms - SEEN_TTL_S * 1000

    # ---- priced events -----------------------------------------------------------------------------------
    def add_events(self, rows: Iterable[Iterable[Any]]) -> None:
        """Book a block of priced_events rows (PRICED_SQL order). Pure accumulation; nothing is written yet."""
        by_partition: dict[tuple[str, int], list[Booking]] = defaultdict(list)
        for raw in rows:
            row = PricedRow(*raw)
            tp = (row.topic, int(row.partition))
            owner = Owner(row.team, row.cost_center, row.use_case, row.environment, row.workload_type,
                          bool(row.fully_tagged))
            # optional scopes by their real values (no per-worker cap here; shared group counters are not rebuilt)
            extra = optional_scopes(row.project, row.customer, row.user_hash,
                                    (row.attributes or {}).get(API_KEY_ATTRIBUTE))
            by_partition[tp].append(Booking(owner, row.provider, row.model, int(row.event_time_ms), int(row.cost),
                                            bool(row.unpriced), extra))
            if int(row.offset) > self._applied.get(tp, -1):
                self._applied[tp] = int(row.offset)
            if int(row.ingested_ms) >= self._seen_from_ms:
                key = self.keys.seen(row.topic, dedupe_bucket(row.event_id),
                                      seen_generation(event_day(int(row.ingested_ms))))
                exp = int(row.ingested_ms) // 1000 + SEEN_TTL_S
                if exp > self._seen_expiry.get(key, 0):
                    self._seen_expiry[key] = exp
                self._record_rows[(row.topic, tp[1], int(row.offset))][row.event_id] = key
            self.report.events += 1
        for tp, bookings in by_partition.items():
            for scope, cells in aggregate(bookings).items():
                self._scope_partitions[scope].add(tp)
                into = self._deltas.setdefault(scope, {})
                for w, cell in cells.items():
                    cur = into.get(w)
                    if cur is None:
                        into[w] = list(cell)
                    else:
                        for i, v in enumerate(cell):
                            cur[i] += v

    # ---- write -------------------------------------------------------------------------------------------
    async def write(self, client: RedisClient, budgets: list[Budget] | None, decisions: Iterable[Iterable[Any]] = (),
                    alerts: Iterable[Iterable[Any]] = ()) -> RebuildReport:
        """Write everything accumulated, plus budgets, active decisions and alert markers. Idempotent."""
        self.runner = ScriptRunner(client)
        now_s = self.now_ms // 1000
        out = _Commands(self.runner)
        for (kind, value), cells in self._deltas.items():
            for window_id, cell in cells.items():
                exp = expire_at(window_id)
                if exp <= now_s:
                    self.report.expired_windows += 1
                    continue
                key = self.keys.window(kind, value, window_id)
                await out.add("DEL", key)
                await out.hset(key, {f: v for f, v in zip(CELL_FIELDS, cell) if v})
                await out.add("EXPIREAT", key, exp)
                self.report.windows += 1
            wm = self.keys.watermarks(kind, value)
            await out.add("DEL", wm)
            await out.hset(wm, {f"{t}:{p}": self._applied[(t, p)] for t, p in self._scope_partitions[(kind, value)]})
        for (topic, p), mark in self._applied.items():
            await out.add("SET", self.keys.applied(topic, p), mark)
            await out.add("DEL", self.keys.journal(topic, p))
            self.report.partitions[f"{topic}:{p}"] = mark
        for key in self._seen_expiry:
            await out.add("DEL", key)
        await out.flush()  # the dedupe hashes are empty before they are filled again
        for (topic, p, offset), ids in self._record_rows.items():
            for index, (event_id, key) in enumerate(sorted(ids.items())):
                await out.add("HSET", key, event_id, f"{p}:{offset}.{index}")
                self.report.seen_markers += 1
        for key, exp in self._seen_expiry.items():
            await out.add("EXPIREAT", key, exp)
        await out.flush()
        known = await self._write_budgets(budgets)
        await self._write_decisions([DecisionRow(*d) for d in decisions], [AlertRow(*a) for a in alerts], known)
        return self.report

    async def _write_budgets(self, budgets: list[Budget] | None) -> dict[str, Budget]:
        if budgets is None:  # no file given: keep (and use) whatever budgets the store already has
            (raw,) = await self.runner.run([(None, (), ("HGETALL", self.keys.budgets()))])
            return {b.id: b for b in (Budget.model_validate_json(v) for v in (raw or {}).values())}
        out = _Commands(self.runner)
        await out.add("DEL", self.keys.budgets())
        await out.hset(self.keys.budgets(), {b.id: b.model_dump_json() for b in budgets})
        await out.flush()
        self.report.budgets = len(budgets)
        return {b.id: b for b in budgets}

    async def _write_decisions(self, decisions: list[DecisionRow], alerts: list[AlertRow],
                               budgets: dict[str, Budget]) -> None:
        latest: dict[str, DecisionRow] = {}
        for d in decisions:
            cur = latest.get(d.budget_id)
            if cur is None or (d.decided_ms, d.decision != "lifted") > (cur.decided_ms, cur.decision != "lifted"):
                latest[d.budget_id] = d
        active: dict[str, str] = {}
        for budget_id, d in sorted(latest.items()):
            end_ms = int(window_bounds(d.window_id)[1].timestamp() * 1000)
            b = budgets.get(budget_id)
            if d.decision == "lifted":
                continue
            if end_ms <= self.now_ms:
                self.report.skipped_decisions[budget_id] = f"window {d.window_id} ended"
                continue
            if b is None:
                self.report.skipped_decisions[budget_id] = "budget not in the budgets file (the worker would lift it)"
                continue
            rec = DecisionRecord(budget_id, f"{d.scope_kind}:{d.scope_value}", d.decision, d.window_id, end_ms,
                                 d.suggested_model or None, b.throttle_rps if d.decision == "throttle" else None,
                                 d.reason, int(d.decided_ms))
            active[budget_id] = json.dumps(rec.to_json())
            self.report.decisions.append(budget_id)
        out = _Commands(self.runner)
        await out.add("DEL", self.keys.decisions())
        await out.hset(self.keys.decisions(), active)
        lifted_at: dict[tuple[str, str], int] = {}
        for d in decisions:
            if d.decision == "lifted":
                k = (d.budget_id, d.window_id)
                lifted_at[k] = max(lifted_at.get(k, -1), int(d.decided_ms))
        for a in alerts:
            kind = a.kind.removeprefix("budget_")
            exp = expire_at(a.window_id)
            if exp <= self.now_ms // 1000:
                continue
            if kind == "threshold" and int(a.threshold) == 100 and lifted_at.get((a.budget_id, a.window_id), -1) >= int(a.fired_ms):
                continue  # the lift cleared it: crossing the limit again alerts again
            await out.add("SET", self.keys.alert_fired(a.budget_id, a.window_id, kind, int(a.threshold)), 1, "EXAT", exp)
            self.report.alert_markers += 1
        await out.flush()


class _Commands:
    """Plain commands sent through the one ScriptRunner in pipelined chunks of _CHUNK (each command on one slot)."""

    def __init__(self, runner: ScriptRunner) -> None:
        self.runner = runner
        self.calls: list[Call] = []

    async def add(self, *command: Any) -> None:
        self.calls.append((None, (), command))
        if len(self.calls) >= _CHUNK:
            await self.flush()

    async def hset(self, key: str, mapping: dict[str, Any]) -> None:
        if mapping:
            await self.add("HSET", key, *(x for kv in mapping.items() for x in kv))

    async def flush(self) -> None:
        if self.calls:
            calls, self.calls = self.calls, []
            await self.runner.run(calls)
