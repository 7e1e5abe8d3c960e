"""Reservations: hold an estimated cost against every budget of a call before it runs; release on settle.

A reservation touches several budget scopes, each its own hash slot (`{team:payments}`, `{org:all}`, ...), and a
Lua call may only touch one slot. So `reserve` sends ONE cluster-safe script per slot, all in one pipeline; each
slot checks-and-holds atomically (spend + held + estimate <= limit, no check-then-increment race). If any slot
refuses, the slots that held are released again (a second round trip). Trade-off, chosen on purpose: between
the two round trips a refused reservation briefly holds money in the slots that said yes, so a concurrent call
there may be refused that would have fit (a false refusal, never a false admission); and a crash in between
leaves those holds until their TTL. The alternative, one slot for all hold counters, cannot check `spend` (which
lives in each scope's slot) atomically, and a fixed-order sequential reserve costs one round trip per scope.

The reservation record (`{res:<id>}`, its own slot) lists the cells held, so `settle` / `release` find them.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

from sinks.redis import lua_reservations as lua
from sinks.redis.keys import Keys
from sinks.redis.scripts import Call, RedisClient, ScriptRunner
from spendstream.ports import Cell

__all__ = ["Reservations", "RECORD_SLACK_MS"]

RECORD_SLACK_MS = 60_000  # the record outlives its holds, so a late settle still finds (and no-ops on) them


class Reservations:
    """Holds on budget windows in Redis (implements spendstream.ports.Holds). Every method raises StoreUnavailable when Redis does not answer."""

    def __init__(self, redis_client: RedisClient, prefix: str = "ss") -> None:
        self.keys = Keys(prefix)
        self.runner = ScriptRunner(redis_client)

    def _cell_keys(self, c: Cell) -> tuple[str, ...]:
        """w, z, a of the cell, then its parts' window hashes (a quarter or rolling cell), all in one slot."""
        k = self.keys
        return (k.window(c.kind, c.value, c.window), k.holds(c.kind, c.value, c.window),
                k.hold_amounts(c.kind, c.value, c.window), *(k.window(c.kind, c.value, p) for p in c.parts))

    @staticmethod
    def _by_slot(cells: Iterable[Cell]) -> dict[tuple[str, str], list[tuple[int, Cell]]]:
        slots: dict[tuple[str, str], list[tuple[int, Cell]]] = {}
        for i, c in enumerate(cells):
            slots.setdefault((c.kind, c.value), []).append((i, c))
        return slots

    async def observe(self, cells: Sequence[Cell], now_ms: int) -> list[dict[str, int]]:
        """Each cell's window counters {spend, held, events, ...} after dropping holds expired at now_ms."""
        slots = self._by_slot(cells)
        calls: list[Call] = [
            (lua.OBSERVE, [k for _, c in members for k in self._cell_keys(c)], [now_ms, *(len(c.parts) for _, c in members)])
            for members in slots.values()
        ]
        out: list[dict[str, int]] = [{} for _ in cells]
        for members, rows in zip(slots.values(), await self.runner.run(calls)):
            for (i, _), flat in zip(members, rows):
                out[i] = {_s(flat[j]): int(flat[j + 1]) for j in range(0, len(flat), 2)}
        return out

    async def reserve(self, reservation_id: str, team: str, cells: Sequence[Cell], estimate: int, now_ms: int,
                      ttl_ms: int, api_key: str | None = None) -> tuple[bool, list[tuple[int, int]]]:
        """Hold `estimate` nano-USD on every cell until now_ms + ttl_ms, or on none.

        Returns (admitted, [(spend, held before this hold) per cell]). Refused when a cell's blocking limit would
        be exceeded; then nothing stays held. Idempotent per reservation id."""
        if not cells:
            return True, []
        slots = self._by_slot(cells)
        expiry = now_ms + ttl_ms
        calls: list[Call] = []
        for members in slots.values():
            argv: list[Any] = [now_ms, expiry, reservation_id, estimate]
            for _, c in members:
                argv += (c.limit, c.expire_at, len(c.parts))
            calls.append((lua.RESERVE, [k for _, c in members for k in self._cell_keys(c)], argv))
        record = json.dumps({"team": team, "api_key": api_key, "cells": [[c.kind, c.value, c.window] for c in cells]})
        calls.append((None, (), ("SET", self.keys.reservation(reservation_id), record, "PX", ttl_ms + RECORD_SLACK_MS)))
        replies = (await self.runner.run(calls))[:-1]
        rows: list[tuple[int, int]] = [(0, 0)] * len(cells)
        admitted = True
        for members, reply in zip(slots.values(), replies):
            admitted = admitted and reply[0] == 1
            for j, (i, _) in enumerate(members):
                rows[i] = (int(reply[1 + 2 * j]), int(reply[2 + 2 * j]))
        if not admitted:
            held_slots = [m for m, reply in zip(slots.values(), replies) if reply[0] == 1]
            undo = [self._release_call([(c, reservation_id) for _, c in m]) for m in held_slots]
            await self.runner.run(undo + [(None, (), ("DEL", self.keys.reservation(reservation_id)))])
        return admitted, rows

    def _release_call(self, holds: list[tuple[Cell, str]]) -> Call:
        index: dict[Cell, int] = {}
        keys: list[str] = []
        argv: list[Any] = []
        for cell, rid in holds:
            if cell not in index:
                index[cell] = len(index) + 1
                keys += self._cell_keys(cell)[:3]  # RELEASE needs w, z, a only
            argv += (index[cell], rid)
        return lua.RELEASE, keys, argv

    async def owner(self, reservation_id: str) -> str | None:
        """The team a live reservation was made for; None when unknown or expired."""
        raw = (await self.runner.run([(None, (), ("GET", self.keys.reservation(reservation_id)))]))[0]
        return json.loads(raw)["team"] if raw else None

    async def settle(self, reservation_ids: list[str]) -> int:
        """Release the holds of these reservations (the stream booked their actual cost). Idempotent: a hold is
        released once however often it is settled; unknown or expired ids are skipped.
        Returns how many reservations released money now."""
        ids = list(dict.fromkeys(r for r in reservation_ids if r))
        if not ids:
            return 0
        raws = await self.runner.run([(None, (), ("GET", self.keys.reservation(r))) for r in ids])
        by_slot: dict[tuple[str, str], list[tuple[Cell, str]]] = {}
        for rid, raw in zip(ids, raws):
            for kind, value, window in (json.loads(raw)["cells"] if raw else []):
                by_slot.setdefault((kind, value), []).append((Cell(kind, value, window), rid))
        calls: list[Call] = [self._release_call(holds) for holds in by_slot.values()]
        calls += [(None, (), ("DEL", self.keys.reservation(r))) for r in ids]  # one slot each (cluster-safe)
        replies = (await self.runner.run(calls))[:len(by_slot)]
        released: set[str] = set()
        for holds, amounts in zip(by_slot.values(), replies):
            released.update(rid for (_, rid), amt in zip(holds, amounts) if int(amt) >= 0)
        return len(released)

    async def release(self, reservation_id: str) -> bool:
        """Cancel one reservation (the call was not made). Idempotent; False when nothing was held any more."""
        return await self.settle([reservation_id]) == 1


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v
