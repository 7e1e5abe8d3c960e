"""After each applied batch: evaluate the budgets whose scopes the batch touched; fire alerts once; write and
lift throttle decisions. A timer (`tick`) lifts decisions whose period rolled or whose budget was raised.

Alerts and decisions go to Kafka (spend.alerts.v1 / spend.decisions.v1) as JSON; the notifier agent
(stream_app/notify_agent.py) delivers alerts to on-call off the hot path.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable

from schemas.models import Budget
from spendstream.alerts import (
    Alert, AlertPolicy, DecisionRecord, decision_due, forecast_alert, rolling_forecast_alert, spike_alert,
    threshold_alerts, unpriced_model_alerts,
)
from spendstream.budgets import budget_state
from spendstream.ports import Cell, Clock, Publish, SpendStore, Totals
from spendstream.scopes import CardinalityCap
from spendstream.ttl_cache import TtlCache
from sinks.clickhouse.carry_rows import CARRY_COLUMNS, carry_row
from spendstream.budget_windows import BudgetWindow, budget_window, lift_at_ms, previous_window
from spendstream.carry_over import CarryOver
from spendstream.groups import GroupIndex, budget_scope
from spendstream.windows import HOUR_MS, expire_at, window_ids
from sinks.clickhouse.ledger_rows import ALERT_COLUMNS, DECISION_COLUMNS, alert_row, decision_row
from stream_app.metrics import Metrics

__all__ = ["BudgetWatcher", "merge_totals"]

log = logging.getLogger(__name__)
_UNPRICED_MARKER_S = 10 * 366 * 86_400

Ledger = Callable[[str, tuple[str, ...], list[list[Any]]], None]  # RowSink.add_ledger
Scope = tuple[str, str]


def merge_totals(parts: Iterable[Totals]) -> Totals:
    """The totals of several applied batches as one: a window's spend is the highest read. A window's spend after a
    batch only grows (no cost is negative), so the highest is the freshest whatever order the batches were applied
    in (the worker applies its partitions' batches concurrently, so their replies may come in any order)."""
    out: Totals = {}
    for totals in parts:
        for scope, cells in totals.items():
            have = out.get(scope)
            if have is None:
                out[scope] = dict(cells)
            else:
                for window, spend in cells.items():
                    if spend > have.get(window, -1):
                        have[window] = spend
    return out


class BudgetWatcher:
    """Evaluates budgets from the spend store's totals (never from local state: a worker sees only its own
    partitions). Budgets are re-read every `refresh_s` of the clock's monotonic time.

    Spike detection reads each touched scope's previous `spike_hours` hour windows once per hour and `trailing_s`
    (not per batch): between reads the batches' own totals keep them current (a late event's batch returns the
    new spend of its past hour); only late events booked by OTHER workers wait up to `trailing_s` to count."""

    def __init__(
        self, store: SpendStore, publish: Publish, alerts_topic: str, decisions_topic: str, clock: Clock,
        metrics: Metrics, policy: AlertPolicy = AlertPolicy(), refresh_s: float = 2.0, ledger: Ledger | None = None,
        cap: CardinalityCap | None = None, fiscal_start_month: int = 1, groups: GroupIndex | None = None,
        trailing_s: float = 30.0, memo_s: float = 30.0,
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
        self.fiscal_start_month = fiscal_start_month
        self.groups = groups  # the processor's: rebuilt from budgets and members' labels on each refresh
        self.carry = CarryOver(self._read_summed, clock.monotonic, fiscal_start_month)
        self.cap = cap  # the processor's: scopes a budget names are always tracked, never `overflow`
        self._by_scope: dict[Scope, list[tuple[int, Budget]]] = {}  # the counter scope -> its budgets (list order)
        self._indexed: list[Budget] | None = None
        self.trailing_s = trailing_s
        self._trailing: dict[Scope, tuple[str, float, dict[str, int]]] = {}  # scope -> (hour, read at, {hour: spend})
        # What this worker knows is already in Redis, kept `memo_s`: an alert marker seen set (a crossed threshold
        # is a candidate again on every batch), a decision seen in force (budget id -> (window, action)). Within
        # memo_s they are not asked of Redis again: one round trip (SET NX of every crossed threshold, HGETALL of
        # the decisions) less per batch. Cleared when this worker lifts or clears them; after another worker's
        # lift, this one re-asks within memo_s (the lifting worker itself holds no memo of them).
        self.memo_s = memo_s
        self._fired: dict[tuple[str, str, str, int], float] = {}
        self._decided: dict[str, tuple[str, str, float]] = {}

    async def budgets(self) -> list[Budget]:
        cached = self._budgets.get("all")
        if cached is None:
            cached = self._budgets.put("all", await self.store.budgets())
            if self.cap is not None:
                self.cap.pin((b.scope.kind, b.scope.value) for b in cached)
            if self.groups is not None:
                labels = {(kind, v): lab for kind in self.groups.kinds(cached)
                          for v, lab in (await self.store.members(kind)).items()}
                self.groups.rebuild(cached, labels)
        return cached

    def _index(self, budgets: list[Budget]) -> dict[Scope, list[tuple[int, Budget]]]:
        """Budgets by the counter scope they read, rebuilt when the budget list is re-read."""
        if budgets is not self._indexed:
            by_scope: dict[Scope, list[tuple[int, Budget]]] = {}
            for i, b in enumerate(budgets):
                by_scope.setdefault(budget_scope(b), []).append((i, b))
            self._by_scope, self._indexed = by_scope, budgets
        return self._by_scope

    def window_of(self, b: Budget, now_ms: int) -> BudgetWindow:
        return budget_window(b.period, now_ms, window=b.window, length=b.length,
                             fiscal_start_month=self.fiscal_start_month)

    async def _spends(self, budgets: list[Budget], windows: list[BudgetWindow],
                      totals: Totals | None) -> list[list[int] | None]:
        """Per budget, the spend of each part of its window (one part for a calendar window), or None when the
        batch did not touch it. Calendar windows come from `totals`; quarter and rolling windows are summed
        from their parts, read in one round trip."""
        out: list[list[int] | None] = []
        reads: list[tuple[str, str, str]] = []
        for b, w in zip(budgets, windows):
            scope = budget_scope(b)
            seen = totals.get(scope, {}) if totals is not None else None
            if not w.parts:
                if seen is None:
                    reads.append((*scope, w.label))
                    out.append([])
                else:
                    out.append([seen[w.label]] if w.label in seen else None)
            elif seen is None or any(p in seen for p in w.parts):
                reads += [(*scope, p) for p in w.parts]
                out.append([])
            else:
                out.append(None)
        cells = iter(await self.store.read_cells(reads)) if reads else iter(())
        for i, w in enumerate(windows):
            if out[i] == []:
                out[i] = [next(cells).get("spend", 0) for _ in (w.parts or (w.label,))]
        return out

    async def _read_summed(self, cells: list[Cell], now_ms: int) -> list[dict[str, int]]:
        """{spend} of each cell, a cell with parts read as their sum (the CarryOver reader)."""
        rows = iter(await self.store.read_cells(
            [(c.kind, c.value, p) for c in cells for p in (c.parts or (c.window,))]))
        return [{"spend": sum(next(rows).get("spend", 0) for _ in (c.parts or (c.window,)))} for c in cells]

    async def _record_carry(self, budgets: list[Budget], windows: list[BudgetWindow], carried: list[int],
                            now: int) -> None:
        """Write each carry-over budget's carried amount to the ClickHouse ledger once per period."""
        due = [(b, w, c) for b, w, c in zip(budgets, windows, carried) if b.carry_over]
        if not due:
            return
        first = await self.store.mark_fired([((b.id, w.label, "carry", 0), w.expire_at_s) for b, w, _ in due])
        for (b, w, c), new in zip(due, first):
            if new:
                prev = previous_window(b.period, w, self.fiscal_start_month)
                spent = (await self._read_summed([Cell(b.scope.kind, b.scope.value, prev.label, parts=prev.parts)],
                                                 now))[0]["spend"]
                self.ledger("carry_over", CARRY_COLUMNS, [carry_row(b, prev.label, w.label, spent, c, now)])

    async def on_batch(self, totals: Totals) -> None:
        """`totals` = {(kind, value): {window id: spend after the batch}} from SpendStore.apply_batch."""
        if not totals:
            return
        now = self.clock.now_ms()
        by_scope = self._index(await self.budgets())
        touched = [b for _, b in sorted((ib for scope in totals for ib in by_scope.get(scope, ())),
                                        key=lambda ib: ib[0])]
        if not touched:
            return
        candidates: list[tuple[Alert, int]] = []
        decisions: list[DecisionRecord] = []
        windows = [self.window_of(b, now) for b in touched]
        carried = await self.carry.carried(touched, windows, now) if any(b.carry_over for b in touched) \
            else [0] * len(touched)
        await self._record_carry(touched, windows, carried, now)
        for b, w, parts, c in zip(touched, windows, await self._spends(touched, windows, totals), carried):
            if parts is None:
                continue  # the batch only touched other (late) windows of this scope
            s = budget_state(b, w.label, sum(parts), carried=c)
            candidates += [(a, w.expire_at_s) for a in threshold_alerts(s, now)]
            fc = rolling_forecast_alert(s, parts, now) if w.rolling else \
                forecast_alert(s, w.start_ms, w.end_ms, now, self.policy)
            if fc:
                candidates.append((fc, w.expire_at_s))
            d = decision_due(s, lift_at_ms(w, parts, s.limit) or w.end_ms, now)
            if d:
                decisions.append(d)
        candidates += [(a, expire_at(a.window)) for a in await self._spikes(touched, totals, now)]
        await self._fire(candidates)
        await self._decide(decisions)

    async def _spikes(self, budgets: list[Budget], totals: dict, now: int) -> list[Alert]:
        hour = window_ids(now).hour
        relevant = [b for b in budgets if hour in totals[budget_scope(b)]]
        if not relevant:
            return []
        n = self.policy.spike_hours
        past = [window_ids(now - i * HOUR_MS).hour for i in range(n, 0, -1)]
        trailing = await self._trailing_spend({budget_scope(b) for b in relevant}, hour, past, totals)
        out = []
        for b in relevant:
            scope = budget_scope(b)
            a = spike_alert(b, hour, totals[scope][hour], [trailing[scope].get(w, 0) for w in past], now, self.policy)
            if a:
                out.append(a)
        return out

    async def _trailing_spend(self, scopes: set[Scope], hour: str, past: list[str],
                              totals: dict) -> dict[Scope, dict[str, int]]:
        """{scope: {past hour: spend}}: read once per scope, hour and `trailing_s` (one round trip for all the
        scopes due), kept current in between from the batches' own totals."""
        t = self.clock.monotonic()
        out: dict[Scope, dict[str, int]] = {}
        due: list[Scope] = []
        for scope in scopes:
            hit = self._trailing.get(scope)
            if hit is None or hit[0] != hour or t - hit[1] >= self.trailing_s:
                due.append(scope)
                continue
            spends = hit[2]
            seen = totals.get(scope, {})
            for w in past:
                if w in seen:  # a late event of this batch: the total after it is the new spend
                    spends[w] = seen[w]
            out[scope] = spends
        if due:
            cells = await self.store.read_cells((*scope, w) for scope in due for w in past)
            for i, scope in enumerate(due):
                spends = {w: c.get("spend", 0) for w, c in zip(past, cells[i * len(past):(i + 1) * len(past)])}
                self._trailing[scope] = (hour, t, spends)
                out[scope] = spends
            if len(self._trailing) > 4 * len(self._by_scope) + 64:  # scopes no budget reads any more
                self._trailing = {s: v for s, v in self._trailing.items() if s in self._by_scope}
        return out

    async def on_unpriced(self, models: set[tuple[str, str]]) -> None:
        """Alert the platform team once per model priced by the fallback rule (marker kept ~10 years)."""
        now = self.clock.now_ms()
        await self._fire([(a, now // 1000 + _UNPRICED_MARKER_S) for a in unpriced_model_alerts(models, now)])

    async def _fire(self, candidates: list[tuple[Alert, int]]) -> None:
        """Publish each (alert, marker expiry epoch s) the first time its marker is set."""
        if not candidates:
            return
        t, memo, memo_s = self.clock.monotonic(), self._fired, self.memo_s
        candidates = [(a, exp) for a, exp in candidates if t - memo.get(a.dedupe_key, -memo_s) >= memo_s]
        if not candidates:
            return
        first = await self.store.mark_fired([(a.dedupe_key, exp) for a, exp in candidates])
        if len(memo) > 100_000:  # bounded: entries older than memo_s are asked again anyway
            self._fired = memo = {k: at for k, at in memo.items() if t - at < memo_s}
        for (a, _), new in zip(candidates, first):
            memo[a.dedupe_key] = t
            if new:
                self.publish(self.alerts_topic, a.budget_id, a.to_json())
                self.metrics.alerts.labels(a.kind).inc()
                self.ledger("alerts", ALERT_COLUMNS, [alert_row(a)])
                log.info("alert %s", a.message)

    async def _decide(self, decisions: list[DecisionRecord]) -> None:
        t, memo_s = self.clock.monotonic(), self.memo_s
        decisions = [d for d in decisions if (seen := self._decided.get(d.budget_id)) is None
                     or seen[:2] != (d.window, d.action) or t - seen[2] >= memo_s]
        if not decisions:
            return
        active = await self.store.decisions()
        for d in decisions:
            cur = active.get(d.budget_id)
            if cur and cur.get("window") == d.window and cur.get("action") == d.action:
                self._decided[d.budget_id] = (d.window, d.action, t)
                continue
            await self.store.put_decision(d.budget_id, d.to_json())
            self._decided[d.budget_id] = (d.window, d.action, t)
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
            rolling = str(rec.get("window", "")).startswith("r:")
            if rec["expires_at_ms"] <= now:
                reason = "old spend left the rolling window" if rolling else "period rolled over"
            elif b is None:
                reason = "budget removed"
            else:
                w = self.window_of(b, now)
                (parts,) = await self._spends([b], [w], None)
                (c,) = await self.carry.carried([b], [w], now)
                if sum(parts or ()) < b.limit_nanos + c:
                    reason = "old spend left the rolling window" if rolling else "budget raised"
            if reason:
                await self._lift(budget_id, rec, reason, now)

    async def _lift(self, budget_id: str, rec: dict, reason: str, now: int) -> None:
        self._decided.pop(budget_id, None)
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
        self._fired.pop((budget_id, rec["window"], "threshold", 100), None)

