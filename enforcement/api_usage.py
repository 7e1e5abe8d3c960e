"""`GET /v1/usage`: spend, events and tokens of one scope over [from, to) from the ClickHouse rollups, so services
and dashboards can ask about last month, not only the live window. Read scope, team-limited like /v1/spend."""

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Callable, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from enforcement.api_admin import error_responses
from enforcement.auth import Principal
from enforcement.errors import InvalidRequest
from enforcement.queries import parse_scope
from spendstream.errors import SpendstreamError
from spendstream.money import format_usd
from spendstream.scopes import OPTIONAL_KINDS, SCOPE_KINDS, scope_team

__all__ = ["usage_router", "UsageReport", "HistoryUnavailable", "MAX_BUCKETS", "HISTORY_KINDS"]

# The rollups keep the owner scopes only (reports/usage.py SCOPE_COLUMNS;
# tests/integration/test_api_usage.py checks the two agree): optional scopes (user, customer, ...) have no history.
HISTORY_KINDS: tuple[str, ...] = tuple(k for k in SCOPE_KINDS if k not in OPTIONAL_KINDS)
HISTORY_SCOPE_PATTERN = f"^({'|'.join(HISTORY_KINDS)}):."

MAX_BUCKETS = 5_000  # periods x breakdown keys one answer may hold
ISO_TIME = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?$"
# the history's range: inside ClickHouse DateTime (1970..2106), and clear of its edges, where toMonday() of early
# January 1970 would fall before the epoch
log = logging.getLogger(__name__)
EPOCH, LAST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2106, 1, 1, tzinfo=UTC)
_SPAN = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1), "month": timedelta(days=28)}


class HistoryUnavailable(SpendstreamError):
    """ClickHouse did not answer the history query (HTTP 503)."""


class UsagePoint(BaseModel):
    period_start: datetime
    key: str | None = Field(default=None, description="the model (provider/model) or use case, with `by`")
    spend_usd: str
    events: int
    requests: int
    input_tokens: int
    output_tokens: int


class UsageReport(BaseModel):
    scope: str
    start: datetime = Field(description="inclusive, UTC")
    end: datetime = Field(description="exclusive, UTC")
    group_by: str
    by: str | None
    total_spend_usd: str
    points: list[UsagePoint]


def _utc(text: str, name: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"{name} must be an ISO 8601 date or date-time (UTC when no offset), not {text!r}") from None
    return (t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC))


def usage_router(history: Callable[..., list[Any]], principal: Callable[..., Any]) -> APIRouter:
    """`history(kind, value, start, end, grain, by)` reads the rollups (reports.usage.usage_history bound to a
    client); it runs in a worker thread so the event loop (and /v1/check) never waits for ClickHouse."""
    r = APIRouter(prefix="/v1", tags=["budgets and spend"])
    Caller = Annotated[Principal, Depends(principal)]

    @r.get("/usage", response_model=UsageReport, responses=error_responses(401, 403, 422, 503))
    async def usage(
        who: Caller,
        scope: Annotated[str, Query(min_length=3, max_length=300, pattern=HISTORY_SCOPE_PATTERN,
                                 examples=["team:payments"])],
        start: Annotated[str, Query(alias="from", pattern=ISO_TIME, examples=["2026-11-01"])],
        end: Annotated[str, Query(alias="to", pattern=ISO_TIME, examples=["2026-12-01"])],
        group_by: Literal["hour", "day", "week", "month"] = "day",
        by: Literal["model", "use_case"] | None = None,
    ) -> UsageReport:
        """Spend history of one scope (kind:value) over [from, to), per hour / day / week / month, optionally per
        model or use case. Served from the hourly rollup: figures equal the priced events to the nano-USD."""
        try:
            s = parse_scope(scope)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        if s.kind not in HISTORY_KINDS:
            raise InvalidRequest(f"the usage history holds scopes {', '.join(HISTORY_KINDS)}; {s.kind!r} spend is "
                                 "live only (GET /v1/spend)")
        who.require_read(scope_team(s.kind, s.value))
        t0, t1 = _utc(start, "from"), _utc(end, "to")
        if t0 < EPOCH or t1 > LAST:
            raise InvalidRequest(f"[from, to) must lie within {EPOCH.date()} .. {LAST.date()} (the history's time range)")
        if t1 <= t0:
            raise InvalidRequest(f"`to` ({t1.isoformat()}) must be after `from` ({t0.isoformat()})")
        if (t1 - t0) / _SPAN[group_by] > MAX_BUCKETS:
            raise InvalidRequest(f"[from, to) holds more than {MAX_BUCKETS} {group_by} periods: narrow it or group "
                                 "by a longer period")
        try:
            rows = await asyncio.to_thread(history, s.kind, s.value, t0, t1, group_by, by)
        except ValueError as exc:  # the history's own refusal: a scope kind the rollups do not hold (customer, ...)
            raise InvalidRequest(f"no usage history for this query: {exc}") from exc
        except Exception as exc:  # any failure to reach or query ClickHouse: a 503 with the reason
            log.warning("GET /v1/usage %s [%s, %s) %s/%s failed: %s", scope, t0, t1, group_by, by, exc)
            raise HistoryUnavailable(f"usage history unavailable: {type(exc).__name__}: {str(exc)[:200]}") from exc
        if len(rows) > MAX_BUCKETS:
            raise InvalidRequest(f"more than {MAX_BUCKETS} points: narrow [from, to) or drop `by`")
        return UsageReport(
            scope=f"{s.kind}:{s.value}", start=t0, end=t1, group_by=group_by, by=by,
            total_spend_usd=format_usd(sum(x.cost_nanos for x in rows)),
            points=[UsagePoint(period_start=x.period_start.replace(tzinfo=UTC), key=x.key,
                               spend_usd=format_usd(x.cost_nanos), events=x.events, requests=x.requests,
                               input_tokens=x.input_tokens, output_tokens=x.output_tokens) for x in rows])

    return r
