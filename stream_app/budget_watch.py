"""After each applied batch: evaluate the budgets whose scopes the batch touched; fire alerts once; write and
lift throttle decisions. A timer (`tick`) lifts decisions whose period rolled or whose budget was raised.

Alerts and decisions go to Kafka (spend.alerts.v1 / spend.decisions.v1) as JSON; the notifier agent
(stream_app/notify_agent.py) delivers alerts to on-call off the hot path.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from schemas.models import Budget
from spendstream.alerts import (
    Alert, AlertPolicy, DecisionRecord, decision_due, forecast_alert, spike_alert, threshold_alerts,
)
from spendstream.budgets import budget_state
from spendstream.ports import Clock, Publish, SpendStore, Totals
from spendstream.scopes import CardinalityCap
from spendstream.ttl_cache import TtlCache
from spendstream.windows import HOUR_MS, expire_at, period_bounds, period_window, window_ids
from sinks.clickhouse.ledger_rows import ALERT_COLUMNS, DECISION_COLUMNS, alert_row, decision_row
from stream_app.metrics import Metrics

__all__ = ["BudgetWatcher"]

log = logging.getLogger(__name__)

Ledger = Callable[[str, tuple[str, ...], list[list[Any]]], None]  # RowSink.add_ledger


class BudgetWatcher:
    """Evaluates budgets from the spend store's totals (never from local state: a worker sees only its own
    partitions). Budgets are re-read every `refresh_s` of the clock's monotonic time."""

    def __init__(
        self, store: SpendStore, publish: Publish, alerts_topic: str, decisions_topic: str, clock: Clock,
        metrics: Metrics, policy: AlertPolicy = AlertPolicy(), refresh_s: float = 2.0, ledger: Ledger | None = None,
        cap: CardinalityCap | None = None,
    ) -> None:
        self.store = store
        self.publish = publish
        self.alerts_topic = alerts_topic
        self.decisions_topic = decisions_topic
        self.clock = clock
        self.metrics = metrics
        self.policy = policy
        self._budgets: TtlCache[str, list[Budget]] = TtlCache(refresh_s, clock.monotonic)
        self.ledger = ledger or (lambda table, columns, rows: None)  # ClickHouse ledger tables
        self.cap = cap  # the processor's: scopes a budget names are always tracked, never `overflow`

    async def budgets(self) -> list[Budget]:
        cached = self._budgets.get("all")
        if cached is None:
            cached = self._budgets.put("all", await self.store.budgets())
            if self.cap is not None:
                self.cap.pin((b.scope.kind, b.scope.value) for b in cached)
        return cached

    async def on_batch(self, totals: Totals) -> None:
        """`totals` = {(kind, value): {window id: spend after the batch}} from SpendStore.apply_batch."""
        if not totals:
            return
        now = self.clock.now_ms()
        touched = [b for b in await self.budgets() if (b.scope.kind, b.scope.value) in totals]
        if not touched:
            return
        candidates: list[Alert] = []
        decisions: list[DecisionRecord] = []
        for b in touched:
            window = period_window(b.period, now)
            spent = totals[(b.scope.kind, b.scope.value)].get(window)
            if spent is None:
                continue  # the batch only touched other (late) windows of this scope
            s = budget_state(b, window, spent)
            start, end = period_bounds(b.period, now)
            candidates += threshold_alerts(s, now)
            fc = forecast_alert(s, start, end, now, self.policy)
            if fc:
                candidates.append(fc)
            d = decision_due(s, end, now)
            if d:
                decisions.append(d)
        candidates += await self._spikes(touched, totals, now)
        await self._fire(candidates)
        await self._decide(decisions)

    async def _spikes(self, budgets: list[Budget], totals: dict, now: int) -> list[Alert]:
        hour = window_ids(now).hour
        relevant = [b for b in budgets if hour in totals[(b.scope.kind, b.scope.value)]]
        if not relevant:
            return []
        n = self.policy.spike_hours
        past = [window_ids(now - i * HOUR_MS).hour for i in range(n, 0, -1)]
        cells = await self.store.read_cells((b.scope.kind, b.scope.value, w) for b in relevant for w in past)
        out = []
        for i, b in enumerate(relevant):
            trailing = [c.get("spend", 0) for c in cells[i * n:(i + 1) * n]]
            a = spike_alert(b, hour, totals[(b.scope.kind, b.scope.value)][hour], trailing, now, self.policy)
            if a:
                out.append(a)
        return out

    async def _fire(self, candidates: list[Alert]) -> None:
        if not candidates:
            return
        first = await self.store.mark_fired([(a.dedupe_key, expire_at(a.window)) for a in candidates])
        for a, new in zip(candidates, first):
            if new:
                self.publish(self.alerts_topic, a.budget_id, a.to_json())
                self.metrics.alerts.labels(a.kind).inc()
                self.ledger("alerts", ALERT_COLUMNS, [alert_row(a)])
                log.info("alert %s", a.message)

    async def _decide(self, decisions: list[DecisionRecord]) -> None:
        if not decisions:
            return
        active = await self.store.decisions()
        for d in decisions:
            cur = active.get(d.budget_id)
            if cur and cur.get("window") == d.window and cur.get("action") == d.action:
                continue
            await self.store.put_decision(d.budget_id, d.to_json())
            self.publish(self.decisions_topic, d.budget_id, d.to_json())
            self.ledger("decisions", DECISION_COLUMNS, [decision_row(d)])
            self.metrics.decisions.labels(d.action).inc()
            log.warning("decision %s for %s: %s", d.action, d.scope, d.reason)

    async def tick(self) -> None:
        """Lift decisions whose window ended or whose budget now has room (raised or removed)."""
        active = await self.store.decisions()
        if not active:
            return
        now = self.clock.now_ms()
        self._budgets.expire()  # budgets may have changed: re-read them
        budgets = {b.id: b for b in await self.budgets()}
        for budget_id, rec in active.items():
            b = budgets.get(budget_id)
            reason = None
            if rec["expires_at_ms"] <= now:
                reason = "period rolled over"
            elif b is None:
                reason = "budget removed"
            else:
                window = period_window(b.period, now)
                spent = (await self.store.read_cells([(b.scope.kind, b.scope.value, window)]))[0].get("spend", 0)
                if spent < budget_state(b, window, spent).limit:
                    reason = "budget raised"
            if reason:
                await self._lift(budget_id, rec, reason, now)

    async def _lift(self, budget_id: str, rec: dict, reason: str, now: int) -> None:
        if not await self.store.remove_decision(budget_id):
            return  # another worker lifted it
        lifted = {**rec, "action": "lifted", "reason": f"{budget_id}: {reason}", "at_ms": now}
        self.publish(self.decisions_topic, budget_id, lifted)
        self.ledger("decisions", DECISION_COLUMNS, [decision_row(lifted)])
        resolve = Alert(budget_id, rec["scope"], "resolve", rec["window"], 0, 0, 0, None, "enforce", now,
                        f"{budget_id}: resolved ({reason})")
        self.publish(self.alerts_topic, budget_id, resolve.to_json())
        self.ledger("alerts", ALERT_COLUMNS, [alert_row(resolve)])
        self.metrics.decisions.labels("lifted").inc()
        # the 100 % threshold may fire again if the budget is crossed again in the same window
        await self.store.clear_fired(budget_id, rec["window"], "threshold", 100)

