"""The console's figures: live from Redis through the API's own read models (enforcement.queries.Queries, what
GET /v1/spend serves), history from ClickHouse through the /v1/usage history reader (reports.usage) and
reports.console_reads. Every ClickHouse read runs in a worker thread, one at a time, so the event loop (and
/v1/check) never waits for ClickHouse. A history that cannot be read leaves its part empty with a note; live
figures still show."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Callable

from enforcement.api_admin import decision_team
from enforcement.checker import Checker
from enforcement.queries import ActiveDecision, Queries, SpendReport
from reports.console_reads import (DataQuality, RecentAlert, UnitCosts, data_quality, dead_letter_counts,
                                   recent_alerts, unit_costs)
from reports.usage import SCOPE_COLUMNS, UsageRow
from schemas.models import Budget, BudgetScope
from spendstream.alerts import AlertPolicy, projected_spend
from spendstream.budget_windows import budget_window
from spendstream.forecast import pct, unit_cost
from spendstream.money import usd_to_nanos
from spendstream.scopes import scope_team

__all__ = ["ConsoleData", "Overview", "TeamView", "BurnDown", "Reads", "nanos"]

log = logging.getLogger(__name__)
DAY_S = 86_400


def nanos(usd: str | None) -> int:
    return usd_to_nanos(usd) if usd else 0


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass
class BurnDown:
    """One budget's period: spend to date per day (cumulative), thresholds, the forecast to the period end."""

    budget: Budget
    window: str
    start_ms: int
    end_ms: int
    limit: int
    spent: int
    held: int
    forecast: int | None
    days: list[tuple[int, int]] = field(default_factory=list)  # (day start epoch s, cumulative nano-USD)

    @property
    def status(self) -> str:
        if self.spent > self.limit:
            return "over budget"
        return "at risk" if self.forecast is not None and self.forecast > self.limit else "on track"


@dataclass
class Overview:
    month: SpendReport
    limit: int | None
    forecast: int | None
    daily: list[UsageRow]
    teams: list[tuple[str, int]]
    use_cases: list[tuple[str, int]]
    models: list[tuple[str, int]]
    unallocated_pct: str
    coverage_pct: str
    decisions: list[ActiveDecision]
    alerts: list[RecentAlert]
    notes: list[str]
    dead_letters: list[tuple[str, str, int]] = field(default_factory=list)  # top (team, reason, letters) this month


@dataclass
class TeamView:
    team: str
    month: SpendReport
    burndowns: list[BurnDown]
    by_use_case: list[UsageRow]
    by_model: list[UsageRow]
    units: UnitCosts | None
    unit_rows: list[tuple[str, int | None, str]]  # (what, nano-USD per unit or None, unit)
    decisions: list[ActiveDecision]
    alerts: list[RecentAlert]
    notes: list[str]
    quality: DataQuality | None = None  # dead letters and unpriced events this month (None: not read)


@dataclass
class Reads:
    """One page's reads: whether it reads history at all (a live fragment does not), and what could not be read
    (shown on the page as notes)."""

    history: bool = True
    notes: list[str] = field(default_factory=list)


class _ClickHouse:
    """One lazily made client (the API starts without ClickHouse), used by one thread at a time."""

    def __init__(self, connect: Callable[[], Any], db: str) -> None:
        self._connect, self.db, self._client, self._lock = connect, db, None, threading.Lock()

    def _run(self, fn, *args):
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            try:
                return fn(self._client, self.db, *args)
            except Exception:
                self._client = None
                raise

    async def run(self, fn, *args):
        return await asyncio.to_thread(self._run, fn, *args)


def _totals(rows: list[UsageRow]) -> list[tuple[str, int]]:
    out: dict[str, int] = {}
    for r in rows:
        out[r.key or ""] = out.get(r.key or "", 0) + r.cost_nanos
    return sorted(out.items(), key=lambda kv: (-kv[1], kv[0]))


