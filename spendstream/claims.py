"""Run a piece of work once across workers: claim it with the set-once marker alerts use (`SpendStore.mark_fired`),
and give the claim back when the work fails, so a later attempt (this worker's next tick, or another's) does it.
Pure: only the SpendStore port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from spendstream.errors import StoreUnavailable
from spendstream.ports import SpendStore

__all__ = ["claim_once"]

Marker = tuple[str, str, str, int]  # (budget id or job, window / period, kind, threshold), as mark_fired takes it


@asynccontextmanager
async def claim_once(store: SpendStore, marker: Marker, expire_at_s: int, what: str) -> AsyncIterator[bool]:
    """Yields whether this caller holds the claim. An exception inside gives the claim back and leaves as
    StoreUnavailable naming `what` (the worker's timers log it; the work is retried on a later tick)."""
    (mine,) = await store.mark_fired([(marker, expire_at_s)])
    try:
        yield mine
    except Exception as exc:  # ClickHouse away (the driver's own types) or a store error: retry later
        if mine:
            await store.clear_fired(*marker)
        raise StoreUnavailable(f"{what} not written ({exc}); a later tick retries") from exc
