"""One answered check as a `check_outcomes` row (migration 0007): what was asked, what was decided and why.

A denied call never leaves, so it has no usage event; this row is where it is counted (with the
`spendstream_api_checks` metric), and where an analyst finds how often, for whom and why calls were refused."""

from __future__ import annotations

from typing import Any

from enforcement.check_models import CheckRequest, CheckResponse
from sinks.clickhouse.check_outcomes import OUTCOME_COLUMNS
from spendstream.money import usd_to_nanos

__all__ = ["OUTCOME_COLUMNS", "outcome_row"]


def outcome_row(req: CheckRequest, out: CheckResponse, api_key_id: str | None, now_ms: int) -> list[Any]:
    """The row, in OUTCOME_COLUMNS order; `checked_at` as epoch milliseconds (the writer makes it a DateTime64)."""
    return [now_ms, req.team, req.use_case, req.cost_center, req.environment, req.provider, req.model,
            out.decision, out.reason, usd_to_nanos(out.estimated_cost_usd), int(out.reservation_id is not None),
            out.reservation_id or "", api_key_id or "", [b.budget_id for b in out.budgets],
            out.suggested_model or ""]
