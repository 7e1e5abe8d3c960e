"""Redis key names. Every key carries a hash tag `{...}` naming its slot group (see enforcement/lua.py)."""

from __future__ import annotations

__all__ = ["Keys"]


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

    def seen(self, topic: str, partition: int, day: str) -> str:
        return self.partition_tag(topic, partition) + f":seen:{day}"

    # per budget scope
    def scope_tag(self, kind: str, value: str) -> str:
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
