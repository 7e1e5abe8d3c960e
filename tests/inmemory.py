"""In-memory adapters of the core's ports (spendstream/ports.py), exact enough to drive the real BatchProcessor,
BudgetWatcher and Checker in unit tests: event-id dedupe per record, the partition journal and applied mark, and
per-scope watermarks behave as the Lua scripts in sinks/redis/lua_stream.py do. No server, no clock: time is a
ManualClock the test moves by hand.

`crash_after_journal` makes the next apply_batch stop between JOURNAL and APPLY_SCOPE, as a worker killed there.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from schemas.models import Budget
from spendstream.aggregation import CELL_FIELDS, Deltas
from spendstream.ports import Cell, DeadLetter, DedupeKey, Totals

__all__ = ["ManualClock", "MemorySpendStore", "MemoryHolds", "MemoryRowSink", "MemoryDeadLetters", "Published",
           "Crash"]


class Crash(Exception):
    """A simulated worker death inside a store call."""


@dataclass
class ManualClock:
    ms: int
    mono: float = 0.0

    def now_ms(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.mono

    def advance(self, ms: int) -> None:
        self.ms += ms
        self.mono += ms / 1000


@dataclass
class MemorySpendStore:
    seen: dict[tuple[str, str], str] = field(default_factory=dict)  # (topic, event id) -> first record
    applied: dict[tuple[str, int], int] = field(default_factory=dict)
    journal: dict[tuple[str, int], dict[int, Deltas]] = field(default_factory=lambda: defaultdict(dict))
    windows: dict[tuple[str, str, str], dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    watermarks: dict[tuple[str, str], dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    budget_map: dict[str, Budget] = field(default_factory=dict)
    fired: set[tuple[str, str, str, int]] = field(default_factory=set)
    decision_map: dict[str, dict] = field(default_factory=dict)
    member_map: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    crash_after_journal: bool = False
    calls: int = 0  # round trips, as the Redis store would make them

    async def ping(self) -> None:
        return None

    async def applied_offset(self, topic: str, partition: int) -> int:
        return self.applied.get((topic, partition), -1)

    async def claim(self, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        epochs = self.__dict__.setdefault("epochs", {})
        for p in partitions:
            epochs[(topic, p)] = epochs.get((topic, p), 0) + 1
        return {p: epochs[(topic, p)] for p in partitions}

    async def fence(self, topic: str, intents: dict[int, tuple[int, str]]) -> dict[int, int]:
        epochs = self.__dict__.get("epochs", {})
        recorded = self.__dict__.setdefault("inflight", {})
        out = {}
        for p, (epoch, intent) in intents.items():
            out[p] = epochs.get((topic, p), 0)
            if out[p] <= epoch:
                recorded[(topic, p)] = intent
        return out

    async def intents(self, topic: str, partitions: Sequence[int]) -> dict[int, str]:
        recorded = self.__dict__.get("inflight", {})
        return {p: recorded[(topic, p)] for p in partitions if (topic, p) in recorded}

    async def find_duplicates(self, topic: str, events: Sequence[DedupeKey]) -> set[int]:
        self.calls += 1
        dups = set()
        for pos, (event_id, where, _day) in enumerate(events):
            first = self.seen.setdefault((topic, event_id), where)
            if first != where:
                dups.add(pos)
        return dups

    async def apply_batch(self, topic: str, partition: int, first: int, last: int, deltas: Deltas) -> Totals | None:
        self.calls += 1
        if first <= self.applied.get((topic, partition), -1):
            return None
        self.applied[(topic, partition)] = last
        self.journal[(topic, partition)][last] = deltas
        if self.crash_after_journal:
            self.crash_after_journal = False
            raise Crash("killed between JOURNAL and APPLY_SCOPE")
        totals = self._fan_out(topic, partition, last, deltas)
        del self.journal[(topic, partition)][last]
        return totals

    def _fan_out(self, topic: str, partition: int, last: int, deltas: Deltas) -> Totals:
        self.calls += 1
        out: Totals = {}
        for scope, cells in deltas.items():
            wm = self.watermarks[scope]
            fresh = wm.get(f"{topic}:{partition}", -1) < last
            for window, cell in cells.items():
                counters = self.windows[(*scope, window)]
                if fresh:
                    for f, d in zip(CELL_FIELDS, cell):
                        if d:
                            counters[f] = counters.get(f, 0) + d
                out.setdefault(scope, {})[window] = counters.get("spend", 0)
            if fresh:
                wm[f"{topic}:{partition}"] = last
        return out

    async def recover(self, topic: str, partition: int) -> int:
        pending = self.journal.get((topic, partition), {})
        n = len(pending)
        for last in sorted(pending):
            self._fan_out(topic, partition, last, pending.pop(last))
        return n

    async def read_cells(self, cells: Iterable[tuple[str, str, str]]) -> list[dict[str, int]]:
        return [dict(self.windows.get(c, {})) for c in cells]

    async def budgets(self) -> list[Budget]:
        return sorted(self.budget_map.values(), key=lambda b: b.id)

    async def put_budget(self, budget: Budget) -> None:
        self.budget_map[budget.id] = budget

    async def delete_budget(self, budget_id: str) -> bool:
        return self.budget_map.pop(budget_id, None) is not None

    async def members(self, kind: str) -> dict[str, dict[str, str]]:
        return {v: dict(lab) for (k, v), lab in self.member_map.items() if k == kind}

    async def member_labels(self, members: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
        return [dict(self.member_map.get(m, {})) for m in members]

    async def put_member(self, kind: str, value: str, labels: dict[str, str]) -> None:
        self.member_map[(kind, value)] = dict(labels)

    async def mark_fired(self, markers: list[tuple[tuple[str, str, str, int], int]]) -> list[bool]:
        out = []
        for marker, _exp in markers:
            out.append(marker not in self.fired)
            self.fired.add(marker)
        return out

    async def clear_fired(self, budget_id: str, window: str, kind: str, threshold: int) -> None:
        self.fired.discard((budget_id, window, kind, threshold))

    async def decisions(self) -> dict[str, dict]:
        return dict(self.decision_map)

    async def put_decision(self, budget_id: str, record: dict) -> None:
        self.decision_map[budget_id] = dict(record)

    async def remove_decision(self, budget_id: str) -> bool:
        return self.decision_map.pop(budget_id, None) is not None

    def spend(self, kind: str, value: str, window: str) -> int:
        return self.windows.get((kind, value, window), {}).get("spend", 0)


@dataclass
class MemoryHolds:
    """Reservations: holds per cell; settle releases each reservation once."""

    store: MemorySpendStore
    holds: dict[str, tuple[list[Cell], int, int]] = field(default_factory=dict)  # id -> (cells, amount, expiry)
    settled: list[str] = field(default_factory=list)

    def _held(self, c: Cell, now_ms: int) -> int:
        return sum(a for cells, a, exp in self.holds.values() if exp > now_ms
                   for h in cells if (h.kind, h.value, h.window) == (c.kind, c.value, c.window))

    def _counters(self, c: Cell) -> dict[str, int]:
        if not c.parts:
            return dict(self.store.windows.get((c.kind, c.value, c.window), {}))
        out: dict[str, int] = {}
        for p in c.parts:  # a quarter or rolling cell: the sum of its booked windows, as the Lua sums them
            for f, v in self.store.windows.get((c.kind, c.value, p), {}).items():
                out[f] = out.get(f, 0) + v
        return out

    async def observe(self, cells: Sequence[Cell], now_ms: int) -> list[dict[str, int]]:
        return [{**self._counters(c), "held": self._held(c, now_ms)} for c in cells]

    async def reserve(self, reservation_id: str, team: str, cells: Sequence[Cell], estimate: int, now_ms: int,
                      ttl_ms: int, api_key: str | None = None) -> tuple[bool, list[tuple[int, int]]]:
        rows = [(self._counters(c).get("spend", 0), self._held(c, now_ms)) for c in cells]
        ok = all(c.limit < 0 or s + h + estimate <= c.limit for c, (s, h) in zip(cells, rows))
        if ok:
            self.holds[reservation_id] = (list(cells), estimate, now_ms + ttl_ms)
        return ok, rows

    async def settle(self, reservation_ids: list[str]) -> int:
        n = 0
        for rid in dict.fromkeys(reservation_ids):
            if self.holds.pop(rid, None) is not None:
                self.settled.append(rid)
                n += 1
        return n

    async def release(self, reservation_id: str) -> bool:
        return await self.settle([reservation_id]) == 1

    async def owner(self, reservation_id: str) -> str | None:
        return None


@dataclass
class MemoryRowSink:
    """The ClickHouse writer's contract: rows per partition, `written` as if flushed, marks per partition."""

    rows: dict[tuple[str, int], list[list[Any]]] = field(default_factory=lambda: defaultdict(list))
    written: dict[tuple[str, int], int] = field(default_factory=dict)
    ledger: list[tuple[str, list[Any]]] = field(default_factory=list)

    def written_offsets(self, topic: str) -> dict[int, int]:
        return {p: o for (t, p), o in self.written.items() if t == topic}

    def add(self, rows: list[list[Any]], topic: str, partition: int, last_offset: int) -> None:
        self.rows[(topic, partition)].extend(rows)
        self.written[(topic, partition)] = max(last_offset, self.written.get((topic, partition), -1))

    def add_ledger(self, table: str, columns: tuple[str, ...], rows: list[list[Any]]) -> None:
        self.ledger += [(table, dict(zip(columns, r))) for r in rows]

    def drop(self, topic: str, partitions: Sequence[int]) -> int:
        for p in partitions:
            self.written.pop((topic, p), None)
        return sum(len(self.rows.pop((topic, p), [])) for p in partitions)

    @property
    def pending(self) -> int:
        return sum(len(r) for r in self.rows.values())

    def all_rows(self) -> list[list[Any]]:
        return [r for rows in self.rows.values() for r in rows]


@dataclass
class MemoryDeadLetters:
    letters: list[DeadLetter] = field(default_factory=list)

    def send(self, letters: list[DeadLetter]) -> None:
        self.letters += letters

    def flush(self) -> None:
        return None


@dataclass
class Published:
    """A Publish port that records (topic, key, body)."""

    records: list[tuple[str, str, dict]] = field(default_factory=list)

    def __call__(self, topic: str, key: str, body: dict) -> None:
        self.records.append((topic, key, body))

    def on(self, topic: str) -> list[dict]:
        return [b for t, _, b in self.records if t == topic]
