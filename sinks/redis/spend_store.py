"""The Redis spend store: exactly-once application of priced batches, live spend reads, budgets.

Applying a batch from one Kafka partition takes three round trips, each cluster-safe (one slot per Lua call):
  1. DEDUPE  (event-id bucket slots, pipelined)  which event ids were already booked from another record;
  2. JOURNAL (partition slot)  mark [first, last] applied and keep the batch's per-scope deltas;
  3. APPLY_SCOPE per scope slot (pipelined), then drop the journal entry.
A crash after 2 leaves the journal: `recover()` (run when a partition is assigned) re-runs 3, which each scope
skips if it already holds the batch (its `wm` mark). Events at or below the applied mark are never re-applied.
"""

from __future__ import annotations

import json
import zlib
from typing import Any, Iterable, Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sinks.redis import lua_stream as lua
from sinks.redis.keys import Keys
from schemas.models import Budget
from spendstream.aggregation import CELL_FIELDS, Deltas
from spendstream.errors import StoreUnavailable
from spendstream.windows import expire_at

__all__ = ["RedisSpendStore", "SEEN_TTL_S", "DEDUPE_BUCKETS"]

SEEN_TTL_S = 40 * 86400  # >= the longest window (a calendar month) plus late-arrival slack
_US = "\x1f"  # unit separator: event ids never contain control characters (validation)
DEDUPE_BUCKETS = 16  # event-id dedupe slots; a batch costs one pipelined round trip whatever the count


