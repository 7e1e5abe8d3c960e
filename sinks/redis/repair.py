"""Online repair of the Redis window counters from ClickHouse, one scope slot at a time, while workers keep booking
(`spendstream repair-counters`; docs/scaling.md "Failover"). This module does no ClickHouse or Kafka I/O: the
command reads them and passes rows and marks in.

Why counters drift: Redis replication is asynchronous, so a master killed before its replica saw its last writes
loses them; the promoted replica serves an older but self-consistent state of each of its slots (a scope's window
counters and its `wm` watermarks roll back together). Workers keep booking newer batches on top, so the lost
increments stay missing for good. The reverse (an over-count) would be a batch booked twice into a scope.

The invariant the comparison relies on (one scope S, one partition p):
  * the worker books p's batches in offset order, and one atomic APPLY_SCOPE call adds a batch's events of S and
    sets wm_S[p] = the batch's last offset; so, at any instant, S's windows hold exactly p's events of S with
    offset <= wm_S[p], minus what a failover lost (plus what was booked twice);
  * a batch is in the partition's journal from its JOURNAL call until every scope holds it; so if the journal of p
    is empty when its applied mark A_p is read, every batch of p at or below A_p has reached every scope, and one
    that S does not hold was lost. The cut of (S, p) is therefore max(wm_S[p], A_p) (A_p read BEFORE S's
    snapshot, with an empty journal; else just wm_S[p]); events beyond it may be in flight and are not compared;
  * ClickHouse holds every row of p up to K_p = max(highest kafka_offset stored, committed offset - 1) (the worker
    commits an offset only after writing the rows before it); the command waits until K_p >= every cut of p.
Then for every window w of S:  lost = sum of ClickHouse rows of S in w with offset <= cut(S, p)  -  counters of w
read in the SAME atomic snapshot as the wm's. Increments commute, so adding `lost` later (while workers add newer
batches) restores exactness; the REPAIR call is guarded per run, so a re-sent call never adds it twice.

Scope kinds checked: the seven owner scopes (from the required tags, the same for every worker). Optional scopes
(project, customer, user, api_key) depend on each worker's cardinality cap, and budget-group scopes on the members
file, so ClickHouse cannot say what each worker booked there: they are not compared.
"""

from __future__ import annotations

import bisect
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from redis.crc import key_slot

from sinks.redis import lua_repair as lua
from sinks.redis.keys import Keys, dedupe_bucket, seen_generation
from sinks.redis.rebuild import PricedRow
from sinks.redis.scripts import Call, RedisClient, ScriptRunner
from sinks.redis.spend_store import SEEN_TTL_S, _pairs
from spendstream.aggregation import CELL_FIELDS, Booking, aggregate
from spendstream.allocation import Owner
from spendstream.scopes import scope_values
from spendstream.windows import HOUR_MS, event_day, expire_at, window_ids

__all__ = ["CounterRepair", "Drift", "RepairReport", "OWNER_SCOPES_SQL", "owner_scopes", "scope_slot"]

Scope = tuple[str, str]

# `{db}` is replaced by the database: the owner tags and event hours present, to choose scopes and windows
OWNER_SCOPES_SQL = (
    "SELECT DISTINCT team, cost_center, use_case, environment, provider, model, "
    "intDiv(toUnixTimestamp64Milli(event_time), 3600000) FROM {db}.priced_events WHERE kafka_topic = %(t)s"
)
GUARD_TTL_S = 86400


def owner_scopes(rows: Iterable[Sequence[Any]], now_ms: int) -> dict[Scope, set[str]]:
    """(team, cost_center, use_case, environment, provider, model, hour index) rows -> {scope: its window ids},
    plus the current and previous hour's windows (events booked after the rows were read)."""
    recent = {*window_ids(now_ms), *window_ids(now_ms - HOUR_MS)}
    out: dict[Scope, set[str]] = defaultdict(lambda: set(recent))
    for team, cc, uc, env, provider, model, hour in rows:
        wins = window_ids(int(hour) * HOUR_MS)
        for scope in scope_values(team, cc, uc, env, provider, model):
            out[scope].update(wins)
    return dict(out)


def scope_slot(keys: Keys, scope: Scope) -> int:
    """The Redis Cluster hash slot of a scope's keys."""
    return key_slot(keys.scope_tag(*scope).encode())


@dataclass(frozen=True)
class Drift:
    scope: Scope
    window: str
    field: str
    redis: int
    clickhouse: int

    @property
    def missing(self) -> int:
        """What Redis lacks (negative: what it holds twice)."""
        return self.clickhouse - self.redis


