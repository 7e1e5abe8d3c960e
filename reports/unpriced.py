"""Models the price book did not know when their events were priced (priced by the fallback rule, `unpriced`)."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from clickhouse_connect.driver.client import Client

from reports._sql import rows

__all__ = ["Unpriced", "unpriced_models"]


class Unpriced(NamedTuple):
    provider: str
    model: str
    events: int
    cost: int          # charged nano-USD booked at the fallback price
    first_seen: datetime
    last_seen: datetime


def unpriced_models(client: Client, db: str) -> list[Unpriced]:
    """Every (provider, model) with unpriced events, most fallback cost first."""
    return [Unpriced(p, m, int(n), int(c), f, last) for p, m, n, c, f, last in rows(client, db, """
        SELECT provider, model, toInt64(count()), sum(cost), min(event_time), max(event_time)
        FROM {db}.priced_events FINAL WHERE unpriced = 1
        GROUP BY provider, model ORDER BY sum(cost) DESC, provider, model""")]