class RedisSpendStore:
    """Spend counters and budgets in Redis. Every method raises StoreUnavailable when Redis does not answer."""

    def __init__(self, client: aioredis.Redis, prefix: str = "ss") -> None:
        self.r = client
        self.keys = Keys(prefix)
        self._dedupe = client.register_script(lua.DEDUPE)
        self._journal = client.register_script(lua.JOURNAL)
        self._apply = client.register_script(lua.APPLY_SCOPE)

    # ---- the stream's side -------------------------------------------------------------------------------
    async def applied_offset(self, topic: str, partition: int) -> int:
        try:
            v = await self.r.get(self.keys.applied(topic, partition))
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return int(v) if v is not None else -1

    async def find_duplicates(self, topic: str, events: Sequence[tuple[str, str, str]]) -> set[int]:
        """Positions in `events` ((event_id, where, yyyymmdd)) whose id was already booked somewhere else.

        `where` names the record ("partition:offset.index"): a redelivered record is not a duplicate of itself.
        One DEDUPE call per id bucket (a fixed set of slots), pipelined: one round trip."""
        if not events:
            return set()
        groups: dict[int, tuple[dict[str, int], list[str], list[str], list[str], list[int]]] = {}
        for pos, (event_id, where, day) in enumerate(events):
            bucket = zlib.crc32(event_id.encode()) % DEDUPE_BUCKETS
            days, idx, ids, recs, positions = groups.setdefault(bucket, ({}, [], [], [], []))
            d = days.get(day)
            if d is None:
                d = days[day] = len(days) + 1
            idx.append(str(d))
            ids.append(event_id)
            recs.append(where)
            positions.append(pos)
        pipe = self.r.pipeline(transaction=False)
        for bucket, (days, idx, ids, recs, _) in groups.items():
            await self._dedupe(keys=[self.keys.seen(topic, bucket, d) for d in days],
                               args=[SEEN_TTL_S, _US.join(idx), _US.join(ids), _US.join(recs)], client=pipe)
        try:
            replies = await pipe.execute()
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return {positions[i] for (*_, positions), dups in zip(groups.values(), replies) for i in dups}

    def _scope_calls(self, topic: str, partition: int, last: int, deltas: Deltas) -> list[tuple[list[str], list[Any]]]:
        wm_field = f"{topic}:{partition}"
        calls = []
        for (kind, value), cells in deltas.items():
            keys = [self.keys.watermarks(kind, value)]
            argv: list[Any] = [wm_field, last]
            for window_id, cell in cells.items():
                keys.append(self.keys.window(kind, value, window_id))
                pairs = [(f, d) for f, d in zip(CELL_FIELDS, cell) if d]
                argv += (expire_at(window_id), len(pairs))
                for f, d in pairs:
                    argv += (f, d)
            calls.append((keys, argv))
        return calls

    async def apply_batch(self, topic: str, partition: int, first: int, last: int, deltas: Deltas) -> dict | None:
        """Apply one batch's deltas exactly once. Returns {(kind, value): {window: spend after}} for budget
        evaluation, or None when the batch overlaps an already-applied range (caller re-reads the mark)."""
        calls = self._scope_calls(topic, partition, last, deltas)
        payload = json.dumps(calls, separators=(",", ":"))
        try:
            ok, _ = await self._journal(
                keys=[self.keys.applied(topic, partition), self.keys.journal(topic, partition)],
                args=[first, last, payload],
            )
            if not ok:
                return None
            results = await self._fan_out(calls)
            await self.r.hdel(self.keys.journal(topic, partition), last)
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        out: dict = {}
        for (scope, cells), spends in zip(deltas.items(), results):
            out[scope] = dict(zip(cells, spends))
        return out

    async def _fan_out(self, calls: list[tuple[list[str], list[Any]]]) -> list[list[int]]:
        pipe = self.r.pipeline(transaction=False)
        for keys, argv in calls:
            await self._apply(keys=keys, args=argv, client=pipe)
        return await pipe.execute()

    async def recover(self, topic: str, partition: int) -> int:
        """Finish the fan-out of batches journaled before a crash. Idempotent. Returns how many were replayed."""
        jkey = self.keys.journal(topic, partition)
        try:
            pending = await self.r.hgetall(jkey)
            for last, payload in sorted(pending.items(), key=lambda kv: int(kv[0])):
                await self._fan_out(json.loads(payload))
                await self.r.hdel(jkey, last)
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return len(pending)

    # ---- reads ---------------------------------------------------------------------------------------------
    async def read_cells(self, cells: Iterable[tuple[str, str, str]]) -> list[dict[str, int]]:
        """For each (kind, value, window id), the window's counters {spend, tagged, events, unpriced, held}."""
        cells = list(cells)
        pipe = self.r.pipeline(transaction=False)
        for kind, value, w in cells:
            pipe.hgetall(self.keys.window(kind, value, w))
        try:
            rows = await pipe.execute()
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return [{_s(k): int(v) for k, v in row.items()} for row in rows]

    # ---- budgets -------------------------------------------------------------------------------------------
    async def put_budget(self, budget: Budget) -> None:
        try:
            await self.r.hset(self.keys.budgets(), budget.id, budget.model_dump_json())
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def delete_budget(self, budget_id: str) -> bool:
        try:
            return bool(await self.r.hdel(self.keys.budgets(), budget_id))
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    # ---- alerts and decisions (the `{budgets}` slot) ----------------------------------------------------------
    async def mark_fired(self, markers: list[tuple[tuple[str, str, str, int], int]]) -> list[bool]:
        """Set-once markers ((budget, window, kind, threshold), expire_at_s). True where this call set it first."""
        if not markers:
            return []
        pipe = self.r.pipeline(transaction=False)
        for (budget_id, window, kind, threshold), exp in markers:
            pipe.set(self.keys.alert_fired(budget_id, window, kind, threshold), 1, nx=True, exat=exp)
        try:
            return [bool(x) for x in await pipe.execute()]
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def clear_fired(self, budget_id: str, window: str, kind: str, threshold: int) -> None:
        try:
            await self.r.delete(self.keys.alert_fired(budget_id, window, kind, threshold))
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def decisions(self) -> dict[str, dict]:
        try:
            raw = await self.r.hgetall(self.keys.decisions())
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return {_s(k): json.loads(v) for k, v in raw.items()}

    async def put_decision(self, budget_id: str, record: dict) -> None:
        try:
            await self.r.hset(self.keys.decisions(), budget_id, json.dumps(record))
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def remove_decision(self, budget_id: str) -> bool:
        try:
            return bool(await self.r.hdel(self.keys.decisions(), budget_id))
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def budgets(self) -> list[Budget]:
        try:
            raw = await self.r.hgetall(self.keys.budgets())
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return sorted((Budget.model_validate_json(v) for v in raw.values()), key=lambda b: b.id)


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v
