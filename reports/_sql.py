"""Small query helpers shared by the report modules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client

__all__ = ["rows", "ts", "TOKENS", "TOKEN_WORKLOADS"]

# All metered tokens, each kind priced separately (docs/pricing.md), so each counts once.
# Unit cost per token counts only token-priced work: GPU training and notebooks are billed by the hour.
TOKEN_WORKLOADS = "workload_type NOT IN ('training', 'notebook')"
TOKENS = "(input_tokens + output_tokens + cached_input_tokens + cache_write_tokens + reasoning_tokens)"


def ts(t: datetime) -> int:
    """Epoch seconds, for `toDateTime(%(x)s, 'UTC')` parameters."""
    return int(t.timestamp())


def rows(client: Client, database: str, sql: str, **params: Any) -> list[tuple]:
    """Run `sql` with `{db}` replaced by `database` and %(name)s parameters bound by the client."""
    return [tuple(r) for r in client.query(sql.replace("{db}", database), parameters=params).result_rows]
