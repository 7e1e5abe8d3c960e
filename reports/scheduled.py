"""Scheduled reports: the weekly digest and the monthly review, run by the worker's timer once per period and
delivered as a per-team summary through the notifiers.

Exactly once per period across workers and restarts: before running, a worker claims the period with the same
set-once Redis marker alerts use (`SpendStore.mark_fired`, key (`report:<kind>`, period, 'scheduled', 0)); only
the worker whose SET NX wins runs it. The marker is claimed before the run, so a crash in the middle loses that
period's delivery (at most once) rather than sending it twice; `spendstream digest weekly` / `review monthly`
re-run it by hand.

Routing: a sinks.notifiers.Routing — each team's own notifiers, the org default otherwise; the worker builds one
from Settings (stream_app.notify_agent.routing_from) for both budget alerts and these summaries.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable

import httpx

from reports.render.html import usd
from sinks.notifiers import Routing, deliver_all
from spendstream.digest_schedule import Run, Schedule, due_runs
from spendstream.claims import claim_once
from spendstream.forecast import pct
from spendstream.ports import Clock, SpendStore

__all__ = ["ScheduledReports", "weekly_summary", "monthly_summary"]

log = logging.getLogger(__name__)
_MARKER_TTL_S = 400 * 86_400  # longer than any period: a marker outlives every re-check of its period


def weekly_summary(d: Any, html: Path) -> str:
    """One team's weekly line: spend, change vs last week, budget use, top 3 drivers (use cases), the report."""
    change = f"{'+' if d.cost >= d.cost_last else ''}{pct(d.cost - d.cost_last, d.cost_last)}% vs last week"
    budgets = "; ".join(f"{o.budget_id} {pct(o.spent, o.limit)}% used" for o in d.outlooks) or "no budget"
    top = sorted(d.use_cases, key=lambda u: -u[1])[:3]
    drivers = ", ".join(f"{name} {usd(cost)}" for name, cost, _ in top) or "none"
    return (f"{d.team} · week {d.week}: {usd(d.cost)} ({change}); budget: {budgets}; "
            f"top drivers: {drivers}; report: {html}")


def monthly_summary(team: str, month: str, spent: int, budget: int, residual: int, html: Path) -> str:
    use = f"{pct(spent, budget)}% of budget {usd(budget)}" if budget else "no budget"
    extra = f"; reconciliation residual {usd(residual, 4)}" if residual else ""
    return f"{team} · {month}: {usd(spent)} ({use}){extra}; review: {html}"


@dataclass
class ScheduledReports:
    """`tick()` runs what is due. `client` makes a ClickHouse client (called in a worker thread)."""

    client: Callable[[], Any]
    database: str
    store: SpendStore
    clock: Clock
    out_dir: Path
    routing: Routing = field(default_factory=lambda: Routing([], {}))
    schedule: Schedule = Schedule()
    budgets: list = field(default_factory=list)  # for the digest's forecast (Budget objects)

    async def tick(self) -> list[Run]:
        """Run and deliver every due report this worker claims; returns the runs it did."""
        done = []
        for run in due_runs(self.clock.now_ms(), self.schedule):
            exp = run.due_ms // 1000 + _MARKER_TTL_S
            async with claim_once(self.store, (f"report:{run.kind}", run.period, "scheduled", 0), exp,
                                  f"{run.kind} report {run.period}") as mine:
                if not mine:
                    continue
                messages = await asyncio.to_thread(self._write, run)
            async with httpx.AsyncClient(timeout=10.0) as http:
                for team, text in messages:
                    notifiers = self.routing.for_team(team)
                    alert = {"kind": run.kind, "budget_id": f"report:{run.kind}:{team}", "team": team,
                             "period": run.period, "message": text}
                    await deliver_all(http, notifiers, alert, attempts=3, base_delay=0.2)
            log.info("scheduled %s report %s: %d team summaries", run.kind, run.period, len(messages))
            done.append(run)
        return done

    def _write(self, run: Run) -> list[tuple[str, str]]:
        from reports.report_files import write_review, write_weekly

        client = self.client()
        if run.kind == "weekly":
            return [(d.team, weekly_summary(d, html))
                    for d, html in write_weekly(client, self.database, run.period, self.out_dir, self.budgets)]
        from sinks.clickhouse.budget_history import team_month_budgets

        rev = write_review(client, self.database, run.period, self.out_dir,
                           now=datetime.fromtimestamp(self.clock.now_ms() / 1000, UTC))
        budgets = team_month_budgets(client, self.database, run.period)
        residual: dict[str, int] = {}
        for _, team, amount in rev.data.residual_lines:
            residual[team] = residual.get(team, 0) + amount
        return [(t, monthly_summary(t, run.period, spent, budgets.get(t, 0), residual.get(t, 0), rev.html))
                for t, spent in sorted(rev.data.team_actual.items())]
