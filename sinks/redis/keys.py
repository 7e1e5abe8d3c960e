"""Redis key names. Every key carries a hash tag `{...}` naming its slot group (see sinks/redis/lua_stream.py)."""

from __future__ import annotations

import zlib

__all__ = ["Keys", "dedupe_bucket", "seen_generation", "DEDUPE_BUCKETS", "SEEN_GENERATION_DAYS", "SCOPE_BUCKETS",
           "BUCKETED_KINDS", "slot_of"]

DEDUPE_BUCKETS = 16  # event-id dedupe slots; a batch costs one pipelined round trip whatever the count
# Event-id dedupe markers live in generation hashes of SEEN_GENERATION_DAYS days of ARRIVAL (when the worker booked
# the event, not its event_time): a lookup reads the current and the previous generation, so an id is remembered at
# least SEEN_GENERATION_DAYS (>= a calendar month) and at most twice that after it was booked, whatever event_time a
# copy carries
SEEN_GENERATION_DAYS = 32
# High-cardinality scope kinds share SCOPE_BUCKETS slots per kind: every key of one value stays in one slot (its
# bucket), and the stream applies all values of a bucket in ONE Lua call (lua_stream.APPLY_SLOT)
SCOPE_BUCKETS = 64
BUCKETED_KINDS = frozenset({"project", "customer", "user", "api_key"})


def slot_of(key: str) -> str:
    """The hash tag of a key (what Redis Cluster hashes): the text inside its first {...}."""
    start = key.index("{") + 1
    return key[start:key.index("}", start)]


def dedupe_bucket(event_id: str) -> int:
    """The dedupe slot of an event id: crc32(event_id) % DEDUPE_BUCKETS (every copy of an event lands in one)."""
    return zlib.crc32(event_id.encode()) % DEDUPE_BUCKETS


def seen_generation(day: str | int) -> int:
    """The dedupe generation of a UTC day number (days since 1970-01-01, as `windows.event_day` spells it)."""
    return int(day) // SEEN_GENERATION_DAYS


class Keys:
    def __init__(self, prefix: str = "ss") -> None:
        self.prefix = prefix

    # per Kafka partition
    def partition_tag(self, topic: str, partition: int) -> str:
        return f"{self.prefix}:{{p:{topic}:{partition}}}"

    def applied(self, topic: str, partition: int) -> str:
        return self.partition_tag(topic, partition) + ":applied"

    def journal(self, topic: str, partition: int) -> str:
        return self.partition_tag(topic, partition) + ":journal"

    def owner(self, topic: str, partition: int) -> str:
        """Ownership epoch: INCR by every worker that is assigned the partition (a zombie's flush sees it moved)."""
        return self.partition_tag(topic, partition) + ":owner"

    def inflight(self, topic: str, partition: int) -> str:
        """The partition's last INSERT intent (JSON: epoch, rows and dead-letter ranges with their dedup tokens),
        set by the owner's flush fence right before it inserts (stream_app/consumer.py `_fenced`): a new owner
        whose ClickHouse mark is below it repeats that INSERT with the same tokens (docs/scaling.md "Zombie")."""
        return self.partition_tag(topic, partition) + ":inflight"

    def seen(self, topic: str, bucket: int, generation: int) -> str:
        """Event-id dedupe hash of one bucket (crc32(event_id) % DEDUPE_BUCKETS) and arrival generation
        (`seen_generation`). Keyed by the id, not the partition: a producer that sends no key spreads copies of an
        event over partitions; not by the event's day: a copy re-sent with another event_time is still a copy."""
        return f"{self.prefix}:{{dd:{topic}:{bucket}}}:seen:g{generation}"

    # per budget scope
    def scope_tag(self, kind: str, value: str) -> str:
        """`{team:payments}`: one slot per owner scope; `{user#17}:<value>`: a high-cardinality value's bucket."""
        if kind in BUCKETED_KINDS:
            return f"{self.prefix}:{{{kind}#{zlib.crc32(value.encode()) % SCOPE_BUCKETS}}}:{value}"
        return f"{self.prefix}:{{{kind}:{value}}}"

    def window(self, kind: str, value: str, window_id: str) -> str:
        return self.scope_tag(kind, value) + f":{window_id}"

    def watermarks(self, kind: str, value: str) -> str:
        return self.scope_tag(kind, value) + ":wm"

    # budgets: small, read often, one slot
    def budgets(self) -> str:
        return f"{self.prefix}:{{budgets}}:all"

    def decisions(self) -> str:
        """Active throttle / deny / downgrade decisions written by the stream: field budget_id -> JSON."""
        return f"{self.prefix}:{{budgets}}:decisions"

    def alert_fired(self, budget_id: str, window_id: str, kind: str, threshold: int | str) -> str:
        """Set-once marker: an alert fires once per (budget, period window, kind, threshold)."""
        return f"{self.prefix}:{{budgets}}:fired:{budget_id}:{window_id}:{kind}:{threshold}"

    # ---- reservations, rate limits, API keys (sinks/redis/reservations.py, ratelimit.py, auth.py) -------------
    def holds(self, kind: str, value: str, window_id: str) -> str:
        """Sorted set of the window's live holds: reservation id scored by expiry (epoch ms). Scope slot."""
        return self.scope_tag(kind, value) + f":holds:{window_id}"

    def hold_amounts(self, kind: str, value: str, window_id: str) -> str:
        """Hash reservation id -> held nano-USD, beside `holds`. Scope slot."""
        return self.scope_tag(kind, value) + f":holdamt:{window_id}"

    def throttle(self, kind: str, value: str, budget_id: str) -> str:
        """Token bucket of a throttle budget (its next free retry time). Scope slot."""
        return self.scope_tag(kind, value) + f":tb:{budget_id}"

    def rate(self, kind: str, value: str, budget_id: str, counter: str, minute: int) -> str:
        """Per-minute counter (rpm | tpm) of a rate-limited budget; minute = epoch ms // 60000. Scope slot."""
        return self.scope_tag(kind, value) + f":rl:{budget_id}:{counter}:{minute}"

    def reservation(self, reservation_id: str) -> str:
        """Record of where a reservation holds money; its own slot (read once, then per-scope releases)."""
        return f"{self.prefix}:{{res:{reservation_id}}}"

    def members(self, kind: str) -> str:
        """Hash member value -> labels JSON of budget-group members of a scope kind (api_key, customer, project)."""
        return f"{self.prefix}:{{members}}:{kind}"

    def api_keys(self) -> str:
        """Hash sha256(api key) -> principal JSON. One small slot."""
        return f"{self.prefix}:{{auth}}:keys"
