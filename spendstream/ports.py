"""The core's collaborators, as Protocols. Adapters implement them (named after their technology: `sinks/redis/`,
`sinks/clickhouse/`, `sinks/dlq.py`, `sinks/notifiers.py`); in-memory versions drive the processor, the budget
watcher and the checker in unit tests (`tests/inmemory.py`). Only entry points (worker, API, CLI) build concrete
adapters and pass them in.

Every port is batch-shaped: a batch of events, rows, cells or ids in, one round trip out. Store methods raise
`StoreUnavailable` when the store does not answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Protocol, Sequence

from schemas.models import Budget
from spendstream.aggregation import Deltas
from spendstream.rate_limits import RateCounter

__all__ = [
    "Clock", "SpendStore", "ReservationSettler", "Holds", "RateLimiter", "ThrottleBuckets", "RowSink", "DeadLetter",
    "DeadLetterSink", "Notifier", "Publish", "UsagePublisher", "Cell", "Totals", "DedupeKey", "BudgetLog",
    "CheckOutcomeLog",
]

Totals = dict[tuple[str, str], dict[str, int]]  # {(kind, value): {window id: spend after the batch}}
DedupeKey = tuple[str, str, str]  # (event_id, record "partition:offset.index", UTC day number of its ARRIVAL)


class Clock(Protocol):
    """Wall time (epoch ms, for windows and records) and a monotonic clock (seconds, for caches and timeouts)."""

    def now_ms(self) -> int: ...

    def monotonic(self) -> float: ...


class SpendStore(Protocol):
    """Live spend: the stream books batches exactly once; the API and the watcher read windows and budgets."""

    async def ping(self) -> None:
        """Returns when the store answers (readiness)."""

    # -- the stream's side
    async def applied_offset(self, topic: str, partition: int) -> int:
        """Highest offset of the partition whose deltas are booked; -1 when none."""

    async def recover(self, topic: str, partition: int) -> int:
        """Finish batches journaled before a crash. Idempotent. Returns how many were replayed."""

    async def claim(self, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        """Take the partitions' ownership epochs (each +1); returns the epochs now held."""

    async def fence(self, topic: str, intents: dict[int, tuple[int, str]]) -> dict[int, int]:
        """Per partition (the worker's epoch, an INSERT intent): record the intent unless the epoch moved past the
        worker's; returns the current epochs (above the worker's: fenced, nothing recorded)."""

    async def intents(self, topic: str, partitions: Sequence[int]) -> dict[int, str]:
        """The partitions' last recorded INSERT intents (absent: none)."""

    async def find_duplicates(self, topic: str, events: Sequence[DedupeKey]) -> set[int]:
        """Positions whose event id was first carried by ANOTHER record (a redelivered record is not a duplicate
        of itself)."""

    async def apply_batch(self, topic: str, partition: int, first: int, last: int, deltas: Deltas) -> Totals | None:
        """Book one batch's deltas exactly once; None when [first, last] overlaps what is already applied."""

    # -- reads
    async def read_cells(self, cells: Iterable[tuple[str, str, str]]) -> list[dict[str, int]]:
        """Counters {spend, tagged, events, unpriced, ...} of each (kind, value, window id)."""

    # -- budgets, alert markers and decisions
    async def budgets(self) -> list[Budget]: ...

    async def put_budget(self, budget: Budget) -> None: ...

    async def delete_budget(self, budget_id: str) -> bool: ...

    # -- budget-group members' labels
    async def members(self, kind: str) -> dict[str, dict[str, str]]:
        """Every member of a scope kind with its labels."""

    async def member_labels(self, members: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
        """Labels of each (kind, value); {} when none were set."""

    async def put_member(self, kind: str, value: str, labels: dict[str, str]) -> None: ...

    async def mark_fired(self, markers: list[tuple[tuple[str, str, str, int], int]]) -> list[bool]:
        """Set-once markers ((budget, window, kind, threshold), expire_at_s); True where this call set it."""

    async def clear_fired(self, budget_id: str, window: str, kind: str, threshold: int) -> None: ...

    async def decisions(self) -> dict[str, dict]: ...

    async def put_decision(self, budget_id: str, record: dict) -> None: ...

    async def remove_decision(self, budget_id: str) -> bool:
        """True when this call removed it (another worker may have lifted it first)."""


@dataclass(frozen=True, slots=True)
class Cell:
    """One (scope, window) counter. `limit` is the smallest limit of the blocking budgets on it, in nano-USD, or
    -1 when none blocks (the hold is recorded, never refused). `expire_at`: the window's expiry (epoch s).
    `parts`: for a quarter or rolling window (spendstream.budget_windows), the booked windows whose counters sum
    to its spend; the cell's own hash then only carries `held`."""

    kind: str
    value: str
    window: str
    limit: int = -1
    expire_at: int = 0
    parts: tuple[str, ...] = ()


class ReservationSettler(Protocol):
    async def settle(self, reservation_ids: list[str]) -> int:
        """Release the holds of these reservations (their actual cost is booked). Idempotent; unknown or expired
        ids are skipped. Returns how many released money now."""


class Holds(ReservationSettler, Protocol):
    """Reservations: an estimate held against every budget cell of a call until settled, released or expired."""

    async def observe(self, cells: Sequence[Cell], now_ms: int) -> list[dict[str, int]]:
        """Each cell's counters {spend, held, ...} after dropping holds expired at now_ms."""

    async def reserve(self, reservation_id: str, team: str, cells: Sequence[Cell], estimate: int, now_ms: int,
                      ttl_ms: int, api_key: str | None = None) -> tuple[bool, list[tuple[int, int]]]:
        """Hold on every cell or on none; the record names the team and the enforcement key that asked.
        Returns (admitted, [(spend, held before) per cell])."""

    async def release(self, reservation_id: str) -> bool: ...

    async def owner(self, reservation_id: str) -> str | None: ...


class RateLimiter(Protocol):
    async def take(self, counters: Sequence[RateCounter], now_ms: int) -> tuple[bool, float]:
        """Take each per-minute counter's amount atomically per scope, or refuse. (admitted, retry_after_s)."""


class ThrottleBuckets(Protocol):
    async def retry_after_s(self, budget: Budget, now_ms: int) -> float:
        """Seconds until this throttled caller's retry slot at the budget's rate."""


class RowSink(Protocol):
    """The ClickHouse write side: rows buffered per partition, flushed in blocks, exactly once per offset."""

    def written_offsets(self, topic: str) -> dict[int, int]:
        """Highest offset already stored per partition of `topic`."""

    def add(self, rows: list[list[Any]], topic: str, partition: int, last_offset: int) -> None: ...

    def add_ledger(self, table: str, columns: tuple[str, ...], rows: list[list[Any]]) -> None: ...

    def drop(self, topic: str, partitions: Sequence[int]) -> int:
        """Forget buffered rows of partitions this worker no longer owns. Returns how many rows were dropped."""

    @property
    def pending(self) -> int: ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record (or one event of a batch message) that cannot be booked: the ORIGINAL bytes of the Kafka message,
    a reason code, and where it came from. `index` is the event's position inside a batch message, -1 for a
    whole message. `team`, `use_case`, `event_id`: as the event names them when it decoded far enough to read
    them (spendstream.validation.dead_letter_tags), '' otherwise."""

    value: bytes | None
    reason: str
    detail: str
    topic: str
    partition: int
    offset: int
    index: int = -1
    key: bytes | None = None
    team: str = ""
    use_case: str = ""
    event_id: str = ""


class DeadLetterSink(Protocol):
    def send(self, letters: list[DeadLetter]) -> None: ...

    def flush(self) -> None:
        """Block until every letter sent is acknowledged; raises when not (the caller must not commit)."""


class Notifier(Protocol):
    name: str

    def request(self, alert: dict) -> tuple[str, bytes, dict[str, str]] | None:
        """(url, body, headers) for this alert, or None when this notifier does not send it."""


class Publish(Protocol):
    def __call__(self, topic: str, key: str, body: dict) -> None:
        """Publish one JSON record (alerts, decisions) without blocking."""


class BudgetLog(Protocol):
    """Where budget changes are recorded (the budget history, `budget_snapshots`). `change` is a
    spendstream.budget_history.BudgetChange; raises StoreUnavailable when the history store does not answer."""

    async def record(self, change: Any) -> None: ...


class CheckOutcomeLog(Protocol):
    """Where answered checks are recorded (ClickHouse `check_outcomes`): `record` queues one row and never blocks
    or raises; the adapter writes in the background. `close` writes what is queued."""

    def record(self, row: list[Any]) -> None: ...

    async def close(self) -> None: ...


class UsagePublisher(Protocol):
    """Queues one validated usage event (a dict in the contract's shape) for the usage topic without blocking;
    returns its event_id, None when it could not be queued. `integrations.publisher.Publisher` implements it."""

    def record_event(self, event: dict) -> str | None: ...