class ConsoleData:
    def __init__(self, checker: Checker, history: Callable[..., list] | None, connect: Callable[[], Any] | None,
                 db: str, policy: AlertPolicy | None = None) -> None:
        self.checker, self.queries, self.history = checker, Queries(checker), history
        self.ch = _ClickHouse(connect, db) if connect is not None else None
        self.policy = policy or AlertPolicy()

    async def _history(self, reads: Reads, *args) -> list[UsageRow]:
        if self.history is None or not reads.history:
            return []
        try:
            return await asyncio.to_thread(self.history, *args)
        except Exception as exc:  # ClickHouse away: the live figures still show
            log.warning("console: usage history unavailable: %s", exc)
            reads.notes.append(f"history unavailable ({type(exc).__name__}); live figures only")
            return []

    async def read_clickhouse(self, reads: Reads, fn, *args, default=None):
        """fn(client, db, *args) in a worker thread; `default` (and a note) when ClickHouse cannot answer. The
        latest alerts are read for live fragments too."""
        if self.ch is None or not (reads.history or fn is recent_alerts):
            return default
        try:
            return await self.ch.run(fn, *args)
        except Exception as exc:
            log.warning("console: ClickHouse read %s failed: %s", fn.__name__, exc)
            reads.notes.append(f"{fn.__name__.replace('_', ' ')} unavailable ({type(exc).__name__})")
            return default

    async def overview(self, history: bool = True) -> Overview:
        """The org's figures; without `history` only the live ones (what the live fragment polls)."""
        now = self.checker.clock_ms()
        reads = Reads(history)
        w = budget_window("month", now)
        org = await self.queries.spend(BudgetScope(kind="org", value="all"), "month")
        limit = min(nanos(b.limit_usd) for b in org.budgets) if org.budgets else None  # the binding one
        spent = nanos(org.spent_usd)
        s, e = _dt(w.start_ms), _dt(w.end_ms)
        daily = await self._history(reads, "org", "all", s, e, "day", None)
        teams = _totals(await self._history(reads, "org", "all", s, e, "month", "team"))
        use_cases = _totals(await self._history(reads, "org", "all", s, e, "month", "use_case"))
        models = _totals(await self._history(reads, "org", "all", s, e, "month", "model"))
        unalloc = await self.queries.spend(BudgetScope(kind="team", value="unallocated"), "month")
        dead = await self.read_clickhouse(reads, dead_letter_counts, s, e, default=[])
        return Overview(
            org, limit, projected_spend(spent, w.start_ms, w.end_ms, now, self.policy), daily, teams[:10],
            use_cases[:10], models[:10], pct(nanos(unalloc.spent_usd), spent), pct(nanos(org.tagged_usd), spent),
            await self.queries.decisions(), await self.read_clickhouse(reads, recent_alerts, None, 10, default=[]),
            reads.notes, dead[:20])

    async def burndown(self, b: Budget, reads: Reads) -> BurnDown | None:
        """None for budgets the console cannot chart (rolling windows, budget groups, scopes without history)."""
        if b.window != "calendar" or b.selector is not None:
            return None
        now = self.checker.clock_ms()
        w = budget_window(b.period, now, fiscal_start_month=self.checker.fiscal_start_month)
        rep = await self.queries.spend(b.scope, b.period)
        ab = next((x for x in rep.budgets if x.budget_id == b.id), None)
        if ab is None:
            return None
        spent = nanos(ab.spent_usd)
        bd = BurnDown(b, w.label, w.start_ms, w.end_ms, nanos(ab.limit_usd), spent, nanos(ab.held_usd),
                      projected_spend(spent, w.start_ms, w.end_ms, now, self.policy))
        rows = []
        if b.scope.kind in SCOPE_COLUMNS:
            rows = await self._history(reads, b.scope.kind, b.scope.value, _dt(w.start_ms), _dt(w.end_ms), "day",
                                       None)
        total = 0
        for r in rows:  # spend to the end of each finished day; today's is the live figure below
            total += r.cost_nanos
            day_end = int(r.period_start.replace(tzinfo=UTC).timestamp()) + DAY_S
            if day_end < now // 1000:
                bd.days.append((day_end, total))
        bd.days.insert(0, (w.start_ms // 1000, 0))
        bd.days.append((now // 1000, spent))  # the live figure closes the line (ClickHouse lags a flush)
        bd.days.sort()
        return bd

    async def team(self, team: str, history: bool = True) -> TeamView:
        """The team's figures; without `history` only the live ones (what the live fragment polls)."""
        now = self.checker.clock_ms()
        reads = Reads(history)
        month = await self.queries.spend(BudgetScope(kind="team", value=team), "month")
        budgets = [b for b in await self.checker.budgets() if scope_team(b.scope.kind, b.scope.value) == team]
        burndowns = [bd for b in sorted(budgets, key=lambda b: b.id) if (bd := await self.burndown(b, reads))]
        s30, end = _dt(now) - timedelta(days=30), _dt(now) + timedelta(hours=1)
        w = budget_window("month", now)
        units = await self.read_clickhouse(reads, unit_costs, team, _dt(w.start_ms), _dt(w.end_ms))
        quality = await self.read_clickhouse(reads, data_quality, team, _dt(w.start_ms), _dt(w.end_ms))
        unit_rows = []
        if units is not None:
            unit_rows = [("per 1,000 requests", unit_cost(units.cost, units.requests, 1000), "requests"),
                         ("per 1M tokens (token-priced work)", unit_cost(units.token_cost, units.tokens, 1_000_000),
                          "tokens")]
            unit_rows += [(f"per {t or 'activity'}", unit_cost(c, n, 1), f"{n} {t}") for t, c, n in units.activities]
        decisions = [d for d in await self.queries.decisions() if decision_team(d) == team]
        return TeamView(
            team, month, burndowns,
            await self._history(reads, "team", team, s30, end, "day", "use_case"),
            await self._history(reads, "team", team, s30, end, "day", "model"),
            units, unit_rows, decisions, await self.read_clickhouse(reads, recent_alerts, team, 10, default=[]),
            reads.notes, quality)