@dataclass
class RepairReport:
    scopes: int = 0
    windows: int = 0
    drift: list[Drift] = field(default_factory=list)
    repaired_scopes: int = 0
    unchecked_windows: int = 0  # windows ClickHouse holds that were not in the snapshot (checked on the next run)
    partitions_in_flight: list[int] = field(default_factory=list)  # journal not empty: compared up to wm only
    dedupe_missing: int = 0
    other_topic_scopes: list[Scope] = field(default_factory=list)  # booked from another topic too: not compared
    dedupe_restored: int = 0
    # raw priced_events rows beyond one per event_id (a copy booked while its dedupe marker was lost: between a
    # failover and the repair). FINAL, this comparison and (after it) Redis count the event once; the rollups
    # (cost_hourly, ...) counted the copy when it was inserted and keep it. Shown until ClickHouse merges the parts.
    raw_copies: int = 0

    def drifted_scopes(self) -> list[Scope]:
        return sorted({d.scope for d in self.drift})


@dataclass
class _Snapshot:
    wm: dict[int, int]
    cells: dict[str, list[int]]


class CounterRepair:
    """One run: `marks()` -> `snapshot()` -> (caller waits for ClickHouse >= `needed()`) -> `compare(rows)` ->
    `apply()`. Raises StoreUnavailable when Redis does not answer."""

    def __init__(self, client: RedisClient, prefix: str, topic: str, now_ms: int) -> None:
        self.runner = ScriptRunner(client)
        self.keys = Keys(prefix)
        self.topic = topic
        self.now_ms = now_ms
        self.run_id = uuid.uuid4().hex[:12]
        self.report = RepairReport()
        self._applied: dict[int, int | None] = {}
        self._snaps: dict[Scope, _Snapshot] = {}
        self._cuts: dict[Scope, dict[int, int]] = {}
        self._fix: dict[Scope, dict[str, list[int]]] = {}

    async def marks(self, partitions: Sequence[int]) -> None:
        """Read each partition's applied mark and whether its journal is empty (one slot per command)."""
        calls: list[Call] = []
        for p in partitions:
            calls += [(None, (), ("GET", self.keys.applied(self.topic, p))),
                      (None, (), ("HLEN", self.keys.journal(self.topic, p)))]
        replies = await self.runner.run(calls)
        for n, p in enumerate(partitions):
            applied, pending = replies[2 * n], int(replies[2 * n + 1] or 0)
            self._applied[p] = None if pending else (int(applied) if applied is not None else -1)
        self.report.partitions_in_flight = sorted(p for p, a in self._applied.items() if a is None)

    async def snapshot(self, windows: dict[Scope, set[str]]) -> None:
        """Read each scope's watermarks and live window counters atomically (one SNAPSHOT call per scope slot)."""
        now_s = self.now_ms // 1000
        plan = [(scope, sorted(w for w in wins if expire_at(w) > now_s)) for scope, wins in windows.items()]
        calls: list[Call] = [(lua.SNAPSHOT, [self.keys.watermarks(*scope), *(self.keys.window(*scope, w) for w in wins)], [])
                             for scope, wins in plan]
        prefix = self.topic + ":"
        for (scope, wins), reply in zip(plan, await self.runner.run(calls)):
            fields = _pairs(reply[0])
            if any(not f.startswith(prefix) for f in fields):  # another topic books this scope too: its rows are
                self.report.other_topic_scopes.append(scope)  # not in this topic's ClickHouse slice
                continue
            wm = {int(f.removeprefix(prefix)): int(v) for f, v in fields.items()}
            cells = {}
            for w, raw in zip(wins, reply[1:]):
                got = {f: int(v) for f, v in _pairs(raw).items()}
                cells[w] = [got.get(f, 0) for f in CELL_FIELDS]
            self._snaps[scope] = _Snapshot(wm, cells)
            marks = {p: a for p, a in self._applied.items() if a is not None}
            self._cuts[scope] = {p: max(wm.get(p, -1), marks.get(p, -1)) for p in {*wm, *marks}}
        self.report.scopes = len(self._snaps)
        self.report.windows = sum(len(s.cells) for s in self._snaps.values())

    def needed(self) -> dict[int, int]:
        """Per partition, the offset up to which ClickHouse must be complete before `compare`."""
        out: dict[int, int] = {}
        for cuts in self._cuts.values():
            for p, c in cuts.items():
                out[p] = max(out.get(p, -1), c)
        return out

    def compare(self, rows: Iterable[Sequence[Any]]) -> RepairReport:
        """priced_events rows (rebuild.PRICED_SQL order, this topic) -> the drift of every snapshotted window."""
        by_partition: dict[int, list[tuple[int, Booking]]] = defaultdict(list)
        for raw in rows:
            r = PricedRow(*raw)
            owner = Owner(r.team, r.cost_center, r.use_case, r.environment, r.workload_type, bool(r.fully_tagged))
            by_partition[int(r.partition)].append(
                (int(r.offset), Booking(owner, r.provider, r.model, int(r.event_time_ms), int(r.cost), bool(r.unpriced))))
        expected = self._expected(by_partition)
        for scope, snap in self._snaps.items():
            want = expected.get(scope, {})
            self.report.unchecked_windows += len(set(want) - set(snap.cells))
            for w, have in snap.cells.items():
                exp = want.get(w, [0] * len(CELL_FIELDS))
                diff = [e - h for e, h in zip(exp, have)]
                if any(diff):
                    self._fix.setdefault(scope, {})[w] = diff
                    self.report.drift += [Drift(scope, w, f, h, e) for f, h, e in zip(CELL_FIELDS, have, exp) if e != h]
        return self.report

    def _expected(self, by_partition: dict[int, list[tuple[int, Booking]]]) -> dict[Scope, dict[str, list[int]]]:
        """Sum per scope and window of the rows at or below each scope's cut. Rows are cut into segments at every
        distinct cut of their partition and each segment is aggregated once (few distinct cuts: batch ends)."""
        out: dict[Scope, dict[str, list[int]]] = {}
        for p, items in by_partition.items():
            items.sort(key=lambda t: t[0])
            offsets = [o for o, _ in items]
            bounds = sorted({cuts[p] for cuts in self._cuts.values() if cuts.get(p, -1) >= 0})
            seg_deltas, lo = [], 0
            for b in bounds:
                hi = bisect.bisect_right(offsets, b)
                seg_deltas.append(aggregate(bk for _, bk in items[lo:hi]))
                lo = hi
            for scope, cuts in self._cuts.items():
                cut = cuts.get(p, -1)
                for b, deltas in zip(bounds, seg_deltas):
                    if b > cut:
                        break
                    into = out.setdefault(scope, {})
                    for w, cell in deltas.get(scope, {}).items():
                        cur = into.setdefault(w, [0] * len(CELL_FIELDS))
                        for i, v in enumerate(cell):
                            cur[i] += v
        return out

    async def apply(self) -> int:
        """Add each drifted scope's difference in its slot (one guarded REPAIR call per scope). Returns the scopes
        changed; a scope this run already repaired is left alone."""
        calls: list[Call] = []
        for (kind, value), cells in self._fix.items():
            keys = [self.keys.scope_tag(kind, value) + f":repair:{self.run_id}"]
            argv: list[Any] = [GUARD_TTL_S]
            for w, diff in cells.items():
                keys.append(self.keys.window(kind, value, w))
                pairs = [(f, d) for f, d in zip(CELL_FIELDS, diff) if d]
                argv += [expire_at(w), len(pairs), *(x for pair in pairs for x in pair)]
            calls.append((lua.REPAIR, keys, argv))
        done = sum(int(x) for x in await self.runner.run(calls)) if calls else 0
        self.report.repaired_scopes = done
        return done

    async def dedupe_markers(self, rows: Iterable[Sequence[Any]], restore: bool,
                             slots: set[int] | None = None) -> None:
        """Event-id dedupe markers lost with a master: every ClickHouse event ingested within SEEN_TTL_S must have
        one (`slots`: only the markers in these cluster hash slots). Counts the missing ones; with `restore`, writes them (HSETNX: a marker that exists is kept), so a
        later copy of a booked event is still a duplicate. The record index is rebuilt as in rebuild.py."""
        since = self.now_ms - SEEN_TTL_S * 1000
        records: dict[tuple[int, int], dict[str, tuple[str, int]]] = defaultdict(dict)
        for raw in rows:
            r = PricedRow(*raw)
            if int(r.ingested_ms) >= since:
                key = self.keys.seen(self.topic, dedupe_bucket(r.event_id),
                                      seen_generation(event_day(int(r.ingested_ms))))
                if slots is not None and key_slot(key.encode()) not in slots:
                    continue
                records[(int(r.partition), int(r.offset))][r.event_id] = (key, int(r.ingested_ms) // 1000 + SEEN_TTL_S)
        markers = [(key, eid, f"{p}:{o}.{i}", exp) for (p, o), ids in records.items()
                   for i, (eid, (key, exp)) in enumerate(sorted(ids.items()))]
        for start in range(0, len(markers), 20_000):
            chunk = markers[start:start + 20_000]
            exists = await self.runner.run([(None, (), ("HEXISTS", k, eid)) for k, eid, _, _ in chunk])
            missing = [m for m, e in zip(chunk, exists) if not int(e)]
            self.report.dedupe_missing += len(missing)
            if restore and missing:
                set_ = await self.runner.run([(None, (), ("HSETNX", k, eid, rec)) for k, eid, rec, _ in missing])
                self.report.dedupe_restored += sum(int(x) for x in set_)
                expiry: dict[str, int] = {}
                for k, _, _, exp in missing:
                    expiry[k] = max(expiry.get(k, 0), exp)
                # NX: a hash this call created has no TTL yet; GT: an existing one keeps the later expiry
                await self.runner.run([(None, (), ("EXPIREAT", k, exp, flag)) for k, exp in expiry.items()
                                       for flag in ("NX", "GT")])
